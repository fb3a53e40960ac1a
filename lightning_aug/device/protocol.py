"""The batch-transform protocol: callbacks that change whole training batches on the device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightning.pytorch import Callback
from torch import Tensor

from lightning_aug.device.context import BatchContext, Pixels

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

__all__ = ["BatchTransform"]


class BatchTransform(Callback):
    """Base class of callbacks that transform training batches after they reach the device.

    :class:`~lightning_aug.AugDataModule` calls :meth:`transform_batch` of every callback in
    ``trainer.callbacks`` that is a ``BatchTransform``, in the order of that list, from its
    ``on_after_batch_transfer`` hook: after the uint8 batch became normalised float on the device, for
    training batches only (never during validation, test, predict or the sanity check).

    Subclasses implement :meth:`transform_batch` (or :meth:`transform_in_context`, to read the
    batch's :class:`~lightning_aug.device.context.BatchContext`: its generator, epoch, batch index,
    rank, classes); they must not assume a given batch size, and should return new or
    in-place-modified tensors on the same device. ``pixels`` declares the images a transform is given:
    ``"normalized"`` (default; mixing) or ``"unit"``, floats in [0, 1] (colour and geometry, kornia's
    ops: they clamp to [0, 1]), normalised again after it.

    Example::

        >>> import torch
        >>> class Negate(BatchTransform):
        ...     def transform_batch(self, images, targets, trainer):
        ...         return images.neg_(), targets
        >>> Negate().transform_batch(torch.ones(1, 3, 2, 2), torch.zeros(1), None)[0].sum().item()
        -12.0
    """

    pixels: Pixels = "normalized"

    def transform_in_context(
        self, images: Tensor, targets: Tensor, context: BatchContext
    ) -> tuple[Tensor, Tensor]:
        """The device stage's call: :meth:`transform_batch` with the context's trainer by default."""
        return self.transform_batch(images, targets, context.trainer)

    def transform_batch(
        self, images: Tensor, targets: Tensor, trainer: Trainer | None
    ) -> tuple[Tensor, Tensor]:
        """Return the transformed ``(images, targets)`` of one training batch.

        Args:
            images: float images ``(N, C, H, W)`` on the training device, normalised (or in [0, 1]
                where ``pixels`` is ``"unit"``).
            targets: int64 class indices ``(N,)``, or soft targets ``(N, num_classes)`` when an
                earlier transform produced them.
            trainer: the running trainer (its ``current_epoch``, ``global_rank``, ``datamodule``), or
                ``None`` outside training (the preview and bench apps): behave as in epoch 0 on rank 0.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement transform_batch")
