"""Where shards live: a local folder or an ``s3://`` prefix (any S3-compatible server, plain-http
endpoints included), read and written by name, with bounded timeouts and retries and errors that
name the place.

:class:`LocalStorage` and :class:`S3Storage` have the same small interface (read, write, upload,
list, delete by name under a root), so preparing, checking and verifying shards is one code path for
both. Other URLs LitData reads (``gs://``, ...) are read through LitData's downloader
(:class:`LitDataStorage`, read only).

S3 clients are boto3's, built with ``storage_options`` (``endpoint_url``, keys, ``region_name``) on
top of the environment (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, profiles), a connect and read
timeout and ``retries`` attempts with exponential backoff (botocore's ``standard`` mode).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from lightning_aug.data.shards.places import (
    endpoint_of,
    is_remote,
    join,
    s3_client_config,
    sha256_file,
    without_userinfo,
)
from lightning_aug.errors import DataError

__all__ = [
    "LitDataStorage",
    "LocalStorage",
    "S3Storage",
    "Storage",
    "endpoint_of",
    "is_remote",
    "join",
    "open_storage",
    "s3_client_config",
    "sha256_file",
    "without_userinfo",
]


class Storage(ABC):
    """Files under one root, by name (``"train/index.json"``)."""

    root: str

    @abstractmethod
    def describe(self) -> str:
        """The root as a user knows it (a folder, or a URL and its endpoint), for messages."""

    @abstractmethod
    def read_bytes(self, name: str) -> bytes | None:
        """The file's bytes; ``None`` when it does not exist."""

    def read_json(self, name: str) -> Any | None:
        """The file parsed as JSON; ``None`` when it does not exist.

        Raises:
            DataError: the file is not JSON.
        """
        data = self.read_bytes(name)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as err:
            raise DataError(
                f"{self.location(name)} is not valid JSON ({err}); the shards are damaged"
            ) from None

    def location(self, name: str) -> str:
        """Where ``name`` is, for messages."""
        return join(without_userinfo(self.root), name)

    @abstractmethod
    def write_bytes(self, name: str, data: bytes) -> None:
        """Write (replace) a file, atomically where the storage can."""

    def write_json(self, name: str, value: Any) -> None:
        self.write_bytes(name, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode())

    @abstractmethod
    def put_file(self, name: str, local: str | os.PathLike[str], sha256: str) -> bool:
        """Store the local file under ``name`` unless the same content (``sha256``) is there already;
        returns whether it was written."""

    @abstractmethod
    def download(self, name: str, local: str | os.PathLike[str], what: str) -> None:
        """Copy the file ``name`` to the local path ``local``.

        Raises:
            DataError: it cannot be read; the message says ``cannot download <what>`` and why.
        """

    @abstractmethod
    def list_files(self, prefix: str) -> dict[str, int]:
        """The files under ``prefix/`` (names relative to the root) and their sizes."""

    @abstractmethod
    def delete(self, names: list[str]) -> None:
        """Delete these files (missing ones are ignored)."""

    @abstractmethod
    def check_writable(self) -> None:
        """Raise a :class:`DataError` naming the root unless files can be written there."""


class LocalStorage(Storage):
    """A local folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = os.fspath(root)
        self.root = text[len("file://") :] if text.startswith("file://") else text
        self.path = Path(self.root).expanduser()

    def describe(self) -> str:
        return str(self.path)

    def location(self, name: str) -> str:
        return str(self.path / name)

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write_bytes(self, name: str, data: bytes) -> None:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, target)

    def put_file(self, name: str, local: str | os.PathLike[str], sha256: str) -> bool:
        target = self.path / name
        if Path(local).resolve() == target.resolve():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
        return True

    def download(self, name: str, local: str | os.PathLike[str], what: str) -> None:
        try:
            shutil.copyfile(self.path / name, local)
        except FileNotFoundError:
            raise DataError(f"cannot download {what}: it is missing ({self.path / name})") from None

    def list_files(self, prefix: str) -> dict[str, int]:
        folder = self.path / prefix
        if not folder.is_dir():
            return {}
        return {
            str(p.relative_to(self.path)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()
        }

    def delete(self, names: list[str]) -> None:
        for name in names:
            (self.path / name).unlink(missing_ok=True)

    def remove_tree(self, prefix: str) -> None:
        shutil.rmtree(self.path / prefix, ignore_errors=True)

    def check_writable(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise DataError(f"{self.path} is a file, not a folder: give a folder to write shards into")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".lightning-aug-probe-", dir=self.path)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise DataError(f"cannot write into {self.path}: {err.strerror or err}") from None


class S3Storage(Storage):
    """An ``s3://bucket/prefix`` on any S3-compatible server.

    Args:
        url: ``s3://bucket/prefix``.
        storage_options: boto3 client arguments (``endpoint_url``, ``aws_access_key_id``, ...).
        timeout: seconds a request may take in all (split over the attempts).
        retries: attempts per request, with exponential backoff.
        redacted: storage options that were given but came back redacted (a DataModule rebuilt from
            a checkpoint): named when credentials are missing.
    """

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        redacted: list[str] | None = None,
    ) -> None:
        if not url.startswith("s3://"):
            raise ValueError(f"S3Storage takes an s3:// URL, got {without_userinfo(url)!r}")
        self.root = url.rstrip("/")
        self.bucket, _, prefix = url[len("s3://") :].partition("/")
        self.prefix = prefix.strip("/")
        self.storage_options = dict(storage_options or {})
        self.timeout, self.retries = timeout, retries
        self.redacted = list(redacted or [])
        self._client: Any = None
        self._client_pid = -1

    @property
    def client(self) -> Any:
        """A boto3 client of this process (a client does not survive a fork)."""
        if self._client is None or self._client_pid != os.getpid():
            self._client_pid = os.getpid()
            import boto3

            options = dict(self.storage_options)
            config = s3_client_config(self.timeout, self.retries)
            if options.get("config") is not None:
                config = config.merge(options.pop("config"))
            # a session of its own: credentials are read now (the default session caches them)
            self._client = boto3.session.Session().client("s3", config=config, **options)
        return self._client

    def __getstate__(self) -> dict[str, Any]:  # a client does not cross a fork or a pickle
        return {**self.__dict__, "_client": None}

    def describe(self) -> str:
        return f"{without_userinfo(self.root)} (endpoint {endpoint_of(self.storage_options)})"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _fail(self, err: Exception, what: str) -> DataError:
        """A one-line error: ``cannot <what>`` (naming the object and the endpoint), and why."""
        from botocore.exceptions import ClientError, NoCredentialsError

        endpoint = f"(endpoint {endpoint_of(self.storage_options)})"
        head = f"cannot {what}" if endpoint in what else f"cannot {what} {endpoint}"
        if isinstance(err, NoCredentialsError):
            hint = (
                f"; the checkpoint holds {self.redacted} redacted: pass them again, e.g. "
                "load_from_checkpoint(..., dataset=StreamingShards(..., storage_options=...))"
                if self.redacted
                else ""
            )
            return DataError(
                f"{head}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, "
                f"or the storage options){hint}"
            )
        if isinstance(err, ClientError):
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket" or (code == "404" and what.startswith("reach")):
                return DataError(f"{head}: bucket {self.bucket!r} does not exist")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return DataError(f"{head}: access denied ({code}); check the credentials")
            return DataError(f"{head}: {code or type(err).__name__}")
        text = " ".join(str(err).split())
        return DataError(
            f"{head} after {self.retries} attempt(s) within {self.timeout:g} s: {type(err).__name__}: {text}"
        )

    def _missing(self, err: Exception) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(err, ClientError) and str(err.response.get("Error", {}).get("Code", "")) in (
            "NoSuchKey",
            "404",
            "NotFound",
        )

    def read_bytes(self, name: str) -> bytes | None:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read())
        except Exception as err:
            if self._missing(err):
                return None
            raise self._fail(err, f"read {self.location(name)}") from None

    def write_bytes(self, name: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)
        except Exception as err:
            raise self._fail(err, f"write {self.location(name)}") from None

    def head_sha256(self, name: str) -> str | None:
        """The SHA-256 recorded with an object we uploaded; ``None`` when missing or not recorded."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        except Exception as err:
            if self._missing(err):
                return None
            raise self._fail(err, f"read {self.location(name)}") from None
        return head.get("Metadata", {}).get("sha256")

    def put_file(self, name: str, local: str | os.PathLike[str], sha256: str) -> bool:
        if self.head_sha256(name) == sha256:  # uploaded before an interruption: kept
            return False
        from boto3.s3.transfer import TransferConfig

        try:
            self.client.upload_file(
                os.fspath(local),
                self.bucket,
                self.key(name),
                ExtraArgs={"Metadata": {"sha256": sha256}},
                Config=TransferConfig(use_threads=False),
            )
        except Exception as err:
            raise self._fail(err, f"upload {self.location(name)}") from None
        return True

    def download(self, name: str, local: str | os.PathLike[str], what: str) -> None:
        from boto3.s3.transfer import TransferConfig

        try:
            self.client.download_file(  # the client's retries only (s3transfer would add 5 more)
                self.bucket,
                self.key(name),
                os.fspath(local),
                Config=TransferConfig(use_threads=False, num_download_attempts=1),
            )
        except Exception as err:
            if self._missing(err):
                raise DataError(f"cannot download {what}: it is missing ({self.location(name)})") from None
            raise self._fail(err, f"download {what}") from None

    def list_files(self, prefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        start = self.key(prefix.strip("/")) + "/"
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            ):
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) + 1 :] if self.prefix else item["Key"]
                    found[name] = int(item["Size"])
        except Exception as err:
            raise self._fail(err, f"list {self.location(prefix)}") from None
        return found

    def delete(self, names: list[str]) -> None:
        try:
            for start in range(0, len(names), 1000):
                batch = [{"Key": self.key(n)} for n in names[start : start + 1000]]
                if batch:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except Exception as err:
            raise self._fail(err, f"delete from {self.describe()}") from None

    def check_writable(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as err:
            raise self._fail(err, f"reach {without_userinfo(self.root)}") from None


class LitDataStorage(Storage):
    """Read-only access to the other URLs LitData reads (``gs://``, ...), through its downloader."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.root = url.rstrip("/")
        self.storage_options = dict(storage_options or {})

    def describe(self) -> str:
        return without_userinfo(self.root)

    def read_bytes(self, name: str) -> bytes | None:
        from litdata.streaming.downloader import get_downloader

        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "file")
            try:
                get_downloader(self.root, tmp, [], self.storage_options).download_file(
                    join(self.root, name), local
                )
            except FileNotFoundError:
                return None
            except Exception as err:  # the storage library's error: missing object, credentials
                message = " ".join(str(err).split())
                raise DataError(
                    f"cannot read {self.location(name)}: {type(err).__name__}: {message}"
                ) from None
            return Path(local).read_bytes() if os.path.exists(local) else None

    def download(self, name: str, local: str | os.PathLike[str], what: str) -> None:
        data = self.read_bytes(name)
        if data is None:
            raise DataError(f"cannot download {what}: it is missing ({self.location(name)})")
        Path(local).write_bytes(data)

    def _read_only(self, *args: Any) -> Any:
        raise DataError(f"{self.describe()}: shards are written to local folders and s3:// only")

    write_bytes = put_file = list_files = delete = check_writable = _read_only  # type: ignore[assignment]


def open_storage(
    root: str,
    storage_options: dict[str, Any] | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    redacted: list[str] | None = None,
) -> Storage:
    """The storage of ``root``: a local folder, ``s3://`` or another URL LitData reads."""
    if not is_remote(root):
        return LocalStorage(root)
    if root.startswith("s3://"):
        return S3Storage(root, storage_options, timeout, retries, redacted)
    return LitDataStorage(root, storage_options)
