"""Credentials never go into a file we write or a line we print: the keys that hold them, and the
user-info of URLs, are replaced by :data:`REDACTED` wherever arguments are recorded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact"]

REDACTED = "<redacted>"
# secret, token, password, session (token), credentials, both parts of an access-key pair, API and
# private keys, authorisation headers
_SECRET = re.compile(
    r"secret|token|passw(or)?d|session|credential|access_?key|api_?key|private_?key|^key$|^auth(orization)?$",
    re.IGNORECASE,
)


def is_secret_key(key: Any) -> bool:
    """Whether a mapping key names a credential (``aws_secret_access_key``, ``token``, ...)."""
    return isinstance(key, str) and _SECRET.search(key) is not None


def redact(value: Any) -> Any:
    """``value`` with the values of secret keys replaced by :data:`REDACTED` and URLs' user-info
    removed, recursively (mappings, lists, tuples); other values unchanged."""
    from lightning_aug.data.shards.storage import without_userinfo

    if isinstance(value, Mapping):
        return {k: (REDACTED if is_secret_key(k) and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str) and "://" in value and "@" in value:
        return without_userinfo(value)
    return value
