"""What prepared shards are made from: a fingerprint of their source (files: paths, labels, sizes,
modification times; arrays: their bytes), and what changed between two records of a split (shards
of other data or options are stale, and refused or rewritten)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

__all__ = ["array_fingerprint", "file_fingerprint", "record_changes", "record_key"]


def file_fingerprint(samples: Any, root: str) -> dict[str, Any]:
    """The fingerprint of a source of files (``(path, label)`` samples): their paths (relative to
    ``root``), labels, sizes and modification times."""
    digest = hashlib.sha256()
    count = 0
    for path, label in samples:
        try:
            stat = os.stat(path)
            seen = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            seen = "missing"
        shown = os.path.relpath(path, root) if root else path
        digest.update(f"{shown}\0{label}\0{seen}\n".encode("utf-8", "surrogateescape"))
        count += 1
    return {"kind": "files", "samples": count, "digest": digest.hexdigest()}


def array_fingerprint(images: np.ndarray, labels: Any) -> dict[str, Any]:
    """The fingerprint of a source of arrays: their bytes."""
    digest = hashlib.sha256()
    digest.update(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    return {"kind": "arrays", "samples": len(images), "digest": digest.hexdigest()}


def record_key(record: dict[str, Any]) -> str:
    """A digest of a split's record (what its shards were made from, and how)."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def record_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two split records, in words."""
    said = []
    if old.get("format") != new["format"]:
        said.append(f"format {old.get('format')!r} -> {new['format']!r}")
    before, after = old.get("source") or {}, new["source"]
    if before.get("samples") != after["samples"]:
        said.append(f"source samples {before.get('samples')} -> {after['samples']}")
    elif before.get("digest") != after["digest"]:
        said.append("source files changed (same count; names, sizes or modification times differ)")
    if old.get("classes") != new["classes"]:
        count = len(old.get("classes") or [])
        said.append(f"classes ({count} -> {len(new['classes'] or [])}: {str(new['classes'])[:80]})")
    for key, value in new["options"].items():
        if (old.get("options") or {}).get(key) != value:
            said.append(f"{key} {(old.get('options') or {}).get(key)!r} -> {value!r}")
    return said or ["its record differs"]
