"""Reading image files for OpenCV, which files a fast decoder may take (:func:`fast_format`: plain JPEGs
and PNGs, whose pixels it provably gets as PIL does), and what JPEG allows for free: the size from the
header, and decoding at 1/2, 1/4 or 1/8 of the size (libjpeg's DCT scaling), which skips most of the
inverse DCT, colour conversion and memory traffic of a full decode.
"""

from __future__ import annotations

import os
import struct
from typing import Literal, NamedTuple

import numpy as np

__all__ = [
    "REDUCTIONS",
    "JpegHeader",
    "decode_rgb",
    "fast_format",
    "jpeg_header",
    "jpeg_shape",
    "png_plain",
    "read_image_bytes",
]

REDUCTIONS: tuple[int, ...] = (8, 4, 2, 1)  # the scales OpenCV decodes JPEGs at, largest first

# SOF markers (frame headers) carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_TRANSPOSED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


def read_image_bytes(path: str | os.PathLike[str], max_bytes: int | None = None) -> np.ndarray:
    """The bytes of an image file, as OpenCV's ``imdecode`` takes them, read by the one reader
    (:func:`lightning_aug.data.reader.read_bytes`: a regular file of at most ``max_bytes`` bytes).

    Raises:
        UnreadableFile: not a regular file (a FIFO, a device), or larger than ``max_bytes``.
        ValueError: an empty file, or a JPEG without its end-of-image marker (truncated); OpenCV itself
            would decode the partial image with only a warning.
    """
    from lightning_aug.data.reader import read_bytes

    data = read_bytes(path, max_bytes)
    if data.size == 0:
        raise ValueError(f"empty image file {os.fspath(path)!r} (0 bytes)")
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-64:].tobytes():
        raise ValueError(f"truncated JPEG file {os.fspath(path)!r} (no end-of-image marker)")
    return data


def _view(data: np.ndarray | bytes) -> memoryview:
    """The bytes of ``data`` without a copy (the headers are parsed where the file's bytes lie)."""
    return data.data.cast("B") if isinstance(data, np.ndarray) else memoryview(data)


def _exif_orientation(segment: memoryview) -> int | None:
    """The orientation tag (0x0112) of an APP1 Exif segment's first IFD: 1 when absent; ``None`` when
    the tag is there but not a SHORT from 1 to 8 (readers may disagree about it)."""
    tiff = segment[6:]  # after b"Exif\0\0"
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(order + "I", tiff, 4)
    if offset + 2 > len(tiff):
        return 1
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    for i in range(count):
        entry = offset + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        tag, kind, _, value = struct.unpack_from(order + "HHIH", tiff, entry)
        if tag == 0x0112:
            return value if kind == 3 and 1 <= value <= 8 else None
    return 1


class JpegHeader(NamedTuple):
    """What a JPEG's header says before any decoding.

    Attributes:
        shape: ``(height, width)`` as meant to be seen (EXIF orientation applied).
        plain: whether a libjpeg decoder (OpenCV, nvImageCodec) provably gives PIL's pixels: a
            baseline, extended or progressive Huffman frame of 8 bits with 1 or 3 components, and an
            orientation only in one well-formed EXIF tag (PIL also reads XMP's, OpenCV does not).
    """

    shape: tuple[int, int]
    plain: bool


_PLAIN_SOF = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended and progressive Huffman
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


def jpeg_header(data: np.ndarray | bytes) -> JpegHeader | None:
    """The :class:`JpegHeader` of a JPEG; ``None`` for anything that is not a JPEG with a readable
    frame header."""
    raw = _view(data)
    if raw[:2] != b"\xff\xd8":
        return None
    orientation: int | None = 1
    exif_seen, plain, pos = False, True, 2
    while pos + 4 <= len(raw):
        if raw[pos] != 0xFF:
            return None
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", raw, pos + 2)
        segment = raw[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment[:6] == b"Exif\x00\x00":
            if exif_seen:  # readers differ on which of two counts
                plain = False
            else:
                exif_seen, orientation = True, _exif_orientation(segment)
        elif marker == 0xE1 and segment[: len(_XMP)] == _XMP and b"Orientation" in segment.tobytes():
            plain = False
        elif marker in _SOF:
            if len(segment) < 6:
                return None
            precision, height, width, components = struct.unpack_from(">BHHB", segment, 0)
            if height == 0 or width == 0:
                return None
            plain = plain and marker in _PLAIN_SOF and precision == 8 and components in (1, 3)
            plain = plain and orientation is not None
            shape = (width, height) if orientation in _TRANSPOSED else (height, width)
            return JpegHeader(shape, plain)
        elif marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        pos += 2 + length
    return None


def jpeg_shape(data: np.ndarray | bytes) -> tuple[int, int] | None:
    """``(height, width)`` of a JPEG as it is meant to be seen (EXIF orientation applied, as OpenCV
    decodes it), read from the header alone; ``None`` for anything that is not a JPEG with a readable
    frame header.

    Example::

        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("RGB", (40, 30)).save(buffer, format="JPEG")
        >>> jpeg_shape(buffer.getvalue())
        (30, 40)
    """
    header = jpeg_header(data)
    return None if header is None else header.shape


_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = frozenset({b"tEXt", b"zTXt", b"iTXt"})


def png_plain(data: np.ndarray | bytes) -> bool:
    """Whether ``data`` is a complete PNG that OpenCV provably decodes to PIL's pixels: 8 bits per
    sample, no animation (PIL shows an APNG's default image), no orientation (``eXIf``, XMP or an
    ImageMagick raw EXIF profile, which PIL applies and OpenCV partly ignores)."""
    raw = _view(data)
    if raw[:8] != _PNG:
        return False
    pos = 8
    while pos + 8 <= len(raw):
        length, kind = struct.unpack_from(">I4s", raw, pos)
        body = pos + 8
        if kind == b"IHDR":
            if length < 13 or raw[body + 8] != 8 or raw[body + 9] not in (0, 2, 3, 4, 6):
                return False
        elif kind in (b"acTL", b"eXIf"):
            return False
        elif kind in _PNG_TEXT:
            keyword = raw[body : body + min(length, 80)].tobytes().split(b"\x00", 1)[0]
            if keyword == b"XML:com.adobe.xmp" or keyword.startswith(b"Raw profile type"):
                return False
        elif kind == b"IEND":
            return True
        pos = body + length + 4  # data and CRC
    return False  # cut short: PIL names what is missing


FastFormat = Literal["jpeg", "png"]


def fast_format(data: np.ndarray | bytes) -> FastFormat | None:
    """``"jpeg"`` or ``"png"`` where a fast decoder gives PIL's pixels (:func:`jpeg_header`'s
    ``plain``, :func:`png_plain`); ``None``: PIL decodes it."""
    header = jpeg_header(data)
    if header is not None:
        return "jpeg" if header.plain else None
    return "png" if png_plain(data) else None


def decode_rgb(data: np.ndarray, reduction: int = 1, path: str | os.PathLike[str] = "<bytes>") -> np.ndarray:
    """Decode image bytes with OpenCV into an RGB HWC uint8 array, EXIF orientation applied.

    Args:
        data: the file's bytes (:func:`read_image_bytes`).
        reduction: 1, 2, 4 or 8: decode a JPEG at this fraction of its size (the sides are rounded up);
            other formats are decoded in full, then shrunk by OpenCV.
        path: named in errors.

    Raises:
        ValueError: OpenCV cannot decode the bytes, or ``reduction`` is not 1, 2, 4 or 8.
    """
    import cv2

    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {sorted(REDUCTIONS)}, got {reduction!r}")
    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}
    flag = flags.get(reduction, cv2.IMREAD_REDUCED_COLOR_8)
    rgb = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.12 converts to RGB while decoding
    if rgb is not None:  # the RGB bit replaces the (BGR) colour bit of the reduced flags
        flag = (flag & ~cv2.IMREAD_COLOR) | rgb
    try:
        image = cv2.imdecode(data, flag)
    except cv2.error as err:  # e.g. a BMP wider than OpenCV's limit, an empty buffer
        raise ValueError(f"cannot decode image file {os.fspath(path)!r} with OpenCV: {err}".strip()) from err
    if image is None:
        raise ValueError(f"cannot decode image file {os.fspath(path)!r}")
    return image if rgb is not None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
