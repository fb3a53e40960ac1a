"""Credentials never go into a file we write or a line we print.

What counts as a credential: the value of any key that names one (``secret``, ``token``,
``password``, ``session``, ``credential``, either part of an access-key pair, API and private keys,
``auth``), anywhere in arguments or configs, and the user-info (``user:password@``) of URLs. They are
replaced by :data:`REDACTED`:

- in recorded arguments (:func:`redact`): ``AugDataModule.hparams`` (so the logger's ``hparams.yaml``
  and every checkpoint), the metadata of prepared shards;
- in files others write for our apps (:func:`redact_files`): Hydra's ``config.yaml``, ``hydra.yaml``,
  ``overrides.yaml`` and job log (:class:`lightning_aug.cli.hydra_callbacks.RedactSecrets`), the
  LightningCLI's saved ``config.yaml``;
- in the apps' one-line errors (:func:`redact_text` with the values given on the command line);
- in what loggers record of the command line (W&B keeps the program's arguments in its run file):
  the apps start every logger's experiment with ``sys.argv`` redacted (:func:`start_loggers`).

A DataModule rebuilt from a checkpoint gets :data:`REDACTED` where a credential was; the shard
factory drops those entries, so boto3 reads the standard environment variables and credential files.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "REDACTED",
    "is_secret_key",
    "redact",
    "redact_files",
    "redact_text",
    "redacted_argv",
    "secret_values",
    "secrets_in_overrides",
    "start_loggers",
]

REDACTED = "<redacted>"
_SECRET = re.compile(
    r"secret|token|passw(or)?d|session|credential|access_?key|api_?key|private_?key|^key$|^auth(orization)?$",
    re.IGNORECASE,
)
_URL_WITH_USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@'\"]+@", re.IGNORECASE)


def is_secret_key(key: Any) -> bool:
    """Whether a mapping key names a credential (``aws_secret_access_key``, ``token``, ...)."""
    return isinstance(key, str) and _SECRET.search(key) is not None


def _url_without_userinfo(text: str) -> str:
    return _URL_WITH_USERINFO.sub(lambda m: m.group(0).split("://", 1)[0] + "://", text)


def redact(value: Any) -> Any:
    """``value`` with the values of secret keys replaced by :data:`REDACTED` and URLs' user-info
    removed, recursively (mappings, lists, tuples); other values unchanged.

    Example::

        >>> redact({"endpoint_url": "http://u:p@host:9000", "aws_secret_access_key": "s3cr3t", "n": 1})
        {'endpoint_url': 'http://host:9000', 'aws_secret_access_key': '<redacted>', 'n': 1}
    """
    if isinstance(value, Mapping):
        return {k: (REDACTED if is_secret_key(k) and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str) and "@" in value and "://" in value:
        return _url_without_userinfo(value)
    return value


def _userinfo(text: str) -> list[str]:
    found = []
    for match in _URL_WITH_USERINFO.finditer(text):
        try:
            parts = urlsplit(match.group(0) + "x")
        except ValueError:
            continue
        found += [p for p in (parts.username, parts.password) if p]
        found.append(match.group(0).split("://", 1)[1][:-1])  # user:password, replaced as a whole
    return found


def secret_values(value: Any) -> set[str]:
    """Every credential in ``value`` (values of secret keys, URLs' user and password), for
    :func:`redact_text`; values shorter than 4 characters are left out (they would match too much)."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            if is_secret_key(key) and isinstance(item, (str, int)) and not isinstance(item, bool):
                found.add(str(item))
            else:
                found |= secret_values(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= secret_values(item)
    elif isinstance(value, str):
        found |= set(_userinfo(value))
    return {v for v in found if len(v) >= 4 and v != REDACTED}


def secrets_in_overrides(overrides: Iterable[str]) -> set[str]:
    """The credentials given in command-line overrides (``data.storage_options.aws_secret_access_key=X``,
    ``data.input_dir=https://user:password@host/...``)."""
    found: set[str] = set()
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            continue
        if is_secret_key(key.lstrip("+~").rsplit(".", 1)[-1]):
            found.add(value.strip("'\""))
        found |= set(_userinfo(value))
    return {v for v in found if len(v) >= 4}


def redact_text(text: str, values: Iterable[str]) -> str:
    """``text`` with every occurrence of ``values`` replaced by :data:`REDACTED` (longest first)."""
    for value in sorted(set(values), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def redact_files(paths: Iterable[str | Path], values: Iterable[str]) -> list[Path]:
    """Rewrite these text files with ``values`` redacted; returns the files that changed."""
    values = [v for v in values if v]
    changed: list[Path] = []
    if not values:
        return changed
    for path in map(Path, paths):
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        clean = redact_text(text, values)
        if clean != text:
            path.write_text(clean)
            changed.append(path)
    return changed


@contextlib.contextmanager
def redacted_argv(values: Iterable[str]) -> Iterator[None]:
    """Within this block, ``sys.argv`` has ``values`` (and the credentials of its overrides) redacted;
    restored after (a DDP launcher re-runs the real command line for the other ranks)."""
    saved = list(sys.argv)
    values = set(values) | secrets_in_overrides(saved[1:])
    sys.argv[:] = [saved[0], *(redact_text(arg, values) for arg in saved[1:])]
    try:
        yield
    finally:
        sys.argv[:] = saved


def start_loggers(loggers: Iterable[object], values: Iterable[str] = ()) -> None:
    """Start each logger's experiment (what Lightning does lazily at the start of fitting) with the
    credentials of the command line and ``values`` redacted from ``sys.argv``, so that no logger records
    them (W&B writes the program's arguments into its run file). On ranks other than 0 Lightning's
    loggers start nothing."""
    with redacted_argv(values):
        for logger in loggers:
            if hasattr(logger, "experiment"):
                _ = logger.experiment
