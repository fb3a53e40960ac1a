"""Device-batched augmentation: per-sample-random ops applied to a whole batch at once on the device.

Each op draws per-sample parameters on the host from a ``numpy.random.Generator``
(:meth:`DeviceOp.sample`; no torch op, so the device sees none of it) and applies them to the whole
batch with vectorised tensor operations (:meth:`DeviceOp.apply`): no Python loop over samples. The
parameters of all ops of a batch reach the device in one copy (:func:`apply_ops`). With them the
DataLoader workers only decode (and collate uint8); :class:`~lightning_aug.AugDataModule` runs them in
its device stage, training batches only, between the uint8-to-float conversion and the
normalisation (``device_transforms``).

Each op equals its torchvision per-sample counterpart given the same parameters (the tests check
it): ``pad`` + ``crop``, ``horizontal_flip``, ``adjust_brightness`` / ``adjust_contrast`` /
``adjust_saturation`` (in that fixed order), ``erase``.

Two ways to move pixels, chosen per device: on the CPU the leading crops and flips gather the uint8
batch (a quarter of the bytes of floats, measured fastest there); on any other device they become one
per-sample integer pixel map run by a single ``grid_sample`` (nearest, exact pixel moves): a handful
of launches whatever the batch size (:mod:`lightning_aug.bench.launches` counts them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_aug._checks import check_int, check_prob
from lightning_aug.device.normalize import to_device
from lightning_aug.hparams import RecordsArguments

__all__ = [
    "ColorJitter",
    "DeviceOp",
    "HorizontalFlip",
    "RandomCrop",
    "RandomErasing",
    "apply_ops",
    "sample_ops",
]

Params = dict[str, np.ndarray]  # on the host: (n,) per-sample scalars, (n, k) per-sample rows
DeviceParams = dict[str, Tensor]  # on the device, float32: scalars as (n, 1, 1, 1), rows flat (n * k,)


class DeviceOp(RecordsArguments):
    """A per-sample-random augmentation of whole batches: :meth:`sample` on the host, :meth:`apply`
    on the batch's device.

    An op whose :attr:`moves_pixels_only` is true (crops, flips) only moves pixel values (or fills
    with a value a uint8 pixel can hold): it also takes uint8 batches, with the same result as on the
    float batch, and ``AugDataModule`` runs the leading such ops before the float conversion.
    """

    moves_pixels_only: bool = False

    def sample(self, n: int, height: int, width: int, rng: np.random.Generator) -> Params:
        """Per-sample parameters of a batch of ``n`` images of ``height`` x ``width`` (numpy)."""
        raise NotImplementedError

    def device_params(self, params: Params, height: int, width: int) -> Params:
        """What :meth:`apply` needs of ``params``, as (n,) or (n, k) arrays; default: ``params``."""
        return params

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        """The output size for inputs of ``height`` x ``width``."""
        return height, width

    def pixel_map(self, params: Params, height: int, width: int) -> tuple[np.ndarray, ...] | None:
        """For ops that move pixels: per-sample ``(sy, ty, sx, tx)`` with source pixel
        ``(sy * y + ty, sx * x + tx)`` for output pixel ``(y, x)`` (outside the input: zero); ``None``
        where the op cannot be written so."""
        return None

    def apply(self, images: Tensor, params: DeviceParams) -> Tensor:
        """The augmented float ``(N, C, H, W)`` batch in [0, 1]; a uint8 batch in [0, 255] too where
        :attr:`moves_pixels_only`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _scalar(params: DeviceParams, name: str, n: int) -> Tensor:
    return params[name].reshape(n)


class RandomCrop(DeviceOp):
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

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        return (self.size or height, self.size or width)

    _out = out_size  # the name of earlier releases

    def sample(self, n: int, height: int, width: int, rng: np.random.Generator) -> Params:
        out_h, out_w = self.out_size(height, width)
        room_h, room_w = height + 2 * self.padding - out_h, width + 2 * self.padding - out_w
        if room_h < 0 or room_w < 0:
            raise ValueError(f"RandomCrop size={self.size} is larger than the padded {height}x{width} images")
        return {"top": rng.integers(0, room_h + 1, n), "left": rng.integers(0, room_w + 1, n)}

    def pixel_map(self, params: Params, height: int, width: int) -> tuple[np.ndarray, ...] | None:
        if self.fill != 0:
            return None
        ones = np.ones(len(params["top"]))
        return ones, params["top"] - self.padding, ones, params["left"] - self.padding

    def apply(self, images: Tensor, params: DeviceParams) -> Tensor:
        n, c, height, width = images.shape
        out_h, out_w = self.out_size(height, width)
        p = self.padding
        fill = round(self.fill * 255) if images.dtype == torch.uint8 else self.fill
        padded = F.pad(images, (p, p, p, p), value=fill) if p else images
        top = _scalar(params, "top", n).long().view(n, 1, 1)
        left = _scalar(params, "left", n).long().view(n, 1, 1)
        rows = top + torch.arange(out_h, device=images.device).view(1, out_h, 1)
        cols = left + torch.arange(out_w, device=images.device).view(1, 1, out_w)
        flat = (rows * padded.shape[3] + cols).view(n, 1, out_h * out_w).expand(n, c, out_h * out_w)
        return padded.flatten(2).gather(2, flat).view(n, c, out_h, out_w)  # one gather per batch


class HorizontalFlip(DeviceOp):
    """Mirror each sample left-right with probability ``p``."""

    moves_pixels_only = True

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_prob("p", p)

    def sample(self, n: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {"flip": rng.random(n) < self.p}

    def pixel_map(self, params: Params, height: int, width: int) -> tuple[np.ndarray, ...] | None:
        flip = params["flip"]
        ones = np.ones(len(flip))
        return ones, np.zeros(len(flip)), np.where(flip, -1.0, 1.0), np.where(flip, width - 1.0, 0.0)

    def apply(self, images: Tensor, params: DeviceParams) -> Tensor:
        n, c, height, width = images.shape
        columns = torch.arange(width, device=images.device)
        flip = _scalar(params, "flip", n).view(n, 1) > 0.5
        index = torch.where(flip, width - 1 - columns, columns)  # reversed where flipped
        return images.gather(3, index.view(n, 1, 1, width).expand(n, c, height, width))


class ColorJitter(DeviceOp):
    """Per-sample brightness, contrast and saturation factors, uniform in ``[1 - x, 1 + x]``, applied
    in that order (torchvision's ``ColorJitter`` shuffles the order; this one does not).

    Args:
        brightness, contrast, saturation: jitter strengths in [0, 1]; 0 leaves that property alone.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0) -> None:
        self.brightness = check_prob("brightness", brightness)
        self.contrast = check_prob("contrast", contrast)
        self.saturation = check_prob("saturation", saturation)
        self._weights: dict[tuple[Any, Any], Tensor] = {}

    def sample(self, n: int, height: int, width: int, rng: np.random.Generator) -> Params:
        return {
            name: rng.uniform(1 - strength, 1 + strength, n)
            for name, strength in (
                ("brightness", self.brightness),
                ("contrast", self.contrast),
                ("saturation", self.saturation),
            )
            if strength > 0
        }

    def _grey_weights(self, like: Tensor) -> Tensor:
        """The luma weights as a (1, 3, 1, 1) convolution (grey in one op) on the images' device and
        dtype, made once per pair."""
        key = (like.device, like.dtype)
        if key not in self._weights:
            luma = torch.tensor([0.2989, 0.587, 0.114], dtype=like.dtype)
            self._weights[key] = luma.view(1, 3, 1, 1).to(like.device)
        return self._weights[key]

    def apply(self, images: Tensor, params: DeviceParams) -> Tensor:
        weights = self._grey_weights(images)
        out = images
        if "brightness" in params:
            out = (out * params["brightness"]).clamp_(0, 1)
        if "contrast" in params:
            mean = F.conv2d(out, weights).mean(dim=(2, 3), keepdim=True)
            out = torch.lerp(mean, out, params["contrast"]).clamp_(0, 1)
        if "saturation" in params:
            out = torch.lerp(F.conv2d(out, weights), out, params["saturation"]).clamp_(0, 1)
        return out


class RandomErasing(DeviceOp):
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

    def sample(self, n: int, height: int, width: int, rng: np.random.Generator) -> Params:
        area = rng.uniform(*self.scale, n) * height * width
        aspect = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1]), n))
        h = np.clip(np.round(np.sqrt(area * aspect)), 1, height).astype(np.int64)
        w = np.clip(np.round(np.sqrt(area / aspect)), 1, width).astype(np.int64)
        top = (rng.random(n) * (height - h + 1)).astype(np.int64)
        left = (rng.random(n) * (width - w + 1)).astype(np.int64)
        erase = rng.random(n) < self.p
        boxes = np.stack([top, top + h, left, left + w], axis=1) * erase[:, None]  # empty where not erased
        return {"boxes": boxes}

    def device_params(self, params: Params, height: int, width: int) -> Params:
        """The box masks as row and column indicators: the mask is their outer product."""
        boxes = params["boxes"]
        ys, xs = np.arange(height), np.arange(width)
        rows = (ys >= boxes[:, 0:1]) & (ys < boxes[:, 1:2])
        cols = (xs >= boxes[:, 2:3]) & (xs < boxes[:, 3:4])
        return {"rows": rows, "cols": cols}

    def apply(self, images: Tensor, params: DeviceParams) -> Tensor:
        n, _, height, width = images.shape
        mask = params["rows"].view(n, 1, height, 1) * params["cols"].view(n, 1, 1, width)
        return images.masked_fill(mask.bool(), self.value)


def sample_ops(
    ops: Sequence[DeviceOp], n: int, height: int, width: int, rng: np.random.Generator
) -> list[Params]:
    """Parameters of every op for one batch, drawn in order from ``rng`` (host, numpy).

    Ops that change the size (``RandomCrop(size=...)``) pass their output size to the next op.
    """
    params = []
    for op in ops:
        params.append(op.sample(n, height, width, rng))
        height, width = op.out_size(height, width)
    return params


def _sizes(ops: Sequence[DeviceOp], height: int, width: int) -> list[tuple[int, int]]:
    """The input size of each op."""
    sizes = []
    for op in ops:
        sizes.append((height, width))
        height, width = op.out_size(height, width)
    return sizes


def params_to_device(
    ops: Sequence[DeviceOp],
    params: Sequence[Params],
    n: int,
    height: int,
    width: int,
    device: torch.device,
    extra: np.ndarray | None = None,
) -> tuple[list[DeviceParams], Tensor | None]:
    """Every op's :meth:`DeviceOp.device_params` (and ``extra``, returned in its shape) in one
    host-to-device copy of float32: per-sample scalars as ``(n, 1, 1, 1)``, rows flat ``(n * k,)``."""
    host = [
        op.device_params(p, h, w)
        for op, p, (h, w) in zip(ops, params, _sizes(ops, height, width), strict=True)
    ]
    scalars = [(i, k) for i, d in enumerate(host) for k, v in d.items() if np.ndim(v) == 1]
    rows = [(i, k) for i, d in enumerate(host) for k, v in d.items() if np.ndim(v) == 2]
    parts = [extra.ravel()] if extra is not None else []
    parts += [np.stack([host[i][k] for i, k in scalars]).ravel()] if scalars else []
    parts += [np.asarray(host[i][k]).ravel() for i, k in rows]
    out: list[DeviceParams] = [{} for _ in ops]
    if not parts:
        return out, None
    pieces = list(to_device(np.concatenate(parts).astype(np.float32), device).split([p.size for p in parts]))
    moved = pieces.pop(0).view(extra.shape) if extra is not None else None
    if scalars:
        for (i, k), value in zip(
            scalars, pieces.pop(0).view(len(scalars), n, 1, 1, 1).unbind(0), strict=True
        ):
            out[i][k] = value
    for (i, k), value in zip(rows, pieces, strict=True):
        out[i][k] = value
    return out, moved


def apply_ops(images: Tensor, ops: Sequence[DeviceOp], params: Sequence[Params]) -> Tensor:
    """Apply ``ops`` with their host ``params`` (moved to the images' device in one copy)."""
    if not ops:
        return images
    n, _, height, width = images.shape
    on_device, _ = params_to_device(ops, params, n, height, width, images.device)
    for op, p in zip(ops, on_device, strict=True):
        images = op.apply(images, p)
    return images


def pixel_maps(
    ops: Sequence[DeviceOp], params: Sequence[Params], height: int, width: int
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The composed pixel map of pixel-moving ``ops`` as ``affine_grid`` thetas ``(n, 2, 3)`` (float64)
    for ``align_corners=False``, and the output size; ``None`` if an op has no pixel map."""
    h, w = height, width
    one = np.ones(len(params[0][next(iter(params[0]))])) if params and params[0] else None
    if one is None:
        return None
    sy, ty, sx, tx = one, 0.0 * one, one, 0.0 * one  # the identity map
    cropped = False
    for op, p in zip(ops, params, strict=True):
        part = op.pixel_map(p, h, w)
        # a padded crop after a crop would show, as its padding, pixels the first crop cut away
        if part is None or (isinstance(op, RandomCrop) and op.padding > 0 and cropped):
            return None
        cropped = cropped or isinstance(op, RandomCrop)
        ay, by, ax, bx = (np.asarray(v, dtype=np.float64) for v in part)
        # the source of the new output pixel: the map so far applied to this op's map
        sy, ty, sx, tx = sy * ay, sy * by + ty, sx * ax, sx * bx + tx
        h, w = op.out_size(h, w)
    # normalised coordinates (align_corners=False): u = (2 * pixel + 1) / size - 1
    theta = np.zeros((len(sy), 2, 3))
    theta[:, 0, 0] = sx * w / width
    theta[:, 0, 2] = (sx * (w - 1) + 2 * tx + 1) / width - 1
    theta[:, 1, 1] = sy * h / height
    theta[:, 1, 2] = (sy * (h - 1) + 2 * ty + 1) / height - 1
    return theta, (h, w)


def move_pixels(images: Tensor, theta: Tensor, size: tuple[int, int]) -> Tensor:
    """The float batch sampled at the integer pixel maps ``theta`` (:func:`pixel_maps`, on the images'
    device; nearest, zero outside): crops, flips and translations of every sample in two launches."""
    n, c = images.shape[:2]
    grid = F.affine_grid(theta, [n, c, *size], align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def apply_ops_moving_first(
    images: Tensor, ops: Sequence[DeviceOp], params: Sequence[Params], moving: int
) -> tuple[Tensor, bool] | None:
    """On a non-CPU device: the first ``moving`` ops (pixel moves) as one :func:`move_pixels` of the
    float batch, then the rest on floats in [0, 1], every parameter in one copy. Returns the batch and
    whether it is still on the 0-255 scale (no op after the moves); ``None`` if the moves have no
    pixel map (e.g. a crop filling with a non-zero value)."""
    n, _, height, width = images.shape
    mapped = pixel_maps(ops[:moving], params[:moving], height, width)
    if mapped is None:
        return None
    theta, size = mapped
    rest, rest_params = ops[moving:], params[moving:]
    on_device, moved = params_to_device(rest, rest_params, n, *size, images.device, extra=theta)
    x = move_pixels(images.to(torch.float32), moved, size)  # type: ignore[arg-type]
    if not rest:
        return x, True
    x = x.mul_(1.0 / 255.0)
    for op, p in zip(rest, on_device, strict=True):
        x = op.apply(x, p)
    return x, False


def check_ops(ops: Any, name: str = "device_transforms") -> list[DeviceOp]:
    """The ops of ``ops``: :class:`DeviceOp` objects, or ``{"_target_": ...}`` mappings (checked
    against the class signature, then instantiated).

    Raises:
        TypeError: ``ops`` is not a list of ops.
        ValueError: an unknown target or argument.
    """
    from lightning_aug.targets import build_transform

    if isinstance(ops, (str, DeviceOp, Mapping)) or not isinstance(ops, Sequence):
        raise TypeError(
            f"{name} must be a list of lightning_aug.device.augment ops, got {type(ops).__name__}"
        )
    built = []
    for i, op in enumerate(ops):
        op = build_transform(op, f"{name}[{i}]")
        if not isinstance(op, DeviceOp):
            hint = ""
            if isinstance(op, torch.nn.Module):  # kornia's augmentations, any batch module
                hint = f" (a module of batches: lightning_aug.device.ops.ModuleOp({type(op).__name__}(...)))"
            raise TypeError(
                f"{name}[{i}] must be a lightning_aug.device.augment.DeviceOp, got {type(op).__name__}{hint}"
            )
        built.append(op)
    return built
