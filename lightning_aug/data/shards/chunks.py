"""The chunks of one split as local, verified files: read in place from a local folder, or downloaded
into a cache from object storage; each chunk's size and CRC-32 checked against the metadata before
its first sample is read.

- A local chunk is checked once per file version: a marker named by its size, modification time
  and inode is left in the cache folder, so DataLoader workers and later runs do not hash it again
  (CRC-32 reads at about 4.5 GB/s on the development machine; SHA-256, which ``verify`` also checks,
  at about 1.5 GB/s).
- A remote chunk is downloaded by one process at a time (a file lock; others wait and then find it),
  into a temporary file that is checked before it is renamed into place: only verified chunks are
  ever in the cache. Every process prefetches the next chunks of the epoch's order in a background
  thread. Past ``max_cache_bytes`` the least recently opened chunks are deleted (a reader that has a
  chunk open keeps reading it).
- A download that failed (after the storage's own retries) is remembered for ``failure_ttl``
  seconds, in this process and in a marker file beside the cache: the other readers of that chunk
  (the foreground after a prefetch, the other workers waiting on its lock) raise the same error at
  once instead of each waiting out the timeout again, so an outage fails after about one timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lightning_aug.data.reader import read_blocks
from lightning_aug.data.shards.layout import ChunkFile, ChunkInfo
from lightning_aug.data.shards.storage import LocalStorage, Storage
from lightning_aug.errors import DataError

__all__ = ["ChunkStore", "crc32_file", "default_shard_cache", "parse_size"]

_OPEN_CHUNKS = 4  # chunk files a process keeps open


def crc32_file(path: str | os.PathLike[str]) -> int:
    """The CRC-32 of a file, read in 8 MiB blocks."""
    value = 0
    for block in read_blocks(path):  # the one reader: a regular file, never a FIFO or device
        value = zlib.crc32(block, value)
    return value


def parse_size(value: Any, name: str = "max_cache_size") -> int | None:
    """Bytes of ``"100GB"``, ``"512MB"``, ``"2G"`` (powers of 1000; ``"GiB"``: 1024) or an int;
    ``None`` stays ``None`` (no limit).

    Raises:
        ValueError: naming ``name`` and the value.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(i?)B?\s*", str(value), re.IGNORECASE)
    if isinstance(value, bool) or match is None:
        raise ValueError(f"{name} must be a size such as '100GB' or a number of bytes, got {value!r}")
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    size = int(float(number) * base ** "_KMGT".index(unit.upper() or "_"))
    if size <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return size


def default_shard_cache(root: str) -> Path:
    """The cache folder of the shards at ``root``: under ``$LIGHTNING_AUG_CACHE/shards`` (see
    :func:`lightning_aug.data.datasets.synthetic.default_cache_dir`), one folder per root."""
    from lightning_aug.data.cache import default_cache_dir

    key = root if "://" in root else os.path.realpath(os.path.expanduser(root))
    return default_cache_dir() / "shards" / hashlib.sha1(key.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (released by the OS if the holder dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: downloads may then happen twice
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ChunkStore:
    """The verified local files of one split's chunks (see the module).

    Args:
        storage: where the shards are.
        split: the split's folder name.
        chunks: the split's chunks as the metadata records them.
        cache_dir: the cache folder (remote chunks, verification markers).
        max_cache_bytes: the most the cache of remote chunks holds; ``None``: no limit.
        prefetch: chunks fetched ahead of the one being read.
        failure_ttl: seconds a failed download is reported again without a new attempt.
    """

    def __init__(
        self,
        storage: Storage,
        split: str,
        chunks: list[ChunkInfo],
        cache_dir: Path,
        max_cache_bytes: int | None = None,
        prefetch: int = 2,
        failure_ttl: float = 60.0,
    ) -> None:
        self.storage, self.split, self.chunks = storage, split, chunks
        self.cache_dir, self.max_cache_bytes, self.prefetch_count = cache_dir, max_cache_bytes, prefetch
        self.failure_ttl = failure_ttl
        self.local = isinstance(storage, LocalStorage)
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._open: OrderedDict[int, ChunkFile] = OrderedDict()
        self._verified: set[int] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._queued: set[int] = set()
        self._failed: dict[int, tuple[float, str]] = {}  # chunk -> (when, message)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # open files, threads and locks stay in their process
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_process_state()

    def _check_process(self) -> None:
        if os.getpid() != self._pid:  # a forked worker: nothing of the parent's is usable here
            self._reset_process_state()

    def label(self, index: int) -> str:
        """How messages name chunk ``index``."""
        return f"{self.chunks[index].name} of split {self.split!r} in {self.storage.describe()}"

    # ------------------------------------------------------------ local files
    def path(self, index: int) -> str:
        """The local file of chunk ``index``, verified (downloaded first if remote).

        Raises:
            DataError: missing, truncated or corrupt (naming the chunk), or a download failed.
        """
        self._check_process()
        if self.local:
            assert isinstance(self.storage, LocalStorage)
            path = str(self.storage.path / self.split / self.chunks[index].name)
            if index not in self._verified:
                self._verify_local(index, path)
            return path
        return self._cached(index)

    def _check_file(self, index: int, path: str, size: int | None = None) -> None:
        info, label = self.chunks[index], self.label(index)
        if size is None:
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                raise DataError(f"{label} is missing ({path})") from None
        if size != info.bytes:
            what = "truncated" if size < info.bytes else "longer than prepared"
            raise DataError(f"{label} is {what}: {size} bytes, expected {info.bytes} ({path})")
        crc = crc32_file(path)
        if crc != info.crc32:
            raise DataError(
                f"{label} is corrupt: its CRC-32 {crc:08x} differs from {info.crc32:08x} recorded when it "
                f"was prepared ({path})"
            )

    def _verify_local(self, index: int, path: str) -> None:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise DataError(f"{self.label(index)} is missing ({path})") from None
        info = self.chunks[index]
        marker = self.cache_dir / "verified" / f"{info.name}.{stat.st_size}.{stat.st_mtime_ns}.{stat.st_ino}"
        if not marker.exists():
            self._check_file(index, path, stat.st_size)
            with contextlib.suppress(OSError):  # a read-only cache: verified again next time
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
        self._verified.add(index)

    def _recent_failure(self, index: int, marker: Path) -> str | None:
        """The message of a download of chunk ``index`` that failed less than ``failure_ttl`` ago."""
        now = time.time()
        when, message = self._failed.get(index, (0.0, ""))
        if now - when < self.failure_ttl:
            return message
        with contextlib.suppress(OSError):
            if now - marker.stat().st_mtime < self.failure_ttl:
                return marker.read_text()
        return None

    def _cached(self, index: int) -> str:
        info = self.chunks[index]
        folder = self.cache_dir / self.split
        target = folder / info.name
        if self._fresh(target, info):
            return str(target)
        marker = folder / f".{info.name}.failed"
        failed = self._recent_failure(index, marker)
        if failed is not None:
            raise DataError(failed)
        with _file_lock(folder / f".{info.name}.lock"):
            if self._fresh(target, info):  # another process fetched it meanwhile
                return str(target)
            failed = self._recent_failure(index, marker)  # another process just failed to
            if failed is not None:
                raise DataError(failed)
            tmp = folder / f".{info.name}.{os.getpid()}.{threading.get_ident()}.part"
            try:
                self.storage.download(f"{self.split}/{info.name}", tmp, what=self.label(index))
                self._check_file(index, str(tmp))
                os.replace(tmp, target)
            except DataError as err:
                self._failed[index] = (time.time(), str(err))
                with contextlib.suppress(OSError):
                    marker.write_text(str(err))
                raise
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
        self._evict(keep=info.name)
        return str(target)

    @staticmethod
    def _fresh(target: Path, info: ChunkInfo) -> bool:
        try:
            if target.stat().st_size == info.bytes:  # only verified chunks are renamed into place
                os.utime(target)  # recently used: evicted last
                return True
        except FileNotFoundError:
            pass
        return False

    def _evict(self, keep: str) -> None:
        if self.max_cache_bytes is None:
            return
        folder = self.cache_dir / self.split
        entries = []
        for entry in os.scandir(folder):
            if entry.name.startswith("chunk-") and entry.name != keep:
                with contextlib.suppress(FileNotFoundError):
                    stat = entry.stat()
                    entries.append((stat.st_mtime_ns, entry.path, stat.st_size))
        total = sum(size for _, _, size in entries) + self.chunks[0].bytes
        for _, path, size in sorted(entries):
            if total <= self.max_cache_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a process reading it keeps its open file
            total -= size

    # ------------------------------------------------------------ reading
    def open(self, index: int) -> ChunkFile:
        """Chunk ``index`` opened for reading (a few stay open per process)."""
        self._check_process()
        found = self._open.get(index)
        if found is not None:
            self._open.move_to_end(index)
            return found
        chunk = ChunkFile(self.path(index), self.chunks[index], self.label(index))
        self._open[index] = chunk
        while len(self._open) > _OPEN_CHUNKS:
            self._open.popitem(last=False)[1].close()
        return chunk

    def prefetch(self, indices: list[int]) -> None:
        """Fetch (remote) or verify (local) these chunks in a background thread of this process;
        failures are left to the read that needs the chunk, which raises them."""
        self._check_process()
        with self._lock:
            todo = [i for i in indices if i not in self._queued and i not in self._verified]
            if not todo:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lightning-aug-prefetch")
            self._queued.update(todo)
        for index in todo:
            self._pool.submit(self._quietly, index)

    def _quietly(self, index: int) -> None:
        try:
            self.path(index)
        except Exception:  # the read that needs this chunk raises it
            pass
        finally:
            with self._lock:
                self._queued.discard(index)
