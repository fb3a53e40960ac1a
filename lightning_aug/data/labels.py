"""The one label rule of every source (file lists, tables, folders, shards): a label column means the
same thing wherever it comes from, or it is refused naming the row.

- **Integers are class indices** ``0..K-1``: Python or numpy ints, or (in text files) the digits of one
  without a sign or leading zero (``"7"``). ``K`` is the largest label plus one, or the classes given.
- **Strings are class names**, sorted (or in the order of the classes given).
- **Anything else is refused**, naming the row and the value: a null (``None``, an empty or NaN cell),
  a float (``3.0``: a class index is an integer), a bool, a number written otherwise in a text file
  (``"3.0"``, ``"-1"``, ``"09"``: give ``classes`` to read such labels as names), and a column mixing
  integers and names (``"3"`` beside ``"eleven"``).
- **In range before anything is sized by them**: a negative index, an index at or above the classes
  given, or one that would make more classes than there are rows (so some class could have no
  sample: ``2000000000`` among 10 rows) is refused before any array of that size exists. Integer
  classes some rows skip (``11`` among 0-9: classes 10 has no sample) are warned about, naming them.

A Hugging Face ``ClassLabel`` keeps its names and order; its values are checked to be in range
(``-1``, the hub's "no label", is refused).

Example::

    >>> indices, classes = class_indices(["cat", "dog", "cat"], "rows")
    >>> indices.tolist(), classes
    ([0, 1, 0], ['cat', 'dog'])
    >>> class_indices(["3", "3.0"], lambda i: f"row {i + 2}", text=True)
    Traceback (most recent call last):
    ...
    lightning_aug.errors.DataError: row 3: label '3.0' is a number but not a class index ...
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lightning_aug.errors import DataError

__all__ = ["ORDERS", "check_indices", "class_indices", "class_order"]

# how a class list was put in order, as the log, hparams.yaml and checkpoints say it
ORDERS = {
    "given": "in the order of the classes given",
    "indices": "integer labels: class i is label i",
    "sorted": "class names sorted (give classes=[...] for another order)",
    "folders": "class folder names sorted",
    "classlabel": "the ClassLabel's names, in its order",
    "shards": "as the shards were prepared",
}

_INDEX_TEXT = re.compile(r"0|[1-9][0-9]*")

Where = Callable[[int], str] | str


def _name(where: Where, row: int) -> str:
    return where(row) if callable(where) else f"{where}, row {row}"


def _number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _kind(value: Any, text: bool) -> str:
    """``"index"``, ``"name"``, or why the value is neither."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "a null"
    if isinstance(value, (bool, np.bool_)):
        return "a bool"
    if isinstance(value, (int, np.integer)):
        return "index"
    if isinstance(value, (float, np.floating)):
        return "a float (a class index is an integer)"
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return "empty"
        if text and _INDEX_TEXT.fullmatch(stripped):
            return "index"
        if text and _number_text(stripped):
            return (
                "a number but not a class index (0, 1, 2, ... written without a sign, decimals or leading "
                "zeros); give classes=[...] to read the labels as class names"
            )
        return "name"
    return f"a {type(value).__name__}"


def class_order(classes: Sequence[str], given: bool) -> str:
    """How :func:`class_indices` put ``classes`` in order: ``"given"``, ``"indices"`` (integer labels)
    or ``"sorted"`` (names), a key of :data:`ORDERS`."""
    if given:
        return "given"
    return "indices" if list(classes) == [str(i) for i in range(len(classes))] else "sorted"


def check_indices(indices: np.ndarray, count: int, where: Where, rows: Sequence[int] | None = None) -> None:
    """Refuse class indices outside ``0..count-1``, naming the first such row.

    Raises:
        DataError: a negative index or one at or above ``count``.
    """
    indices = np.asarray(indices)
    bad = np.flatnonzero((indices < 0) | (indices >= count))
    if bad.size:
        i = int(bad[0])
        row = rows[i] if rows is not None else i
        raise DataError(
            f"{_name(where, row)}: label {int(indices[i])} is outside the {count} classes (0..{count - 1})"
        )


def class_indices(
    values: Sequence[Any], where: Where, classes: Sequence[str] | None = None, text: bool = False
) -> tuple[np.ndarray, list[str]]:
    """``(int64 class index per row, class names)`` of one column of labels, by the module's rule.

    Args:
        values: the labels, one per row.
        where: how a row is named in messages (``row -> "file list 'x.csv', row 7"``), or a prefix.
        classes: the class names, in order; ``None``: found from the labels.
        text: the values are cells of a text file (``"7"`` is the index 7).

    Raises:
        DataError: a label that is neither (see the module), a column of both kinds, or one out of range.
    """
    kinds = [_kind(v, text) for v in values]
    for row, kind in enumerate(kinds):
        if kind not in ("index", "name"):
            raise DataError(f"{_name(where, row)}: label {values[row]!r} is {kind}")
    if classes is not None:
        names = [str(c) for c in classes]
        position = {name: i for i, name in enumerate(names)}
        out = np.empty(len(values), dtype=np.int64)
        for row, (value, kind) in enumerate(zip(values, kinds, strict=True)):
            key = str(value).strip()
            if key in position:
                out[row] = position[key]
            elif kind == "index" and not isinstance(value, str) and 0 <= int(value) < len(names):
                out[row] = int(value)
            else:
                raise DataError(
                    f"{_name(where, row)}: label {value!r} is not among the classes given {names[:10]}"
                )
        return out, names
    if "index" in kinds and "name" in kinds:
        first_name, first_index = kinds.index("name"), kinds.index("index")
        raise DataError(
            f"{_name(where, first_name)}: label {values[first_name]!r} is a class name, but "
            f"{_name(where, first_index)} holds {values[first_index]!r}, a class index: one column holds "
            "one kind (give classes=[...] to read every label as a name)"
        )
    if not values or kinds[0] == "name":
        names = sorted({str(v).strip() for v in values})
        position = {name: i for i, name in enumerate(names)}
        return np.fromiter((position[str(v).strip()] for v in values), np.int64, len(values)), names
    indices = np.fromiter((int(v) for v in values), np.int64, len(values))
    largest = int(indices.argmax())
    if indices[largest] >= len(values):  # more classes than rows: before anything is sized by it
        raise DataError(
            f"{_name(where, largest)}: label {int(indices[largest])} would make {int(indices[largest]) + 1} "
            f"classes for {len(values)} rows (integer labels are class indices 0..K-1); give classes=[...] "
            "to read the labels as class names"
        )
    check_indices(indices, int(indices[largest]) + 1, where)
    count = int(indices[largest]) + 1
    seen = np.bincount(indices, minlength=count)
    empty = np.flatnonzero(seen == 0)
    if empty.size:  # the rows above the first gap: where a mistyped label would be
        above = np.flatnonzero(indices > empty[0])
        named = "; ".join(f"{_name(where, int(r))} ({int(indices[r])})" for r in above[:10])
        more = f" and {above.size - 10} more rows" if above.size > 10 else ""
        warnings.warn(
            f"integer labels go up to {count - 1}, and classes {empty[:10].tolist()} have no sample "
            f"({len(empty)} of {count}): a mistyped label? The labels above {int(empty[0])} are in: "
            f"{named}{more}. The model is given one output per class; give num_classes or classes to "
            "refuse such labels",
            UserWarning,
            stacklevel=2,
        )
    return indices, [str(i) for i in range(count)]
