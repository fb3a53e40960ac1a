"""Batch ops of other libraries, and device ops run as a callback.

- :class:`ModuleOp`: any module of image batches in [0, 1] that draws its randomness from torch's
  generators (``kornia.augmentation``'s ops and ``AugmentationSequential``, your own) as a device op,
  its randomness seeded from the batch's generator (a function of the run seed, rank, epoch and
  batch: reproducible, resumable).
- :class:`BatchOps`: device ops given as a ``BatchTransform`` callback (after the normalisation,
  beside mixing): declared ``pixels="unit"``, so they are given the batch in [0, 1] as in
  ``device_transforms``, and draw from the same generator: an op gives the same images plugged
  either way. Give an op one place: both places draw the same parameters.

Example::

    >>> import torch
    >>> from lightning_aug.device.context import BatchContext
    >>> flip = ModuleOp(torch.nn.Identity())
    >>> images = torch.rand(2, 3, 4, 4)
    >>> out, _ = BatchOps([flip]).transform_in_context(images.clone(), torch.zeros(2), BatchContext(seed=0))
    >>> torch.equal(out, images)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from lightning_aug.device.augment import DeviceOp, Params, apply_ops, check_ops, sample_ops
from lightning_aug.device.context import BatchContext, Pixels
from lightning_aug.device.protocol import BatchTransform
from lightning_aug.seeding import Stream

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

__all__ = ["BatchOps", "ModuleOp"]


class ModuleOp(DeviceOp):
    """A module of ``(N, C, H, W)`` float batches in [0, 1] (a kornia augmentation) as a device op:
    torch's generators are seeded for it from the batch's generator, then restored.

    Args:
        module: the module, called as ``module(images)``.
    """

    def __init__(self, module: nn.Module) -> None:
        if not callable(module):
            raise TypeError(f"module must be a callable of image batches, got {type(module).__name__}")
        self.module = module
        self._seed = 0

    def sample(self, n: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"seed": np.full(n, rng.integers(1 << 31), dtype=np.int64)}  # one draw per batch

    def device_params(self, params: Params, height: int, width: int) -> Params:
        self._seed = int(params["seed"][0])  # read on the host: nothing to copy to the device
        return {}

    def apply(self, images: Tensor, params: Any) -> Tensor:
        devices = [images.device.index or 0] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self._seed)
            return self.module(images)


class BatchOps(BatchTransform):
    """Device ops (:mod:`lightning_aug.device.augment`, :class:`ModuleOp`) as a ``BatchTransform``
    callback of ``AugDataModule``'s device stage, given the batch in [0, 1] (``pixels="unit"``) and
    their parameters from the batch's generator, as in ``device_transforms``.

    Args:
        ops: the ops, in order (objects or ``{"_target_": ...}`` mappings).

    Raises:
        TypeError: an op that is not a ``DeviceOp`` (a kornia module: wrap it in :class:`ModuleOp`).
    """

    pixels: Pixels = "unit"

    def __init__(self, ops: Sequence[Any]) -> None:
        self.ops = check_ops(ops, "BatchOps(ops)")

    def transform_in_context(
        self, images: Tensor, targets: Tensor, context: BatchContext
    ) -> tuple[Tensor, Tensor]:
        n, _, height, width = images.shape
        params = sample_ops(self.ops, n, height, width, context.generator(Stream.BATCH_OPS))
        return apply_ops(images, self.ops, params), targets

    def transform_batch(
        self, images: Tensor, targets: Tensor, trainer: Trainer | None
    ) -> tuple[Tensor, Tensor]:
        raise TypeError(
            "BatchOps runs in AugDataModule's device stage (it needs the batch's context); with a "
            "DataModule of your own, apply the ops in your training_step"
        )
