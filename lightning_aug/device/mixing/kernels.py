"""The two kernels of :class:`~lightning_aug.device.mixing.callback.MixupCallback`, with the buffers
they keep between batches: ``batched`` (a handful of whole-batch ops on persistent buffers: what
GPUs want) and ``chunked`` (pairs mixed in place a chunk at a time through two chunk buffers: large
batches on the CPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_aug.device.mixing.functional import (
    chunk_buffers,
    default_chunk,
    mix_reversed_batched_,
    mix_with_reversed_,
    mixed_one_hot,
    pair_weights,
)
from lightning_aug.device.mixing.sampling import MixParams
from lightning_aug.device.normalize import memory_format_of, to_device

__all__ = ["MixKernels"]


class MixKernels:
    """The mixing kernels and their buffers (made once per shape, dtype, device and layout)."""

    def __init__(self) -> None:
        self.buffers: dict[str, Tensor] = {}
        self._chunk: tuple[Tensor, Tensor] | None = None
        self._chunk_key: tuple[Any, ...] | None = None

    def held_buffers(self) -> list[Tensor]:
        """Every buffer kept between batches (the memory the kernels hold)."""
        return [*(self._chunk or ()), *self.buffers.values()]

    def buffer(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
        like: Tensor | None = None,
    ) -> Tensor:
        """A persistent device buffer, made again only when the shape, dtype, device or memory layout
        (that of ``like``: channels_last batches get channels_last buffers) changes (``"reverse"``:
        the indices ``B-1, ..., 0``)."""
        buffer = self.buffers.get(name)
        layout = memory_format_of(like) if like is not None else torch.contiguous_format
        if (
            buffer is None
            or buffer.shape != shape
            or buffer.dtype != dtype
            or buffer.device != device
            or memory_format_of(buffer) != layout
        ):
            if name == "reverse":
                buffer = torch.arange(shape[0] - 1, -1, -1, dtype=dtype, device=device)
            else:
                buffer = torch.empty(shape, dtype=dtype, device=device, memory_format=layout)
            self.buffers[name] = buffer
        return buffer

    def batched(
        self, images: Tensor, targets: Tensor, params: MixParams, label_smoothing: float, num_classes: int
    ) -> tuple[Tensor, Tensor]:
        """The few-launch kernel: every parameter built on the host into one float32 array, one copy,
        then whole-batch ops on persistent buffers."""
        batch, _, height, width = images.shape
        soft_input = targets.ndim == 2
        smoothing = 0.0 if soft_input else label_smoothing
        lam = params.lam
        coefficients = np.stack([lam, 1.0 - lam], axis=1) * (1.0 - smoothing)  # own, partner
        any_cutmix = bool(params.use_cutmix.any())
        if params.per_batch or not any_cutmix:
            weights = np.empty(0) if params.per_batch else 1.0 - lam
            host = np.concatenate([weights, coefficients.ravel()]).astype(np.float32)
        else:  # per-sample box masks as the outer product of a row and a column factor
            rows = np.ones((batch, height))
            cols = np.repeat((1.0 - lam)[:, None], width, axis=1)
            cut = np.flatnonzero(params.use_cutmix)
            ys, xs = np.arange(height), np.arange(width)
            boxes = params.boxes[cut]
            rows[cut] = (ys >= boxes[:, 0:1]) & (ys < boxes[:, 1:2])
            cols[cut] = (xs >= boxes[:, 2:3]) & (xs < boxes[:, 3:4])
            host = np.concatenate([rows.ravel(), cols.ravel(), coefficients.ravel()]).astype(np.float32)
        device = to_device(host, images.device)
        reverse = self.buffer("reverse", (batch,), torch.int64, images.device)
        partner = self.buffer("partner", tuple(images.shape), images.dtype, images.device, like=images)
        if params.per_batch:
            own = device.view(batch, 2)
            if bool(params.use_cutmix[0]):  # swap the one box between partners
                y0, y1, x0, x1 = (int(v) for v in params.boxes[0])
                box = images[:, :, y0:y1, x0:x1]
                mix_reversed_batched_(box, 1.0, _leading(partner, box.shape), reverse)
            else:
                mix_reversed_batched_(images, float(1.0 - lam[0]), partner, reverse)
        elif not any_cutmix:
            weight = device[:batch].view(batch, 1, 1, 1).to(images.dtype)
            own = device[batch:].view(batch, 2)
            mix_reversed_batched_(images, weight, partner, reverse)
        else:
            split = batch * (height + width)
            factors = device[:split].to(images.dtype)
            weight = torch.mul(
                factors[: batch * height].view(batch, 1, height, 1),
                factors[batch * height :].view(batch, 1, 1, width),
                out=self.buffer("weight", (batch, 1, height, width), images.dtype, images.device),
            )
            own = device[split:].view(batch, 2)
            mix_reversed_batched_(images, weight, partner, reverse)
        if soft_input:
            return images, torch.lerp(targets.index_select(0, reverse), targets, own[:, :1])
        return images, mixed_one_hot(targets, own, label_smoothing / num_classes, num_classes)

    def _chunk_buffers(self, images: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
        """The two chunk buffers of :func:`mix_with_reversed_`, kept between batches of one shape."""
        key = (tuple(images.shape[1:]), images.dtype, images.device, chunk)
        buffers = self._chunk
        if buffers is None or self._chunk_key != key:
            buffers = self._chunk = chunk_buffers(images, chunk)
            self._chunk_key = key
        return buffers

    def chunked(self, images: Tensor, params: MixParams, lam: Tensor, chunk_fraction: float) -> None:
        """The in-place kernel: pairs a chunk of ``chunk_fraction`` of the batch at a time."""
        sample_bytes = images[0].numel() * images.element_size()
        # measured on a 2-core CPU (python -m lightning_aug.bench.mixup): one scalar lerp per step is
        # fastest with ~1 MiB chunks (cache-resident copies); per-sample weights amortise building
        # them over ~4 MiB chunks
        cpu_bytes = (1 << 20) if params.per_batch else (4 << 20)
        chunk = default_chunk(images.shape[0], sample_bytes, images.device, chunk_fraction, cpu_bytes)
        height, width = images.shape[-2:]
        if params.per_batch:
            if bool(params.use_cutmix[0]):  # swap the one box between partners (box-sized buffers)
                y0, y1, x0, x1 = (int(v) for v in params.boxes[0])
                mix_with_reversed_(images[:, :, y0:y1, x0:x1], 1.0, chunk)
            else:
                mix_with_reversed_(
                    images, 1.0 - float(params.lam[0]), chunk, self._chunk_buffers(images, chunk)
                )
            return
        any_cutmix = bool(params.use_cutmix.any())
        use_cutmix = torch.from_numpy(params.use_cutmix).to(images.device) if any_cutmix else None
        boxes = torch.from_numpy(params.boxes).to(images.device) if any_cutmix else None

        def weight(start: int, stop: int) -> Tensor:
            return pair_weights(
                lam[start:stop],
                None if use_cutmix is None else use_cutmix[start:stop],
                None if boxes is None else boxes[start:stop],
                height,
                width,
                images.dtype,
            )

        mix_with_reversed_(images, weight, chunk, self._chunk_buffers(images, chunk))


def _leading(buffer: Tensor, shape: torch.Size) -> Tensor:
    """A dense tensor of ``shape`` in the first elements of ``buffer``, in the buffer's layout."""
    if memory_format_of(buffer) == torch.channels_last:
        n, c, h, w = shape
        return buffer.permute(0, 2, 3, 1).reshape(-1)[: n * c * h * w].view(n, h, w, c).permute(0, 3, 1, 2)
    return buffer.view(-1)[: shape.numel()].view(shape)
