"""Every random stream of a run comes from one run seed: its resolution, the streams' ids, how a
stream's seed is derived (run seed, global rank, stream), and the seeding of DataLoader workers.

The DataModule (loaders, per-sample pipelines, device-batched ops) and ``MixupCallback`` draw from
their own streams, so no consumer of randomness shifts another's draws, and DDP ranks differ.
"""

from __future__ import annotations

import os
import random
from enum import IntEnum
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

__all__ = [
    "NumpyRandom",
    "Stream",
    "batch_rng",
    "derive_seed",
    "resolve_run_seed",
    "sample_seed",
    "seed_pcg64",
    "seed_worker",
    "stream_seed",
]


_PCG_INCREMENT = 0xDA3E39CB94B95BDB  # odd: any odd increment gives a full-period PCG64 stream


class NumpyRandom(random.Random):
    """A ``random.Random`` whose draws come from a numpy ``Generator`` (albumentations' ``py_random``):
    re-seeding the generator re-seeds both, in 2 us (``random.seed`` alone takes 3.6 us). Its few
    draws per sample (probabilities, choices) cost 0.3 us each instead of 0.03."""

    def __init__(self, generator: np.random.Generator) -> None:
        self._generator = generator
        super().__init__(0)

    def random(self) -> float:
        return float(self._generator.random())

    def getrandbits(self, k: int) -> int:
        if k <= 0:
            return 0
        words = (k + 63) // 64
        value = 0
        for word in self._generator.integers(0, 2**64, size=words, dtype=np.uint64, endpoint=False).tolist():
            value = (value << 64) | int(word)
        return value >> (words * 64 - k)

    def seed(self, *args: Any, **kwargs: Any) -> None:  # the generator is seeded, not this
        if hasattr(self, "_generator"):
            return
        super().seed(*args, **kwargs)

    def getstate(self) -> Any:
        return self._generator.bit_generator.state

    def __reduce__(self) -> tuple[Any, ...]:
        # with its generator: random.Random's reduce calls NumpyRandom() without one, so a pipeline
        # holding it could not reach spawned workers; the generator is shared with its pipeline's
        # transforms, and pickling keeps it shared
        return NumpyRandom, (self._generator,)

    def setstate(self, state: Any) -> None:
        self._generator.bit_generator.state = state


def seed_pcg64(generator: np.random.Generator, value: int) -> None:
    """Seed a PCG64 ``generator`` in place with a 64-bit ``value`` (2 us; a new generator costs more)."""
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": value | (value << 64), "inc": _PCG_INCREMENT},
        "has_uint32": 0,
        "uinteger": 0,
    }


class Stream(IntEnum):
    """The id of each random stream, mixed into its seed."""

    TRAIN_PIPELINE = 0  # the train pipeline in the main process (num_workers=0)
    EVAL_PIPELINE = 1
    TRAIN_LOADER = 2  # shuffling and the workers' per-epoch base seeds
    EVAL_LOADER = 3
    BATCH_OPS = 4  # device-batched augmentation parameters
    WORKER_PIPELINE = 5  # a worker's pipeline, from the worker's torch seed
    MIXUP = 100


def derive_seed(*entropy: int) -> int:
    """A 63-bit seed mixed from several integers (run seed, rank, stream, ...) by ``numpy.SeedSequence``.

    Nearby inputs (seed 0 rank 1 vs seed 1 rank 0) give unrelated seeds, unlike ``seed + rank``.

    Example::

        >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(1, 0)
        True
    """
    words = [int(e) & 0xFFFF_FFFF_FFFF_FFFF for e in entropy]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def stream_seed(run_seed: int, rank: int, stream: Stream) -> int:
    """The seed of ``stream`` on global ``rank`` for the run seed."""
    return derive_seed(run_seed, rank, int(stream))


_MASK = (1 << 64) - 1


def _mix64(x: int) -> int:
    """SplitMix64's finaliser: a 64-bit integer to a well-mixed one (0.3 us in Python)."""
    x = (x + 0x9E37_79B9_7F4A_7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58_476D_1CE4_E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D0_49BB_1331_11EB) & _MASK
    return x ^ (x >> 31)


def sample_seed(seed: int, epoch: int, sample: int, repeat: int = 0) -> int:
    """The 63-bit seed of one sample's augmentation: a function of ``(seed, epoch, sample, repeat)``
    alone (not of the worker, the rank or the resume point), cheap enough for every sample (1 us,
    against 5.6 us for ``numpy.random.SeedSequence``).

    Example::

        >>> sample_seed(0, 1, 2) == sample_seed(0, 1, 2) != sample_seed(0, 2, 1)
        True
    """
    value = _mix64(seed & _MASK)
    for part in (epoch, sample, repeat):
        value = _mix64(value ^ (part & _MASK))
    return value >> 1


def batch_rng(seed: int, rank: int, stream: Stream, epoch: int, batch: int) -> np.random.Generator:
    """The generator of one training batch's parameters (device ops, mixing): a function of the run
    seed, the rank, the stream, the epoch and the batch's index in it, so a resumed run draws what
    the uninterrupted one drew."""
    return np.random.default_rng([seed & _MASK, rank, int(stream), epoch, batch])


def resolve_run_seed(seed: int | None, owner: str) -> int:
    """``seed`` if given, else Lightning's global seed (``seed_everything`` sets ``PL_GLOBAL_SEED``),
    else a fresh seed, logged with ``owner``'s name so that the run can be repeated."""
    if seed is not None:
        return seed
    if "PL_GLOBAL_SEED" in os.environ:
        return int(os.environ["PL_GLOBAL_SEED"])
    drawn = int(np.random.SeedSequence().generate_state(1)[0])
    rank_zero_info(f"{owner}: no seed given, drew seed={drawn}")
    return drawn


def seed_worker(worker_id: int, rank: int = 0) -> None:
    """``worker_init_fn`` of every AugDataModule loader.

    Sets torch to one thread and OpenCV to none (the workers already run in parallel), seeds torch,
    numpy and ``random`` with Lightning's ``pl_worker_init_function`` (from the loader's per-epoch base
    seed, the worker id and the global rank), then the dataset's augmentation pipeline from the
    worker's new torch seed. The base seed is drawn anew for every epoch from the loader's generator, so
    augmentations differ between workers, ranks and epochs and repeat for the same run seed. With
    persistent workers this runs once; later epochs continue the streams it seeded.
    """
    from lightning.fabric.utilities.seed import pl_worker_init_function

    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(0)
    except ImportError:  # pragma: no cover - albumentations depends on OpenCV
        pass
    pl_worker_init_function(worker_id, rank)
    info = torch.utils.data.get_worker_info()
    reseed = getattr(info.dataset, "reseed", None) if info is not None else None
    if reseed is not None:
        reseed(derive_seed(torch.initial_seed(), int(Stream.WORKER_PIPELINE)))
