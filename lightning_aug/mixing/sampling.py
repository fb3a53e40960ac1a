"""Sampling of mixup/cutmix parameters on the CPU from a ``torch.Generator`` (separate from applying)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from lightning_aug.mixing.functional import box_lam, rand_bbox, rand_bbox_minmax

__all__ = ["MixParams", "Mode", "sample_beta", "sample_mix_params"]

Mode = Literal["batch", "pair", "elem"]


def sample_beta(alpha: float, n: int, generator: torch.Generator) -> Tensor:
    """``n`` draws of Beta(alpha, alpha) (float64) from ``generator``, via a 2-class Dirichlet as
    ``torch.distributions.Beta`` does (which itself takes no generator)."""
    concentration = torch.full((n, 2), float(alpha), dtype=torch.float64)
    return torch._sample_dirichlet(concentration, generator=generator)[:, 0]


@dataclass
class MixParams:
    """Per-sample parameters of one batch, on the CPU.

    Attributes:
        lam: ``(B,)`` float64 weight of each sample's own image (1: untouched).
        use_cutmix: ``(B,)`` bool, cutmix (box) rather than mixup (blend).
        boxes: ``(B, 4)`` int64 ``[y0, y1, x0, x1)``; empty boxes where not cutmix.
        applied: ``(B,)`` bool, the draw was applied (probability ``prob``); a cutmix box may still
            be empty, giving ``lam == 1``.
        per_batch: one draw for the whole batch (``mode="batch"``): all rows are equal.
    """

    lam: Tensor
    use_cutmix: Tensor
    boxes: Tensor
    applied: Tensor
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
    generator: torch.Generator,
) -> MixParams:
    """Draw lambda, the mixup/cutmix choice and the boxes for one batch (timm's semantics).

    ``mode="batch"`` draws once, ``"pair"`` once per pair ``(i, B-1-i)`` (both samples share it),
    ``"elem"`` once per sample. Each draw is applied with probability ``prob``; when both mixup and
    cutmix are enabled (an alpha > 0; ``cutmix_minmax`` enables cutmix too), cutmix is chosen with
    probability ``switch_prob``. Cutmix lambda is corrected to the clipped box area when
    ``correct_lam`` (always with ``cutmix_minmax``, whose box sizes define it).
    """
    n = 1 if mode == "batch" else (batch_size + 1) // 2 if mode == "pair" else batch_size
    apply = torch.rand(n, generator=generator, dtype=torch.float64) < prob
    ones = torch.ones(n, dtype=torch.float64)
    mixup_on, cutmix_on = mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax is not None
    if mixup_on and cutmix_on:
        use_cutmix = torch.rand(n, generator=generator, dtype=torch.float64) < switch_prob
    else:
        use_cutmix = torch.full((n,), cutmix_on)
    lam_mix = sample_beta(mixup_alpha, n, generator) if mixup_on else ones
    lam_cut = sample_beta(cutmix_alpha, n, generator) if cutmix_alpha > 0 and cutmix_minmax is None else ones
    if cutmix_minmax is not None:
        boxes = rand_bbox_minmax(height, width, cutmix_minmax, n, generator)
    else:
        boxes = rand_bbox(height, width, lam_cut, generator)
    if correct_lam or cutmix_minmax is not None:
        lam_cut = box_lam(boxes, height, width)
    use_cutmix &= apply
    lam = torch.where(apply, torch.where(use_cutmix, lam_cut, lam_mix), ones)
    boxes = torch.where(use_cutmix.view(-1, 1), boxes, torch.zeros_like(boxes))
    if mode == "batch":
        index = torch.zeros(batch_size, dtype=torch.int64)
    elif mode == "pair":  # pair k is (k, B-1-k): mirror the first half onto the second
        index = torch.arange(batch_size)
        index = torch.minimum(index, batch_size - 1 - index)
    else:
        index = torch.arange(batch_size)
    return MixParams(
        lam=lam[index],
        use_cutmix=use_cutmix[index],
        boxes=boxes[index],
        applied=apply[index],
        per_batch=mode == "batch",
    )
