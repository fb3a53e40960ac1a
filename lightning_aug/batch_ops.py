"""Device-batched augmentation: per-sample-random ops applied to a whole batch at once on the device.

Each op draws per-sample parameters on the CPU from a ``torch.Generator`` (:meth:`BatchOp.sample`)
and applies them to the whole float batch in [0, 1] with vectorised tensor operations
(:meth:`BatchOp.apply`): no Python loop over samples. With them the DataLoader workers only decode
(and collate uint8); :class:`~lightning_aug.AugDataModule` runs them in its device stage, training
batches only, between the uint8-to-float conversion and the normalisation (``batch_transforms``).

Each op equals its torchvision per-sample counterpart given the same parameters (the tests check
it): ``pad`` + ``crop``, ``horizontal_flip``, ``adjust_brightness`` / ``adjust_contrast`` /
``adjust_saturation`` (in that fixed order), ``erase``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_aug._checks import check_int, check_prob
from lightning_aug.mixing.functional import box_mask

__all__ = [
    "BatchOp",
    "ColorJitter",
    "HorizontalFlip",
    "RandomCrop",
    "RandomErasing",
    "apply_ops",
    "sample_ops",
]

Params = dict[str, Tensor]


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


class BatchOp:
    """A per-sample-random augmentation of whole batches: :meth:`sample` on the CPU, :meth:`apply`
    on the batch's device.

    An op whose :attr:`moves_pixels_only` is true (crops, flips) only moves pixel values (or fills
    with a value a uint8 pixel can hold): it also takes uint8 batches, with the same result as on the
    float batch, and ``AugDataModule`` runs the leading such ops before the float conversion, on a
    quarter of the bytes.
    """

    moves_pixels_only: bool = False

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> Params:
        """Per-sample parameters of a batch of ``n`` images of ``height`` x ``width`` (CPU tensors)."""
        raise NotImplementedError

    def apply(self, images: Tensor, params: Params) -> Tensor:
        """The augmented float ``(N, C, H, W)`` batch in [0, 1] (``params`` on the images' device); a
        uint8 batch in [0, 255] too where :attr:`moves_pixels_only`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RandomCrop(BatchOp):
    """Zero-pad by ``padding`` and crop ``size`` at a random offset per sample (CIFAR's translate).

    Args:
        padding: pixels added on every side (>= 0).
        size: output side; ``None`` keeps the input size.
        fill: value of the padding, in [0, 1].
    """

    def __init__(self, padding: int = 4, size: int | None = None, fill: float = 0.0) -> None:
        self.padding = int(check_int("padding", padding, 0) or 0)
        self.size = check_int("size", size, 1, optional=True)
        self.fill = check_prob("fill", fill)

    @property
    def moves_pixels_only(self) -> bool:  # type: ignore[override]
        """True unless the fill is between two uint8 values (e.g. 0.5 is 127.5 on the uint8 scale)."""
        return float(self.fill * 255).is_integer()

    def _out(self, height: int, width: int) -> tuple[int, int]:
        return (self.size or height, self.size or width)

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> Params:
        out_h, out_w = self._out(height, width)
        room_h, room_w = height + 2 * self.padding - out_h, width + 2 * self.padding - out_w
        if room_h < 0 or room_w < 0:
            raise ValueError(f"RandomCrop size={self.size} is larger than the padded {height}x{width} images")
        top = torch.randint(0, room_h + 1, (n,), generator=generator)
        left = torch.randint(0, room_w + 1, (n,), generator=generator)
        return {"top": top, "left": left}

    def apply(self, images: Tensor, params: Params) -> Tensor:
        n, c, height, width = images.shape
        out_h, out_w = self._out(height, width)
        p = self.padding
        fill = round(self.fill * 255) if images.dtype == torch.uint8 else self.fill
        padded = F.pad(images, (p, p, p, p), value=fill) if p else images
        rows = params["top"].view(n, 1, 1) + torch.arange(out_h, device=images.device).view(1, out_h, 1)
        cols = params["left"].view(n, 1, 1) + torch.arange(out_w, device=images.device).view(1, 1, out_w)
        flat = (rows * padded.shape[3] + cols).view(n, 1, out_h * out_w).expand(n, c, out_h * out_w)
        return padded.flatten(2).gather(2, flat).view(n, c, out_h, out_w)  # one gather per batch


class HorizontalFlip(BatchOp):
    """Mirror each sample left-right with probability ``p``."""

    moves_pixels_only = True

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_prob("p", p)

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> Params:
        return {"flip": torch.rand(n, generator=generator) < self.p}

    def apply(self, images: Tensor, params: Params) -> Tensor:
        n, c, height, width = images.shape
        columns = torch.arange(width, device=images.device)
        index = torch.where(params["flip"].view(n, 1), width - 1 - columns, columns)  # reversed where flipped
        return images.gather(3, index.view(n, 1, 1, width).expand(n, c, height, width))


class ColorJitter(BatchOp):
    """Per-sample brightness, contrast and saturation factors, uniform in ``[1 - x, 1 + x]``, applied
    in that order (torchvision's ``ColorJitter`` shuffles the order; this one does not).

    Args:
        brightness, contrast, saturation: jitter strengths in [0, 1]; 0 leaves that property alone.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0) -> None:
        self.brightness = check_prob("brightness", brightness)
        self.contrast = check_prob("contrast", contrast)
        self.saturation = check_prob("saturation", saturation)

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> Params:
        return {
            name: _uniform(n, 1 - strength, 1 + strength, generator)
            for name, strength in (
                ("brightness", self.brightness),
                ("contrast", self.contrast),
                ("saturation", self.saturation),
            )
            if strength > 0
        }

    def apply(self, images: Tensor, params: Params) -> Tensor:
        weights = torch.tensor([0.2989, 0.587, 0.114], device=images.device, dtype=images.dtype).view(
            1, 3, 1, 1
        )
        out = images
        if "brightness" in params:
            out = (out * params["brightness"].to(out.dtype).view(-1, 1, 1, 1)).clamp_(0, 1)
        if "contrast" in params:
            mean = (out * weights).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
            out = torch.lerp(mean, out, params["contrast"].to(out.dtype).view(-1, 1, 1, 1)).clamp_(0, 1)
        if "saturation" in params:
            gray = (out * weights).sum(1, keepdim=True)
            out = torch.lerp(gray, out, params["saturation"].to(out.dtype).view(-1, 1, 1, 1)).clamp_(0, 1)
        return out


class RandomErasing(BatchOp):
    """Erase a random rectangle per sample with probability ``p`` (Zhong et al. 2017,
    https://arxiv.org/abs/1708.04896): area a fraction ``scale`` of the image, aspect ``ratio``
    (log-uniform), clipped to the image, filled with ``value``.
    """

    def __init__(
        self,
        p: float = 0.5,
        scale: Sequence[float] = (0.02, 0.33),
        ratio: Sequence[float] = (0.3, 3.3),
        value: float = 0.0,
    ) -> None:
        self.p = check_prob("p", p)
        if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"scale must be (min, max) with 0 < min <= max <= 1, got {scale!r}")
        if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f"ratio must be (min, max) with 0 < min <= max, got {ratio!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.value = check_prob("value", value)

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> Params:
        area = _uniform(n, *self.scale, generator) * height * width
        log_ratio = _uniform(
            n, float(torch.tensor(self.ratio[0]).log()), float(torch.tensor(self.ratio[1]).log()), generator
        )
        aspect = log_ratio.exp()
        h = (area * aspect).sqrt().round().long().clamp(1, height)
        w = (area / aspect).sqrt().round().long().clamp(1, width)
        top = (torch.rand(n, generator=generator, dtype=torch.float64) * (height - h + 1)).long()
        left = (torch.rand(n, generator=generator, dtype=torch.float64) * (width - w + 1)).long()
        erase = torch.rand(n, generator=generator) < self.p
        boxes = torch.stack([top, top + h, left, left + w], dim=1) * erase.view(
            -1, 1
        )  # no box where not erased
        return {"boxes": boxes}

    def apply(self, images: Tensor, params: Params) -> Tensor:
        mask = box_mask(params["boxes"], images.shape[2], images.shape[3], images.dtype)
        return torch.lerp(images, torch.full_like(images[:1, :1, :1, :1], self.value), mask)


def sample_ops(
    ops: Sequence[BatchOp], n: int, height: int, width: int, generator: torch.Generator
) -> list[Params]:
    """Parameters of every op for one batch, drawn in order from ``generator`` (CPU).

    Ops that change the size (``RandomCrop(size=...)``) pass their output size to the next op.
    """
    params = []
    for op in ops:
        params.append(op.sample(n, height, width, generator))
        if isinstance(op, RandomCrop):
            height, width = op._out(height, width)
    return params


def apply_ops(images: Tensor, ops: Sequence[BatchOp], params: Sequence[Params]) -> Tensor:
    """Apply ``ops`` with their ``params`` (moved to the images' device in one small copy each)."""
    for op, p in zip(ops, params, strict=True):
        images = op.apply(images, {k: v.to(images.device, non_blocking=True) for k, v in p.items()})
    return images


def check_ops(ops: Any, name: str = "batch_transforms") -> list[BatchOp]:
    """The ops of ``ops``: :class:`BatchOp` objects, or ``{"_target_": ...}`` mappings (checked
    against the class signature, then instantiated).

    Raises:
        TypeError: ``ops`` is not a list of ops.
        ValueError: an unknown target or argument.
    """
    from lightning_aug.pipeline import build_transform

    if isinstance(ops, (str, BatchOp, Mapping)) or not isinstance(ops, Sequence):
        raise TypeError(f"{name} must be a list of lightning_aug.batch_ops ops, got {type(ops).__name__}")
    built = []
    for i, op in enumerate(ops):
        op = build_transform(op, f"{name}[{i}]")
        if not isinstance(op, BatchOp):
            raise TypeError(f"{name}[{i}] must be a lightning_aug.batch_ops.BatchOp, got {type(op).__name__}")
        built.append(op)
    return built
