"""Image decoders behind one interface: bytes in, the RGB HWC uint8 pixels of an image region out.

One decoding contract for all of them: the pixels PIL gives (:func:`load_rgb`: EXIF or XMP orientation
applied, the first frame or an animation's default image, modes converted as documented there), JPEGs
within decoder tolerance. A fast decoder handles only what it provably gets right, a plain baseline or
progressive JPEG and a plain 8-bit PNG (:func:`~lightning_aug.data.jpeg.fast_format`), and hands
everything else (WebP, BMP, TIFF, PNM, GIF, 16-bit or animated PNG, CMYK or 12-bit JPEG, orientation
only in XMP, ...) to PIL. Every failure, whatever the library raises, is a ``ValueError`` naming the
file.

A crop applied while decoding (:mod:`lightning_aug.data.transforms`) asks a decoder for the region it
needs, in the coordinates of the image as it is meant to be seen (EXIF orientation applied), and
optionally at 1/2, 1/4 or 1/8 of the size (libjpeg's DCT scaling). Each decoder does what it can do
cheaply and slices the rest:

- :class:`OpenCVDecoder`: decodes the whole image, JPEGs at reduced size where asked; the region is a
  slice of that.
- :class:`NvImageCodecDecoder`: nvImageCodec's CPU backend (libjpeg-turbo) decodes only the region of
  a JPEG (no inverse DCT or colour conversion outside it, nothing below it), bit-exact with cropping
  the full decode. Where a reduced size is asked for, it hands the JPEG to OpenCV; PNGs go to OpenCV.
  Installed with the ``fast`` extra (``pip install lightning-aug[fast]``).

``decoder="auto"`` (:func:`make_decoder`) takes nvImageCodec where it is installed, else OpenCV. A
device decoder (nvJPEG, batched) would be one more class with the same :meth:`ImageDecoder.decode`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import threading
import warnings
from collections.abc import Iterator
from typing import IO, Any, Literal

import numpy as np
from PIL import Image, ImageOps

from lightning_aug._stdio import quiet_stderr
from lightning_aug.data.jpeg import REDUCTIONS, JpegHeader, decode_rgb, jpeg_header, png_plain

__all__ = [
    "DecoderName",
    "ImageDecoder",
    "NvImageCodecDecoder",
    "OpenCVDecoder",
    "Region",
    "decode_pil",
    "image_size",
    "load_rgb",
    "make_decoder",
    "nvimgcodec_available",
    "nvimgcodec_cpu_decoder",
]

DecoderName = Literal["auto", "pil", "cv2", "nvimgcodec"]
DECODER_NAMES: tuple[str, ...] = ("auto", "pil", "cv2", "nvimgcodec")
Region = tuple[int, int, int, int]  # (y0, x0, y1, x1) of the image as it is meant to be seen, end excluded


_HIGH_DEPTH = {"I;16": 257.0, "I;16B": 257.0, "I;16L": 257.0, "I;16N": 257.0, "I": 257.0, "F": 257.0}
_LIFT = threading.Lock()


@contextlib.contextmanager
def _pil_open(source: str | os.PathLike[str] | IO[bytes], pil_limit: bool) -> Iterator[Image.Image]:
    """``Image.open(source)``; with ``pil_limit`` False, PIL's own decompression-bomb limit
    (``Image.MAX_IMAGE_PIXELS``) does not apply: the caller has checked its own."""
    if pil_limit:
        with Image.open(source) as image:
            yield image
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(source)
        except Image.DecompressionBombError:  # above PIL's limit, within the caller's: open without it
            if not isinstance(source, (str, os.PathLike)):
                source.seek(0)
            with _LIFT:
                saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
                try:
                    image = Image.open(source)
                finally:
                    Image.MAX_IMAGE_PIXELS = saved
        with image:
            yield image


def load_rgb(source: str | os.PathLike[str] | IO[bytes], *, pil_limit: bool = True) -> Image.Image:
    """Decode an image file into an RGB PIL image, as it is meant to be seen: the decoding contract of
    every decoder.

    - EXIF orientation is applied (a photo taken upright comes out upright), also where PIL finds it in
      XMP or in a PNG's raw EXIF profile.
    - The first frame (GIF, multi-page TIFF), or an animated PNG's default image.
    - Grey, grey+alpha, palette, CMYK and RGBA are converted to RGB; alpha is dropped (not composited).
    - 16- and 32-bit images (modes ``I;16``, ``I``, ``F``) are scaled to 8 bits (``value / 257``,
      rounded, clipped to 0..255).

    Args:
        source: a path or a binary file object.
        pil_limit: whether PIL's decompression-bomb limit applies (``False`` where the caller has checked
            the image's size against its own, e.g. ``max_image_pixels``).
    """
    with _pil_open(source, pil_limit) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in _HIGH_DEPTH:
            scaled = np.asarray(img, dtype=np.float64) / _HIGH_DEPTH[img.mode]
            return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8)).convert("RGB")
        return img.convert("RGB")


# "the caller has not parsed the JPEG header": parse it here (a parsed one is passed on, so that each
# sample's header is parsed once: its size check, the crop's size and the decode share it)
UNPARSED: Any = object()


def parse_header(data: np.ndarray, header: Any = UNPARSED) -> JpegHeader | None:
    """``header`` where the caller parsed it already, else :func:`~lightning_aug.data.jpeg.jpeg_header`
    of ``data``."""
    return jpeg_header(data) if header is UNPARSED else header


def image_size(data: np.ndarray, header: Any = UNPARSED) -> tuple[int, int] | None:
    """``(height, width)`` of an image from its header alone (JPEG: parsed, or ``header`` as parsed
    by the caller; other formats: PIL opens the header without decoding, whatever PIL's own bomb
    limit); ``None`` where no reader knows the bytes."""
    header = parse_header(data, header)
    if header is not None:
        return header.shape
    try:
        with _pil_open(io.BytesIO(data.tobytes()), pil_limit=False) as image:
            return image.size[1], image.size[0]
    except Exception:  # not an image PIL knows: the decoder reports it
        return None


def decode_pil(data: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
    """:func:`load_rgb` of the bytes as an RGB HWC uint8 array (PIL's bomb limit lifted: the caller has
    checked the size).

    Raises:
        ValueError: PIL cannot decode the bytes, whatever it raised; the message names ``path``.
    """
    try:
        return np.asarray(load_rgb(io.BytesIO(data.tobytes()), pil_limit=False))
    except Exception as err:
        reason = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(err))  # PIL names its buffer
        raise ValueError(f"cannot decode image file {os.fspath(path)!r} (PIL: {reason})") from err


class ImageDecoder:
    """What crops applied while decoding need of a decoder.

    Attributes:
        name: the decoder's name, as in ``decoder=...``.
        reductions: the JPEG size reductions it decodes at (1 always).
    """

    name: str = "base"
    reductions: tuple[int, ...] = (1,)

    def shape(self, data: np.ndarray, header: Any = UNPARSED) -> tuple[int, int] | None:
        """``(height, width)`` as meant to be seen, from the header of a JPEG this decoder decodes
        itself (region and reduced decoding); ``None`` for other files. ``header``: as parsed already."""
        header = parse_header(data, header)
        return header.shape if header is not None and header.plain else None

    def decode(
        self,
        data: np.ndarray,
        path: str | os.PathLike[str],
        region: Region | None = None,
        reduction: int = 1,
        header: Any = UNPARSED,
    ) -> np.ndarray:
        """The pixels of ``region`` (``None``: all) as an RGB HWC uint8 array: :func:`load_rgb`'s.

        With ``reduction`` > 1 (JPEGs that :meth:`shape` knows, one of :attr:`reductions`) the image
        is decoded at that fraction of its size (sides rounded up) and ``region`` is scaled by the same
        ratio, so the result shows the same part of the image with fewer pixels. Files other than
        plain JPEGs and PNGs are decoded by PIL in full, then sliced.

        Raises:
            ValueError: the bytes cannot be decoded, whatever the library raised; the message names
                ``path``.
        """
        header = parse_header(data, header)  # parsed once per sample (passed on by the caller)
        if header is not None and header.plain:
            return self._decode(data, path, header.shape, region, reduction)
        if header is None and png_plain(data):
            return self._decode(data, path, None, region, reduction)
        return _slice(decode_pil(data, path), region, None)

    def _decode(
        self,
        data: np.ndarray,
        path: str | os.PathLike[str],
        full: tuple[int, int] | None,
        region: Region | None,
        reduction: int,
    ) -> np.ndarray:
        """:meth:`decode` of a plain JPEG of header size ``full``, or a plain PNG (``full`` None)."""
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

    def _decode(
        self,
        data: np.ndarray,
        path: str | os.PathLike[str],
        full: tuple[int, int] | None,
        region: Region | None,
        reduction: int,
    ) -> np.ndarray:
        if full is None:
            reduction = 1  # a PNG: no reduced decoding
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


def nvimgcodec_cpu_decoder(threads: int = 1) -> tuple[Any, Any]:
    """``(decoder, decode params)`` of nvImageCodec's CPU backend with ``threads`` threads of its own:
    RGB, sRGB, EXIF orientation applied (what :class:`NvImageCodecDecoder` decodes with, one thread)."""
    nv = _nvimgcodec()
    decoder = nv.Decoder(
        device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY,
        max_num_cpu_threads=threads,
        backends=[nv.Backend(nv.BackendKind.CPU_ONLY)],
    )
    return decoder, nv.DecodeParams(apply_exif_orientation=True, color_spec=nv.SRGB, sample_format=nv.I_RGB)


def nvimgcodec_available() -> bool:
    """Whether nvImageCodec (the ``fast`` extra: ``nvidia-nvimgcodec-cu12`` or ``-cu13``) imports."""
    return _nvimgcodec() is not None


class NvImageCodecDecoder(ImageDecoder):
    """nvImageCodec's CPU backend (libjpeg-turbo): JPEG regions decoded alone, no GPU needed.

    One single-threaded CPU decoder per process and thread (DataLoader workers and a worker's decode
    threads are the parallelism, :mod:`lightning_aug.data.threads`), made on first use, so the object
    can be sent to workers. JPEGs asked for at reduced size, and other formats, are
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
        self._states: dict[tuple[int, int], tuple[Any, Any]] = {}  # (pid, thread): (decoder, params)

    def __getstate__(self) -> dict[str, Any]:
        return {"_fallback": self._fallback, "_states": {}}

    def _decoder(self) -> tuple[Any, Any]:
        key = (os.getpid(), threading.get_ident())  # a decoder is not shared by threads
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = nvimgcodec_cpu_decoder()
        return state

    def _decode(
        self,
        data: np.ndarray,
        path: str | os.PathLike[str],
        full: tuple[int, int] | None,
        region: Region | None,
        reduction: int,
    ) -> np.ndarray:
        if full is None or reduction > 1:  # a PNG, or reduced decoding
            return self._fallback._decode(data, path, full, region, reduction)
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
    ``"nvimgcodec"``; ``None`` for ``"pil"`` (PIL images, :func:`load_rgb`).

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
