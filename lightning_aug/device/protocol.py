"""The batch-transform protocol: callbacks that change whole training batches on the device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lightning.pytorch import Callback
from torch import Tensor

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

__all__ = ["BatchTransform"]


class BatchTransform(Callback):
    """Base class of callbacks that transform training batches after they reach the device.

    :class:`~lightning_aug.AugDataModule` calls :meth:`transform_batch` of every callback in
    ``trainer.callbacks`` that is a ``BatchTransform``, in the order of that list, from its
    ``on_after_batch_transfer`` hook: after the uint8 batch became normalised float on the device, for
    training batches only (never during validation, test, predict or the sanity check).

    Subclasses implement :meth:`transform_batch`; they must not assume a given batch size, and
    should return new or in-place-modified tensors on the same device.

    Example::

        >>> import torch
        >>> class Negate(BatchTransform):
        ...     def transform_batch(self, images, targets, trainer):
        ...         return images.neg_(), targets
        >>> Negate().transform_batch(torch.ones(1, 3, 2, 2), torch.zeros(1), None)[0].sum().item()
        -12.0
    """

    def transform_batch(
        self, images: Tensor, targets: Tensor, trainer: Trainer | None
    ) -> tuple[Tensor, Tensor]:
        """Return the transformed ``(images, targets)`` of one training batch.

        Args:
            images: normalised float images ``(N, C, H, W)`` on the training device.
            targets: int64 class indices ``(N,)``, or soft targets ``(N, num_classes)`` when an
                earlier transform produced them.
            trainer: the running trainer (its ``current_epoch``, ``global_rank``, ``datamodule``), or
                ``None`` outside training (the preview and bench apps): behave as in epoch 0 on rank 0.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement transform_batch")
