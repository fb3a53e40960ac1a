"""A shard folder checked end to end (``lightning-aug-prepare prepare.verify=true``): the metadata and
each split's index against the layout we write, every chunk's size, CRC-32 and SHA-256, every sample's
structure and label, and (``decode``) every image decoded as training would."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from lightning_aug.data.shards.chunks import ChunkStore
from lightning_aug.data.shards.layout import ChunkFile, check_index
from lightning_aug.data.shards.metadata import read_metadata
from lightning_aug.data.shards.storage import open_storage, sha256_file
from lightning_aug.errors import DataError

__all__ = ["verify_shards"]

MAX_PROBLEMS = 20  # named per split; the rest counted


def verify_shards(
    input_dir: str,
    storage_options: dict[str, Any] | None = None,
    decode: bool = True,
    decoder: str = "auto",
    max_image_pixels: int | None = 178956970,
    timeout: float = 60.0,
    retries: int = 3,
) -> dict[str, Any]:
    """Check the shards at ``input_dir`` (a folder or URL) end to end.

    Returns:
        ``{"ok": bool, "lines": [summary lines], "splits": {split: {"samples", "chunks",
        "per_class", "problems"}}}``; ``ok`` is false when any problem was found.

    Raises:
        DataError: the folder is not prepared shards of a format and layout this package reads (then
            nothing else can be checked).
    """
    from lightning_aug.data.decode import check_decoding, decode_sample
    from lightning_aug.data.decoders import make_decoder

    check_decoding(decoder, "raise")
    given = {k: v for k, v in (storage_options or {}).items() if v is not None}  # None: unset
    storage = open_storage(input_dir, given, timeout, retries)
    metadata = read_metadata(storage, input_dir)
    image_decoder = make_decoder(decoder)
    report: dict[str, Any] = {"ok": True, "lines": [], "splits": {}}
    with tempfile.TemporaryDirectory(prefix="lightning-aug-verify-") as cache:
        for split, chunks in metadata.splits.items():
            problems: list[str] = []
            per_class: Counter[int] = Counter()
            where = storage.location(f"{split}/index.json")
            index = storage.read_json(f"{split}/index.json")
            if index is None:
                problems.append(f"{where} is missing")
            else:
                try:
                    check_index(index, chunks, where)
                except DataError as err:
                    problems.append(str(err))
            store = ChunkStore(storage, split, chunks, Path(cache))
            for number, info in enumerate(chunks):
                try:
                    path = store.path(number)  # size and CRC-32 (downloaded first if remote)
                    if sha256_file(path) != info.sha256:
                        raise DataError(
                            f"{store.label(number)} is corrupt: its SHA-256 differs from the recorded one"
                        )
                    file = ChunkFile(path, info, store.label(number))
                except DataError as err:
                    problems.append(str(err))
                    continue
                try:
                    for position in range(info.samples):
                        try:
                            data, label, name = file.sample(position, metadata.num_classes)
                            if decode:
                                where = f"{file.label}: sample {position} ({name})"
                                decode_sample(data, name, where, image_decoder, None, max_image_pixels)
                            per_class[label] += 1
                        except DataError as err:
                            problems.append(str(err))
                finally:
                    file.close()
                    if not store.local:
                        Path(path).unlink(missing_ok=True)
            samples = sum(c.samples for c in chunks)
            counts = [per_class.get(c, 0) for c in range(metadata.num_classes)]
            report["splits"][split] = {
                "samples": samples,
                "chunks": len(chunks),
                "per_class": counts,
                "problems": problems,
            }
            head = (
                f"{split}: {samples} samples in {len(chunks)} chunk(s), {metadata.num_classes} classes "
                f"({min(counts)}-{max(counts)} samples per class)"
            )
            if problems:
                report["ok"] = False
                shown = problems[:MAX_PROBLEMS]
                more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
                report["lines"].append(f"{head}: {len(problems)} problem(s){more}")
                report["lines"] += [f"  {p}" for p in shown]
            else:
                checked = "checksums, labels and images" if decode else "checksums and labels"
                report["lines"].append(f"{head}: OK ({checked} checked)")
    return report
