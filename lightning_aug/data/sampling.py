"""The order a loader reads samples in: a function of (seed, epoch), divided among ranks, and
resumable at any sample.

:class:`EpochSampler` takes each epoch's order of the whole dataset from a function of the epoch (a
seeded permutation, or the chunk-local shuffle of shards), gives each rank a contiguous, equal part
of it, and starts an epoch at any position of that part (a resumed run skips what it had trained
on). It yields :class:`SampleKey` s, so the dataset knows the epoch of every read, also in persistent
workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
from torch.utils.data import DistributedSampler

__all__ = [
    "EpochSampler",
    "SampleKey",
    "balanced_draw",
    "class_balance_weights",
    "permutation",
    "repeated",
    "sample_index",
]


class SampleKey(NamedTuple):
    """What a sampler asks a dataset for: the sample (its position in the dataset), the epoch, and the
    repeat (the k-th draw of the sample in this epoch, for repeated augmentation)."""

    sample: int
    epoch: int
    repeat: int = 0


def sample_index(key: int | SampleKey) -> int:
    """The dataset position of ``key`` (a plain index, or a :class:`SampleKey`)."""
    return key.sample if isinstance(key, SampleKey) else int(key)


def permutation(size: int, seed: int, epoch: int) -> np.ndarray:
    """A permutation of ``range(size)``, a function of ``(seed, epoch)`` alone."""
    return np.random.default_rng([seed, epoch]).permutation(size)


def class_balance_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights that draw every class alike: ``1 / count(class)``; for multi-hot rows the
    mean of ``1 / count(c)`` over the sample's classes (a sample with no class: the rarest weight).

    Example::

        >>> class_balance_weights(np.array([0, 0, 0, 1])).round(3).tolist()
        [0.333, 0.333, 0.333, 1.0]
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        positive = labels > 0.5
        counts = np.maximum(positive.sum(axis=0), 1)
        per_class = 1.0 / counts
        chosen = positive.sum(axis=1)
        weights = (positive * per_class).sum(axis=1) / np.maximum(chosen, 1)
        return np.where(chosen > 0, weights, per_class.max())
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def balanced_draw(weights: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """``len(weights)`` positions drawn with replacement in proportion to ``weights`` (as
    ``WeightedRandomSampler``), a function of ``(seed, epoch)`` alone."""
    weights = np.asarray(weights, dtype=np.float64)
    return np.random.default_rng([seed, epoch, 0xBA1]).choice(
        len(weights), size=len(weights), p=weights / weights.sum()
    )


def repeated(order: np.ndarray, repeats: int) -> np.ndarray:
    """Each position of ``order`` ``repeats`` times in a row, as ``(position, repeat)`` rows (DeiT's
    repeated augmentation: the copies differ in their repeat, so in their augmentation)."""
    order = np.asarray(order)
    return np.stack([np.repeat(order, repeats), np.tile(np.arange(repeats), len(order))], axis=1)


class EpochSampler(DistributedSampler):  # Lightning then adds no DistributedSampler of its own
    """Yields this rank's part of each epoch's order, as :class:`SampleKey` s.

    Args:
        size: reads per epoch (the dataset's samples, times the repeats with repeated augmentation).
        order: ``epoch -> positions`` (``size`` dataset positions: a permutation, a weighted draw), or
            ``(position, repeat)`` rows (:func:`repeated`); ``None``: ``0..size-1``.
        num_replicas: ranks reading the dataset.
        rank: this rank.
        drop_last: drop the tail that does not divide among the ranks (else the first samples of the
            order are read again to fill the last rank's part, as ``DistributedSampler`` does).
        strided: rank ``r`` reads positions ``r, r + world, ...`` (the copies of a repeated sample go
            to different ranks, as DeiT's ``RASampler``); else contiguous parts (rank ``r`` reads
            positions ``r*n .. (r+1)*n - 1``: ranks reading shards read different chunks).
        limit: reads per epoch over all ranks, where fewer than ``size``: each rank reads the start of
            its part (timm's ``RepeatAugSampler`` keeps a repeated epoch at the dataset's length so).

    Lightning calls :meth:`set_epoch` before each epoch; a loop of your own that iterates again
    without it gets the next epoch.
    """

    def __init__(
        self,
        size: int,
        order: Callable[[int], np.ndarray] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        strided: bool = False,
        limit: int | None = None,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.size, self.order = size, order
        self.num_replicas, self.rank, self.drop_last, self.strided = num_replicas, rank, drop_last, strided
        self.shuffle = order is not None  # read by Lightning to tell shuffled loaders
        self.epoch = 0
        self.num_samples = size // num_replicas if drop_last else -(-size // num_replicas)
        self.total_size = self.num_samples * num_replicas
        self._part = self.num_samples  # this rank's share of the whole order
        if limit is not None and limit < size:
            self.num_samples = limit // num_replicas if drop_last else -(-limit // num_replicas)
        self._start: tuple[int, int] | None = None  # (epoch, position) to begin at, once
        self._epoch_given = True  # a pass without set_epoch after another is the next epoch

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next pass (Lightning calls it before each epoch)."""
        self.epoch = epoch
        self._epoch_given = True

    def set_start(self, epoch: int, position: int) -> None:
        """Begin ``epoch`` (once) at ``position`` of this rank's part: a resumed run. It is also the
        epoch of the next pass: Lightning may start a loader's iterator before its ``set_epoch`` (a
        resumed fit with persistent workers does), which must not read epoch 0 again."""
        if not 0 <= position <= self.num_samples:
            raise ValueError(f"position must be in [0, {self.num_samples}], got {position}")
        self._start = (epoch, position)
        self.epoch, self._epoch_given = epoch, True

    def positions(self, epoch: int) -> np.ndarray:
        """This rank's part of ``epoch``'s order: dataset positions, or ``(position, repeat)`` rows."""
        order = np.arange(self.size) if self.order is None else np.asarray(self.order(epoch))
        if len(order) < self.total_size:  # pad, as DistributedSampler does
            repeats = -(-self.total_size // max(1, len(order)))
            order = np.concatenate([order] * repeats)
        order = order[: self.total_size]
        if self.strided:
            part = order[self.rank :: self.num_replicas]
        else:
            part = order[self.rank * self._part : (self.rank + 1) * self._part]
        return part[: self.num_samples]

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[SampleKey]:
        if not self._epoch_given:  # iterated again without set_epoch (a loop of your own)
            self.epoch += 1
        self._epoch_given = False
        epoch, begin = self.epoch, 0
        if self._start is not None and self._start[0] == epoch:
            begin = self._start[1]
        self._start = None
        for index in self.positions(epoch)[begin:].tolist():
            if isinstance(index, list):  # (position, repeat)
                yield SampleKey(index[0], epoch, index[1])
            else:
                yield SampleKey(index, epoch)
