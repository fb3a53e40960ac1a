"""The floor of a worker's per-sample work on JPEG files: read the bytes, decode the crop's region,
resize it to the output size, and nothing else (no pipeline, no framework dispatch, no draws but the
crop's): the row the per-worker rows of ``lightning-aug-bench`` are compared with (issue 34)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from lightning_aug.data.decoders import ImageDecoder, parse_header
from lightning_aug.data.jpeg import read_image_bytes

__all__ = ["floor_case", "is_jpeg", "resized_crop_box"]


def is_jpeg(path: str) -> bool:
    """Whether the file at ``path`` is a JPEG (the floor decodes regions of JPEGs only)."""
    return parse_header(read_image_bytes(path)) is not None


def resized_crop_box(shape: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)`` of a RandomResizedCrop of scale (0.08, 1) and ratio (3/4, 4/3) drawn as
    torchvision draws it (ten tries, then the centre crop of the clamped ratio)."""
    height, width = shape
    area = height * width
    for _ in range(10):
        target = area * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            y0, x0 = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            return y0, x0, y0 + h, x0 + w
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    return y0, x0, y0 + side, x0 + side


def floor_case(
    files: Sequence[str],
    decoder: ImageDecoder,
    size: tuple[int, int],
    seed: int = 0,
    torchvision: bool = False,
) -> Callable[[int, int], int]:
    """A per-worker bench case over ``files[a:b]``: read, parse the header once, decode the region of
    a drawn RandomResizedCrop with ``decoder``, resize it to ``size`` (height, width) with OpenCV's
    bilinear resize (albumentations'), or with ``torchvision`` its antialiased bilinear resize of
    uint8 tensors (v2's ``RandomResizedCrop``'s, on the region's channels-last view, as the fused
    crop runs it); returns the images made."""
    rng = np.random.default_rng(seed)
    if torchvision:
        import torch
        from torchvision.transforms.v2 import functional as F

        def resize(region: np.ndarray) -> Any:
            return F.resize(torch.from_numpy(region).permute(2, 0, 1), list(size), antialias=True)
    else:

        def resize(region: np.ndarray) -> Any:
            return cv2.resize(region, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)

    def run(a: int, b: int) -> int:
        made = 0
        for path in files[a:b]:
            data = read_image_bytes(path)
            header: Any = parse_header(data)
            shape = decoder.shape(data, header)
            if shape is None:
                continue
            region = decoder.decode(data, path, resized_crop_box(shape, rng), header=header)
            made += resize(region) is not None
        return made

    return run
