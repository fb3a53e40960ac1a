"""Images listed in a CSV or TSV file (``path,label`` rows, Kaggle-style), a JSON-lines file
(``.jsonl``/``.ndjson``: one ``{"path": ..., "label": ...}`` object a line, values typed), or a Python
list.

The rows are read and checked when the factory is made (columns, labels, split values), then served
by :class:`~lightning_aug.data.datasets.ImageFolderDataset`: the fast decoders and the crops while
decoding, unreadable or missing files under ``on_bad_image``. Checkpoints record the file's path and
a fingerprint of its bytes, never its rows; a list given from Python is recorded by its length and
hash.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightning_aug._checks import check_fraction
from lightning_aug.data.datasets.base import DatasetFactory, Split
from lightning_aug.data.datasets.folder import DEFAULT_VAL_SPLIT, ImageFolderDataset, split_per_class
from lightning_aug.data.datasets.samples import SampleList
from lightning_aug.data.decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    BadImagePolicy,
    Decoder,
    check_decoding_options,
)
from lightning_aug.data.labels import class_indices, class_order
from lightning_aug.errors import DataError

__all__ = ["FileList"]

# the values a split column may hold, and the split each means
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


JSON_LINES = (".jsonl", ".ndjson")  # a file list of one JSON object a line


# the held-out splits already said in this process (the apps build the factory twice)
_SAID: set[tuple[str, float, int]] = set()


class FileList(DatasetFactory):
    """Dataset factory of images listed in a CSV/TSV file (or a Python list of rows).

    Args:
        file: the CSV or TSV file (a header row naming the columns; TSV where the name ends with
            ``.tsv``, else CSV, or ``delimiter``).
        root: the folder the paths are relative to; ``None``: the file's folder.
        path_column, label_column: the columns of the image path and its label.
        split_column: a column of ``train``/``val``/``test`` (also ``training``, ``valid``,
            ``validation``, ``dev``, ``testing``); ``None``: ``val_split`` of the rows held out.
        val_split: fraction held out for validation without a split column (a seeded, per-class
            draw); ``None``: 0.1 there.
        seed: seed of that draw.
        classes: the class names in label order; ``None``: the labels' names sorted (or ``0..N-1``
            where every label is an integer). Said in the log, saved with the DataModule.
        multi_label: a label cell holds several class names separated by ``label_separator``
            (``"cat dog"``): the labels are multi-hot rows.
        label_separator: the separator of multi-label cells.
        weight_column: a column of per-sample weights for ``sampler="balanced"``.
        delimiter: the field separator; ``None``: from the file name.
        samples: the rows from Python instead of a file: ``(path, label)`` or ``(path, label, split)``.
        fingerprint: the SHA-256 the file had when a checkpoint was written (set by the rebuild from
            a checkpoint): a file that changed since is refused; ``None``: not checked.
        decoder, on_bad_image, max_image_pixels: as for image folders.

    Raises:
        FileNotFoundError: the file does not exist.
        DataError: a missing column (naming the columns there are), an unknown split value or class
            name (naming rows), an empty list, a file changed since its checkpoint.
        ValueError: bad arguments.
    """

    def __init__(
        self,
        file: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        path_column: str = "path",
        label_column: str = "label",
        split_column: str | None = None,
        val_split: float | None = None,
        seed: int = 0,
        classes: Sequence[str] | None = None,
        multi_label: bool = False,
        label_separator: str = " ",
        weight_column: str | None = None,
        delimiter: str | None = None,
        samples: Sequence[Sequence[Any]] | None = None,
        fingerprint: str | None = None,
        decoder: Decoder = "auto",
        on_bad_image: BadImagePolicy = "raise",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self.decoder, self.on_bad_image, self.max_image_pixels = check_decoding_options(
            decoder, on_bad_image, max_image_pixels
        )
        self.val_split = check_fraction("val_split", val_split)
        self.seed = seed
        self.multi_label = bool(multi_label)
        self._lines: list[int] = []  # the file's line of each row
        if (file is None) == (samples is None):
            raise ValueError("give a file list file=... or the rows as samples=..., one of them")
        if file is not None:
            self.file: Path | None = Path(file).expanduser()
            if not self.file.is_file():
                raise FileNotFoundError(f"file list {str(self.file)!r} does not exist (data.file)")
            raw = self.file.read_bytes()
            self.fingerprint = hashlib.sha256(raw).hexdigest()
            if fingerprint is not None and fingerprint != self.fingerprint:
                raise DataError(
                    f"file list {str(self.file)!r} changed since the checkpoint was written (SHA-256 "
                    f"{self.fingerprint[:12]}..., recorded {fingerprint[:12]}...): pass fingerprint=None "
                    "to use it as it is now"
                )
            self.root = Path(root).expanduser() if root is not None else self.file.parent
            text = raw.decode("utf-8-sig")
            if self.file.suffix.lower() in JSON_LINES:  # one JSON object a line, its values typed
                rows = self._read_json_lines(text, path_column, label_column, split_column, weight_column)
            else:
                sep = delimiter or ("\t" if self.file.suffix.lower() == ".tsv" else ",")
                rows = self._read(text, sep, path_column, label_column, split_column, weight_column)
        else:
            assert samples is not None
            self.file = None
            self.root = Path(root).expanduser() if root is not None else Path.cwd()
            rows = [(str(r[0]), r[1], str(r[2]) if len(r) > 2 else None, None) for r in samples]
            digest = hashlib.sha256(repr([tuple(r) for r in samples]).encode())
            self.fingerprint = digest.hexdigest()
            split_column = "split" if rows and rows[0][2] is not None else None
        if not rows:
            raise DataError(f"{self._where()} lists no images")
        if self.multi_label:
            self.classes = self._classes(rows, classes, label_separator)
            self.class_order = "given" if classes is not None else "sorted"
            labels: Any = self._multi_hot(rows, label_separator)
        else:  # the one label rule (lightning_aug.data.labels): refused naming the row, never re-read
            text_cells = self.file is not None and self.file.suffix.lower() not in JSON_LINES
            labels, self.classes = class_indices(
                [label for _, label, _, _ in rows], self._row, classes, text=text_cells
            )
            self.class_order = class_order(self.classes, classes is not None)
        paths = [p if os.path.isabs(p) else str(self.root / p) for p, _, _, _ in rows]
        self._all = SampleList(zip(paths, labels, strict=True))
        self._weights = None
        if weight_column is not None:
            self._weights = np.asarray([float(w or "nan") for _, _, _, w in rows], dtype=np.float64)
            if not np.all(np.isfinite(self._weights)) or (self._weights < 0).any():
                raise DataError(
                    f"{self._where()}: weight column {weight_column!r} needs numbers >= 0 in every row"
                )
        self._splits = self._assign(rows, split_column)
        self._checked: set[str] = set()

    # ------------------------------------------------------------ reading and checking the rows
    def _where(self) -> str:
        return f"file list {str(self.file)!r}" if self.file is not None else "the list of samples"

    def _read(
        self,
        text: str,
        delimiter: str,
        path_column: str,
        label_column: str,
        split_column: str | None,
        weight_column: str | None,
    ) -> list[tuple[str, str, str | None, str | None]]:
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        header = reader.fieldnames or []
        wanted = [path_column, label_column, split_column, weight_column]
        missing = [c for c in wanted if c is not None and c not in header]
        if missing:
            raise DataError(
                f"{self._where()} has no column {missing[0]!r} (its columns: {header}); name the columns "
                "with path_column, label_column, split_column (data.path_column=... in the apps)"
            )
        rows = []
        self._lines = []
        for row in reader:
            number = reader.line_num
            path, label = (row.get(path_column) or "").strip(), (row.get(label_column) or "").strip()
            if not path or (not label and not self.multi_label):
                raise DataError(f"{self._where()}, line {number}: an empty path or label ({dict(row)})")
            self._lines.append(number)
            split = row.get(split_column) if split_column else None
            weight = row.get(weight_column) if weight_column else None
            rows.append((path, label, split.strip() if split is not None else None, weight))
        return rows

    def _row(self, index: int) -> str:
        """How messages name row ``index`` of the list: its line in the file, or its item."""
        if self.file is None:
            return f"{self._where()}, item {index}"
        return f"{self._where()}, line {self._lines[index]}"

    def _read_json_lines(
        self,
        text: str,
        path_column: str,
        label_column: str,
        split_column: str | None,
        weight_column: str | None,
    ) -> list[tuple[str, Any, str | None, str | None]]:
        """The rows of a JSON-lines list: one object a line with the path, label (an integer class
        index, a class name, or a list of names with ``multi_label``), split and weight keys."""
        import json

        rows = []
        self._lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{self._where()}, line {number}: not a JSON object ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{self._where()}, line {number}: a JSON {type(row).__name__}, not an object")
            missing = [c for c in (path_column, label_column) if c not in row]
            if missing:
                raise DataError(
                    f"{self._where()}, line {number}: no key {missing[0]!r} (its keys: {sorted(row)}); name "
                    "them with path_column, label_column (data.path_column=... in the apps)"
                )
            split = row.get(split_column) if split_column else None
            weight = row.get(weight_column) if weight_column else None
            rows.append(
                (str(row[path_column]), row[label_column], split, None if weight is None else str(weight))
            )
            self._lines.append(number)
        return rows

    def _classes(
        self, rows: list[tuple[str, Any, Any, Any]], given: Sequence[str] | None, separator: str
    ) -> list[str]:
        """The classes of a multi-label list: the names of its cells, sorted, or those given."""
        names = {n for _, label, _, _ in rows for n in _tokens(label, separator)}
        if given is not None:
            unknown = sorted(names - set(map(str, given)))
            if unknown:
                raise DataError(f"{self._where()} has labels not among the classes given: {unknown[:10]}")
            return [str(c) for c in given]
        return sorted(names)

    def _multi_hot(self, rows: list[tuple[str, Any, Any, Any]], separator: str) -> list[Any]:
        index = {name: i for i, name in enumerate(self.classes)}
        out = []
        for _, label, _, _ in rows:
            row = np.zeros(len(self.classes), dtype=np.float32)
            row[[index[n] for n in _tokens(label, separator)]] = 1.0
            out.append(row)
        return out

    def _assign(
        self, rows: list[tuple[str, Any, Any, Any]], split_column: str | None
    ) -> dict[str, np.ndarray]:
        if split_column is not None:
            values = [row[2] for row in rows]
            unknown = sorted({str(v) for v in values if str(v).lower() not in SPLIT_NAMES})
            if unknown:
                first = next(i for i, v in enumerate(values) if str(v) in unknown)
                raise DataError(
                    f"{self._row(first)}: split column {split_column!r} holds {unknown[:5]}, "
                    f"expected one of {sorted(SPLIT_NAMES)}"
                )
            named = np.array([SPLIT_NAMES[str(v).lower()] for v in values])
            return {split: np.flatnonzero(named == split) for split in ("train", "val", "test")}
        fraction = self.val_split if self.val_split is not None else DEFAULT_VAL_SPLIT
        said = (self._where(), fraction, self.seed)
        if self.val_split is None and said not in _SAID:  # once a process (augment=auto reads it too)
            from lightning.pytorch.utilities import rank_zero_info

            _SAID.add(said)
            rank_zero_info(
                f"FileList: {self._where()} has no split column: {fraction:.0%} of each class held out for "
                f"validation (seed {self.seed}; val_split, data.val_split in the apps, sets it)"
            )
        labels = self._all.labels
        keys = labels.argmax(axis=1) if labels.ndim == 2 else labels
        train, val = split_per_class(keys, fraction, self.seed)
        return {"train": train, "val": val, "test": np.zeros(0, int)}

    # ------------------------------------------------------------ the factory
    @property
    def num_classes(self) -> int:  # type: ignore[override]  # a property of the contract's attribute
        return len(self.classes)

    def describe_arguments(self) -> dict[str, Any]:
        """What a checkpoint records of this factory: its arguments with the file's fingerprint, and
        a list of rows given from Python by its length and hash only (pass it again to rebuild)."""
        from lightning_aug.hparams import UNREBUILDABLE

        arguments = dict(self._init_arguments)
        arguments["fingerprint"] = self.fingerprint if self.file is not None else None
        if arguments.get("samples") is not None:
            arguments["samples"] = {
                UNREBUILDABLE: f"a list of {len(self._all)} samples (SHA-256 {self.fingerprint[:16]}): pass "
                "samples=... (or dataset=FileList(...)) again"
            }
        return arguments

    def _check_files(self, split: str, indices: np.ndarray) -> None:
        """Missing files said before training, counted exactly (one ``stat`` each: about a second for
        a million local files)."""
        if split in self._checked:
            return
        self._checked.add(split)
        missing = [self._all.path(int(i)) for i in indices if not os.path.exists(self._all.path(int(i)))]
        if not missing:
            return
        said = (
            f"{self._where()}: {len(missing)} of the {len(indices)} {split} files are missing ({missing[:3]}"
        )
        said += " ...)" if len(missing) > 3 else ")"
        here = Path.cwd()
        elsewhere = [p for p in missing if os.path.exists(os.path.relpath(p, self.root))]
        if elsewhere and here.resolve() != self.root.resolve():  # relative to the working folder instead
            raise DataError(
                f"{said}; {len(elsewhere)} of them are there relative to the working folder {str(here)!r}: "
                f"the list's paths are read relative to root (data.root=..., default: the list's folder "
                f"{str(self.root)!r}): give root={str(here)!r} (data.root={here})"
            )
        if self.on_bad_image == "raise":
            raise DataError(
                f"{said}; fix the list, or on_bad_image='skip' (data.on_bad_image=skip in the apps) to "
                "replace them as unreadable files"
            )
        import warnings

        warnings.warn(
            f"{said}: replaced as unreadable files (on_bad_image='skip')", UserWarning, stacklevel=3
        )

    def build(self, split: Split) -> ImageFolderDataset | None:
        indices = self._splits.get(split)
        if indices is None or len(indices) == 0:
            return None
        self._check_files(split, indices)
        return ImageFolderDataset(
            self.root,
            decoder=self.decoder,
            on_bad_image=self.on_bad_image,
            max_image_pixels=self.max_image_pixels,
            scanned=(self.classes, self._all.subset(indices)),
            weights=self._weights[indices] if self._weights is not None else None,
        )


def _tokens(label: Any, separator: str) -> list[str]:
    """The class names of a multi-label cell (``"cat dog"``), or of a list given from Python."""
    if isinstance(label, (list, tuple)):
        return [str(t) for t in label]
    return [t.strip() for t in str(label).split(separator) if t.strip()]
