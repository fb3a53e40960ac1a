"""``(path, label)`` samples packed in numpy arrays, so that DataLoader workers share them.

A Python list of ``(path, label)`` tuples is about 150 bytes of objects per sample, spread over the
heap. A forked DataLoader worker starts with the parent's pages shared, but reading a sample writes its
tuple's and string's reference counts (and the garbage collector writes every tuple's header), so each
worker copies the pages it reads: over an epoch of random reads, the whole list, once per worker. Here
the paths are one UTF-8 blob with start and end offsets and the labels an integer array: reading a
sample makes a new string and writes nothing shared. ``python -m lightning_aug.bench.memory`` measures
both layouts (workers' USS and PSS after random reads of a 1,000,000-entry list).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np

__all__ = ["SampleList"]


class SampleList(Sequence[tuple[str, Any]]):
    """An immutable sequence of ``(path, label)``, stored as three numpy arrays. A label is a class
    index (``labels`` int64 ``(N,)``), or, for multi-label data, a multi-hot float32 row (``labels``
    ``(N, C)``).

    Args:
        samples: the ``(path, label)`` pairs.

    Example::

        >>> samples = SampleList([("a/1.jpg", 0), ("b/2.jpg", 1)])
        >>> samples[1], len(samples), samples.labels.tolist()
        (('b/2.jpg', 1), 2, [0, 1])
        >>> samples.subset([1]).paths()
        ['b/2.jpg']
    """

    def __init__(self, samples: Iterable[tuple[str, Any]] = ()) -> None:
        paths, labels = [], []
        for path, label in samples:
            paths.append(path.encode("utf-8", "surrogateescape"))
            labels.append(label)
        lengths = np.fromiter((len(p) for p in paths), dtype=np.int64, count=len(paths))
        self._ends = np.cumsum(lengths)
        self._starts = self._ends - lengths
        self._blob = np.frombuffer(b"".join(paths), dtype=np.uint8)
        array = np.asarray(labels)
        self.labels = array.astype(np.float32) if array.ndim == 2 else array.astype(np.int64)

    @classmethod
    def _view(cls, blob: np.ndarray, starts: np.ndarray, ends: np.ndarray, labels: np.ndarray) -> SampleList:
        out = cls.__new__(cls)
        out._blob, out._starts, out._ends, out.labels = blob, starts, ends, labels
        return out

    def subset(self, indices: Sequence[int] | np.ndarray) -> SampleList:
        """The samples at ``indices``, sharing this list's path blob."""
        idx = np.asarray(indices, dtype=np.int64)
        return self._view(self._blob, self._starts[idx], self._ends[idx], self.labels[idx])

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> str:
        """The path of sample ``index``."""
        raw = self._blob[self._starts[index] : self._ends[index]].tobytes()
        return raw.decode("utf-8", "surrogateescape")

    def paths(self) -> list[str]:
        """All paths, as a list (a new Python object per path: not for DataLoader workers)."""
        return [self.path(i) for i in range(len(self))]

    @overload
    def __getitem__(self, index: int) -> tuple[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> tuple[str, Any] | list[tuple[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        label = self.labels[index]
        return self.path(index), (label if self.labels.ndim == 2 else int(label))

    @property
    def multi_label(self) -> bool:
        """Whether the labels are multi-hot rows."""
        return self.labels.ndim == 2

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SampleList):
            return np.array_equal(self.labels, other.labels) and self.paths() == other.paths()
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compared by value: not hashed

    def __repr__(self) -> str:
        return f"SampleList({len(self)} samples, {self._blob.nbytes} bytes of paths)"
