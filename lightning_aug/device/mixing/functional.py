"""Pure kernels of mixup and cutmix: no RNG state, no Lightning, device-agnostic.

Pairing convention (as timm's ``Mixup``): sample ``i`` of a batch of ``B`` is mixed with sample
``B - 1 - i``, the batch reversed; the loader already shuffled it. With an odd ``B`` the middle
sample is its own partner, so mixing leaves it unchanged.

References: mixup, Zhang et al. 2018 (https://arxiv.org/abs/1710.09412); CutMix, Yun et al. 2019
(https://arxiv.org/abs/1905.04899).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from lightning_aug.device.normalize import memory_format_of

__all__ = [
    "chunk_buffers",
    "default_chunk",
    "mix_reversed_batched_",
    "mix_targets",
    "mix_with_reversed_",
    "mixed_one_hot",
    "pair_weights",
    "smooth_one_hot",
]


def smooth_one_hot(targets: Tensor, num_classes: int, smoothing: float = 0.0) -> Tensor:
    """Class indices ``(B,)`` to smoothed one-hot rows ``(B, C)``: off = s / C, on = 1 - s + off.

    Example::

        >>> smooth_one_hot(torch.tensor([1]), 4, smoothing=0.2)
        tensor([[0.0500, 0.8500, 0.0500, 0.0500]])
    """
    off = smoothing / num_classes
    out = torch.full((targets.shape[0], num_classes), off, device=targets.device)
    return out.scatter_(1, targets.view(-1, 1).long(), 1.0 - smoothing + off)


def mix_targets(soft: Tensor, lam: Tensor) -> Tensor:
    """``lam * y + (1 - lam) * y_partner`` for soft targets ``(B, C)`` and per-sample ``lam`` ``(B,)``.

    Example::

        >>> mix_targets(torch.eye(2), torch.tensor([0.7, 0.7]))
        tensor([[0.7000, 0.3000],
                [0.3000, 0.7000]])
    """
    lam = lam.to(soft.dtype).view(-1, 1)
    return torch.lerp(soft.flip(0), soft, lam)


def mixed_one_hot(targets: Tensor, coefficients: Tensor, off: float, num_classes: int) -> Tensor:
    """Smoothed one-hot rows of ``targets`` mixed with their partners' (``B - 1 - i``) in three ops:
    ``off + c_own * onehot(y_i) + c_partner * onehot(y_partner)``, the coefficients ``(B, 2)`` computed
    on the host (``lam * (1 - s)``, ``(1 - lam) * (1 - s)``, ``off = s / C``).

    Example::

        >>> mixed_one_hot(torch.tensor([0, 1]), torch.tensor([[0.7, 0.3], [0.7, 0.3]]), 0.0, 2)
        tensor([[0.7000, 0.3000],
                [0.3000, 0.7000]])
    """
    out = torch.full((targets.shape[0], num_classes), off, dtype=coefficients.dtype, device=targets.device)
    return out.scatter_add_(1, torch.stack([targets, targets.flip(0)], 1), coefficients)


def mix_reversed_batched_(images: Tensor, weight: Tensor | float, partner: Tensor, reverse: Tensor) -> Tensor:
    """In place: ``images[i] = lerp(images[i], images[B-1-i], w_i)``, the whole batch in two ops.

    The few-launch kernel for GPUs: the partners are gathered into ``partner`` (a persistent buffer
    of the images' shape, or of the view's shape), then one ``lerp_`` blends. ``weight`` 1 copies.

    Args:
        images: ``(B, ...)`` floating tensor (or a view of one, e.g. a box), modified in place.
        weight: a float, or a tensor broadcastable to ``images`` (``(B, 1, 1, 1)``, ``(B, 1, H, W)``).
        partner: a tensor of ``images``' shape, overwritten.
        reverse: ``arange(B - 1, -1, -1)`` on the images' device.

    Example::

        >>> x = torch.tensor([[0.0], [10.0], [20.0]])
        >>> mix_reversed_batched_(x, 0.25, torch.empty(3, 1), torch.arange(2, -1, -1)).flatten().tolist()
        [5.0, 10.0, 15.0]
    """
    torch.index_select(images, 0, reverse, out=partner)
    if isinstance(weight, float) and weight == 1.0:
        return images.copy_(partner)
    return images.lerp_(partner, weight)


def _box_axes(boxes: Tensor, height: int, width: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Row ``(N, H)`` and column ``(N, W)`` indicators of the boxes: the mask is their outer product."""
    ys = torch.arange(height, device=boxes.device)
    xs = torch.arange(width, device=boxes.device)
    rows = (ys >= boxes[:, 0:1]) & (ys < boxes[:, 1:2])
    cols = (xs >= boxes[:, 2:3]) & (xs < boxes[:, 3:4])
    return rows.to(dtype), cols.to(dtype)


def pair_weights(
    lam: Tensor, use_cutmix: Tensor | None, boxes: Tensor | None, height: int, width: int, dtype: torch.dtype
) -> Tensor:
    """Per-sample weights of the partner image for :func:`mix_with_reversed_`.

    ``1 - lam`` as ``(N, 1, 1, 1)`` where no sample uses cutmix; otherwise ``(N, 1, H, W)``: the box
    mask for cutmix samples, ``1 - lam`` elsewhere, built in one pass as the outer product of a row
    and a column vector per sample (rows of ones and a column of ``1 - lam`` for mixup samples). All
    inputs are on the images' device.
    """
    mix = (1.0 - lam).to(dtype).view(-1, 1)
    if use_cutmix is None or boxes is None:
        return mix.view(-1, 1, 1, 1)
    rows, cols = _box_axes(boxes, height, width, dtype)
    cut = use_cutmix.view(-1, 1)
    rows = torch.where(cut, rows, torch.ones((), dtype=dtype, device=rows.device))
    cols = torch.where(cut, cols, mix)
    return rows[:, None, :, None] * cols[:, None, None, :]


WeightFn = Callable[[int, int], "Tensor | float"]


def mix_with_reversed_(
    images: Tensor, weight: WeightFn | float, chunk: int, buffers: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """In place: ``images[i] = lerp(images[i], images[B-1-i], w_i)`` for every ``i``, pairs in chunks.

    ``w_i = 1 - lam_i`` gives mixup, a 0/1 box mask gives cutmix, 1 swaps. Each step takes ``chunk``
    pairs ``(i, B-1-i)``: both sides are copied, reversed, into two chunk-sized buffers (small enough
    to stay in cache), then each side is blended in place with the other's copy. The extra memory is
    the two buffers, never a batch-sized copy; pass ``buffers`` (from :func:`chunk_buffers`) to reuse
    them between calls and allocate nothing.

    Args:
        images: ``(B, ...)`` floating tensor, modified in place (a strided view works, e.g. a box).
        weight: a float for all samples, or ``weight(start, stop)`` giving the weights of samples
            ``start:stop`` broadcastable to ``images[start:stop]``.
        chunk: pairs per step (>= 1).
        buffers: two contiguous tensors of at least ``chunk`` samples of ``images``' sample shape.

    Returns:
        ``images``.

    Example::

        >>> x = torch.tensor([[0.0], [10.0], [20.0]])
        >>> mix_with_reversed_(x, 0.25, chunk=1).flatten().tolist()  # the middle sample is its own partner
        [5.0, 10.0, 15.0]
    """
    n = images.shape[0]
    half = n // 2
    if half == 0:
        return images
    chunk = max(1, min(chunk, half))
    if buffers is None:
        buffers = chunk_buffers(images, chunk)
    reverse = torch.arange(chunk - 1, -1, -1, device=images.device)
    for a in range(0, half, chunk):
        b = min(a + chunk, half)
        c = b - a
        low, high = images[a:b], images[n - b : n - a]  # high[k] pairs with low[c - 1 - k]
        rev = reverse[chunk - c :] if c < chunk else reverse  # c-1, ..., 0
        old_low = torch.index_select(low, 0, rev, out=buffers[0][:c])  # low, reversed: aligned with high
        old_high = torch.index_select(high, 0, rev, out=buffers[1][:c])  # high, reversed: aligned with low
        w_low = weight(a, b) if callable(weight) else weight
        w_high = weight(n - b, n - a) if callable(weight) else weight
        low.lerp_(old_high, w_low)
        high.lerp_(old_low, w_high)
    return images


def chunk_buffers(images: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """Two buffers of ``chunk`` samples like ``images[0]`` (in the images' memory layout), for
    :func:`mix_with_reversed_`."""
    shape = (max(1, chunk), *images.shape[1:])
    layout = memory_format_of(images)  # the images' layout (channels_last from the loaders)
    return (
        torch.empty(shape, dtype=images.dtype, device=images.device, memory_format=layout),
        torch.empty(shape, dtype=images.dtype, device=images.device, memory_format=layout),
    )


def default_chunk(
    batch_size: int, sample_bytes: int, device: torch.device, fraction: float = 0.05, cpu_bytes: int = 1 << 20
) -> int:
    """Pairs per chunk: at most ``fraction`` of the batch (the two buffers hold ``2 * fraction``);
    on the CPU also at most ``cpu_bytes`` per buffer, so that the copies stay in cache."""
    pairs = max(1, math.floor(batch_size * fraction))
    if device.type == "cpu":
        pairs = min(pairs, max(1, cpu_bytes // max(1, sample_bytes)))
    return pairs
