"""The device stage: what happens to a batch after the transfer to the training device.

uint8 ``(N, C, H, W)`` batch -> float32, the device-batched ops (training batches only) ->
normalised with ``mean``/``std`` -> the ``BatchTransform`` callbacks in order (training batches only)
-> the dtype the model computes in (``bf16-true``: bfloat16). The float batch is written in the memory
layout the model takes (``memory_format``: channels_last for a channels_last model, contiguous
otherwise; :func:`~lightning_aug.device.normalize.model_memory_format`) by the uint8 -> float
conversion itself, so either layout costs no extra copy; without one, the loaders' channels_last is kept.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from lightning_aug.device.augment import DeviceOp, apply_ops, apply_ops_moving_first, sample_ops
from lightning_aug.device.clock import StageClock
from lightning_aug.device.context import BatchContext, check_pixels
from lightning_aug.device.normalize import memory_format_of, normalization_affine, normalize_uint8
from lightning_aug.device.protocol import BatchTransform

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

__all__ = ["DeviceStage", "StageHost"]


class DeviceStage:
    """Normalisation and device-batched augmentation of uint8 batches, then the batch transforms.

    Args:
        mean, std: per-channel statistics on the 0-1 scale.
        ops: device-batched augmentation (:mod:`lightning_aug.device.augment`), training batches only;
            their parameters are drawn on the host from the generator each batch is given
            (:func:`lightning_aug.seeding.batch_rng` in ``AugDataModule``: a function of the batch).

    Attributes:
        clock: times every call (:class:`~lightning_aug.device.clock.StageClock`) when set;
            ``DataStallMonitor`` sets it for a fit.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], ops: Sequence[DeviceOp]) -> None:
        self.mean, self.std, self.ops = tuple(mean), tuple(std), list(ops)
        self.clock: StageClock | None = None
        self._affine: dict[tuple[torch.device, float], tuple[Tensor, Tensor]] = {}

    def _affine_on(self, device: torch.device, max_value: float) -> tuple[Tensor, Tensor]:
        key = (device, max_value)
        affine = self._affine.get(key)
        if affine is None:
            affine = self._affine[key] = normalization_affine(
                self.mean, self.std, device, max_value=max_value
            )
        return affine

    def normalize(self, images: Tensor, memory_format: torch.memory_format | None = None) -> Tensor:
        """uint8 ``(N, C, H, W)`` batch to normalised float32 on the batch's device, in
        ``memory_format`` (``None``: the batch's)."""
        return normalize_uint8(images, *self._affine_on(images.device, 255.0), memory_format)

    def augment(
        self, images: Tensor, rng: np.random.Generator, memory_format: torch.memory_format | None = None
    ) -> Tensor:
        """The ops on a uint8 batch (parameters drawn from ``rng``), then normalised, in
        ``memory_format`` (``None``: the batch's). The leading ops that only move pixels (crops, flips)
        run on the uint8 batch on the CPU (a quarter of the bytes of floats), and as one
        ``grid_sample`` of the float batch elsewhere (a few launches whatever the batch size); the
        other ops on floats in [0, 1]."""
        ops = self.ops
        layout = memory_format or memory_format_of(images)
        n, _, height, width = images.shape
        params = sample_ops(ops, n, height, width, rng)
        moving = next((i for i, op in enumerate(ops) if not op.moves_pixels_only), len(ops))
        done = apply_ops_moving_first(images, ops, params, moving) if images.device.type != "cpu" else None
        if done is not None:
            x, on_255 = done
        else:  # the CPU: the moves on uint8, then floats
            images = apply_ops(images, ops[:moving], params[:moving])
            if moving == len(ops):  # the conversion writes the layout, whatever the moves left
                return self.normalize(images, layout)
            floats = images.to(dtype=torch.float32, memory_format=layout).mul_(1.0 / 255.0)
            x = apply_ops(floats, ops[moving:], params[moving:])
            on_255 = False
        scale, shift = self._affine_on(x.device, 255.0 if on_255 else 1.0)
        if memory_format_of(x) == layout:
            return x.mul_(scale).sub_(shift)
        # the ops gave another layout: the scaling writes the batch's own (as many launches)
        return torch.mul(x, scale, out=torch.empty_like(x, memory_format=layout)).sub_(shift)

    def __call__(
        self,
        images: Tensor,
        targets: Tensor,
        transforms: Sequence[BatchTransform] = (),
        trainer: Trainer | None = None,
        train: bool = False,
        rng: np.random.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        size: int | None = None,
        context: BatchContext | None = None,
        memory_format: torch.memory_format | None = None,
    ) -> tuple[Tensor, Any]:
        """Training batches (``train``): the ops (parameters from ``rng``; ``None``: a generator seeded
        with 0) and normalisation, then ``transforms`` in order; other batches: normalisation only.
        Computed in float32; the images and floating targets (mixup's soft targets) are then given
        in ``dtype`` (one cast, none for float32). ``size``: the images are resized to ``size`` x
        ``size`` before the transforms where they are not (progressive resizing of in-memory data).
        ``memory_format``: the layout the model takes (``None``: the batch's own).

        Each transform is given the pixels it declares (its ``pixels``: normalised, or in [0, 1] and
        normalised again after it) and, where the batch's ``context`` is given, that context
        (:meth:`~lightning_aug.device.protocol.BatchTransform.transform_in_context`); otherwise
        ``trainer`` (``transform_batch``)."""
        with self.clock.timing(images.device) if self.clock is not None else nullcontext():
            if train and self.ops:
                images = self.augment(
                    images, rng if rng is not None else np.random.default_rng(0), memory_format
                )
            else:
                images = self.normalize(images, memory_format)
            if size is not None and tuple(images.shape[-2:]) != (size, size):
                images = torch.nn.functional.interpolate(
                    images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
                )
            for transform in transforms:
                unit = check_pixels(transform) == "unit"
                if unit:  # back to [0, 1] in place: normalised = unit * scale - shift
                    scale, shift = self._affine_on(images.device, 1.0)
                    images = images.add_(shift).div_(scale)
                if context is not None:
                    images, targets = transform.transform_in_context(images, targets, context)
                else:
                    images, targets = transform.transform_batch(images, targets, trainer)
                if unit:
                    images = images.mul_(scale).sub_(shift)
            if dtype != images.dtype:
                images = images.to(dtype)
                if isinstance(targets, Tensor) and targets.is_floating_point():
                    targets = targets.to(dtype)
            return images, targets


class StageHost(ABC):  # a declaration: no method to implement
    """Declares a DataModule that runs its batches through a :class:`DeviceStage` of its own after the
    transfer (``AugDataModule``): ``DataStallMonitor`` times that stage through its ``clock``."""

    stage: DeviceStage
