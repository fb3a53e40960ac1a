"""``lightning_aug.json``, the metadata of prepared shards, read and checked before any chunk is:
its format and layout must be the ones this package writes, every chunk entry well formed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lightning_aug.data.shards.layout import FORMAT, METADATA, ChunkInfo, check_layout
from lightning_aug.data.shards.storage import LocalStorage, Storage, without_userinfo
from lightning_aug.errors import DataError

__all__ = ["ShardMetadata", "parse_split", "read_metadata"]

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class ShardMetadata:
    """What ``lightning_aug.json`` says: the classes and each split's chunks; ``raw`` is all of it."""

    num_classes: int
    classes: list[str] | None
    splits: dict[str, list[ChunkInfo]]
    raw: dict[str, Any] = field(repr=False)

    def samples(self, split: str) -> int:
        return sum(c.samples for c in self.splits[split])


def parse_split(entry: Any, where: str) -> list[ChunkInfo]:
    """A split's ``{"samples": n, "chunks": [...]}`` entry as its chunks, checked.

    Raises:
        DataError: malformed, or the chunks do not add up to ``samples``.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("chunks"), list):
        raise DataError(f"{where}: malformed (no chunk list); prepare the shards again")
    chunks = [ChunkInfo.parse(c, where) for c in entry["chunks"]]
    if len({c.name for c in chunks}) != len(chunks) or sum(c.samples for c in chunks) != entry.get("samples"):
        raise DataError(f"{where}: its chunks do not add up to its {entry.get('samples')!r} samples")
    return chunks


def read_metadata(storage: Storage, input_dir: str) -> ShardMetadata:
    """The checked metadata of the shards in ``storage`` (``input_dir`` as the user gave it).

    Raises:
        DataError: a missing folder, no metadata (not prepared), an older or unknown format, a layout
            we do not write, malformed entries; one line naming ``input_dir``.
    """
    shown = without_userinfo(input_dir)
    if isinstance(storage, LocalStorage) and not storage.path.is_dir():
        raise DataError(f"data.input_dir {shown!r} does not exist or is not a directory")
    raw = storage.read_json(METADATA)
    if raw is None:
        raise DataError(
            f"data.input_dir {shown!r} holds no prepared shards (no {METADATA}): "
            f"run lightning-aug-prepare ... prepare.output_dir={shown} first"
        )
    where = storage.location(METADATA)
    if not isinstance(raw, dict):
        raise DataError(f"{where}: malformed metadata")
    version = raw.get("format", raw.get("version"))
    if version != FORMAT:
        old = version == 1 and "format" not in raw
        why = "format 1, written by lightning-aug 0.2 without checksums" if old else f"format {version!r}"
        raise DataError(
            f"data.input_dir {shown!r} holds shards of {why}; this version reads format {FORMAT}: "
            "prepare them again (lightning-aug-prepare ... prepare.overwrite=true)"
        )
    check_layout(raw.get("layout"), where)
    classes = raw.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise DataError(f"{where}: 'classes' must be a list of names, got {str(classes)[:200]}")
    num_classes = raw.get("num_classes")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise DataError(f"{where}: 'num_classes' must be a positive int, got {num_classes!r}")
    if classes is not None and len(classes) != num_classes:
        raise DataError(f"{where}: {len(classes)} class names but num_classes={num_classes}")
    entries = raw.get("splits")
    if not isinstance(entries, dict) or not set(entries) <= set(SPLIT_NAMES):
        raise DataError(f"{where}: 'splits' must map some of {list(SPLIT_NAMES)} to their chunks")
    splits = {split: parse_split(entry, f"{where} (split {split!r})") for split, entry in entries.items()}
    return ShardMetadata(num_classes, classes, splits, raw)
