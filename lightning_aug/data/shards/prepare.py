"""``lightning-aug-prepare``: a dataset factory's splits written as shards, never stale.

- **Mixed.** Each split is written in a seeded random order (``seed``, recorded), so every chunk holds
  every class in proportion, whatever the source's order (image folders list class by class).
- **Never stale.** Each split's manifest records what it was made from: the source's fingerprint
  (paths, sizes and modification times of its files, or a hash of its arrays), the classes, the
  options (``max_side``, ``quality``, ``chunk_bytes``, the order's seed) and the format. A rerun keeps
  a split whose record matches, refuses in one line naming what changed where it does not (or
  rewrites it with ``overwrite=True``), and continues an interrupted split only if it was started
  from the same record (else it starts it again). ``lightning_aug.json`` is removed before anything
  is rewritten and written last, listing only complete splits.
- **Checked.** Every chunk's size, CRC-32 and SHA-256 go into the metadata; readers check them.
- **Object storage.** For ``s3://`` each split is written into a local staging folder, checked, and
  uploaded object by object (objects already there with the same SHA-256 are kept), so an
  interrupted upload continues and plain-``http`` S3-compatible endpoints work (LitData's own writer
  refuses them). Staging needs room for the largest split.
- Preparation runs in LitData's ``optimize`` worker processes, which exit within a fraction of a
  second when the main process dies (they watch it), instead of writing on for seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from lightning_aug._checks import check_bool, check_int
from lightning_aug.data.decode import BadImagePolicy
from lightning_aug.data.shards.encode import Encoder
from lightning_aug.data.shards.fingerprint import (
    array_fingerprint,
    file_fingerprint,
    record_changes,
    record_key,
)
from lightning_aug.data.shards.layout import (
    DATA_FORMAT,
    FIELDS,
    FORMAT,
    METADATA,
    PENDING,
    SPLIT_MANIFEST,
    ChunkInfo,
    check_index,
)
from lightning_aug.data.shards.storage import LocalStorage, S3Storage, Storage, open_storage, sha256_file
from lightning_aug.data.source import DatasetFactory, Split, as_factory, as_source
from lightning_aug.errors import DataError

__all__ = ["SPLITS", "array_fingerprint", "file_fingerprint", "prepare_shards"]

SPLITS: tuple[Split, ...] = ("train", "val", "test")
UNREADABLE_LOG = "lightning_aug_unreadable.jsonl"


# ---------------------------------------------------------------- one split


def _chunk_infos(folder: Path, index: dict[str, Any]) -> list[ChunkInfo]:
    infos = []
    for entry in index["chunks"]:
        path = folder / entry["filename"]
        crc = 0
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(8 << 20), b""):
                crc = zlib.crc32(block, crc)
        infos.append(
            ChunkInfo(
                entry["filename"], int(entry["chunk_size"]), path.stat().st_size, crc, sha256_file(path)
            )
        )
    return infos


def _optimize(
    dataset: Any,
    folder: Path,
    order: np.ndarray,
    options: dict[str, Any],
    workers: int,
    bad_log: Path,
) -> None:
    import litdata

    litdata.optimize(
        fn=Encoder(dataset, options["max_side"], options["quality"], str(bad_log)),
        inputs=[int(i) for i in order],
        output_dir=str(folder),
        chunk_bytes=options["chunk_bytes"],
        num_workers=workers,
        use_checkpoint=True,  # an interrupted run continues
        reorder_files=False,
        start_method="fork",
    )


def _write_split(
    dataset: Any, folder: Path, order: np.ndarray, options: dict[str, Any], workers: int
) -> tuple[list[ChunkInfo], list[list[str]]]:
    """LitData's ``optimize`` of ``dataset`` in ``order`` into the local ``folder`` (continuing its
    checkpoints); returns the chunks and the unreadable files left out."""
    folder.mkdir(parents=True, exist_ok=True)
    bad_log = folder / UNREADABLE_LOG  # beside the checkpoints: an interrupted run's entries stay
    if not (folder / "index.json").exists():  # else written before an interruption: only checked
        _optimize(dataset, folder, order, options, workers, bad_log)
    index = json.loads((folder / "index.json").read_text())
    where = str(folder / "index.json")
    if index.get("config", {}).get("data_format") != list(DATA_FORMAT):
        raise RuntimeError(
            f"{where}: LitData wrote data format {index.get('config', {}).get('data_format')!r}, not "
            f"{list(DATA_FORMAT)}: this LitData version is not supported"
        )
    chunks = _chunk_infos(folder, index)
    check_index(index, chunks, where)
    bad: dict[str, str] = {}
    if bad_log.exists():
        for line in bad_log.read_text().splitlines():
            name, why = json.loads(line)
            bad[name] = why  # a file retried after an interruption is listed once
    written = sum(c.samples for c in chunks)
    if written + len(bad) != len(order):
        raise RuntimeError(
            f"{folder}: wrote {written} samples and left out {len(bad)} unreadable of {len(order)}; "
            "the split is inconsistent: prepare it again with prepare.overwrite=true"
        )
    return chunks, sorted([name, why] for name, why in bad.items())


def _shard_like(names: Sequence[str], split: str) -> bool:
    """Whether files under ``split/`` are shards (of LitData or ours) that may be deleted."""
    ours = (SPLIT_MANIFEST, PENDING, "index.json", UNREADABLE_LOG)
    for name in names:
        base = name[len(split) + 1 :]
        if not (base.startswith(("chunk-", ".checkpoints/")) or base in ours):
            return False
    return True


def _remove_split(storage: Storage, split: str) -> None:
    if isinstance(storage, LocalStorage):
        storage.remove_tree(split)
    else:
        storage.delete(list(storage.list_files(split)))


# ---------------------------------------------------------------- the whole preparation


def prepare_shards(
    factory: DatasetFactory | Callable[[str], Dataset | None],
    output_dir: str | os.PathLike[str],
    splits: Sequence[Split] = SPLITS,
    max_side: int | None = None,
    quality: int = 90,
    num_workers: int | None = None,
    chunk_bytes: str = "64MB",
    on_bad_image: BadImagePolicy = "skip",
    seed: int = 0,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    staging_dir: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
    retries: int = 3,
) -> dict[str, Any]:
    """Write the ``splits`` of ``factory`` as shards under ``output_dir`` (see the module); returns the
    metadata written to ``output_dir/lightning_aug.json``.

    Args:
        factory: a dataset factory (its ``"train"`` split gives the class names where it has them).
        output_dir: a local folder or ``s3://bucket/prefix``.
        splits: the splits to write (a split the factory has not is skipped).
        max_side: shrink every image to at most this side and store it as JPEG; ``None``: keep.
        quality: the JPEG quality of re-encoded images.
        num_workers: processes (``None``: the CPUs this process may use).
        chunk_bytes: the size of a chunk (LitData's ``"64MB"`` form).
        on_bad_image: ``"skip"``: leave unreadable files out (listed in the metadata and a warning);
            ``"raise"``: fail after listing them all, writing no metadata.
        seed: the seed of each split's order.
        overwrite: rewrite splits prepared from other data or options (else refused).
        storage_options: boto3 client arguments for ``s3://`` (``endpoint_url``, ...).
        staging_dir: where ``s3://`` splits are written before their upload (``None``: a folder
            per ``output_dir`` under ``$LIGHTNING_AUG_CACHE/prepare``; kept across interruptions).
        timeout, retries: for each request to object storage.

    Raises:
        ValueError: bad arguments, or unreadable files with ``on_bad_image="raise"``.
        DataError: ``output_dir`` cannot be written, or holds shards of other data or options and
            ``overwrite`` is false (naming what changed).
    """
    from lightning_aug._version import __version__
    from lightning_aug.data.loader import available_cpus
    from lightning_aug.hparams import describe
    from lightning_aug.secrets import redact

    check_int("max_side", max_side, 8, optional=True)
    check_int("quality", quality, 1)
    if not quality <= 100:
        raise ValueError(f"quality must be an int from 1 to 100, got {quality!r}")
    if on_bad_image not in ("skip", "raise"):
        raise ValueError(f"on_bad_image must be 'skip' or 'raise', got {on_bad_image!r}")
    if isinstance(splits, str) or any(s not in SPLITS for s in splits) or not splits:
        raise ValueError(f"splits must be a non-empty list of {list(SPLITS)}, got {splits!r}")
    check_int("seed", seed, 0)
    check_bool("overwrite", overwrite)
    if not isinstance(chunk_bytes, str | int) or isinstance(chunk_bytes, bool):
        raise ValueError(f"chunk_bytes must be a size such as '64MB', got {chunk_bytes!r}")
    workers = num_workers if num_workers is not None else available_cpus()
    check_int("num_workers", workers, 1)
    out = os.fspath(output_dir)
    options_given = {k: v for k, v in (storage_options or {}).items() if v is not None}  # None: unset
    storage = open_storage(out, options_given, timeout, retries)
    if not isinstance(storage, (LocalStorage, S3Storage)):
        raise DataError(
            f"output_dir {storage.describe()}: shards are written to local folders and s3:// only"
        )
    storage.check_writable()
    factory = as_factory(factory)  # the contract (lightning_aug.data.source)
    factory.prepare()

    # what every split of the source would be written from
    datasets: dict[str, Any] = {}
    for split in SPLITS:
        dataset = factory(split)
        if dataset is not None:
            datasets[split] = as_source(dataset)
    if not any(split in datasets for split in splits):
        raise ValueError(f"the dataset factory has none of the splits {list(splits)}")
    first = datasets.get("train", next(iter(datasets.values())))
    classes = [str(c) for c in first.classes] if first.classes else None
    num_classes = len(classes) if classes else factory.num_classes
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError("the dataset factory gives no class names (classes) and no num_classes")
    options = {"max_side": max_side, "quality": quality, "order_seed": seed, "chunk_bytes": str(chunk_bytes)}
    records: dict[str, dict[str, Any]] = {
        split: {
            "format": FORMAT,
            "source": dataset.fingerprint(),
            "classes": classes,
            "options": options,
        }
        for split, dataset in datasets.items()
    }
    for entry in records.values():
        entry["key"] = record_key(entry)

    # what the output holds, and what to do with each split
    old = storage.read_json(METADATA)
    foreign = "files not written by lightning-aug-prepare"
    if isinstance(old, dict) and old.get("version") == 1 and "format" not in old:
        foreign = "shards of format 1 (lightning-aug 0.2: no checksums, the folder's order)"
    plan: dict[str, str] = {}
    conflicts: list[str] = []
    for split in SPLITS:
        files = storage.list_files(split)
        manifest = storage.read_json(f"{split}/{SPLIT_MANIFEST}") if files else None
        pending = storage.read_json(f"{split}/{PENDING}") if files else None
        record: dict[str, Any] | None = records.get(split)
        wanted = split in splits and record is not None
        if manifest is not None and record is not None and manifest.get("key") == record["key"]:
            plan[split] = "keep"
        elif not files:
            plan[split] = "write" if wanted else "absent"
        elif manifest is None and pending is not None and record is not None and wanted:
            # an interrupted split: continued if started from the same record, else begun again
            plan[split] = "resume" if pending.get("key") == record["key"] else "restart"
        elif overwrite and (manifest is not None or pending is not None or _shard_like(list(files), split)):
            plan[split] = "rewrite" if wanted else "remove"
        elif manifest is None and pending is None:
            conflicts.append(f"{split}/ holds {foreign} ({len(files)} files)")
        elif record is None:
            conflicts.append(f"{split}: the source has no {split} split any more")
        elif not wanted and manifest is None:
            plan[split] = "remove"  # an interrupted split not asked for: never listed, removed
        else:
            conflicts.append(f"{split}: " + "; ".join(record_changes(manifest or pending or {}, record)))
    if conflicts:
        raise DataError(
            f"prepare.output_dir {storage.describe()} holds shards of other data or options ("
            + " | ".join(conflicts)
            + "): rerun with prepare.overwrite=true to rewrite them, or choose another prepare.output_dir"
        )

    # write: the metadata goes first and comes back last
    if any(action != "keep" and action != "absent" for action in plan.values()):
        storage.delete([METADATA])
    entries: dict[str, dict[str, Any]] = {}
    unreadable: dict[str, list[list[str]]] = {}
    for split in SPLITS:
        action = plan[split]
        if action in ("rewrite", "remove", "restart"):
            if action == "restart":
                warnings.warn(
                    f"prepare: {split}: the interrupted preparation found there was of other data or "
                    "options; it is begun again",
                    UserWarning,
                    stacklevel=2,
                )
            _remove_split(storage, split)
        if action in ("absent", "remove") or (action != "keep" and split not in splits):
            continue
        record = records[split]
        assert record is not None
        if action != "keep":
            staging = None if isinstance(storage, LocalStorage) else _staging(out, staging_dir)
            strict = on_bad_image == "raise"
            manifest = _prepare_split(storage, split, datasets[split], record, workers, staging, strict)
        else:
            manifest = storage.read_json(f"{split}/{SPLIT_MANIFEST}")
            if not isinstance(manifest, dict):
                raise DataError(f"{storage.location(f'{split}/{SPLIT_MANIFEST}')} vanished while preparing")
        entries[split] = {
            "samples": manifest["samples"],
            "chunks": manifest["chunks"],
            "source": manifest["source"],
        }
        unreadable[split] = manifest.get("unreadable", [])

    listed = [f"{split}: {name} ({why})" for split, bad in unreadable.items() for name, why in bad]
    if listed and on_bad_image == "raise":  # those splits stay pending: nothing lists them
        raise ValueError(
            f"{len(listed)} unreadable image file(s), no metadata written (on_bad_image='raise'):\n  "
            + "\n  ".join(listed)
        )
    if listed:
        warnings.warn(
            f"prepare: left out {len(listed)} unreadable image file(s):\n  " + "\n  ".join(listed),
            UserWarning,
            stacklevel=2,
        )
    metadata = {
        "format": FORMAT,
        "written_by": f"lightning-aug {__version__}",
        "layout": {"fields": list(FIELDS), "data_format": list(DATA_FORMAT)},
        "classes": classes,
        "num_classes": num_classes,
        "options": options,
        "factory": redact(describe(factory)),
        "splits": entries,
        "unreadable": {split: [name for name, _ in bad] for split, bad in unreadable.items() if bad},
    }
    storage.write_json(METADATA, metadata)
    return metadata


def _staging(out: str, staging_dir: str | os.PathLike[str] | None) -> Path:
    if staging_dir is not None:
        return Path(staging_dir).expanduser()
    from lightning_aug.data.cache import default_cache_dir

    return default_cache_dir() / "prepare" / hashlib.sha1(out.encode()).hexdigest()[:16]


def _prepare_split(
    storage: Storage,
    split: str,
    dataset: Any,
    record: dict[str, Any],
    workers: int,
    staging: Path | None,
    strict: bool,
) -> dict[str, Any]:
    """Write one split (locally, or into ``staging`` and uploaded) and its manifest; returns the
    manifest. With ``strict`` (``on_bad_image="raise"``) a split with unreadable files is neither
    uploaded nor given a manifest: it stays pending."""
    options = record["options"]
    order = np.random.default_rng([options["order_seed"], SPLITS.index(split)]).permutation(len(dataset))
    pending = {"key": record["key"], "samples": len(dataset)}
    if isinstance(storage, LocalStorage):
        folder = storage.path / split
    else:
        assert staging is not None
        folder = staging / split
        staged = folder / PENDING
        if staged.exists() and json.loads(staged.read_text()).get("key") != record["key"]:
            shutil.rmtree(folder)  # staged work of other data: begun again
        storage.write_json(f"{split}/{PENDING}", pending)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PENDING).write_text(json.dumps(pending))
    chunks, bad = _write_split(dataset, folder, order, options, workers)
    manifest = {
        **record,
        "samples": sum(c.samples for c in chunks),
        "chunks": [c.as_dict() for c in chunks],
        "unreadable": bad,
    }
    if bad and strict:
        return manifest
    if staging is not None:  # upload what is not there yet, then drop what the split no longer has
        for chunk in chunks:
            storage.put_file(f"{split}/{chunk.name}", folder / chunk.name, chunk.sha256)
        index = folder / "index.json"
        storage.put_file(f"{split}/index.json", index, sha256_file(index))
        keep = {f"{split}/{c.name}" for c in chunks} | {f"{split}/index.json", f"{split}/{PENDING}"}
        storage.delete([name for name in storage.list_files(split) if name not in keep])
    storage.write_json(f"{split}/{SPLIT_MANIFEST}", manifest)
    storage.delete([f"{split}/{PENDING}"])
    if staging is None:
        with contextlib.suppress(FileNotFoundError):
            (folder / UNREADABLE_LOG).unlink()
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return manifest
