"""Datasets larger than a disk: shards prepared once by ``lightning-aug-prepare``
(:func:`~lightning_aug.data.shards.prepare.prepare_shards`, LitData's chunk format), read from a
local folder or object storage (``s3://``; ``gs://`` and the other URLs LitData reads).

:class:`StreamingShards` (``data=streaming``) is the dataset factory; its splits are
:class:`ShardDataset` s, map-style datasets over the chunks: a sample is read from its chunk with one
``pread``, decoded by the image-folder path (crops while decoding included), and its label checked
against the classes. Each chunk is verified (size, CRC-32) before its first sample is read
(:mod:`~lightning_aug.data.shards.chunks`), and the split's LitData index is checked against the
layout we write before anything else (:mod:`~lightning_aug.data.shards.layout`): no shard content
reaches ``pickle``.

The training order (:meth:`ShardDataset.order`) shuffles the chunks, then the samples within
windows of ``shuffle_chunks`` consecutive chunks, for each epoch from the run seed; ranks read
contiguous parts of it (:class:`~lightning_aug.data.sampling.EpochSampler`), so each rank and worker
reads few chunks at a time, and a resumed run continues at the next sample exactly. Preparation
writes every split in a seeded random order, so every chunk already holds every class in proportion.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from lightning_aug._checks import check_int
from lightning_aug.data.datasets.base import DatasetFactory, Split
from lightning_aug.data.decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    CropDecoding,
    Decoder,
    check_decoding_options,
    decode_sample,
)
from lightning_aug.data.sampling import SampleKey, sample_index
from lightning_aug.data.shards.chunks import ChunkStore, default_shard_cache, parse_size
from lightning_aug.data.shards.layout import METADATA, ChunkInfo, check_index
from lightning_aug.data.shards.metadata import ShardMetadata, read_metadata
from lightning_aug.data.shards.storage import Storage, open_storage, without_userinfo
from lightning_aug.data.source import Source
from lightning_aug.errors import DataError
from lightning_aug.secrets import REDACTED

__all__ = ["ShardDataset", "StreamingShards", "prepare_shards", "read_metadata"]

SHUFFLE_CHUNKS = 4  # chunks whose samples are shuffled together (see docs/shards.md's measurements)


def prepare_shards(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """:func:`lightning_aug.data.shards.prepare.prepare_shards` (needs the ``streaming`` extra)."""
    from lightning_aug.data.shards.prepare import prepare_shards as prepare

    return prepare(*args, **kwargs)


class StreamingShards(DatasetFactory):
    """Dataset factory of shards written by ``lightning-aug-prepare``.

    Args:
        input_dir: the shards' folder or URL (``s3://bucket/prefix``; credentials and endpoint as
            boto3 reads them: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``,
            profiles).
        cache_dir: where remote chunks are cached and local ones' verification is remembered;
            ``None``: a folder per ``input_dir`` under ``$LIGHTNING_AUG_CACHE/shards``.
        max_cache_size: the most the cache of remote chunks holds (``"100GB"``); ``None``: no limit.
        decoder, max_image_pixels: as for image folders.
        storage_options: boto3 client arguments (``{"endpoint_url": ...}``). Keys are best left to the
            environment (``AWS_ACCESS_KEY_ID``, ...) or credential files: given here they are used, but
            recorded as ``"<redacted>"`` (hparams, checkpoints, saved configs), and a DataModule
            rebuilt from a checkpoint reads them from the environment.
        shuffle_chunks: chunks whose samples are shuffled together in training (the chunk order is
            shuffled too); more mixes more but opens (and, remote, caches) more chunks at once.
        timeout: seconds a request to object storage may take, all attempts together.
        retries: attempts per request, with exponential backoff.
        prefetch: chunks fetched ahead of the one being read.

    Raises:
        DataError: ``input_dir`` missing, not prepared, or its metadata malformed or of another layout
            (at construction); a split's index missing or not matching the metadata (when built).
    """

    def __init__(
        self,
        input_dir: str,
        cache_dir: str | None = None,
        max_cache_size: str | int | None = "100GB",
        decoder: Decoder = "auto",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        storage_options: dict[str, Any] | None = None,
        shuffle_chunks: int = SHUFFLE_CHUNKS,
        timeout: float = 60.0,
        retries: int = 3,
        prefetch: int = 2,
    ) -> None:
        self.decoder, _, self.max_image_pixels = check_decoding_options(decoder, "raise", max_image_pixels)
        self.shuffle_chunks: int = check_int("shuffle_chunks", shuffle_chunks, 1)
        self.retries: int = check_int("retries", retries, 1)
        self.prefetch: int = check_int("prefetch", prefetch, 0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self.max_cache_bytes = parse_size(max_cache_size)
        if not isinstance(input_dir, str) or not input_dir:
            raise DataError(
                f"data.input_dir must name the folder or URL of prepared shards, got {input_dir!r}"
            )
        self.input_dir = input_dir
        # credentials redacted in a checkpoint come back as "<redacted>": left to the environment
        options = dict(storage_options or {})
        self.redacted = sorted(k for k, v in options.items() if v == REDACTED)
        self.storage_options = {k: v for k, v in options.items() if v is not None and v != REDACTED}
        self.storage: Storage = open_storage(
            input_dir, self.storage_options, self.timeout, self.retries, self.redacted
        )
        self.cache_dir = cache_dir
        self.metadata: ShardMetadata = read_metadata(self.storage, input_dir)

    @property
    def num_classes(self) -> int:  # type: ignore[override]  # a property of the contract's attribute
        return self.metadata.num_classes

    @property
    def classes(self) -> list[str] | None:
        return self.metadata.classes

    class_order = "shards"

    def image_sizes(self, limit: int = 64, seed: int = 0) -> list[tuple[str, tuple[int, int]]] | None:
        """Local shards: the first train chunk's (no other chunk is read); remote: ``None`` (nothing is
        fetched to see them)."""
        if "://" in self.input_dir:
            return None
        data = self.build("train")
        return data.image_sizes(limit, seed) if data is not None else []

    def build(self, split: Split) -> ShardDataset | None:
        chunks = self.metadata.splits.get(split)
        if chunks is None:
            return None
        where = self.storage.location(f"{split}/index.json")
        index = self.storage.read_json(f"{split}/index.json")
        if index is None:
            shown = without_userinfo(self.input_dir)
            raise DataError(
                f"data.input_dir {shown!r}: split {split!r} is listed in {METADATA} but {where} is missing; "
                "the shards are incomplete: prepare them again"
            )
        check_index(index, chunks, where)
        from pathlib import Path

        cache = Path(self.cache_dir).expanduser() if self.cache_dir else default_shard_cache(self.input_dir)
        store = ChunkStore(
            self.storage, split, chunks, cache, self.max_cache_bytes, self.prefetch, failure_ttl=self.timeout
        )
        return ShardDataset(
            store,
            num_classes=self.num_classes,
            classes=self.classes,
            decoder=self.decoder,
            max_image_pixels=self.max_image_pixels,
            shuffle_chunks=self.shuffle_chunks,
        )


class ShardDataset(CropDecoding, Source):
    """``(image, label)`` samples of one split's chunks (see the module); the image as the image-folder
    path decodes it, a crop the pipeline starts with run while decoding.

    Args:
        store: the split's chunks.
        num_classes: labels must be in ``[0, num_classes)``.
        classes: class names.
        decoder, max_image_pixels: as for image folders.
        shuffle_chunks: chunks whose samples are shuffled together by :meth:`order`.
    """

    accepts_keys = True  # SampleKeys: the epoch tells which chunks to prefetch

    def __init__(
        self,
        store: ChunkStore,
        num_classes: int,
        classes: list[str] | None = None,
        decoder: Decoder = "auto",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        shuffle_chunks: int = SHUFFLE_CHUNKS,
    ) -> None:
        self.store, self.num_classes, self.classes = store, num_classes, classes
        self.decoder, self.max_image_pixels, self.shuffle_chunks = decoder, max_image_pixels, shuffle_chunks
        self._decode_with(decoder)
        sizes = np.array([c.samples for c in store.chunks], dtype=np.int64)
        self._ends = np.cumsum(sizes)
        self._starts = self._ends - sizes
        self.order_seed = 0  # the run's (epoch_order), the same on every rank
        self._last_chunk = -1

    @property
    def chunks(self) -> list[ChunkInfo]:
        return self.store.chunks

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def image_sizes(self, limit: int = 256, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        """``(name, (height, width))`` of a seeded sample of up to ``limit`` samples of the first chunk
        (one chunk: other chunks are not fetched for this), from their headers."""
        from lightning_aug.data.datasets.folder import sample_positions
        from lightning_aug.data.decoders import image_size

        if not self.chunks:
            return []
        file = self.store.open(0)
        found = []
        for position in sample_positions(self.chunks[0].samples, limit, seed):
            data, _, name = file.sample(position, self.num_classes)
            size = image_size(data)
            if size is not None:
                found.append((name, size))
        return found

    def sample_name(self, index: int) -> str:
        """The file name sample ``index`` was prepared from."""
        chunk, position = self.locate(index)
        return self.store.open(chunk).sample(position, self.num_classes)[2]

    def locate(self, index: int) -> tuple[int, int]:
        """``(chunk, position in the chunk)`` of sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        chunk = int(np.searchsorted(self._ends, index, "right"))
        return chunk, index - int(self._starts[chunk])

    def epoch_order(self, seed: int) -> Callable[[int], np.ndarray]:
        """The training order for the run's ``seed`` (:meth:`order`); the chunks are fetched ahead in
        that order too."""
        self.order_seed = seed
        return self.order

    def order(self, epoch: int) -> np.ndarray:
        """The training order of ``epoch``: the chunks shuffled, then the samples of each window of
        ``shuffle_chunks`` consecutive chunks shuffled together; a function of ``(order_seed, epoch)``."""
        return _window_order(self._bounds(), self.shuffle_chunks, self.order_seed, epoch)

    def _bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(self._starts.tolist()), tuple(self._ends.tolist())

    def _prefetch_after(self, chunk: int, epoch: int) -> None:
        """Fetch the chunks that follow ``chunk`` in ``epoch``'s order."""
        if self.store.prefetch_count <= 0:
            return
        sequence = _chunk_sequence(self._bounds(), self.shuffle_chunks, self.order_seed, epoch)
        where = sequence.index(chunk) if chunk in sequence else -1
        self.store.prefetch(sequence[where + 1 : where + 1 + self.store.prefetch_count])

    def __getitem__(self, key: int | SampleKey) -> tuple[Any, int]:
        index = sample_index(key)
        chunk, position = self.locate(index)
        file = self.store.open(chunk)
        if isinstance(key, SampleKey) and chunk != self._last_chunk:
            self._last_chunk = chunk
            self._prefetch_after(chunk, key.epoch)
        data, label, name = file.sample(position, self.num_classes)
        where = f"{file.label}: sample {position} ({name})"
        return decode_sample(data, name, where, self.image_decoder, self._head, self.max_image_pixels), label


@lru_cache(maxsize=8)
def _window_order(
    bounds: tuple[tuple[int, ...], tuple[int, ...]], window: int, seed: int, epoch: int
) -> np.ndarray:
    starts, ends = bounds
    rng = np.random.default_rng([seed, epoch])
    chunks = rng.permutation(len(starts))
    parts = []
    for begin in range(0, len(chunks), window):
        members = [np.arange(starts[c], ends[c]) for c in chunks[begin : begin + window]]
        parts.append(rng.permutation(np.concatenate(members)))
    order = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    order.flags.writeable = False
    return order


@lru_cache(maxsize=8)
def _chunk_sequence(
    bounds: tuple[tuple[int, ...], tuple[int, ...]], window: int, seed: int, epoch: int
) -> list[int]:
    """The chunks in the order ``epoch`` first reads them."""
    order = _window_order(bounds, window, seed, epoch)
    chunk_of = np.searchsorted(np.asarray(bounds[1]), order, "right")
    _, first = np.unique(chunk_of, return_index=True)
    return [int(c) for c in chunk_of[np.sort(first)]]
