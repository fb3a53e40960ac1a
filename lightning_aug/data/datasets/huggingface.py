"""Hugging Face ``datasets``: a ``save_to_disk`` folder, a folder of parquet or arrow files, or a hub
name (where there is a network), with images as encoded bytes decoded by our decoders (crops while
decoding, no PIL round trip) and labels from a column.

The rows stay in Arrow's memory map: DataLoader workers and DDP ranks on a node share its pages.
Needs the ``hf`` extra (``pip install 'lightning-aug[hf]'``: ``datasets``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lightning_aug._checks import check_fraction
from lightning_aug.data.datasets.base import DatasetFactory, Split
from lightning_aug.data.datasets.folder import DEFAULT_VAL_SPLIT, sample_positions
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
from lightning_aug.data.labels import check_indices, class_indices, class_order
from lightning_aug.data.reader import file_cap, read_bytes
from lightning_aug.data.source import Source
from lightning_aug.errors import DataError

__all__ = ["HFImages", "HuggingFace"]

# our split names and the names datasets commonly give them, tried in order
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("validation", "val", "valid", "dev"),
    "test": ("test", "testing"),
}


def _load(path: str, name: str | None, revision: str | None) -> Any:
    """A ``DatasetDict`` (or ``Dataset``) from a ``save_to_disk`` folder, a folder of parquet or
    arrow files, or the hub."""
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - the hf extra is not installed
        raise ImportError(
            "data=huggingface needs the datasets package: pip install 'lightning-aug[hf]'"
        ) from err
    folder = Path(path).expanduser()
    single = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".json": "json", ".jsonl": "json"}
    if folder.is_file() and folder.suffix.lower() in single:  # one file: its train split
        return datasets.load_dataset(single[folder.suffix.lower()], data_files={"train": str(folder)})
    if folder.is_dir():
        if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
            return datasets.load_from_disk(str(folder))
        for kind, suffix in (("parquet", ".parquet"), ("arrow", ".arrow")):
            if any(folder.rglob(f"*{suffix}")):
                return datasets.load_dataset(kind, data_dir=str(folder))
        raise DataError(
            f"data.path {path!r} is a folder without a saved dataset (dataset_dict.json or state.json, from "
            "save_to_disk) and without parquet or arrow files"
        )
    if path.startswith((os.sep, ".", "~")) or (len(path) > 1 and path[1] == ":"):  # a local path
        raise DataError(f"data.path {path!r} does not exist (a folder, or a hub name such as 'user/name')")
    return datasets.load_dataset(path, name, revision=revision)  # the hub: needs a network


class HuggingFace(DatasetFactory):
    """Dataset factory of a Hugging Face dataset of images and labels.

    Args:
        path: a ``save_to_disk`` folder, a folder of parquet or arrow files (splits from their names,
            ``train-*.parquet``, as ``datasets`` reads them), one parquet, arrow, CSV or JSON-lines
            file (its train split), a hub name (``"user/name"``), or a ``datasets.Dataset`` /
            ``DatasetDict`` in memory (not saved in checkpoints: pass it again).
        name: the configuration of a hub dataset.
        revision: the hub revision.
        image_column: the column of images (an ``Image`` feature, or encoded bytes).
        label_column: the column of labels: a ``ClassLabel`` (its names are the classes), integers,
            strings (class names, sorted), or a list of ``ClassLabel`` (multi-label: multi-hot rows).
        splits: our split names (``train``, ``val``, ``test``) to the dataset's; ``None``: found by name
            (``validation``, ``val``, ``valid``, ``dev`` for val).
        val_split: where the dataset has no validation split, the fraction of train held out (seeded);
            ``None``: 0.1 there.
        seed: the seed of that draw.
        decoder, on_bad_image, max_image_pixels: as for image folders.

    Raises:
        DataError: a missing column (naming the columns there are), a split not there.
    """

    def __init__(
        self,
        path: str | Any,
        name: str | None = None,
        revision: str | None = None,
        image_column: str = "image",
        label_column: str = "label",
        splits: Mapping[str, str] | None = None,
        val_split: float | None = None,
        seed: int = 0,
        decoder: Decoder = "auto",
        on_bad_image: BadImagePolicy = "raise",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self.decoder, self.on_bad_image, self.max_image_pixels = check_decoding_options(
            decoder, on_bad_image, max_image_pixels
        )
        self.val_split = check_fraction("val_split", val_split)
        self.seed = seed
        self.image_column, self.label_column = image_column, label_column
        if isinstance(path, (str, os.PathLike)):
            self.path = str(path)
            loaded = _load(self.path, name, revision)
        elif hasattr(path, "column_names"):  # a Dataset or DatasetDict already in memory
            self.path, loaded = f"the {type(path).__name__} given", path
        else:
            raise TypeError(
                f"path must be a folder, a file, a hub name or a datasets.Dataset/DatasetDict, got "
                f"{type(path).__name__}"
            )
        self.tables: dict[str, Any] = dict(loaded) if hasattr(loaded, "keys") else {"train": loaded}
        self.split_names = self._split_names(splits)
        train = self.tables[self.split_names["train"]]
        for column in (image_column, label_column):
            if column not in train.column_names:
                raise DataError(
                    f"data.path {self.path!r} has no column {column!r} (its columns: {train.column_names}); "
                    "name them with image_column and label_column"
                )
        self.classes, self.multi_label, self._to_label = _label_map(train, label_column, self.path)
        self.class_order = (
            "classlabel" if _class_label(train, label_column) else class_order(self.classes, False)
        )
        self._said_held_out = False

    def _split_names(self, given: Mapping[str, str] | None) -> dict[str, str]:
        names = {}
        for split, aliases in SPLIT_ALIASES.items():
            wanted = (given or {}).get(split)
            if wanted is not None:
                if wanted not in self.tables:
                    raise DataError(
                        f"data.path {self.path!r} has no split {wanted!r} (data.splits.{split}); it has "
                        f"{sorted(self.tables)}"
                    )
                names[split] = wanted
                continue
            found = next((a for a in aliases if a in self.tables), None)
            if found is not None:
                names[split] = found
        if "train" not in names:
            raise DataError(
                f"data.path {self.path!r} has no train split (it has {sorted(self.tables)}): set splits"
            )
        return names

    @property
    def num_classes(self) -> int:  # type: ignore[override]  # a property of the contract's attribute
        return len(self.classes)

    def _held_out(self) -> tuple[np.ndarray, np.ndarray]:
        table = self.tables[self.split_names["train"]]
        fraction = self.val_split if self.val_split is not None else DEFAULT_VAL_SPLIT
        order = np.random.default_rng(self.seed).permutation(len(table))
        n_val = max(1, round(len(table) * fraction))
        if not self._said_held_out:  # said once, as file lists and image folders say it
            from lightning.pytorch.utilities import rank_zero_info

            rank_zero_info(
                f"HuggingFace: {self.path!r} has no validation split: {n_val} of its {len(table)} train rows "
                f"({fraction:.0%}) held out for validation (seed {self.seed}; val_split, data.val_split in "
                "the apps, sets it)"
            )
            self._said_held_out = True
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def build(self, split: Split) -> HFImages | None:
        indices = None
        if split in self.split_names and not (split == "train" and "val" not in self.split_names):
            table = self.tables[self.split_names[split]]
        elif split in ("train", "val") and "val" not in self.split_names:
            table = self.tables[self.split_names["train"]]
            train, val = self._held_out()
            indices = train if split == "train" else val
        else:
            return None
        return HFImages(
            table,
            self.image_column,
            self.label_column,
            self._to_label,
            self.classes,
            indices=indices,
            decoder=self.decoder,
            on_bad_image=self.on_bad_image,
            max_image_pixels=self.max_image_pixels,
            name=f"{self.path}[{split}]",
        )


LabelsOf = Callable[[list[Any], Callable[[int], str]], np.ndarray]


def _class_label(table: Any, column: str) -> bool:
    """Whether ``column`` is a ``ClassLabel`` (or a list of them): its names are the classes, in order."""
    import datasets

    feature = table.features[column]
    return isinstance(getattr(feature, "feature", feature), datasets.ClassLabel) or (
        isinstance(feature, list) and bool(feature) and isinstance(feature[0], datasets.ClassLabel)
    )


def _label_map(table: Any, column: str, name: str) -> tuple[list[str], bool, LabelsOf]:
    """The class names, whether labels are multi-hot, and the function from a split's label cells to
    its labels (checked by the one label rule, :mod:`lightning_aug.data.labels`, naming the row)."""
    import datasets

    feature = table.features[column]
    inner = getattr(feature, "feature", None)
    if isinstance(feature, (datasets.Sequence, list)) or inner is not None:
        inner = inner if inner is not None else feature[0]
        if not isinstance(inner, datasets.ClassLabel):
            raise DataError(
                f"label column {column!r} is a list of {inner}: a multi-label column must be of ClassLabel"
            )
        names = list(inner.names)

        def multi_hot(cells: list[Any], where: Callable[[int], str]) -> np.ndarray:
            out = np.zeros((len(cells), len(names)), dtype=np.float32)
            for row, cell in enumerate(cells):
                bad = [c for c in cell if not (isinstance(c, int) and 0 <= c < len(names))]
                if bad:
                    raise DataError(f"{where(row)}: label {bad[0]!r} is outside the {len(names)} classes")
                out[row, list(cell)] = 1.0
            return out

        return names, True, multi_hot
    if isinstance(feature, datasets.ClassLabel):  # its names and order, its values in range
        names = list(feature.names)

        def indices(cells: list[Any], where: Callable[[int], str]) -> np.ndarray:
            for row, cell in enumerate(cells):
                if not isinstance(cell, (int, np.integer)) or isinstance(cell, bool):
                    raise DataError(f"{where(row)}: label {cell!r} is not a class index")
            found = np.asarray(cells, dtype=np.int64)
            check_indices(found, len(names), where)
            return found

        return names, False, indices
    cells = table.with_format(None)[column]
    _, classes = class_indices(cells, lambda row: f"{name}[train], row {row}")
    return classes, False, lambda values, where: class_indices(values, where, classes)[0]


class HFImages(CropDecoding, Source):
    """``(image, label)`` of the rows of one ``datasets.Dataset``, the image decoded from its encoded
    bytes by our decoders (a crop the pipeline starts with runs while decoding)."""

    def __init__(
        self,
        table: Any,
        image_column: str,
        label_column: str,
        to_label: LabelsOf,
        classes: list[str],
        indices: np.ndarray | None = None,
        decoder: Decoder = "auto",
        on_bad_image: BadImagePolicy = "raise",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        name: str = "dataset",
    ) -> None:
        import datasets

        feature = table.features[image_column]
        if isinstance(feature, datasets.Image) and feature.decode:
            table = table.cast_column(image_column, datasets.Image(decode=False))  # bytes, not PIL
        self.table, self.image_column, self.label_column = table, image_column, label_column
        self.to_label, self.classes, self.name = to_label, classes, name
        self.indices = indices
        self._skips = SkipMemory()  # what on_bad_image="skip" found, per process
        self.decoder, self.on_bad_image, self.max_image_pixels = decoder, on_bad_image, max_image_pixels
        self._decode_with(decoder)
        column = (
            table.with_format(None)[label_column] if indices is None else table.select(indices)[label_column]
        )
        self.targets = to_label(list(column), lambda row: f"{name}, row {self._row(row)}")

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.table)

    def _row(self, index: int) -> int:
        return int(self.indices[index]) if self.indices is not None else index

    def _bytes(self, index: int) -> tuple[np.ndarray, str]:
        cell = self.table[self._row(index)][self.image_column]
        if isinstance(cell, Mapping):
            data, path = cell.get("bytes"), cell.get("path")
            if data is None and path:  # the one reader: a regular file within the size cap
                return read_bytes(path, file_cap(self.max_image_pixels)), path
        else:
            data, path = cell, None
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(
                f"column {self.image_column!r} holds {type(data).__name__}, not encoded image bytes"
            )
        return np.frombuffer(data, dtype=np.uint8), path or self.sample_name(index)

    def known_labels(self) -> np.ndarray:
        return self.targets

    def sample_name(self, index: int) -> str:
        """How messages name sample ``index``: ``path[split][row]``."""
        return f"{self.name}[{self._row(index)}]"

    def image_sizes(self, limit: int = 256, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        """``(name, (height, width))`` of a seeded sample of up to ``limit`` rows, from the headers."""
        found = []
        for i in sample_positions(len(self), limit, seed):
            try:
                data, name = self._bytes(i)
            except (ValueError, OSError):
                continue
            size = image_size(data)
            if size is not None:
                found.append((name, size))
        return found

    def _load(self, index: int) -> tuple[Any, Any]:
        try:
            data, name = self._bytes(index)
            image = decode_image(data, name, self.image_decoder, self._head, self.max_image_pixels)
        except Exception as err:
            raise DataError(f"cannot decode the image of {self.sample_name(index)}: {err}") from err
        return image, self.targets[index] if self.targets.ndim == 2 else int(self.targets[index])

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return read_or_skip(
            self._load, self.sample_name, len(self), index, self.on_bad_image, self.name, self._skips
        )
