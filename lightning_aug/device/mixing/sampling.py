"""Sampling of mixup/cutmix parameters on the host from a ``numpy.random.Generator`` (separate from
applying them).

numpy, as timm's ``Mixup``: the draws dispatch no torch op, so the device sees only the one copy of
the parameters and the kernels that apply them (:mod:`lightning_aug.bench.launches` counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["MixParams", "Mode", "box_lam", "rand_bbox", "rand_bbox_minmax", "sample_mix_params"]

Mode = Literal["batch", "pair", "elem"]


def rand_bbox(height: int, width: int, lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """CutMix boxes (CutMix paper): side ratio ``sqrt(1 - lam)``, uniform centre, clipped to the image.

    Args:
        lam: ``(N,)`` mixing weights of the image kept outside the box.

    Returns:
        int64 ``(N, 4)`` boxes ``[y_low, y_high, x_low, x_high)``.

    Example::

        >>> rand_bbox(10, 10, np.array([1.0]), np.random.default_rng(0))  # lam 1: an empty box
        array([[8, 8, 6, 6]])
    """
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = (height * ratio).astype(np.int64), (width * ratio).astype(np.int64)
    cy = rng.integers(0, height, lam.shape[0])
    cx = rng.integers(0, width, lam.shape[0])
    y0, y1 = np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height)
    x0, x1 = np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)
    return np.stack([y0, y1, x0, x1], axis=1)


def rand_bbox_minmax(
    height: int, width: int, minmax: tuple[float, float], n: int, rng: np.random.Generator
) -> np.ndarray:
    """Boxes whose sides are uniform in ``[min, max)`` of the image side, placed uniformly inside it.

    Returns:
        int64 ``(n, 4)`` boxes ``[y_low, y_high, x_low, x_high)``.
    """

    def side(length: int) -> np.ndarray:
        low, high = int(length * minmax[0]), int(length * minmax[1])
        return low + (rng.random(n) * max(high - low, 1)).astype(np.int64)

    cut_h, cut_w = side(height), side(width)
    y0 = (rng.random(n) * (height - cut_h + 1)).astype(np.int64)
    x0 = (rng.random(n) * (width - cut_w + 1)).astype(np.int64)
    return np.stack([y0, y0 + cut_h, x0, x0 + cut_w], axis=1)


def box_lam(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """The weight of the kept image when ``boxes`` are pasted in: ``1 - box area / image area``."""
    area = (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2])
    return 1.0 - area / (height * width)


@dataclass
class MixParams:
    """Per-sample parameters of one batch, on the host (numpy).

    Attributes:
        lam: ``(B,)`` float64 weight of each sample's own image (1: untouched).
        use_cutmix: ``(B,)`` bool, cutmix (box) rather than mixup (blend).
        boxes: ``(B, 4)`` int64 ``[y0, y1, x0, x1)``; empty boxes where not cutmix.
        applied: ``(B,)`` bool, the draw was applied (probability ``prob``); a cutmix box may still
            be empty, giving ``lam == 1``.
        per_batch: one draw for the whole batch (``mode="batch"``): all rows are equal.
    """

    lam: np.ndarray
    use_cutmix: np.ndarray
    boxes: np.ndarray
    applied: np.ndarray
    per_batch: bool

    @property
    def any_applied(self) -> bool:
        return bool(self.applied.any())


def sample_mix_params(
    batch_size: int,
    height: int,
    width: int,
    *,
    mode: Mode,
    mixup_alpha: float,
    cutmix_alpha: float,
    cutmix_minmax: tuple[float, float] | None,
    prob: float,
    switch_prob: float,
    correct_lam: bool,
    rng: np.random.Generator,
) -> MixParams:
    """Draw lambda, the mixup/cutmix choice and the boxes for one batch (timm's semantics).

    ``mode="batch"`` draws once, ``"pair"`` once per pair ``(i, B-1-i)`` (both samples share it),
    ``"elem"`` once per sample. Each draw is applied with probability ``prob``; when both mixup and
    cutmix are enabled (an alpha > 0; ``cutmix_minmax`` enables cutmix too), cutmix is chosen with
    probability ``switch_prob``. Cutmix lambda is corrected to the clipped box area when
    ``correct_lam`` (always with ``cutmix_minmax``, whose box sizes define it).
    """
    n = 1 if mode == "batch" else (batch_size + 1) // 2 if mode == "pair" else batch_size
    apply = rng.random(n) < prob
    ones = np.ones(n)
    mixup_on, cutmix_on = mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax is not None
    use_cutmix = rng.random(n) < switch_prob if mixup_on and cutmix_on else np.full(n, cutmix_on)
    lam_mix = rng.beta(mixup_alpha, mixup_alpha, n) if mixup_on else ones
    lam_cut = rng.beta(cutmix_alpha, cutmix_alpha, n) if cutmix_alpha > 0 and cutmix_minmax is None else ones
    if cutmix_minmax is not None:
        boxes = rand_bbox_minmax(height, width, cutmix_minmax, n, rng)
    else:
        boxes = rand_bbox(height, width, lam_cut, rng)
    if correct_lam or cutmix_minmax is not None:
        lam_cut = box_lam(boxes, height, width)
    use_cutmix &= apply
    lam = np.where(apply, np.where(use_cutmix, lam_cut, lam_mix), ones)
    boxes = np.where(use_cutmix[:, None], boxes, 0)
    if mode == "batch":
        index = np.zeros(batch_size, dtype=np.int64)
    elif mode == "pair":  # pair k is (k, B-1-k): mirror the first half onto the second
        index = np.arange(batch_size)
        index = np.minimum(index, batch_size - 1 - index)
    else:
        index = np.arange(batch_size)
    return MixParams(
        lam=lam[index],
        use_cutmix=use_cutmix[index],
        boxes=boxes[index],
        applied=apply[index],
        per_batch=mode == "batch",
    )
