"""WebDataset tar shards as they come: ``train-*.tar``, ``val-*.tar`` (and ``test-*.tar``) of samples
``<key>.jpg`` (or ``.png``, ``.webp``, ...) beside ``<key>.cls``, as timm and many published datasets
store them, read map-style.

The tars are indexed once (the standard library's ``tarfile`` reads each member's header, PAX and GNU
long names included, and gives its data offset; webdataset's own indexed reader, ``wids``, needs a
JSON index written beforehand), then every sample is one ``pread`` of its image's bytes: a
map-style source like every other, so the DataModule's order (a permutation per epoch), mid-epoch
resume and DDP split work on it unchanged. A sample's key is its member path up to the first dot of
the file name (WebDataset's rule); its label is the ``.cls`` member's text, under the one label rule
(:mod:`lightning_aug.data.labels`: integers are class indices); the tars are opened through the one
reader (regular files only) and each image's size is capped before it is read; decoding is the one
decode site's (:mod:`lightning_aug.data.decode`).
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightning_aug._checks import check_fraction
from lightning_aug.data.datasets.folder import IMAGE_EXTENSIONS, split_per_class
from lightning_aug.data.datasets.samples import SampleList
from lightning_aug.data.decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    BadImagePolicy,
    CropDecoding,
    Decoder,
    SkipMemory,
    check_decoding_options,
    decode_image,
    read_or_skip,
)
from lightning_aug.data.decoders import image_size
from lightning_aug.data.labels import class_indices, class_order
from lightning_aug.data.reader import UnreadableFile, file_cap, open_regular
from lightning_aug.data.source import DatasetFactory, Source, Split
from lightning_aug.errors import DataError

__all__ = ["TarSamples", "WebDataset", "index_tars"]

_IMAGE_SUFFIXES = tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS)
_LABEL_SUFFIXES = ("cls", "cls.txt", "label")
_LABEL_BYTES = 64  # a .cls member is a number or a name, not a file
DEFAULT_VAL_SPLIT = 0.1


def _key(name: str) -> tuple[str, str]:
    """``(key, extension)`` of a member name: WebDataset's rule, the path up to the first dot of the
    file name (``a/b.c.jpg`` -> ``("a/b", "c.jpg")``)."""
    folder, _, base = name.rpartition("/")
    stem, _, suffix = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), suffix.lower()


# the index of a tar, by (real path, size, modification time): built once per process
_INDEXES: dict[tuple[str, int, int], tuple[list[str], np.ndarray, np.ndarray, list[str]]] = {}


def index_tar(path: str) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """``(keys, image offsets, image sizes, label texts)`` of the samples of one tar, in its order.

    Raises:
        DataError: the file is no tar, is no regular file, or a sample has no image or no label.
    """
    try:
        fd, size = open_regular(path, what="a tar shard")
    except UnreadableFile as err:
        raise DataError(f"WebDataset shard: {err}") from None
    stat = os.fstat(fd)
    cache = (os.path.realpath(path), size, stat.st_mtime_ns)
    if cache in _INDEXES:
        os.close(fd)
        return _INDEXES[cache]
    images: dict[str, tuple[int, int]] = {}
    labels: dict[str, str] = {}
    order: list[str] = []
    try:
        with os.fdopen(fd, "rb") as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                key, suffix = _key(member.name)
                if key not in images and key not in labels:
                    order.append(key)
                if suffix in _IMAGE_SUFFIXES and key not in images:
                    images[key] = (member.offset_data, member.size)
                elif suffix in _LABEL_SUFFIXES and key not in labels:
                    if member.size > _LABEL_BYTES:
                        raise DataError(f"{path}: {member.name} has {member.size} bytes, not a label")
                    extracted = tar.extractfile(member)
                    text = extracted.read(_LABEL_BYTES) if extracted is not None else b""
                    labels[key] = text.decode("utf-8", "replace").strip()
    except tarfile.TarError as err:
        raise DataError(f"WebDataset shard {path!r} is not a readable tar file: {err}") from None
    keys = [k for k in order if k in images or k in labels]
    for key in keys:
        if key not in images:
            raise DataError(
                f"{path}: sample {key!r} has no image member ({', '.join(_IMAGE_SUFFIXES[:4])}, ...)"
            )
        if key not in labels:
            raise DataError(f"{path}: sample {key!r} has no label member ({key}.cls)")
    found = (
        keys,
        np.array([images[k][0] for k in keys], dtype=np.int64),
        np.array([images[k][1] for k in keys], dtype=np.int64),
        [labels[k] for k in keys],
    )
    _INDEXES[cache] = found
    return found


def index_tars(paths: Sequence[str]) -> tuple[SampleList, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The samples of several tars: ``(names with their label texts, tar of each, offsets, sizes,
    label texts)``; names are ``<tar file name>/<key>``."""
    names: list[str] = []
    tars, offsets, sizes, texts = [], [], [], []
    for number, path in enumerate(paths):
        keys, offset, size, label = index_tar(path)
        names += [f"{os.path.basename(path)}/{k}" for k in keys]
        tars.append(np.full(len(keys), number, dtype=np.int32))
        offsets.append(offset)
        sizes.append(size)
        texts += label
    empty = np.zeros(0, dtype=np.int64)
    return (
        SampleList((name, 0) for name in names),
        np.concatenate(tars) if tars else empty.astype(np.int32),
        np.concatenate(offsets) if offsets else empty,
        np.concatenate(sizes) if sizes else empty,
        texts,
    )


class TarSamples(CropDecoding, Source):
    """``(image, label)`` of samples in tar shards, read by offset (see the module).

    Args:
        tars: the tar files.
        names, tar_of, offsets, sizes: each sample's name, tar, image offset and size (:func:`index_tars`).
        labels: each sample's class index.
        classes: the class names.
        decoder, on_bad_image, max_image_pixels: as for image folders.
    """

    def __init__(
        self,
        tars: Sequence[str],
        names: SampleList,
        tar_of: np.ndarray,
        offsets: np.ndarray,
        sizes: np.ndarray,
        labels: np.ndarray,
        classes: list[str],
        decoder: Decoder = "auto",
        on_bad_image: BadImagePolicy = "raise",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self.tars = list(tars)
        self.names, self.tar_of, self.offsets, self.sizes = names, tar_of, offsets, sizes
        self.targets = np.asarray(labels, dtype=np.int64)
        self.classes = classes
        self.on_bad_image, self.max_image_pixels = on_bad_image, max_image_pixels
        self._decode_with(decoder)
        self._skips = SkipMemory()
        self._fds: dict[int, int] = {}  # tar -> descriptor, per process
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fds"], state["_pid"] = {}, -1  # descriptors stay in their process
        return state

    def __len__(self) -> int:
        return len(self.targets)

    def sample_name(self, index: int) -> str:
        return self.names.path(index)

    def known_labels(self) -> np.ndarray:
        return self.targets

    def _bytes(self, index: int) -> np.ndarray:
        if self._pid != os.getpid():  # a forked worker opens its own
            self._fds, self._pid = {}, os.getpid()
        tar = int(self.tar_of[index])
        if tar not in self._fds:
            self._fds[tar] = open_regular(self.tars[tar], what="a tar shard")[0]
        size, cap = int(self.sizes[index]), file_cap(self.max_image_pixels)
        if cap is not None and size > cap:
            raise UnreadableFile(f"{self.sample_name(index)} has {size} bytes, more than an image can take")
        data = os.pread(self._fds[tar], size, int(self.offsets[index]))
        if len(data) != size:
            raise DataError(f"{self.sample_name(index)}: the tar is truncated ({len(data)} of {size} bytes)")
        return np.frombuffer(data, dtype=np.uint8)

    def read_sample(self, index: int) -> tuple[np.ndarray | None, Any, Any]:
        try:
            data = self._bytes(index)
            image = decode_image(
                data, self.sample_name(index), self.image_decoder, self._head, self.max_image_pixels
            )
        except Exception as err:  # whatever the decoding library raises: on_bad_image handles it
            raise DataError(f"cannot decode the image of {self.sample_name(index)}: {err}") from err
        return data, image, int(self.targets[index])

    def _load(self, index: int) -> tuple[Any, int]:
        _, image, label = self.read_sample(index)
        return image, label

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return read_or_skip(
            self._load, self.sample_name, len(self), index, self.on_bad_image, "the tars", self._skips
        )

    def image_sizes(self, limit: int = 256, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        from lightning_aug.data.datasets.folder import sample_positions

        found = []
        for i in sample_positions(len(self), limit, seed):
            try:
                size = image_size(self._bytes(i))
            except (OSError, DataError):
                continue
            if size is not None:
                found.append((self.sample_name(i), size))
        return found

    def fingerprint(self) -> dict[str, Any]:
        from lightning_aug.data.shards.fingerprint import file_fingerprint

        return file_fingerprint(((path, "tar") for path in self.tars), "") | {"samples": len(self)}


class WebDataset(DatasetFactory):
    """Dataset factory of WebDataset tar shards in one folder: ``train-*.tar``, ``val-*.tar`` and
    optionally ``test-*.tar`` (see the module); without val tars, ``val_split`` of each class of the
    train tars is held out (seeded), as for image folders.

    Args:
        root: the folder of the tars.
        val_split: the fraction held out where there are no val tars; ``None``: 0.1 there.
        seed: the seed of that draw.
        classes: the class names in label order (``.cls`` members then hold names, or indices into
            them); ``None``: from the labels (integers: ``0..K-1``; names: sorted).
        decoder, on_bad_image, max_image_pixels: as for image folders.

    Raises:
        FileNotFoundError: ``root`` is not a folder, or holds no ``train-*.tar``.
        DataError: a tar is unreadable, a sample lacks its image or label, a label breaks the label rule.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        val_split: float | None = None,
        seed: int = 0,
        classes: Sequence[str] | None = None,
        decoder: Decoder = "auto",
        on_bad_image: BadImagePolicy = "raise",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self.decoder, self.on_bad_image, self.max_image_pixels = check_decoding_options(
            decoder, on_bad_image, max_image_pixels
        )
        self.root = Path(root).expanduser()
        self.val_split = check_fraction("val_split", val_split)
        self.seed = seed
        self.given_classes = list(classes) if classes is not None else None
        if not self.root.is_dir():
            raise FileNotFoundError(f"WebDataset root {str(self.root)!r} is not a folder (data.root)")
        self.tars = {
            split: sorted(str(p) for p in self.root.glob(f"{split}-*.tar"))
            for split in ("train", "val", "test")
        }
        if not self.tars["train"]:
            found = sorted(p.name for p in self.root.iterdir())[:10]
            raise FileNotFoundError(
                f"WebDataset root {str(self.root)!r} has no train-*.tar (it holds {found}); name the shards "
                "train-000000.tar, val-000000.tar, ... (test-*.tar optional)"
            )
        if self.tars["val"] and val_split is not None:
            raise ValueError(
                f"val_split={val_split} (data.val_split) holds samples out of the train tars, but "
                f"{str(self.root)!r} has val tars already: drop val_split"
            )
        self._built: dict[str, Any] = {}

    @property
    def classes(self) -> list[str]:
        """The class names: given, or from the train tars' labels (:mod:`lightning_aug.data.labels`)."""
        return self._index("train")[1]

    @property
    def num_classes(self) -> int:  # type: ignore[override]  # a property of the contract's attribute
        return len(self.classes)

    @property
    def class_order(self) -> str:  # type: ignore[override]  # a property of the contract's attribute
        return class_order(self.classes, self.given_classes is not None)

    def _index(
        self, split: str
    ) -> tuple[tuple[SampleList, np.ndarray, np.ndarray, np.ndarray, np.ndarray], list[str]]:
        """``((names, tar of each, offsets, sizes, labels), classes)`` of a split's tars, indexed once;
        the other splits' labels are read against the train split's classes."""
        if split not in self._built:
            given = self.given_classes if split == "train" else self._index("train")[1]
            names, tar_of, offsets, sizes, texts = index_tars(self.tars[split])
            labels, classes = class_indices(texts, lambda row: f"{names.path(row)}.cls", given, text=True)
            self._built[split] = ((names, tar_of, offsets, sizes, labels), classes)
        return self._built[split]

    def build(self, split: Split) -> TarSamples | None:
        held_out = not self.tars["val"] and split in ("train", "val")
        if not held_out and not self.tars.get(split):
            return None
        names, tar_of, offsets, sizes, labels = self._index("train" if held_out else split)[0]
        if held_out:
            fraction = self.val_split if self.val_split is not None else DEFAULT_VAL_SPLIT
            train, val = split_per_class(labels, fraction, self.seed)
            keep = train if split == "train" else val
            names, tar_of, offsets, sizes, labels = (
                names.subset(keep),
                tar_of[keep],
                offsets[keep],
                sizes[keep],
                labels[keep],
            )
        return TarSamples(
            self.tars["train" if held_out else split],
            names,
            tar_of,
            offsets,
            sizes,
            labels,
            self.classes,
            self.decoder,
            self.on_bad_image,
            self.max_image_pixels,
        )
