"""DataLoader worker settings: validation, ``auto`` resolution and collation (workers are seeded by
:func:`lightning_aug.seeding.seed_worker`).

Small pure helpers first (:func:`available_cpus`), then the collate function and
:class:`LoaderSettings`, which the DataModule turns into DataLoader arguments.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter, _SingleProcessDataLoaderIter

from lightning_aug._checks import check_bool, check_int
from lightning_aug.data.collate import collate_labels, collate_uint8
from lightning_aug.seeding import seed_worker

__all__ = [
    "HAND_OVER_MS",
    "FetchClock",
    "LoaderSettings",
    "ResumableLoader",
    "available_cpus",
    "collate_labels",
    "collate_uint8",
    "makes_a_batch_within",
    "resolve_decode_threads",
]


def available_cpus() -> int:
    """Number of CPUs this process may run on (its affinity mask, not the machine's core count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# what a ready batch of 64 small images takes to reach the training process from a worker on the
# 2-core machine (torch's file_descriptor sharing), as DataStallMonitor measured it: 1.4-2 ms
HAND_OVER_MS = 2.0


def makes_a_batch_within(dataset: Any, batch_size: int, budget_ms: float) -> bool:
    """Whether this process makes the first ``batch_size`` samples of ``dataset``, one by one as a
    worker makes them, within ``budget_ms``; stops at the first sample past it (so the question costs
    at most the budget and one sample). The generators it moves are put back: torch's (the dataset
    puts it back itself in this process), Python's and numpy's global ones."""
    import random

    import numpy as np

    count = min(batch_size, len(dataset))
    if count == 0:
        return False
    outer = random.getstate(), np.random.get_state()
    try:
        start = time.perf_counter()
        for index in range(count):
            dataset[index]
            if (time.perf_counter() - start) * 1e3 > budget_ms:
                return False
        return True
    finally:
        random.setstate(outer[0])
        np.random.set_state(outer[1])


def _check_int_or_auto(name: str, value: Any, minimum: int) -> None:
    """Refuse ``value`` unless it is ``"auto"`` or an int >= ``minimum`` (not a bool).

    Raises:
        ValueError: naming ``name``, the value and what is expected.
    """
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int >= {minimum} or 'auto', got {value!r}")
    check_int(name, value, minimum)


def resolve_decode_threads(decode_threads: int | str) -> int:
    """``LoaderSettings.decode_threads`` as an int: ``"auto"`` is 2 where this process may use 2 CPUs
    or more, else 1."""
    if decode_threads == "auto":
        return 2 if available_cpus() >= 2 else 1
    return int(decode_threads)


class ResumableLoader(torch.utils.data.DataLoader):
    """A DataLoader over an :class:`~lightning_aug.data.sampling.EpochSampler` whose position is saved
    in checkpoints, so that Lightning resumes it mid-epoch (and says nothing of an unresumable loader).

    ``position`` is set by its owner (``AugDataModule``): the samples trained on in the current epoch,
    ``{"epoch": e, "samples": n}``, counted where batches reach the training step (batches the workers
    prepared ahead are not counted). ``fetch_clock``, when its owner sets one, is told how long each
    ``next()`` of the loader's iterators took: the training process's wait for a batch.
    """

    position: Any = None
    fetch_clock: FetchClock | None = None

    def _get_iterator(self) -> Any:
        if self.fetch_clock is None:
            return super()._get_iterator()
        if self.num_workers == 0:
            iterator: Any = _TimedSingleProcessIter(self)
        else:
            self.check_worker_number_rationality()  # as DataLoader._get_iterator
            iterator = _TimedMultiProcessingIter(self)
        iterator.clock = self.fetch_clock
        return iterator

    def state_dict(self) -> dict[str, int]:
        return dict(self.position()) if self.position is not None else {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state and hasattr(self.sampler, "set_start"):
            self.sampler.set_start(int(state["epoch"]), int(state["samples"]))


class FetchClock(Protocol):
    """What :class:`ResumableLoader` tells how long a batch took to come (``DataStallMonitor``'s)."""

    def fetched(self, seconds: float, ended: float, ready: bool | None) -> None:
        """A ``next()`` took ``seconds`` and returned (or ended the epoch) at ``ended``
        (``time.perf_counter``); ``ready``: whether a worker's batch was waiting when it was called
        (``None``: no workers, the training process loads)."""


class _Timed:
    """The DataLoader iterators' ``__next__``, timed for a :class:`FetchClock`."""

    clock: FetchClock

    def _ready(self) -> bool | None:
        return None

    def __next__(self) -> Any:
        ready = self._ready()
        start = time.perf_counter()
        try:
            return super().__next__()  # type: ignore[misc]
        finally:
            end = time.perf_counter()
            self.clock.fetched(end - start, end, ready)


class _TimedSingleProcessIter(_Timed, _SingleProcessDataLoaderIter):
    pass


class _TimedMultiProcessingIter(_Timed, _MultiProcessingDataLoaderIter):
    def _ready(self) -> bool | None:
        # a batch waits in the workers' (or the pinning thread's) queue: taking it is the hand-over
        return not self._data_queue.empty()


_START_METHODS = tuple(multiprocessing.get_all_start_methods())


@dataclass(frozen=True)
class LoaderSettings:
    """DataLoader settings of an :class:`~lightning_aug.AugDataModule`, validated on construction.

    Args:
        batch_size: samples per training batch (per process under DDP).
        eval_batch_size: samples per validation/test/predict batch; ``None`` uses ``batch_size``.
        num_workers: worker processes per loader, or ``"auto"``: the CPUs this process may use
            divided by the number of devices on this node (one loader per device under DDP); none
            where the main process makes a whole batch in less time than a batch from a worker takes
            to reach it (:data:`HAND_OVER_MS`, measured on the batch's samples when the loader is made).
        pin_memory: page-locked host batches; ``"auto"`` pins when the trainer runs on CUDA (without a
            trainer: when CUDA is available).
        persistent_workers: keep workers alive between epochs. Needs ``num_workers > 0``.
        prefetch_factor: batches loaded in advance by each worker; ``None`` keeps torch's default.
            Needs ``num_workers > 0``.
        drop_last: drop the last incomplete training batch (evaluation never drops samples).
        multiprocessing_context: worker start method (``"fork"``, ``"spawn"``, ``"forkserver"``);
            ``None`` keeps the platform default. Needs ``num_workers > 0``.
        decode_threads: threads of each worker (or of the main process without workers) that decode a
            batch's crops side by side where the crop runs while decoding (JPEGs with any decoder but
            ``pil``; :mod:`lightning_aug.data.threads`): the same images as one thread. ``"auto"``: 2
            where this process may use 2 CPUs or more (with 2 workers on 2 CPUs the bench's loader
            gave 1.05-1.25x the images a second of one thread each), else 1. An int > 1 where no
            split's crop runs while decoding is refused at setup.

    When ``num_workers="auto"`` resolves to 0 (fewer CPUs than devices), the settings that need
    workers (``persistent_workers``, ``prefetch_factor``, ``multiprocessing_context``) are dropped with
    a warning: this is the one documented adjustment. An explicit ``num_workers=0`` with any of them is
    an error.

    Example::

        >>> LoaderSettings(batch_size=32, num_workers=2, persistent_workers=True).batch_size
        32
        >>> LoaderSettings(num_workers=0, persistent_workers=True)
        Traceback (most recent call last):
        ...
        ValueError: persistent_workers=True needs num_workers > 0, got num_workers=0
    """

    batch_size: int = 64
    eval_batch_size: int | None = None
    num_workers: int | Literal["auto"] = "auto"
    pin_memory: bool | Literal["auto"] = "auto"
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    drop_last: bool = True
    multiprocessing_context: Literal["fork", "spawn", "forkserver"] | None = None
    decode_threads: int | Literal["auto"] = "auto"

    @classmethod
    def of(cls, value: LoaderSettings | None) -> LoaderSettings:
        """``value``, or the default settings for ``None``.

        Raises:
            TypeError: anything else.
        """
        if value is None:
            return cls()
        if not isinstance(value, LoaderSettings):
            raise TypeError(f"loader must be a LoaderSettings, got {type(value).__name__}")
        return value

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)
        if self.eval_batch_size is not None:
            check_int("eval_batch_size", self.eval_batch_size, 1)
        _check_int_or_auto("num_workers", self.num_workers, 0)
        _check_int_or_auto("decode_threads", self.decode_threads, 1)
        if self.pin_memory != "auto" and not isinstance(self.pin_memory, bool):
            raise ValueError(f"pin_memory must be a bool or 'auto', got {self.pin_memory!r}")
        check_bool("persistent_workers", self.persistent_workers)
        check_bool("drop_last", self.drop_last)
        if self.prefetch_factor is not None:
            check_int("prefetch_factor", self.prefetch_factor, 1)
        if self.multiprocessing_context is not None and self.multiprocessing_context not in _START_METHODS:
            raise ValueError(
                f"multiprocessing_context must be one of {_START_METHODS} or None, "
                f"got {self.multiprocessing_context!r}"
            )
        if self.num_workers == 0:
            for name, value in self._worker_only().items():
                raise ValueError(f"{name}={value!r} needs num_workers > 0, got num_workers=0")

    def _worker_only(self) -> dict[str, Any]:
        """The settings given that only make sense with worker processes."""
        given = {
            "persistent_workers": self.persistent_workers or None,
            "prefetch_factor": self.prefetch_factor,
            "multiprocessing_context": self.multiprocessing_context,
        }
        return {k: v for k, v in given.items() if v is not None}

    def resolve_num_workers(self, local_devices: int = 1, dataset: Any = None) -> int:
        """``num_workers`` as an int. ``"auto"``: the usable CPUs divided by ``local_devices``; but none
        where ``dataset`` is given and this process makes a whole batch of it in less time than a
        worker's batch takes to reach it (:func:`makes_a_batch_within`, :data:`HAND_OVER_MS`)."""
        return self._workers(local_devices, dataset)[0]

    def _workers(self, local_devices: int, dataset: Any) -> tuple[int, str | None]:
        """``(workers, why)``: :meth:`resolve_num_workers`, and why ``"auto"`` gave none (else ``None``)."""
        if self.num_workers != "auto":
            return int(self.num_workers), None
        # not Lightning's suggested_max_num_workers, which leaves a core to the main process: the
        # bench's workers sweep measured as many workers as cores fastest (the device stage is not
        # on the CPU when training on a GPU)
        workers = available_cpus() // max(1, local_devices)
        if workers == 0:
            return 0, f"{available_cpus()} CPUs for this process"
        if dataset is not None and makes_a_batch_within(dataset, self.batch_size, HAND_OVER_MS):
            return 0, f"this process makes a batch faster than a worker's reaches it, {HAND_OVER_MS:g} ms"
        return workers, None

    def make_loader(
        self,
        dataset: Any,
        *,
        train: bool,
        generator: torch.Generator,
        device_type: str | None = None,
        num_devices: int = 1,
        rank: int = 0,
        sampler: torch.utils.data.Sampler | None = None,
    ) -> torch.utils.data.DataLoader:
        """The DataLoader of ``dataset`` (shuffled with ``generator`` when ``train``, or in the order of
        ``sampler``): ``auto`` workers for ``num_devices`` on this node, ``auto`` pinning when training
        on ``device_type`` "cuda" (``None``: when CUDA is available).

        Raises:
            ValueError: a train split smaller than one batch with ``drop_last``.
        """
        if self.pin_memory == "auto":
            pin = device_type == "cuda" if device_type is not None else torch.cuda.is_available()
        else:
            pin = bool(self.pin_memory)
        if train and self.drop_last and len(dataset) < self.batch_size:
            from lightning_aug.errors import SettingError

            raise SettingError(
                f"the train split has {len(dataset)} samples, fewer than batch_size={self.batch_size} with "
                "drop_last=True: there would be no training batch; lower batch_size (loader.batch_size) or "
                "set drop_last=False (loader.drop_last=false)"
            )
        num_workers, why = self._workers(num_devices, dataset)
        kwargs = self.dataloader_kwargs(
            train=train, num_workers=num_workers, pin_memory=pin, rank=rank, why=why
        )
        if sampler is not None:
            return ResumableLoader(dataset, sampler=sampler, generator=generator, **kwargs)
        return torch.utils.data.DataLoader(dataset, shuffle=train, generator=generator, **kwargs)

    def dataloader_kwargs(
        self, *, train: bool, num_workers: int, pin_memory: bool, rank: int = 0, why: str | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for ``torch.utils.data.DataLoader`` with resolved worker count and pinning;
        ``why``: why ``"auto"`` resolved to no workers, for the warning (default: the CPUs)."""
        from functools import partial

        kwargs: dict[str, Any] = {
            "batch_size": self.batch_size if train else (self.eval_batch_size or self.batch_size),
            "num_workers": num_workers,
            "pin_memory": pin_memory,
            "drop_last": self.drop_last if train else False,
            "collate_fn": collate_uint8,
        }
        if num_workers > 0:
            kwargs["worker_init_fn"] = partial(seed_worker, rank=rank)
            kwargs["persistent_workers"] = self.persistent_workers
            if self.prefetch_factor is not None:
                kwargs["prefetch_factor"] = self.prefetch_factor
            if self.multiprocessing_context is not None:
                kwargs["multiprocessing_context"] = self.multiprocessing_context
        elif self._worker_only():
            from lightning.pytorch.utilities import rank_zero_warn

            rank_zero_warn(
                f"num_workers='auto' resolved to 0 ({why or f'{available_cpus()} CPUs for this process'}); "
                f"ignoring {sorted(self._worker_only())}, which need worker processes"
            )
        return kwargs
