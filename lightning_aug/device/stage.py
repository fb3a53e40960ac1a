"""The device stage: what happens to a batch after the transfer to the training device.

uint8 ``(N, C, H, W)`` batch -> float32, the device-batched ops (training batches only) ->
normalised with ``mean``/``std`` -> the ``BatchTransform`` callbacks in order (training batches only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from lightning_aug.device.augment import DeviceOp, apply_ops, apply_ops_moving_first, sample_ops
from lightning_aug.device.normalize import normalization_affine, normalize_uint8
from lightning_aug.device.protocol import BatchTransform

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

__all__ = ["DeviceStage"]


class DeviceStage:
    """Normalisation and device-batched augmentation of uint8 batches, then the batch transforms.

    Args:
        mean, std: per-channel statistics on the 0-1 scale.
        ops: device-batched augmentation (:mod:`lightning_aug.device.augment`), training batches only.
        seed: called once, on first use, for the seed of the ops' host generator (the DataModule's
            run seed and rank are known only then).
    """

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], ops: Sequence[DeviceOp], seed: Callable[[], int]
    ) -> None:
        self.mean, self.std, self.ops = tuple(mean), tuple(std), list(ops)
        self._seed = seed
        self._generator: np.random.Generator | None = None
        self._affine: dict[tuple[torch.device, float], tuple[Tensor, Tensor]] = {}

    @property
    def generator(self) -> np.random.Generator:
        """The host generator of the ops' parameters (saved in checkpoints by the DataModule)."""
        if self._generator is None:
            self._generator = np.random.default_rng(self._seed())
        return self._generator

    def _affine_on(self, device: torch.device, max_value: float) -> tuple[Tensor, Tensor]:
        key = (device, max_value)
        affine = self._affine.get(key)
        if affine is None:
            affine = self._affine[key] = normalization_affine(
                self.mean, self.std, device, max_value=max_value
            )
        return affine

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 ``(N, C, H, W)`` batch to normalised float32 on the batch's device."""
        return normalize_uint8(images, *self._affine_on(images.device, 255.0))

    def augment(self, images: Tensor) -> Tensor:
        """The ops on a uint8 batch, then normalised. The leading ops that only move pixels (crops,
        flips) run on the uint8 batch on the CPU (a quarter of the bytes of floats), and as one
        ``grid_sample`` of the float batch elsewhere (a few launches whatever the batch size); the
        other ops on floats in [0, 1]."""
        ops = self.ops
        n, _, height, width = images.shape
        params = sample_ops(ops, n, height, width, self.generator)
        moving = next((i for i, op in enumerate(ops) if not op.moves_pixels_only), len(ops))
        done = apply_ops_moving_first(images, ops, params, moving) if images.device.type != "cpu" else None
        if done is not None:
            x, on_255 = done
        else:  # the CPU: the moves on uint8, then floats
            images = apply_ops(images, ops[:moving], params[:moving])
            if moving == len(ops):
                return self.normalize(images)
            x = apply_ops(images.to(torch.float32).mul_(1.0 / 255.0), ops[moving:], params[moving:])
            on_255 = False
        scale, shift = self._affine_on(x.device, 255.0 if on_255 else 1.0)
        return x.mul_(scale).sub_(shift)

    def __call__(
        self,
        images: Tensor,
        targets: Tensor,
        transforms: Sequence[BatchTransform] = (),
        trainer: Trainer | None = None,
        train: bool = False,
    ) -> tuple[Tensor, Any]:
        """Training batches (``train``): the ops and normalisation, then ``transforms`` in order;
        other batches: normalisation only."""
        images = self.augment(images) if train and self.ops else self.normalize(images)
        for transform in transforms:
            images, targets = transform.transform_batch(images, targets, trainer)
        return images, targets
