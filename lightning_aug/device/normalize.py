"""Pure batched tensor kernels of the device stage (no RNG, no Lightning)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "memory_format_of",
    "normalization_affine",
    "normalize_uint8",
    "statistics",
    "to_device",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def statistics(
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    data_mean: Sequence[float] | None = None,
    data_std: Sequence[float] | None = None,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` of the normalisation: each given, else the data's, else ImageNet's; checked.

    Raises:
        ValueError: not 1 or 3 floats (``std``: positive), or of different lengths.
    """
    from lightning_aug._checks import check_stats

    pick_mean = mean if mean is not None else data_mean if data_mean is not None else IMAGENET_MEAN
    pick_std = std if std is not None else data_std if data_std is not None else IMAGENET_STD
    checked = check_stats("mean", pick_mean, positive=False), check_stats("std", pick_std, positive=True)
    if len(checked[0]) != len(checked[1]):
        raise ValueError(f"mean and std must have the same length, got {checked[0]} and {checked[1]}")
    return checked


def memory_format_of(images: Tensor) -> torch.memory_format:
    """``torch.channels_last`` for an ``(N, C, H, W)`` batch laid out as ``(N, H, W, C)`` in memory (as
    :func:`~lightning_aug.data.collate.collate_uint8` stacks them), else ``torch.contiguous_format``.

    Example::

        >>> memory_format_of(torch.zeros(2, 4, 4, 3).permute(0, 3, 1, 2))
        torch.channels_last
        >>> memory_format_of(torch.zeros(2, 3, 4, 4))
        torch.contiguous_format
    """
    if (
        images.ndim == 4
        and not images.is_contiguous()
        and images.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format


def normalization_affine(
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    max_value: float = 255.0,
) -> tuple[Tensor, Tensor]:
    """``(scale, shift)``, shape ``(C, 1, 1)``: ``(x / max_value - mean) / std == x * scale - shift``."""
    m = torch.as_tensor(mean, dtype=torch.float64).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float64).view(-1, 1, 1)
    return (1.0 / (max_value * s)).to(device, dtype), (m / s).to(device, dtype)


def model_memory_format(module: torch.nn.Module | None) -> torch.memory_format | None:
    """The memory layout a model takes its batches in: ``torch.channels_last`` where its first 4-d
    weight of unambiguous layout (the stem convolution) is channels_last (a model converted with
    ``model.to(memory_format=torch.channels_last)``: the apps' ``model.channels_last``, ``auto`` on GPU
    trainers), ``torch.contiguous_format`` for any other model (a contiguous model's convolutions run
    slower on channels_last input; a flattening model would copy it); ``None`` without a model.

    Example::

        >>> conv = torch.nn.Conv2d(3, 8, 3)
        >>> model_memory_format(conv)
        torch.contiguous_format
        >>> model_memory_format(conv.to(memory_format=torch.channels_last))
        torch.channels_last
        >>> model_memory_format(torch.nn.Linear(4, 2))
        torch.contiguous_format
    """
    if module is None:
        return None
    for parameter in module.parameters():
        if parameter.ndim == 4:
            last = parameter.is_contiguous(memory_format=torch.channels_last)
            if last != parameter.is_contiguous():  # a 1x1 or one-channel weight is both: look further
                return torch.channels_last if last else torch.contiguous_format
    return torch.contiguous_format


def normalize_uint8(
    images: Tensor, scale: Tensor, shift: Tensor, memory_format: torch.memory_format | None = None
) -> Tensor:
    """uint8 ``(N, C, H, W)`` images to normalised float ``images * scale - shift`` in one new buffer,
    laid out in ``memory_format`` (``None``: the images' own); the conversion writes that layout, so a
    change of layout costs no extra pass.

    Example::

        >>> scale, shift = normalization_affine([0.5], [0.5])
        >>> out = normalize_uint8(torch.tensor([[[[0, 255]]]], dtype=torch.uint8), scale, shift)
        >>> out.dtype, [round(v, 5) for v in out.flatten().tolist()]
        (torch.float32, [-1.0, 1.0])
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(
            f"images must be a uint8 (N, C, H, W) batch, got {images.dtype} of shape {tuple(images.shape)}"
        )
    if scale.shape[0] not in (1, images.shape[1]):
        raise ValueError(f"mean/std have {scale.shape[0]} channels, the images {images.shape[1]}")
    # measured (lightning-aug-bench, CPU): convert then two in-place passes beats a single mixed-dtype
    # addcmul (24 ms against 40 ms for (64, 3, 224, 224)), whose uint8->float promotion is slow
    if memory_format is None:
        return images.to(scale.dtype).mul_(scale).sub_(shift)
    return images.to(dtype=scale.dtype, memory_format=memory_format).mul_(scale).sub_(shift)


def to_device(host: np.ndarray, device: torch.device) -> Tensor:
    """A host array on ``device`` in one copy: through pinned memory and non-blocking on CUDA
    (torch's caching host allocator keeps the pinned block until the copy is done), else as it is.

    Example::

        >>> to_device(np.arange(3, dtype=np.float32), torch.device("cpu")).tolist()
        [0.0, 1.0, 2.0]
    """
    if device.type == "cuda":
        pinned = torch.empty(host.shape, dtype=torch.from_numpy(host[:0]).dtype, pin_memory=True)
        pinned.numpy()[...] = host
        return pinned.to(device, non_blocking=True)
    return torch.from_numpy(host).to(device, non_blocking=True)
