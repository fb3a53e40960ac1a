"""The training order in one object: which samples each epoch reads and in what order, divided among
the ranks, and where a run is in it (saved in checkpoints, restored on resume).

Every order is a function of the run seed and the epoch: a permutation of the samples
(``sampler="random"``), a weighted draw with replacement (``"balanced"``: a file list's weight
column, else ``1 / count`` of the sample's class), a source's own order (shards: chunk-local
shuffles), each position ``num_aug_repeats`` times in a row (repeated augmentation; an epoch of the
dataset's length, as timm's ``RepeatAugSampler``, or ``num_aug_repeats`` times longer). The
:class:`~lightning_aug.data.sampling.EpochSampler` made from it gives each rank its part and starts
at any position, so the position in the epoch (the samples that reached the training step) is all
the state a resumed run needs, with the train loaders' generator (the workers' base seeds).

``AugDataModule`` holds one :class:`TrainingOrder`, asks it for each loader's sampler, tells it of
every training batch, and saves and restores its :meth:`~TrainingOrder.state_dict`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from lightning_aug._checks import check_int
from lightning_aug.data.sampling import (
    EpochSampler,
    balanced_draw,
    class_balance_weights,
    permutation,
    repeated,
)
from lightning_aug.data.source import Source
from lightning_aug.seeding import Stream, stream_seed

__all__ = ["RepeatedEpoch", "Sampling", "TrainingOrder", "sample_weights"]

Sampling = Literal["random", "balanced"]
RepeatedEpoch = Literal["dataset", "repeats"]


def sample_weights(source: Source) -> np.ndarray:
    """The per-sample weights of ``sampler="balanced"``: the source's own
    (:meth:`~lightning_aug.data.source.Source.weights`: a file list's weight column), else
    :func:`~lightning_aug.data.sampling.class_balance_weights` of its
    :meth:`~lightning_aug.data.source.Source.known_labels`.

    Raises:
        ValueError: the source has neither (its labels cannot be known without reading every image).
    """
    given = source.weights()
    if given is not None:
        return np.asarray(given, dtype=np.float64)
    labels = source.known_labels()
    if labels is None:
        raise ValueError(
            f"sampler='balanced' needs the labels of the train split without reading its images, and "
            f"{type(source).__name__} does not give them (known_labels, weights); use "
            "sampler='random', or a dataset that lists its labels (image folders, file lists, Hugging Face)"
        )
    return class_balance_weights(np.asarray(labels))


class _Repeated:
    """An epoch order with each position ``repeats`` times (:func:`~lightning_aug.data.sampling.repeated`)."""

    def __init__(self, order: Callable[[int], Any], repeats: int) -> None:
        self.order, self.repeats = order, repeats

    def __call__(self, epoch: int) -> np.ndarray:
        return repeated(self.order(epoch), self.repeats)


class TrainingOrder:
    """The order of the training samples by epoch, the loaders' generators, and the position of the
    run in its epoch.

    Args:
        sampler: ``"random"`` or ``"balanced"``.
        num_aug_repeats: reads of each sample per order position (repeated augmentation), at least 1.
        repeated_epoch: ``"dataset"``: an epoch of the dataset's length; ``"repeats"``: every sample
            ``num_aug_repeats`` times.
        run_seed: the run seed, asked for when first needed.

    Raises:
        ValueError: any argument outside its values.
    """

    def __init__(
        self,
        sampler: Sampling,
        num_aug_repeats: int,
        repeated_epoch: RepeatedEpoch,
        run_seed: Callable[[], int] = lambda: 0,
    ) -> None:
        if sampler not in ("random", "balanced"):
            raise ValueError(f"sampler must be 'random' or 'balanced', got {sampler!r}")
        if repeated_epoch not in ("dataset", "repeats"):
            raise ValueError(f"repeated_epoch must be 'dataset' or 'repeats', got {repeated_epoch!r}")
        self.sampler: Sampling = sampler
        self.num_aug_repeats: int = check_int("num_aug_repeats", num_aug_repeats, 1)
        self.repeated_epoch: RepeatedEpoch = repeated_epoch
        self._run_seed = run_seed  # resolved on first use (AugDataModule.run_seed)
        self._balance: np.ndarray | None = None  # per-sample weights of the train split (balanced)
        self._own: Callable[[int], np.ndarray] | None = None  # the train source's own order, if any
        # training batches served in the current epoch: (epoch, batches), checkpointed; a resumed run's
        # sampler starts after them (applied when the loader is made: Lightning restores the loaders'
        # own state only after a one-cycle schedule's estimated_stepping_batches has made them)
        self._position: tuple[int, int] = (0, 0)
        self._pending: tuple[int, int] | None = None
        self._train: EpochSampler | None = None
        self._generators: dict[bool, torch.Generator] = {}
        self.resumed_without_position = False  # a checkpoint of lightning_aug 0.2

    @property
    def seed(self) -> int:
        """The run seed."""
        return self._run_seed()

    def bind(self, source: Source, own_order: bool = True) -> None:
        """Read what the train split's order needs of ``source``: its weights for ``"balanced"``, its
        own order (``own_order`` False: not used; ``in_memory`` holds the samples whole)."""
        if self.sampler == "balanced":
            self._balance = sample_weights(source)
        if own_order:  # one for every rank, from the run seed
            self._own = source.epoch_order(stream_seed(self.seed, 0, Stream.TRAIN_LOADER))

    def generator(self, train: bool, rank: int) -> torch.Generator:
        """The generator of the train or eval loaders: shuffling and the workers' per-epoch base seeds."""
        if train not in self._generators:
            stream = Stream.TRAIN_LOADER if train else Stream.EVAL_LOADER
            self._generators[train] = torch.Generator().manual_seed(stream_seed(self.seed, rank, stream))
        return self._generators[train]

    def overfit_subset(self, dataset: Dataset) -> Dataset:
        """Lightning's ``overfit_batches`` serves the first batches in order: a fixed draw of every class."""
        fixed = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))  # type: ignore[arg-type]
        return Subset(dataset, fixed.tolist())

    def sampler_for(
        self, size: int, train: bool, num_replicas: int, rank: int, drop_last: bool
    ) -> EpochSampler:
        """The sampler of a loader over ``size`` samples: the training order (``train``), else every
        sample once in order, divided among ``num_replicas`` ranks. A pending resume position starts
        the training sampler at the next unseen sample."""
        order: Callable[[int], Any] | None = None
        repeats = self.num_aug_repeats if train else 1
        if train:
            seed = stream_seed(self.seed, 0, Stream.TRAIN_LOADER)  # one order for every rank
            order = self._own or functools.partial(permutation, size, seed)
            if self._balance is not None:
                order = functools.partial(balanced_draw, self._balance, seed)
            if repeats > 1:
                order = _Repeated(order, repeats)
        sampler = EpochSampler(
            size * repeats,
            order=order,
            num_replicas=num_replicas,
            rank=rank,
            drop_last=train and drop_last,
            strided=repeats > 1,
            limit=size if self.repeated_epoch == "dataset" else None,  # timm's epoch length
        )
        if train:
            self._train = sampler
            if self._pending is not None:
                sampler.set_start(*self._pending)
                self._pending = None
        return sampler

    def next_batch(self, epoch: int) -> int:
        """Count a training batch of ``epoch`` reaching the device; its index in the epoch."""
        done_epoch, batches = self._position
        index = batches if done_epoch == epoch else 0
        self._position = (epoch, index + 1)
        return index

    def position(self, batch_size: int, drop_last: bool) -> dict[str, int]:
        """The samples of the current epoch that reached the training step (the next epoch's start
        once the epoch's batches are all done)."""
        epoch, batches = self._position
        if self._train is not None:
            per_epoch = len(self._train) // batch_size if drop_last else -(-len(self._train) // batch_size)
            if batches >= per_epoch:
                return {"epoch": epoch + 1, "samples": 0}
        return {"epoch": epoch, "samples": batches * batch_size}

    def state_dict(self, batch_size: int, drop_last: bool, rank: int) -> dict[str, Any]:
        """The train loaders' generator and, once a training loader exists, the position."""
        state: dict[str, Any] = {"train_loader_generator": self.generator(True, rank).get_state()}
        if self._train is not None:
            state["train_position"] = self.position(batch_size, drop_last)
        return state

    def load_state_dict(self, state: dict[str, Any], batch_size: int, rank: int) -> None:
        """Restore :meth:`state_dict`. Without a position (lightning_aug 0.2) the epoch restarts, with
        Lightning's warning (:attr:`resumed_without_position`)."""
        if "train_loader_generator" in state:
            self.generator(True, rank).set_state(state["train_loader_generator"])
        if "train_position" not in state:
            self.resumed_without_position = True
            return
        position = (int(state["train_position"]["epoch"]), int(state["train_position"]["samples"]))
        self._position = (position[0], position[1] // batch_size)
        if self._train is not None:
            self._train.set_start(*position)
        else:
            self._pending = position

    def warn_if_unresumable(self, trainer: Any) -> None:
        """Lightning's warning, once, for a mid-epoch resume from a checkpoint without the loader's
        position (one of lightning_aug 0.2): the epoch starts again from its first batch."""
        if not self.resumed_without_position:
            return
        self.resumed_without_position = False
        if trainer.fit_loop.epoch_loop.batch_progress.current.ready > 0:
            from lightning.pytorch.utilities import rank_zero_warn
            from lightning.pytorch.utilities.warnings import PossibleUserWarning

            rank_zero_warn(
                "You're resuming from a checkpoint that ended before the epoch ended and your dataloader is"
                " not resumable. This can cause unreliable results if further training is done."
                " Consider using an end-of-epoch checkpoint or make your dataloader resumable by implementing"
                " the `state_dict` / `load_state_dict` interface. (A checkpoint of lightning_aug 0.2: it"
                " holds no position in the epoch.)",
                category=PossibleUserWarning,
            )
