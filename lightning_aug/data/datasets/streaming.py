"""Datasets larger than a disk: LitData shards of encoded images, prepared once, streamed from a local
folder or object storage (``s3://``, ``gs://``), split by rank and worker, resumable mid-epoch.

- :func:`prepare_shards` (the ``lightning-aug-prepare`` app) turns the splits of any dataset factory
  into shards under ``output_dir/<split>/`` with LitData's ``optimize``, in parallel processes,
  resumable: a split already written is kept, an interrupted one continues from LitData's checkpoints.
  Each sample is ``{"image": encoded bytes, "label": int, "name": str}``; image files are stored as
  they are where a fast decoder reads them (plain JPEG/PNG), else re-encoded as PNG; with
  ``max_side`` every image is shrunk to at most that side and stored as JPEG of ``quality``. Files
  that cannot be decoded are listed (``unreadable`` in the metadata) and left out (``skip``) or make
  the preparation fail after listing them all (``raise``). ``output_dir/lightning_aug.json`` holds the
  class names and split sizes.
- :class:`StreamingShards` (``data=streaming``) is the dataset factory over them; its datasets are
  LitData ``StreamingDataset`` s that decode (crops while decoding included) and run the DataModule's
  per-sample pipeline in the loader workers; ``AugDataModule`` serves them with LitData's
  ``StreamingDataLoader``, whose state Lightning saves in checkpoints (mid-epoch resume).

Needs the ``streaming`` extra (``pip install 'lightning-aug[streaming]'``: ``litdata``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from lightning_aug._checks import check_int
from lightning_aug.data.datasets.base import DatasetFactory, Split
from lightning_aug.data.datasets.folder import (
    DEFAULT_MAX_IMAGE_PIXELS,
    BadImagePolicy,
    Decoder,
    check_decoding,
    decode_image,
)
from lightning_aug.data.decoders import ImageDecoder, make_decoder
from lightning_aug.data.jpeg import fast_format

__all__ = ["METADATA", "StreamingShards", "prepare_shards"]

METADATA = "lightning_aug.json"
SPLITS: tuple[Split, ...] = ("train", "val", "test")


try:
    import litdata
    from litdata import StreamingDataset
except ImportError as error:  # pragma: no cover - the streaming extra is not installed
    raise ImportError(
        "streamed datasets need LitData: pip install 'lightning-aug[streaming]' (or litdata)"
    ) from error


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts]) if _is_remote(root) else str(Path(root, *parts))


# ---------------------------------------------------------------- preparation


def _to_array(image: Any) -> np.ndarray:
    """An RGB HWC uint8 array of a PIL image, an HWC array or a CHW tensor."""
    if hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3] if array.shape[2] >= 3 else np.repeat(array, 3, axis=2))


def _encode(image: np.ndarray, max_side: int | None, quality: int) -> bytes:
    import cv2

    if max_side is None:
        ok, out = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    else:
        h, w = image.shape[:2]
        if max(h, w) > max_side:
            scale = max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, out = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
    if not ok:
        raise ValueError("OpenCV could not encode the image")
    return out.tobytes()


class _Encoder:
    """LitData's ``optimize`` function: sample index -> ``{"image", "label", "name"}``, or ``None``
    (left out) for a file that cannot be decoded, noted in ``bad_log``."""

    def __init__(self, dataset: Any, max_side: int | None, quality: int, bad_log: str) -> None:
        self.dataset, self.max_side, self.quality, self.bad_log = dataset, max_side, quality, bad_log

    def __call__(self, index: int) -> dict[str, Any] | None:
        samples = getattr(self.dataset, "samples", None)
        name = samples.path(index) if samples is not None and hasattr(samples, "path") else f"sample {index}"
        try:
            if samples is not None:  # an image folder: the file's bytes, checked by decoding them
                data, image, label = self.dataset.read_sample(index)  # the file read once
                if self.max_side is None and fast_format(data) is not None:
                    payload = data.tobytes()
                else:
                    payload = _encode(_to_array(image), self.max_side, self.quality)
            else:
                image, label = self.dataset[index][:2]
                payload = _encode(_to_array(image), self.max_side, self.quality)
        except ValueError as err:
            with open(self.bad_log, "a") as log:  # one short line per file: appends do not interleave
                log.write(json.dumps([name, str(err)[:500]]) + "\n")
            return None
        # LitData picks serialisers by value: a string ending in ".jpg" would be read as an image
        # path and decoded on every read, so the name is stored as bytes, the image as an array
        return {
            "image": np.frombuffer(payload, dtype=np.uint8),
            "label": int(label),
            "name": name.encode("utf-8", "surrogateescape"),
        }


def prepare_shards(
    factory: DatasetFactory | Callable[[str], Dataset | None],
    output_dir: str | os.PathLike[str],
    splits: Sequence[Split] = SPLITS,
    max_side: int | None = None,
    quality: int = 90,
    num_workers: int | None = None,
    chunk_bytes: str = "64MB",
    on_bad_image: BadImagePolicy = "skip",
) -> dict[str, Any]:
    """Write the ``splits`` of ``factory`` as LitData shards under ``output_dir`` (see the module);
    returns the metadata written to ``output_dir/lightning_aug.json``.

    Args:
        factory: a dataset factory (its ``"train"`` split gives the class names where it has them).
        output_dir: a local folder or a URL LitData writes to (``s3://...``).
        splits: the splits to write (a split the factory has not is skipped).
        max_side: shrink every image to at most this side and store it as JPEG; ``None``: keep.
        quality: the JPEG quality of re-encoded images.
        num_workers: processes (``None``: the CPUs this process may use).
        chunk_bytes: the size of a shard; shuffling is across shards and within the window of loaded
            ones, so smaller shards mix better and larger ones stream better.
        on_bad_image: ``"skip"``: leave unreadable files out (listed in the metadata and a warning);
            ``"raise"``: fail after listing them all, writing no metadata.

    Raises:
        ValueError: bad arguments, or unreadable files with ``on_bad_image="raise"``.
    """
    import warnings

    from lightning_aug.data.loader import available_cpus

    check_int("max_side", max_side, 8, optional=True)
    check_int("quality", quality, 1)
    if not quality <= 100:
        raise ValueError(f"quality must be an int from 1 to 100, got {quality!r}")
    if on_bad_image not in ("skip", "raise"):
        raise ValueError(f"on_bad_image must be 'skip' or 'raise', got {on_bad_image!r}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"splits must be among {list(SPLITS)}, got {list(splits)}")
    workers = num_workers if num_workers is not None else available_cpus()
    check_int("num_workers", workers, 1)
    out = os.fspath(output_dir)
    if not _is_remote(out):
        Path(out).mkdir(parents=True, exist_ok=True)
    prepare = getattr(factory, "prepare", None)
    if prepare is not None:
        prepare()
    metadata: dict[str, Any] = {"version": 1, "max_side": max_side, "quality": quality, "splits": {}}
    unreadable: dict[str, list[list[str]]] = {}
    for split in splits:
        dataset = factory(split)
        if dataset is None:
            continue
        if split == "train" or "classes" not in metadata:
            classes = getattr(dataset, "classes", None)
            if classes:
                metadata["classes"] = [str(c) for c in classes]
        log_dir = tempfile.mkdtemp(prefix="lightning-aug-prepare-")
        bad_log = os.path.join(log_dir, "unreadable.jsonl")
        target = _join(out, split)
        if _is_remote(out) or not (Path(target) / "index.json").is_file():  # done splits are kept
            litdata.optimize(
                fn=_Encoder(dataset, max_side, quality, bad_log),
                inputs=list(range(len(dataset))),  # type: ignore[arg-type]
                output_dir=target,
                chunk_bytes=chunk_bytes,
                num_workers=workers,
                use_checkpoint=True,  # an interrupted run continues
                reorder_files=False,
                start_method="fork",
            )
        bad = []
        if os.path.exists(bad_log):
            bad = sorted(json.loads(line) for line in Path(bad_log).read_text().splitlines())
        unreadable[split] = bad
        metadata["splits"][split] = len(dataset) - len(bad)  # type: ignore[arg-type]
    if "classes" in metadata:
        metadata["num_classes"] = len(metadata["classes"])
    elif getattr(factory, "num_classes", None):
        metadata["num_classes"] = int(getattr(factory, "num_classes"))  # noqa: B009
    listed = [f"{split}: {name} ({why})" for split, bad in unreadable.items() for name, why in bad]
    if listed and on_bad_image == "raise":
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
    metadata["unreadable"] = {split: [name for name, _ in bad] for split, bad in unreadable.items() if bad}
    _write_metadata(out, metadata)
    return metadata


def _write_metadata(out: str, metadata: dict[str, Any]) -> None:
    text = json.dumps(metadata, indent=1, sort_keys=True)
    if not _is_remote(out):
        (Path(out) / METADATA).write_text(text)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / METADATA
        local.write_text(text)
        if not out.startswith("s3://"):
            raise ValueError(f"output_dir {out!r}: remote shards are written to s3:// only")
        import boto3  # a LitData dependency; credentials and endpoint from the environment

        bucket, _, key = out[len("s3://") :].partition("/")
        boto3.client("s3").upload_file(str(local), bucket, f"{key.rstrip('/')}/{METADATA}".lstrip("/"))


# ---------------------------------------------------------------- streaming


def _plain_http_endpoint(storage_options: dict[str, Any] | None) -> bool:
    endpoint = (storage_options or {}).get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL", "")
    return str(endpoint).startswith("http://")


def use_boto3_for_plain_http(storage_options: dict[str, Any] | None) -> None:
    """Read shards with boto3 where the S3 endpoint is plain ``http://`` (a MinIO or other
    S3-compatible server inside a cluster, the tests' loopback server): LitData reads chunks with
    obstore where it is installed, and obstore refuses plain http (``BadScheme``) whatever the
    environment says. Called in every process that reads (the loader workers too)."""
    if _plain_http_endpoint(storage_options):
        import litdata.streaming.downloader as downloader

        downloader._OBSTORE_AVAILABLE = False


def read_metadata(
    input_dir: str, cache_dir: str | None = None, storage_options: dict | None = None
) -> dict[str, Any]:
    """The ``lightning_aug.json`` of prepared shards (local or remote).

    Raises:
        FileNotFoundError: naming ``input_dir`` when it is missing, empty or not prepared.
    """
    if not isinstance(input_dir, str) or not input_dir:
        raise FileNotFoundError(
            f"data.input_dir must name the folder or URL of prepared shards, got {input_dir!r}"
        )
    if not _is_remote(input_dir):
        folder = Path(input_dir).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"data.input_dir {input_dir!r} does not exist or is not a directory")
        path = folder / METADATA
        if not path.is_file():
            raise FileNotFoundError(
                f"data.input_dir {input_dir!r} holds no prepared shards (no {METADATA}): "
                f"run lightning-aug-prepare ... prepare.output_dir={input_dir} first"
            )
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, METADATA)
        try:
            if input_dir.startswith("s3://"):  # boto3, as LitData reads indexes: no async runtime here,
                import boto3  # which would not survive the fork of the loader workers

                bucket, _, key = input_dir[len("s3://") :].partition("/")
                client = boto3.client("s3", **(storage_options or {}))
                client.download_file(bucket, f"{key.rstrip('/')}/{METADATA}".lstrip("/"), local)
            else:
                from litdata.streaming.downloader import get_downloader

                get_downloader(input_dir, cache_dir or tmp, [], storage_options or {}).download_file(
                    _join(input_dir, METADATA), local
                )
            return json.loads(Path(local).read_text())
        except Exception as err:  # the storage library's error: missing object, bucket, credentials
            raise FileNotFoundError(
                f"data.input_dir {input_dir!r}: cannot read {METADATA} ({type(err).__name__}: {err}); "
                "is it prepared, and are the credentials/endpoint set?"
            ) from None


class StreamingShards(DatasetFactory):
    """Dataset factory of shards written by :func:`prepare_shards` (``lightning-aug-prepare``).

    Args:
        input_dir: the shards' folder or URL (``s3://bucket/prefix``; credentials and endpoint as
            boto3 reads them: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``).
        cache_dir: where remote shards are cached (``None``: LitData's default).
        max_cache_size: the most the cache holds (``"50GB"``); older shards are evicted.
        decoder, max_image_pixels: as for image folders (unreadable files were left out when
            preparing; one that still fails raises, naming the sample).
        storage_options: passed to LitData's storage client (e.g. ``{"endpoint_url": ...}``).
        shuffle_window: samples LitData shuffles across (``None``: its default); with shards of
            ``chunk_bytes`` this sets how well an epoch mixes.

    The train split is shuffled (per epoch, the same order on every rank for the DataModule's seed);
    every split is divided among ranks and workers by LitData.
    """

    def __init__(
        self,
        input_dir: str,
        cache_dir: str | None = None,
        max_cache_size: str = "100GB",
        decoder: Decoder = "auto",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        storage_options: dict[str, Any] | None = None,
        shuffle_window: int | None = None,
    ) -> None:
        self.decoder, _ = check_decoding(decoder, "raise")
        self.max_image_pixels = check_int("max_image_pixels", max_image_pixels, 1, optional=True)
        self.input_dir = str(input_dir) if input_dir is not None else input_dir
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        self.storage_options = dict(storage_options or {})
        self.shuffle_window = check_int("shuffle_window", shuffle_window, 1, optional=True)
        self.metadata = read_metadata(self.input_dir, cache_dir, self.storage_options)

    @property
    def num_classes(self) -> int | None:
        return self.metadata.get("num_classes")

    @property
    def classes(self) -> list[str] | None:
        return self.metadata.get("classes")

    def build(self, split: Split) -> StreamingImages | None:
        if split not in self.metadata.get("splits", {}):
            return None
        return StreamingImages(
            _join(self.input_dir, split),
            shuffle=split == "train",
            decoder=self.decoder,
            max_image_pixels=self.max_image_pixels,
            classes=self.classes,
            cache_dir=self.cache_dir,
            max_cache_size=self.max_cache_size,
            storage_options=self.storage_options,
            item_shuffle_window=self.shuffle_window,
        )


class StreamingImages(StreamingDataset):
    """``(image, label)`` samples decoded from the shards' bytes, then the attached per-sample
    transform (:meth:`attach`); a crop the pipeline starts with runs while decoding."""

    is_streaming = True

    def __init__(
        self,
        input_dir: str,
        shuffle: bool = False,
        decoder: Decoder = "auto",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        classes: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        # one item deserialised per read: LitData's batched decoding copies ~27 encoded images per
        # image served here (measured: 0.55 s of array copies per 800 reads of 1024 px JPEGs)
        kwargs.setdefault("batch_decode", False)
        super().__init__(input_dir, shuffle=shuffle, **kwargs)
        self.decoder = decoder
        self.image_decoder: ImageDecoder | None = make_decoder(decoder)
        self.max_image_pixels = max_image_pixels
        self.classes = classes
        self._head: Callable[[np.ndarray, ImageDecoder, str], Any] | None = None
        self._transform: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
        self._reseed: Callable[[int], None] | None = None
        self._storage_options = kwargs.get("storage_options")
        use_boto3_for_plain_http(self._storage_options)

    @property
    def decoder_name(self) -> str:
        return "pil" if self.image_decoder is None else self.image_decoder.name

    def set_crop_decoder(self, head: Callable[[np.ndarray, ImageDecoder, str], Any] | None) -> bool:
        self._head = head if self.image_decoder is not None else None
        return head is not None and self._head is not None

    def attach(self, transformed: Any) -> None:
        """Run ``transformed.transform`` (a :class:`TransformedDataset`'s) on every sample."""
        self._transform, self._reseed = transformed.transform, transformed.reseed

    def reseed(self, seed: int) -> None:
        if self._reseed is not None:
            self._reseed(seed)

    def __setstate__(self, state: dict[str, Any]) -> None:  # a spawned worker
        self.__dict__.update(state)
        use_boto3_for_plain_http(state.get("_storage_options"))

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        name = bytes(item["name"]).decode("utf-8", "surrogateescape")
        try:
            data = np.asarray(item["image"], dtype=np.uint8)
            image = decode_image(data, name, self.image_decoder, self._head, self.max_image_pixels)
        except Exception as err:
            raise ValueError(f"cannot decode the sample of {name!r} in {self.input_dir}: {err}") from err
        sample = (image, int(item["label"]))
        return self._transform(sample) if self._transform is not None else sample
