"""Names of places where shards live: local paths and URLs (``s3://``, ``gs://``), a URL shown
without its credentials, the S3 endpoint a client talks to, botocore's bounded timeouts and
retries, and a file's SHA-256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lightning_aug.data.reader import read_blocks

__all__ = ["endpoint_of", "is_remote", "join", "s3_client_config", "sha256_file", "without_userinfo"]


def is_remote(path: str) -> bool:
    """Whether ``path`` is a URL (``s3://``, ``gs://``) rather than a local path (``file://`` is local)."""
    return "://" in path and not path.startswith("file://")


def join(root: str, *parts: str) -> str:
    """``root/part/...`` for a URL or a local path."""
    return "/".join([root.rstrip("/"), *parts]) if is_remote(root) else str(Path(root, *parts))


def without_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part (it must never reach a message or a file)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def endpoint_of(storage_options: dict[str, Any] | None) -> str:
    """The S3 endpoint a client of ``storage_options`` talks to, for messages."""
    endpoint = (
        (storage_options or {}).get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or (os.environ.get("AWS_ENDPOINT_URL"))
    )
    return without_userinfo(str(endpoint)) if endpoint else "the default AWS endpoint"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, read in 8 MiB blocks."""
    digest = hashlib.sha256()
    for block in read_blocks(path):  # the one reader: a regular file, never a FIFO or device
        digest.update(block)
    return digest.hexdigest()


def s3_client_config(timeout: float, retries: int) -> Any:
    """botocore's client settings for ``timeout`` seconds in all per request and ``retries``
    attempts with exponential backoff: each attempt waits ``timeout / (retries + 1)`` for the server,
    leaving room for the backoff (LitData's own client retries 1000 times, so an outage stalled a
    run for minutes without a word)."""
    from botocore.config import Config

    per_attempt = max(1.0, float(timeout) / (max(1, retries) + 1))  # headroom for the backoff
    return Config(
        connect_timeout=min(10.0, per_attempt),
        read_timeout=per_attempt,
        retries={"max_attempts": max(1, retries), "mode": "standard"},
    )
