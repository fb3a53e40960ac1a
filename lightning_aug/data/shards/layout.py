"""The one shard layout ``lightning-aug-prepare`` writes, checked before anything is read, and read
by our own code: no shard content reaches LitData's deserialisers (one of which is ``pickle``).

A prepared folder (or ``s3://`` prefix) holds::

    lightning_aug.json               the metadata, written last: classes, options, the source's
                                     fingerprint, and per split its samples and chunks (name, bytes,
                                     CRC-32, SHA-256)
    <split>/index.json               LitData's index of the split's chunks
    <split>/chunk-<w>-<n>.bin        LitData chunks of {"image": uint8 bytes, "label": int64,
                                     "name": bytes} samples
    <split>/lightning_aug_split.json the split's manifest, written when the split is complete

A chunk is LitData's binary layout: ``uint32 count``, ``uint32 offsets[count + 1]`` (absolute
positions; the last is the file's size), then the items; an item is three ``uint32`` field sizes
and the fields' bytes (the image's encoded bytes, the label as little-endian int64, the file name).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightning_aug.data.reader import UnreadableFile, open_regular
from lightning_aug.errors import DataError

__all__ = [
    "DATA_FORMAT",
    "FIELDS",
    "FORMAT",
    "METADATA",
    "PENDING",
    "SPLIT_MANIFEST",
    "ChunkFile",
    "ChunkInfo",
    "check_index",
    "check_layout",
    "data_spec",
]

METADATA = "lightning_aug.json"
SPLIT_MANIFEST = "lightning_aug_split.json"
PENDING = "lightning_aug_pending.json"
FORMAT = 2  # 1: 0.2.0 (no checksums, no recorded layout)
FIELDS = ("image", "label", "name")
# LitData's names of the fields' serialisers: a 1-d uint8 array without header (dtype index 4 of
# litdata.constants._NUMPY_DTYPES_MAPPING), an int64, raw bytes. Nothing else is read.
DATA_FORMAT = ("no_header_numpy:4", "int", "bytes")
CHUNK_NAME = re.compile(r"chunk-[0-9]{1,9}-[0-9]{1,9}\.bin")
MAX_CHUNK_BYTES = 4 << 30  # LitData's uint32 offsets


def data_spec() -> list[Any]:
    """LitData's tree spec (parsed) of a ``{"image", "label", "name"}`` sample."""
    leaf: dict[str, Any] = {"type": None, "context": None, "children_spec": []}
    return [1, {"type": "builtins.dict", "context": json.dumps(list(FIELDS)), "children_spec": [leaf] * 3}]


def check_layout(layout: Any, where: str) -> None:
    """Refuse a metadata ``layout`` that is not the one this package writes.

    Raises:
        DataError: naming ``where`` and the layout found.
    """
    expected = {"fields": list(FIELDS), "data_format": list(DATA_FORMAT)}
    if layout != expected:
        raise DataError(
            f"{where}: the shards' recorded layout {layout!r} is not the one lightning-aug-prepare writes "
            f"({expected}); refusing to read them"
        )


@dataclass(frozen=True)
class ChunkInfo:
    """A chunk as the metadata records it."""

    name: str
    samples: int
    bytes: int
    crc32: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "samples": self.samples,
            "bytes": self.bytes,
            "crc32": self.crc32,
            "sha256": self.sha256,
        }

    @classmethod
    def parse(cls, entry: Any, where: str) -> ChunkInfo:
        """A chunk entry of the metadata, checked (types, a plain chunk file name).

        Raises:
            DataError: naming ``where``.
        """
        ok = isinstance(entry, dict) and set(entry) == {"name", "samples", "bytes", "crc32", "sha256"}
        ok = ok and isinstance(entry["name"], str) and CHUNK_NAME.fullmatch(entry["name"]) is not None
        ok = ok and all(
            isinstance(entry[k], int) and not isinstance(entry[k], bool) and entry[k] >= 0
            for k in ("samples", "bytes", "crc32")
        )
        ok = (
            ok
            and isinstance(entry["sha256"], str)
            and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) is not None
        )
        if not ok or entry["bytes"] > MAX_CHUNK_BYTES:
            raise DataError(f"{where}: a chunk entry of the metadata is malformed: {str(entry)[:200]}")
        return cls(entry["name"], entry["samples"], entry["bytes"], entry["crc32"], entry["sha256"])


def check_index(index: Any, chunks: list[ChunkInfo], where: str) -> None:
    """Check a split's LitData ``index.json`` against the layout we write and the split's chunks in
    our metadata, before any chunk is read.

    Raises:
        DataError: another data format (``pickle`` or any serialiser we do not write), compression,
            encryption, another item loader, or chunks other than the metadata's; naming ``where``.
    """
    if not isinstance(index, dict) or not isinstance(index.get("config"), dict):
        raise DataError(f"{where}: not a LitData index (no 'config')")
    config = index["config"]
    formats = config.get("data_format")
    if formats != list(DATA_FORMAT):
        raise DataError(
            f"{where}: data format {formats!r} is not the one lightning-aug-prepare writes "
            f"({list(DATA_FORMAT)}); refusing to read these shards"
        )
    try:
        spec = json.loads(config.get("data_spec"))
    except (TypeError, ValueError):
        spec = config.get("data_spec")
    if spec != data_spec():
        raise DataError(f"{where}: fields {str(config.get('data_spec'))[:200]!r} are not {list(FIELDS)}")
    for key in ("compression", "encryption", "compression_level", "ipc_compression", "format"):
        if config.get(key) is not None:
            raise DataError(f"{where}: {key}={config[key]!r}: lightning-aug-prepare writes no {key}")
    if config.get("item_loader", "PyTreeLoader") != "PyTreeLoader":
        raise DataError(f"{where}: item loader {config['item_loader']!r} is not LitData's PyTreeLoader")
    listed = index.get("chunks")
    if not isinstance(listed, list):
        raise DataError(f"{where}: not a LitData index (no 'chunks')")
    found = []
    for entry in listed:
        if not isinstance(entry, dict):
            raise DataError(f"{where}: a chunk entry is malformed: {str(entry)[:200]}")
        found.append((entry.get("filename"), entry.get("chunk_size"), entry.get("chunk_bytes")))
    expected = [(c.name, c.samples, c.bytes) for c in chunks]
    if sorted(found, key=str) != sorted(expected, key=str):
        raise DataError(
            f"{where}: its chunks differ from those recorded in {METADATA} "
            f"({len(found)} listed, {len(expected)} recorded); the shards were changed after preparing"
        )


_U32 = struct.Struct("<I")
_SIZES = struct.Struct("<III")


class ChunkFile:
    """One chunk opened for reading samples by position: its offset table read and checked once,
    each sample read with one ``pread`` (no memory map: a chunk evicted from a cache while open
    stays readable, and a file truncated under us cannot crash the process).

    Args:
        path: the chunk file.
        info: what the metadata records of it.
        label: how messages name it (``"chunk-0-3.bin of split 'train' in /data/shards"``).

    Raises:
        DataError: the file is missing, or its offset table does not describe ``info.samples``
            samples filling the file.
    """

    def __init__(self, path: str, info: ChunkInfo, label: str) -> None:
        self.path, self.info, self.label = path, info, label
        try:  # the one reader's checks: a regular file (a FIFO or device is refused, never waited on)
            self.fd, size = open_regular(path, what=label)
        except FileNotFoundError:
            raise DataError(f"{label} is missing ({path})") from None
        except UnreadableFile as err:
            raise DataError(f"{label}: {err}") from None
        try:
            header = os.pread(self.fd, 4 + 4 * (info.samples + 1), 0)
            if len(header) < 4 or _U32.unpack_from(header)[0] != info.samples:
                raise DataError(f"{label} is damaged: its header does not count {info.samples} samples")
            if len(header) < 4 * (info.samples + 2):
                raise DataError(f"{label} is truncated: {size} bytes, expected {info.bytes}")
            offsets = np.frombuffer(header, dtype="<u4", offset=4).astype(np.int64)
            ok = offsets[0] == len(header) and bool(np.all(np.diff(offsets) >= _SIZES.size))
            if not ok or offsets[-1] != size:
                raise DataError(f"{label} is damaged: its offset table does not match its {size} bytes")
            self.offsets = offsets
        except BaseException:
            os.close(self.fd)
            raise

    def read(self, position: int) -> tuple[np.ndarray, int, bytes]:
        """``(encoded image bytes, label, name)`` of the sample at ``position`` in the chunk.

        Raises:
            DataError: the sample's field sizes do not add up to its length.
        """
        begin, end = int(self.offsets[position]), int(self.offsets[position + 1])
        data = os.pread(self.fd, end - begin, begin)
        sizes = _SIZES.unpack_from(data) if len(data) >= _SIZES.size else (0, 0, 0)
        if len(data) != end - begin or _SIZES.size + sum(sizes) != len(data) or sizes[1] != 8:
            raise DataError(f"{self.label}: sample {position} is damaged (its field sizes do not add up)")
        image_end = _SIZES.size + sizes[0]
        image = np.frombuffer(data, dtype=np.uint8, count=sizes[0], offset=_SIZES.size)
        label = int.from_bytes(data[image_end : image_end + 8], "little", signed=True)
        return image, label, data[image_end + 8 :]

    def sample(self, position: int, num_classes: int) -> tuple[np.ndarray, int, str]:
        """``(encoded image bytes, label, name)`` of the sample at ``position``, its label checked.

        Raises:
            DataError: the sample is damaged, or its label is outside ``[0, num_classes)``; naming the
                chunk, the sample and its file name.
        """
        data, label, raw = self.read(position)
        name = raw.decode("utf-8", "surrogateescape")
        if not 0 <= label < num_classes:
            raise DataError(
                f"{self.label}: sample {position} ({name}) has label {label}, outside the {num_classes} "
                f"classes 0..{num_classes - 1}"
            )
        return data, label, name

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.close()
