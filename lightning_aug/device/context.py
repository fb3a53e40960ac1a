"""What a batch op knows of the training batch it runs on, one object for every kind of op.

The device stage hands each op a :class:`BatchContext`: the run seed, the epoch, the batch's index
in its epoch, the rank (so :meth:`BatchContext.generator` gives the batch's own generator, a function
of those alone: a resumed run draws as the uninterrupted one, DDP ranks differ), the number of
classes, the dtype the model computes in, and the statistics that relate the two kinds of pixels an
op may ask for (:data:`Pixels`): ``"unit"``, floats in [0, 1] (colour and geometry: what kornia's
and torchvision's tensor ops expect), or ``"normalized"`` (mixing, which is linear and does not
care). Device ops (``device_transforms``) see unit pixels; a ``BatchTransform`` callback declares
which it wants (its ``pixels``) and is given them.

A callback run without ``AugDataModule`` (a DataModule of your own, plain loaders) builds the same
context from the trainer (:meth:`BatchContext.of_trainer`), so it draws the same parameters for the
same seed and batch coordinates.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from lightning_aug.seeding import Stream, batch_rng

__all__ = ["BatchContext", "BatchTransformHost", "Pixels", "check_pixels"]

Pixels = Literal["unit", "normalized"]


def check_pixels(owner: Any) -> Pixels:
    """The ``pixels`` that ``owner`` declares, checked.

    Raises:
        ValueError: neither ``"unit"`` nor ``"normalized"``.
    """
    pixels: Pixels = getattr(type(owner), "pixels", "normalized")
    if pixels not in ("unit", "normalized"):
        raise ValueError(
            f"{type(owner).__name__}.pixels must be 'unit' (floats in [0, 1]) or 'normalized', got {pixels!r}"
        )
    return pixels


@dataclass(frozen=True)
class BatchContext:
    """The training batch an op runs on.

    Attributes:
        seed: the run seed.
        epoch, batch: the epoch and the batch's index in it.
        rank: the global rank.
        num_classes: the classes of the targets, where known.
        dtype: the dtype the model computes in (the batch's after the device stage).
        mean, std: the normalisation's statistics (0-1 scale).
        trainer: the running trainer, or ``None`` (the preview and bench apps).
    """

    seed: int
    epoch: int = 0
    batch: int = 0
    rank: int = 0
    num_classes: int | None = None
    dtype: torch.dtype = torch.float32
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    trainer: Any = None

    def generator(self, stream: Stream) -> np.random.Generator:
        """The batch's generator of ``stream`` (:func:`lightning_aug.seeding.batch_rng`)."""
        return batch_rng(self.seed, self.rank, stream, self.epoch, self.batch)

    @classmethod
    def of_trainer(cls, trainer: Any, seed: int, batch: int, num_classes: int | None = None) -> BatchContext:
        """The context of batch ``batch`` of the trainer's current epoch (``trainer`` ``None``: epoch 0
        on rank 0)."""
        if trainer is None:
            return cls(seed, 0, batch, 0, num_classes)
        return cls(seed, trainer.current_epoch, batch, trainer.global_rank, num_classes, trainer=trainer)


class BatchTransformHost(ABC):  # noqa: B024  (a declaration, no method to implement)
    """Declares a DataModule that runs the trainer's ``BatchTransform`` callbacks itself, in its
    device stage, handing each the batch's :class:`BatchContext` (``AugDataModule``): the callbacks
    then leave ``on_train_batch_start`` alone."""
