"""Reading image files for OpenCV, and what JPEG allows for free: the size from the header, and decoding
at 1/2, 1/4 or 1/8 of the size (libjpeg's DCT scaling), which skips most of the inverse DCT, colour
conversion and memory traffic of a full decode.
"""

from __future__ import annotations

import os
import struct

import numpy as np

__all__ = ["REDUCTIONS", "decode_rgb", "jpeg_shape", "read_image_bytes"]

REDUCTIONS: tuple[int, ...] = (8, 4, 2, 1)  # the scales OpenCV decodes JPEGs at, largest first

# SOF markers (frame headers) carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_TRANSPOSED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


def read_image_bytes(path: str | os.PathLike[str]) -> np.ndarray:
    """The bytes of an image file, as OpenCV's ``imdecode`` takes them.

    Raises:
        ValueError: an empty file, or a JPEG without its end-of-image marker (truncated); OpenCV itself
            would decode the partial image with only a warning.
    """
    data = np.fromfile(os.fspath(path), dtype=np.uint8)
    if data.size == 0:
        raise ValueError(f"empty image file {os.fspath(path)!r} (0 bytes)")
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-64:].tobytes():
        raise ValueError(f"truncated JPEG file {os.fspath(path)!r} (no end-of-image marker)")
    return data


def _exif_orientation(segment: bytes) -> int:
    """The orientation tag (0x0112) of an APP1 Exif segment's first IFD; 1 when absent or unreadable."""
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
        if tag == 0x0112 and kind == 3:  # SHORT
            return value if 1 <= value <= 8 else 1
    return 1


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
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if raw[:2] != b"\xff\xd8":
        return None
    orientation, pos = 1, 2
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
            orientation = _exif_orientation(segment)
        elif marker in _SOF:
            if len(segment) < 5:
                return None
            height, width = struct.unpack_from(">HH", segment, 1)
            if height == 0 or width == 0:
                return None
            return (width, height) if orientation in _TRANSPOSED else (height, width)
        elif marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        pos += 2 + length
    return None


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
