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

__all__ = [
    "box_lam",
    "box_mask",
    "mix_targets",
    "mix_with_reversed_",
    "pair_weights",
    "rand_bbox",
    "rand_bbox_minmax",
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


def rand_bbox(height: int, width: int, lam: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """CutMix boxes (CutMix paper): side ratio ``sqrt(1 - lam)``, uniform centre, clipped to the image.

    Args:
        lam: ``(N,)`` mixing weights of the image kept outside the box.

    Returns:
        int64 ``(N, 4)`` boxes ``[y_low, y_high, x_low, x_high)``.
    """
    ratio = torch.sqrt(1.0 - lam.double())
    cut_h, cut_w = (height * ratio).long(), (width * ratio).long()
    cy = torch.randint(0, height, lam.shape, generator=generator)
    cx = torch.randint(0, width, lam.shape, generator=generator)
    y0, y1 = (cy - cut_h // 2).clamp(0, height), (cy + cut_h // 2).clamp(0, height)
    x0, x1 = (cx - cut_w // 2).clamp(0, width), (cx + cut_w // 2).clamp(0, width)
    return torch.stack([y0, y1, x0, x1], dim=1)


def rand_bbox_minmax(
    height: int, width: int, minmax: tuple[float, float], n: int, generator: torch.Generator | None = None
) -> Tensor:
    """Boxes whose sides are uniform in ``[min, max)`` of the image side, placed uniformly inside it.

    Returns:
        int64 ``(n, 4)`` boxes ``[y_low, y_high, x_low, x_high)``.
    """

    def side(length: int) -> Tensor:
        low, high = int(length * minmax[0]), int(length * minmax[1])
        return low + (torch.rand(n, generator=generator, dtype=torch.float64) * max(high - low, 1)).long()

    cut_h, cut_w = side(height), side(width)
    y0 = (torch.rand(n, generator=generator, dtype=torch.float64) * (height - cut_h + 1)).long()
    x0 = (torch.rand(n, generator=generator, dtype=torch.float64) * (width - cut_w + 1)).long()
    return torch.stack([y0, y0 + cut_h, x0, x0 + cut_w], dim=1)


def box_lam(boxes: Tensor, height: int, width: int) -> Tensor:
    """The weight of the kept image when ``boxes`` are pasted in: ``1 - box area / image area``."""
    area = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
    return 1.0 - area.double() / (height * width)


def box_mask(boxes: Tensor, height: int, width: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(N, 1, H, W)`` masks, 1 inside each box, on the boxes' device."""
    ys = torch.arange(height, device=boxes.device).view(1, height, 1)
    xs = torch.arange(width, device=boxes.device).view(1, 1, width)
    b = boxes.view(-1, 4, 1, 1)
    inside = (ys >= b[:, 0]) & (ys < b[:, 1]) & (xs >= b[:, 2]) & (xs < b[:, 3])
    return inside.unsqueeze(1).to(dtype)


def pair_weights(
    lam: Tensor, use_cutmix: Tensor | None, boxes: Tensor | None, height: int, width: int, dtype: torch.dtype
) -> Tensor:
    """Per-sample weights of the partner image for :func:`mix_with_reversed_`.

    ``1 - lam`` as ``(N, 1, 1, 1)`` where no sample uses cutmix; otherwise ``(N, 1, H, W)``: the box
    mask for cutmix samples, ``1 - lam`` elsewhere. All inputs are on the images' device.
    """
    mix = (1.0 - lam).to(dtype).view(-1, 1, 1, 1)
    if use_cutmix is None or boxes is None:
        return mix
    return torch.where(use_cutmix.view(-1, 1, 1, 1), box_mask(boxes, height, width, dtype), mix)


WeightFn = Callable[[int, int], "Tensor | float"]


def mix_with_reversed_(images: Tensor, weight: WeightFn | float, chunk: int) -> Tensor:
    """In place: ``images[i] = lerp(images[i], images[B-1-i], w_i)`` for every ``i``, pairs in chunks.

    ``w_i = 1 - lam_i`` gives mixup, a 0/1 box mask gives cutmix, 1 swaps. Each chunk of ``chunk``
    pairs ``(i, B-1-i)`` reads both sides once and writes both in place; the only extra memory is two
    copies of ``chunk`` samples (the reversed sides), never a batch-sized buffer.

    Args:
        images: ``(B, ...)`` floating tensor, modified in place (a strided view works, e.g. a box).
        weight: a float for all samples, or ``weight(start, stop)`` giving the weights of samples
            ``start:stop`` broadcastable to ``images[start:stop]``.
        chunk: pairs per step (>= 1).

    Returns:
        ``images``.

    Example::

        >>> x = torch.tensor([[0.0], [10.0], [20.0]])
        >>> mix_with_reversed_(x, 0.25, chunk=1).flatten().tolist()  # the middle sample is its own partner
        [5.0, 10.0, 15.0]
    """
    n = images.shape[0]
    half = n // 2
    chunk = max(1, min(chunk, half)) if half else 1
    for a in range(0, half, chunk):
        b = min(a + chunk, half)
        low, high = images[a:b], images[n - b : n - a]  # high[k] pairs with low[b - a - 1 - k]
        w_low = weight(a, b) if callable(weight) else weight
        w_high = weight(n - b, n - a) if callable(weight) else weight
        old_low = low.flip(0)  # a copy: the low side before it changes, aligned with `high`
        low.lerp_(high.flip(0), w_low)
        high.lerp_(old_low, w_high)
    return images


def default_chunk(batch_size: int, fraction: float = 0.05) -> int:
    """Pairs per chunk so that the two chunk copies hold at most ``2 * fraction`` of the batch."""
    return max(1, math.floor(batch_size * fraction))
