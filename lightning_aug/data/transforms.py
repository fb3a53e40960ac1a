"""Crops applied while decoding: the leading transforms of a pipeline run by the decoder.

A :class:`DecodeHead` holds a pipeline's first transform(s) where they only take a part of the image
and resize it. Run over image bytes, it draws its random parameters from the size in the JPEG header
(the same draws, in the same order, as on the decoded image), asks the
:class:`~lightning_aug.data.decoders.ImageDecoder` for only the region it keeps (nvImageCodec decodes just
that region; OpenCV decodes the whole image, at 1/2, 1/4 or 1/8 size where the crop allows it), and
resizes it as the transform would. :func:`decode_head` finds one at the start of a pipeline:

- albumentations ``RandomResizedCrop`` (and :class:`RandomResizedCrop`, which may also decode at reduced
  size), torchvision v2 ``RandomResizedCrop``: training crops;
- albumentations ``SmallestMaxSize`` + ``CenterCrop``, torchvision v2 ``Resize(int)`` + ``CenterCrop``:
  evaluation crops.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2.functional._geometry import _compute_resized_output_size  # Resize's size rule

from lightning_aug._checks import check_bool
from lightning_aug.data.decoders import UNPARSED, ImageDecoder, parse_header
from lightning_aug.data.jpeg import REDUCTIONS

__all__ = [
    "DecodeHead",
    "RandomResizedCrop",
    "TorchvisionRandomResizedCrop",
    "decode_head",
    "is_plain_flip",
    "reduction_for",
]


def reduction_for(crop_size: tuple[int, int], output_size: tuple[int, int]) -> int:
    """The largest JPEG decoding reduction (8, 4, 2 or 1) at which a crop of ``crop_size`` (height,
    width) still has at least ``output_size`` pixels on each side, so that it is still shrunk (or kept)
    to the output size, never enlarged.

    Example::

        >>> reduction_for((500, 460), (224, 224)), reduction_for((300, 300), (224, 224))
        (2, 1)
    """
    for reduction in REDUCTIONS:
        if crop_size[0] >= output_size[0] * reduction and crop_size[1] >= output_size[1] * reduction:
            return reduction
    return 1


class RandomResizedCrop(A.RandomResizedCrop):
    """albumentations' ``RandomResizedCrop`` that may also decode JPEGs at reduced size.

    Everywhere it is exactly albumentations' ``RandomResizedCrop``. As the first transform of an
    albumentations train pipeline over an image folder (any decoder but ``pil``), it runs while decoding
    (as albumentations' own class does, :func:`decode_head`), and with ``reduced_decoding`` (default)
    where the crop is at least twice the output size on both sides the JPEG is decoded at 1/2, 1/4 or
    1/8 of its size (libjpeg's DCT scaling, which low-pass filters as it shrinks). The crop is then
    still shrunk to the output size, never enlarged.

    Args:
        size, scale, ratio, interpolation, mask_interpolation, area_for_downscale, p: as
            ``albumentations.RandomResizedCrop``.
        reduced_decoding: allow decoding JPEGs at reduced size; ``False``: the output equals
            albumentations' for the same draws.

    Example::

        >>> crop = RandomResizedCrop(size=(32, 32))
        >>> crop(image=np.zeros((64, 48, 3), dtype=np.uint8))["image"].shape
        (32, 32, 3)
    """

    class InitSchema(A.RandomResizedCrop.InitSchema):
        reduced_decoding: Any  # checked strictly (pydantic would take "yes" for True)

    def __init__(
        self,
        size: tuple[int, int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (0.75, 1.3333333333333333),
        interpolation: int = 1,  # cv2.INTER_LINEAR
        mask_interpolation: int = 0,  # cv2.INTER_NEAREST
        area_for_downscale: Any = None,
        p: float = 1.0,
        reduced_decoding: bool = True,
    ) -> None:
        super().__init__(
            size=size,
            scale=scale,
            ratio=ratio,
            interpolation=interpolation,
            mask_interpolation=mask_interpolation,
            area_for_downscale=area_for_downscale,
            p=p,
        )
        self.reduced_decoding = check_bool("reduced_decoding", reduced_decoding)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return (*super().get_transform_init_args_names(), "reduced_decoding")


class TorchvisionRandomResizedCrop(v2.RandomResizedCrop):
    """torchvision v2's ``RandomResizedCrop`` that may also decode JPEGs at reduced size: the
    torchvision twin of :class:`RandomResizedCrop`.

    Everywhere it is exactly v2's ``RandomResizedCrop`` (its draws, its resize). As the first
    transform of a torchvision train pipeline over an image folder (any decoder but ``pil``), it runs
    while decoding (as v2's own class does, :func:`decode_head`), and with ``reduced_decoding``
    (default) where the crop is at least twice the output size on both sides the JPEG is decoded at
    1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling), then resized by v2's resize as before.

    Args:
        size, scale, ratio, interpolation, antialias: as ``torchvision.transforms.v2.RandomResizedCrop``.
        reduced_decoding: allow decoding JPEGs at reduced size; ``False``: the output equals v2's
            for the same draws.

    Example::

        >>> TorchvisionRandomResizedCrop(32)(torch.zeros(3, 64, 48, dtype=torch.uint8)).shape
        torch.Size([3, 32, 32])
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: Any = v2.InterpolationMode.BILINEAR,
        antialias: bool | None = True,
        reduced_decoding: bool = True,
    ) -> None:
        super().__init__(size, scale=scale, ratio=ratio, interpolation=interpolation, antialias=antialias)
        self.reduced_decoding = check_bool("reduced_decoding", reduced_decoding)


def _reduction(crop: Any, box: tuple[int, int]) -> int:
    """The JPEG decoding reduction for a crop box ``(height, width)`` of ``crop``: :func:`reduction_for`
    its output size where ``crop`` is one of ours (either backend) with ``reduced_decoding``, else 1."""
    if isinstance(crop, (RandomResizedCrop, TorchvisionRandomResizedCrop)) and crop.reduced_decoding:
        return reduction_for(box, (int(crop.size[0]), int(crop.size[1])))
    return 1


class DecodeHead:
    """The leading transforms of a pipeline, run while decoding image bytes.

    Attributes:
        transforms: the pipeline transforms it stands for (``len(transforms)`` of them are consumed).
    """

    def __init__(self, *transforms: Any) -> None:
        self.transforms = transforms

    @property
    def name(self) -> str:
        return " + ".join(type(t).__name__ for t in self.transforms)

    def __call__(
        self, data: np.ndarray, decoder: ImageDecoder, path: str | os.PathLike[str], header: Any = UNPARSED
    ) -> Any:
        """Decode ``data`` (the file's bytes) with ``decoder`` and apply the transforms; ``header``:
        the JPEG header as the caller parsed it (parsed here otherwise), handed on to the decoder.

        Raises:
            ValueError: the decoder cannot decode the bytes (the message names ``path``).
        """
        return self.prepare(data, decoder, path, header)()

    def prepare(
        self, data: np.ndarray, decoder: ImageDecoder, path: str | os.PathLike[str], header: Any = UNPARSED
    ) -> Callable[[], Any]:
        """Make the transforms' random draws now and return the rest, the decode and the resize, as a
        job that draws nothing (so it may run in another thread, after other samples' draws). A file
        that is no JPEG is decoded and transformed here (its size is known only once decoded).

        Raises:
            ValueError: the decoder cannot decode the bytes (the message names ``path``); the job
                raises it where the decoding is left to it.
        """
        header = parse_header(data, header)
        shape = decoder.shape(data, header)
        if shape is None:  # not a JPEG: decode it all, then the transforms as they are
            image = self.unfused(decoder.decode(data, path, header=header))
            return lambda: image
        return self.planned(functools.partial(decoder.decode, data, path, header=header), shape)

    def unfused(self, image: np.ndarray) -> Any:
        raise NotImplementedError

    def planned(self, decode: Callable[..., np.ndarray], shape: tuple[int, int]) -> Callable[[], Any]:
        """The transforms' draws for an image of ``shape``, made now, and the job that runs them while
        decoding: ``decode(region=None, reduction=1)`` decodes the file (its header parsed already)."""
        raise NotImplementedError


class _AlbumentationsResizedCrop(DecodeHead):
    """albumentations ``RandomResizedCrop`` (ours: with reduced-size decoding where allowed)."""

    def unfused(self, image: np.ndarray) -> np.ndarray:
        return self.transforms[0](image=image)["image"]

    def planned(self, decode: Callable[..., np.ndarray], shape: tuple[int, int]) -> Callable[[], Any]:
        crop = self.transforms[0]
        if not crop.should_apply():  # p < 1 and not drawn (the same draw): the whole image
            return decode
        x0, y0, x1, y1 = crop.get_params_dependent_on_data({"shape": shape}, {})["crop_coords"]
        reduction = _reduction(crop, (y1 - y0, x1 - x0))
        size = tuple(crop.size)  # as drawn: progressive resizing may set another for later samples
        return lambda: _albumentations_resize(crop, decode((y0, x0, y1, x1), reduction), size)


def _albumentations_resize(crop: Any, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``crop.apply`` (albumentations' ``RandomResizedCrop``, its ``size`` as drawn) on the whole of
    ``image``: the one ``cv2.resize`` call it ends in, with its choice of interpolation, without the
    wrappers around it (about 40 us an image; the same pixels, tested). Images of more than 4 channels
    go through it."""
    if image.ndim != 3 or image.shape[2] > 4:
        return crop.apply(image, crop_coords=(0, 0, image.shape[1], image.shape[0]))
    height, width = size
    if (height, width) == image.shape[:2]:
        return image
    interpolation = crop.interpolation  # as RandomResizedCrop._get_interpolation_for_resize
    if crop.area_for_downscale in ("image", "image_mask") and (
        image.shape[0] > height or image.shape[1] > width
    ):
        interpolation = cv2.INTER_AREA
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interpolation)


def _tensor(image: np.ndarray) -> Tensor:
    """An HWC uint8 array as a CHW tensor view (channels-last strides: torchvision's fast uint8 resize)."""
    return torch.from_numpy(image).permute(2, 0, 1)


def _size_only(shape: tuple[int, int]) -> Tensor:
    """A CHW uint8 tensor of ``shape`` that owns one byte: what torchvision's ``make_params`` measures."""
    return torch.empty((1, 1, 1), dtype=torch.uint8).expand(3, *shape)


class _TorchvisionResizedCrop(DecodeHead):
    """torchvision v2 ``RandomResizedCrop``: its own draws from the header's size, its own resize
    (:class:`TorchvisionRandomResizedCrop`: of a region decoded at reduced size where allowed)."""

    def unfused(self, image: np.ndarray) -> Tensor:
        return self.transforms[0](_tensor(image))

    def planned(self, decode: Callable[..., np.ndarray], shape: tuple[int, int]) -> Callable[[], Any]:
        crop = self.transforms[0]
        make_params = getattr(crop, "make_params", None) or crop._get_params  # torchvision < 0.21
        params = make_params([_size_only(shape)])
        top, left, height, width = params["top"], params["left"], params["height"], params["width"]
        size, interpolation, antialias = list(crop.size), crop.interpolation, crop.antialias
        reduction = _reduction(crop, (height, width))
        return lambda: F.resize(
            _tensor(decode((top, left, top + height, left + width), reduction)),
            size,
            interpolation=interpolation,
            antialias=antialias,
        )


class _ResizeCenterCrop(DecodeHead):
    """Shorter side resized to S, then a centre crop (evaluation), for both backends.

    Decodes the image only down to the crop's bottom and right edges (plus the resize filter's reach):
    nothing below is decoded, nothing right of it is transformed. The region keeps the image's origin
    and is resized at the whole image's scale factor, so the sampling grid is the one of the unfused
    resize and the crop's pixels equal the unfused pipeline's (tested). Images the crop does not fit
    inside after resizing go the unfused way.
    """

    def __init__(self, resize: Any, crop: Any, backend: str) -> None:
        super().__init__(resize, crop)
        self.backend = backend

    def unfused(self, image: np.ndarray) -> Any:
        if self.backend == "albumentations":
            for t in self.transforms:
                image = t(image=image)["image"]
            return image
        out = _tensor(image)
        for t in self.transforms:
            out = t(out)
        return out

    def _geometry(self, shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(resized size, crop size, the crop's top-left in the resized image), by each library's rules."""
        resize, crop = self.transforms
        h, w = shape
        if self.backend == "albumentations":
            scale = resize.max_size / min(h, w)
            resized = (max(1, round(h * scale)), max(1, round(w * scale)))  # MaxSizeTransform.apply
            size = (crop.height, crop.width)
            anchor = ((resized[0] - size[0]) // 2, (resized[1] - size[1]) // 2)  # get_center_crop_coords
        else:
            out = _compute_resized_output_size((h, w), size=list(resize.size), max_size=None)
            resized = (out[0], out[1])
            size = (crop.size[0], crop.size[1])
            anchor = (round((resized[0] - size[0]) / 2.0), round((resized[1] - size[1]) / 2.0))
        return resized, size, anchor

    def _resize(self, region: np.ndarray, fy: float, fx: float) -> Any:
        """``region`` resized by the factors of the whole image (not by its own size's ratio)."""
        resize = self.transforms[0]
        if self.backend == "albumentations":
            interpolation = resize.interpolation
            if resize.area_for_downscale in ("image", "image_mask") and fy < 1:
                interpolation = cv2.INTER_AREA  # as MaxSizeTransform.apply
            # dsize (0, 0): OpenCV takes fx, fy as the scale, as it derives it from the whole image's sizes
            return cv2.resize(region, (0, 0), fx=fx, fy=fy, interpolation=interpolation)
        # torchvision's uint8 bilinear resize is interpolate() on uint8; the same with the image's scale
        return torch.nn.functional.interpolate(
            _tensor(region)[None],
            scale_factor=(fy, fx),
            mode="bilinear",
            align_corners=False,
            antialias=resize.antialias,
            recompute_scale_factor=False,
        )[0]

    def planned(self, decode: Callable[..., np.ndarray], shape: tuple[int, int]) -> Callable[[], Any]:
        return functools.partial(self._fused, decode, shape)  # no random draws

    def _fused(self, decode: Callable[..., np.ndarray], shape: tuple[int, int]) -> Any:
        (rh, rw), (ch, cw), (top, left) = self._geometry(shape)
        h, w = shape
        if top < 0 or left < 0 or rh > h or rw > w:  # padded or enlarged: the transforms as they are
            return self.unfused(decode())
        sy, sx = h / rh, w / rw  # source pixels per output pixel
        # the filter of output pixel i reaches source (i + 0.5) * s +- s (antialiased), +- 1 (bilinear)
        y1 = min(h, math.ceil((top + ch + 1) * sy) + 2)
        x1 = min(w, math.ceil((left + cw + 1) * sx) + 2)
        scaled = self._resize(decode((0, 0, y1, x1)), rh / h, rw / w)
        if self.backend == "albumentations":
            return scaled[top : top + ch, left : left + cw]
        return scaled[:, top : top + ch, left : left + cw]


def is_plain_flip(transform: Any, backend: str) -> bool:
    """Whether ``transform`` is exactly the library's horizontal flip (not a subclass): its own draw
    and kernel are what :meth:`~lightning_aug.data.pipeline.Pipeline.after_decode` runs, without the
    framework's dispatch around them."""
    if backend == "albumentations":
        return type(transform) is A.HorizontalFlip
    return type(transform) is v2.RandomHorizontalFlip


def decode_head(transforms: list[Any], backend: str) -> DecodeHead | None:
    """The :class:`DecodeHead` the pipeline ``transforms`` start with, or ``None``.

    Example::

        >>> decode_head([A.RandomResizedCrop(size=(8, 8)), A.HorizontalFlip()], "albumentations").name
        'RandomResizedCrop'
    """
    if not transforms:
        return None
    first, second = transforms[0], transforms[1] if len(transforms) > 1 else None
    if backend == "albumentations":
        if isinstance(first, A.RandomResizedCrop):
            return _AlbumentationsResizedCrop(first)
        if (
            isinstance(first, A.SmallestMaxSize)
            and first.p == 1
            and isinstance(second, A.CenterCrop)
            and second.p == 1
            and isinstance(first.max_size, int)  # a list draws a size: not fused
        ):
            return _ResizeCenterCrop(first, second, backend)
        return None
    if type(first) in (v2.RandomResizedCrop, TorchvisionRandomResizedCrop):
        return _TorchvisionResizedCrop(first)
    if (
        type(first) is v2.Resize
        and len(first.size) == 1
        and first.max_size is None
        and str(getattr(first.interpolation, "value", first.interpolation)) == "bilinear"  # the fused one
        and type(second) is v2.CenterCrop
    ):
        return _ResizeCenterCrop(first, second, backend)
    return None
