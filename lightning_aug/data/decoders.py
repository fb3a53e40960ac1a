"""Image decoders behind one interface: bytes in, the RGB HWC uint8 pixels of an image region out.

A crop applied while decoding (:mod:`lightning_aug.data.transforms`) asks a decoder for the region it
needs, in the coordinates of the image as it is meant to be seen (EXIF orientation applied), and
optionally at 1/2, 1/4 or 1/8 of the size (libjpeg's DCT scaling). Each decoder does what it can do
cheaply and slices the rest:

- :class:`OpenCVDecoder`: decodes the whole image, JPEGs at reduced size where asked; the region is a
  slice of that.
- :class:`NvImageCodecDecoder`: nvImageCodec's CPU backend (libjpeg-turbo) decodes only the region of
  a JPEG (no inverse DCT or colour conversion outside it, nothing below it), bit-exact with cropping
  the full decode. Where a reduced size is asked for, it hands the JPEG to OpenCV. Other formats go to
  OpenCV. Installed with the ``fast`` extra (``pip install lightning-aug[fast]``).

``decoder="auto"`` (:func:`make_decoder`) takes nvImageCodec where it is installed, else OpenCV. A
device decoder (nvJPEG, batched) would be one more class with the same :meth:`ImageDecoder.decode`.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Literal

import numpy as np

from lightning_aug._stdio import quiet_stderr
from lightning_aug.data.jpeg import REDUCTIONS, decode_rgb, jpeg_shape

__all__ = [
    "DecoderName",
    "ImageDecoder",
    "NvImageCodecDecoder",
    "OpenCVDecoder",
    "Region",
    "make_decoder",
    "nvimgcodec_available",
]

DecoderName = Literal["auto", "pil", "cv2", "nvimgcodec"]
DECODER_NAMES: tuple[str, ...] = ("auto", "pil", "cv2", "nvimgcodec")
Region = tuple[int, int, int, int]  # (y0, x0, y1, x1) of the image as it is meant to be seen, end excluded


class ImageDecoder:
    """What crops applied while decoding need of a decoder.

    Attributes:
        name: the decoder's name, as in ``decoder=...``.
        reductions: the JPEG size reductions it decodes at (1 always).
    """

    name: str = "base"
    reductions: tuple[int, ...] = (1,)

    def shape(self, data: np.ndarray) -> tuple[int, int] | None:
        """``(height, width)`` as meant to be seen, from the JPEG header; ``None`` for other formats."""
        return jpeg_shape(data)

    def decode(
        self, data: np.ndarray, path: str | os.PathLike[str], region: Region | None = None, reduction: int = 1
    ) -> np.ndarray:
        """The pixels of ``region`` (``None``: all) as an RGB HWC uint8 array, EXIF orientation applied.

        With ``reduction`` > 1 (JPEGs only, one of :attr:`reductions`) the image is decoded at that
        fraction of its size (sides rounded up) and ``region`` is scaled by the same ratio, so the
        result shows the same part of the image with fewer pixels.

        Raises:
            ValueError: the bytes cannot be decoded; the message names ``path``.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _slice(image: np.ndarray, region: Region | None, full: tuple[int, int] | None) -> np.ndarray:
    """``region`` of ``image``, scaled from the size ``full`` the region refers to."""
    if region is None:
        return image
    y0, x0, y1, x1 = region
    if full is not None and image.shape[:2] != full:  # decoded at reduced size: the region's pixels there
        sy, sx = image.shape[0] / full[0], image.shape[1] / full[1]
        y0, y1, x0, x1 = round(y0 * sy), round(y1 * sy), round(x0 * sx), round(x1 * sx)
    return image[y0:y1, x0:x1]


class OpenCVDecoder(ImageDecoder):
    """OpenCV (libjpeg-turbo for JPEG): whole images, JPEGs at 1/2, 1/4 or 1/8 size where asked."""

    name = "cv2"
    reductions = REDUCTIONS

    def decode(
        self, data: np.ndarray, path: str | os.PathLike[str], region: Region | None = None, reduction: int = 1
    ) -> np.ndarray:
        full = self.shape(data) if region is not None else None
        if full is None:
            reduction = 1  # not a JPEG: no reduced decoding
        image = decode_rgb(data, reduction, path)
        if reduction == 1 and full is not None and image.shape[:2] != full:
            raise ValueError(
                f"image file {os.fspath(path)!r}: the JPEG header says {full[0]}x{full[1]} pixels, "
                f"OpenCV decoded {image.shape[0]}x{image.shape[1]}"
            )
        return _slice(image, region, full)


@functools.cache
def _nvimgcodec() -> Any:
    """The ``nvidia.nvimgcodec`` module, or ``None`` where it is not installed."""
    os.environ.setdefault("PYNVIMGCODEC_VERBOSITY", "1")  # errors only
    try:
        with quiet_stderr():  # it prints a paragraph per GPU library it cannot load
            from nvidia import nvimgcodec
    except ImportError:
        return None
    return nvimgcodec


def nvimgcodec_available() -> bool:
    """Whether nvImageCodec (the ``fast`` extra: ``nvidia-nvimgcodec-cu12`` or ``-cu13``) imports."""
    return _nvimgcodec() is not None


class NvImageCodecDecoder(ImageDecoder):
    """nvImageCodec's CPU backend (libjpeg-turbo): JPEG regions decoded alone, no GPU needed.

    One single-threaded CPU decoder per process (DataLoader workers are the parallelism), made on first
    use, so the object can be sent to workers. JPEGs asked for at reduced size, and other formats, are
    decoded by :class:`OpenCVDecoder`.

    Raises:
        ImportError: nvImageCodec is not installed (``pip install lightning-aug[fast]``).
    """

    name = "nvimgcodec"
    reductions = REDUCTIONS

    def __init__(self) -> None:
        if not nvimgcodec_available():
            raise ImportError(
                "decoder='nvimgcodec' needs nvImageCodec: pip install 'lightning-aug[fast]' "
                "(or nvidia-nvimgcodec-cu12 / -cu13); decoder='auto' falls back to OpenCV"
            )
        self._fallback = OpenCVDecoder()
        self._state: tuple[int, Any, Any] | None = None  # (pid, decoder, decode params) of this process

    def __getstate__(self) -> dict[str, Any]:
        return {"_fallback": self._fallback, "_state": None}

    def _decoder(self) -> tuple[Any, Any]:
        if self._state is None or self._state[0] != os.getpid():
            nv = _nvimgcodec()
            decoder = nv.Decoder(
                device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY,
                max_num_cpu_threads=1,
                backends=[nv.Backend(nv.BackendKind.CPU_ONLY)],
            )
            params = nv.DecodeParams(apply_exif_orientation=True, color_spec=nv.SRGB, sample_format=nv.I_RGB)
            self._state = (os.getpid(), decoder, params)
        return self._state[1], self._state[2]

    def decode(
        self, data: np.ndarray, path: str | os.PathLike[str], region: Region | None = None, reduction: int = 1
    ) -> np.ndarray:
        full = self.shape(data)
        if full is None or reduction > 1:
            return self._fallback.decode(data, path, region, reduction)
        nv = _nvimgcodec()
        decoder, params = self._decoder()
        try:
            stream = nv.CodeStream(data)
            if region is not None and region != (0, 0, *full):
                stream = stream.get_sub_code_stream(region=nv.Region(*region))
            image = decoder.decode(stream, params=params)
        except Exception as err:  # the library raises RuntimeError or ValueError, depending on the fault
            raise ValueError(
                f"cannot decode image file {os.fspath(path)!r} with nvImageCodec: {err}"
            ) from err
        if image is None:  # what it returns for a corrupt stream
            raise ValueError(f"cannot decode image file {os.fspath(path)!r} (nvImageCodec rejected it)")
        out = np.asarray(image.cpu())
        want = full if region is None else (region[2] - region[0], region[3] - region[1])
        if out.shape != (*want, 3):
            raise ValueError(
                f"image file {os.fspath(path)!r}: expected {want[0]}x{want[1]} RGB pixels from the JPEG "
                f"header, nvImageCodec decoded {out.shape}"
            )
        return out


def make_decoder(name: str) -> ImageDecoder | None:
    """The decoder called ``name``: ``"auto"`` (nvImageCodec where installed, else OpenCV), ``"cv2"``,
    ``"nvimgcodec"``; ``None`` for ``"pil"`` (PIL images,
    :func:`~lightning_aug.data.datasets.folder.load_rgb`).

    Raises:
        ValueError: an unknown name.
        ImportError: ``"nvimgcodec"`` without nvImageCodec installed.

    Example::

        >>> make_decoder("cv2")
        OpenCVDecoder()
    """
    if name not in DECODER_NAMES:
        raise ValueError(f"decoder must be one of {sorted(DECODER_NAMES)}, got {name!r}")
    if name == "pil":
        return None
    if name == "nvimgcodec" or (name == "auto" and nvimgcodec_available()):
        return NvImageCodecDecoder()
    return OpenCVDecoder()
