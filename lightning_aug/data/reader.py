"""The one reader of local files that every data source uses: only regular files, never more bytes
than a cap, and one error type that names the file.

A path in a file list, a Hugging Face ``path`` cell, a link inside an image folder or a predict
folder can point anywhere: ``/dev/zero`` (endless bytes), a FIFO (a read that never returns), a
directory, a 2 GB file named ``.jpg``. Every read here opens the file without blocking
(``O_NONBLOCK``: opening a FIFO with no writer returns at once), checks *the opened file* with
``fstat`` (links are followed, and what they lead to is checked, not the name), refuses anything that
is not a regular file or is larger than the cap, and reads at most the cap. The refusal is a
:class:`UnreadableFile` (a :class:`~lightning_aug.errors.DataError`), which the datasets handle under
``on_bad_image`` like a corrupt image.

Example::

    >>> read_bytes("/dev/zero", max_bytes=1 << 20)
    Traceback (most recent call last):
    ...
    lightning_aug.data.reader.UnreadableFile: '/dev/zero' is not a regular file (a character device)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import numpy as np

from lightning_aug.errors import DataError

__all__ = ["UnreadableFile", "file_cap", "open_regular", "read_blocks", "read_bytes", "read_head"]

# bytes a pixel may take in an image file that is not compressed at all (RGBA at 8 bits, a BMP)
_BYTES_PER_PIXEL = 4
_SLACK = 1 << 20  # headers, metadata, thumbnails


class UnreadableFile(DataError):
    """A path that is not a regular file, or a file larger than the cap: named, never read."""


def file_cap(max_image_pixels: int | None) -> int | None:
    """The largest image file read for images of at most ``max_image_pixels`` pixels: what such an
    image takes uncompressed (4 bytes a pixel) plus 1 MiB; ``None`` (no pixel limit): no cap."""
    return None if max_image_pixels is None else max_image_pixels * _BYTES_PER_PIXEL + _SLACK


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def open_regular(
    path: str | os.PathLike[str], max_bytes: int | None = None, what: str = "an image"
) -> tuple[int, int]:
    """``(descriptor, size)`` of ``path`` opened for reading (without blocking: a FIFO returns at
    once), checked to be a regular file of at most ``max_bytes`` bytes; the caller closes it.

    Raises:
        UnreadableFile: not a regular file, or larger than ``max_bytes``.
        FileNotFoundError / OSError: it cannot be opened.
    """
    name = os.fspath(path)
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a file")
            raise UnreadableFile(f"{name!r} is not a regular file ({kind})")
        if max_bytes is not None and info.st_size > max_bytes:
            raise UnreadableFile(
                f"{name!r} has {info.st_size} bytes, more than {what} can take ({max_bytes} bytes); "
                "raise max_image_pixels to read it"
            )
        return fd, info.st_size
    except BaseException:
        os.close(fd)
        raise


def _read(fd: int, count: int) -> bytearray:
    out = bytearray()
    while len(out) < count:
        chunk = os.read(fd, min(count - len(out), 16 << 20))
        if not chunk:
            break
        out += chunk
    return out


def read_bytes(path: str | os.PathLike[str], max_bytes: int | None, what: str = "an image") -> np.ndarray:
    """All the bytes of a regular file of at most ``max_bytes`` bytes (``None``: any size), as a
    uint8 array (what OpenCV's ``imdecode`` and nvImageCodec take). A file that grows while it is read
    is read up to its size at the open.

    Raises:
        UnreadableFile: not a regular file (a FIFO, a device, a directory), or too large.
        OSError: it cannot be opened (``FileNotFoundError`` where it is missing).
    """
    fd, size = open_regular(path, max_bytes, what)
    try:
        data = _read(fd, size)
    finally:
        os.close(fd)
    return np.frombuffer(data, dtype=np.uint8)


def read_head(path: str | os.PathLike[str], count: int, max_bytes: int | None = None) -> tuple[bytes, int]:
    """``(the first count bytes, the file's size)`` of a regular file (checked as :func:`read_bytes`).

    Raises:
        UnreadableFile: not a regular file, or larger than ``max_bytes``.
        OSError: it cannot be opened.
    """
    fd, size = open_regular(path, max_bytes)
    try:
        return bytes(_read(fd, min(count, size))), size
    finally:
        os.close(fd)


def read_blocks(path: str | os.PathLike[str], block: int = 8 << 20) -> Iterator[bytes]:
    """The bytes of a regular file in blocks (checksums of large files), checked as :func:`read_bytes`.

    Raises:
        UnreadableFile: not a regular file.
        OSError: it cannot be opened.
    """
    fd, _ = open_regular(path, None, "a file")
    try:
        while chunk := os.read(fd, block):
            yield chunk
    finally:
        os.close(fd)
