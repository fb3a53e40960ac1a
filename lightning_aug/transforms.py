"""Per-sample transforms that do more than their library's: crops applied while decoding."""

from __future__ import annotations

import os
from typing import Any

import albumentations as A
import numpy as np

from lightning_aug._checks import check_bool
from lightning_aug.jpeg import REDUCTIONS, decode_rgb, jpeg_shape, read_image_bytes

__all__ = ["RandomResizedCrop", "reduction_for"]


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
    """albumentations' ``RandomResizedCrop`` that can also run while the image is decoded.

    As the first transform of an albumentations train pipeline over an image folder decoded by OpenCV
    (``decoder="cv2"``), :class:`~lightning_aug.AugDataModule` applies it in :meth:`decode_crop`: the crop
    is drawn from the size in the JPEG header (the same draws as on the decoded image), and where the
    crop is at least twice the output size on both sides the JPEG is decoded at 1/2, 1/4 or 1/8 of its
    size (libjpeg's DCT scaling, which low-pass filters as it shrinks). The crop is then still shrunk to
    the output size, never enlarged. Everywhere else (other datasets, other formats) it is exactly
    albumentations' ``RandomResizedCrop``.

    Args:
        size, scale, ratio, interpolation, mask_interpolation, area_for_downscale, p: as
            ``albumentations.RandomResizedCrop``.
        reduced_decoding: allow decoding JPEGs at reduced size in :meth:`decode_crop`; ``False``:
            always decode the whole image (the output then equals albumentations' for the same draws).

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

    def decode_crop(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Read and decode the image file at ``path`` and apply the transform: an RGB HWC uint8 array.

        Raises:
            ValueError: a truncated JPEG, or a file OpenCV cannot decode.
        """
        data = read_image_bytes(path)
        shape = jpeg_shape(data)
        if shape is None:  # not a JPEG: decode, then the usual way
            return self(image=decode_rgb(data, 1, path))["image"]
        if not self.should_apply():  # p < 1 and not drawn (the same draw): the whole image
            return decode_rgb(data, 1, path)
        x0, y0, x1, y1 = self.get_params_dependent_on_data({"shape": shape}, {})["crop_coords"]
        reduction = reduction_for((y1 - y0, x1 - x0), self.size) if self.reduced_decoding else 1
        image = decode_rgb(data, reduction, path)
        if reduction > 1:  # the crop in the reduced image's pixels (its sides are rounded up)
            sy, sx = image.shape[0] / shape[0], image.shape[1] / shape[1]
            x0, x1, y0, y1 = round(x0 * sx), round(x1 * sx), round(y0 * sy), round(y1 * sy)
        elif image.shape[:2] != shape:
            raise ValueError(
                f"image file {os.fspath(path)!r}: the JPEG header says {shape[0]}x{shape[1]} pixels, "
                f"OpenCV decoded {image.shape[0]}x{image.shape[1]}"
            )
        return self.apply(image, crop_coords=(x0, y0, x1, y1))
