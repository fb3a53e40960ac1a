"""Bookkeeping of the unreadable files that ``on_bad_image="skip"`` replaced, reported per epoch."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

__all__ = ["SkipReport"]


class SkipReport:
    """The unreadable files skipped in each epoch (``files``), the samples read (``samples``), and one
    warning per epoch that had skips.

    Args:
        listed: how many files a warning names; the rest are counted (``files`` keeps them all).

    Example::

        >>> report = SkipReport()
        >>> report.record(["a.jpg", "b.jpg", "a.jpg"], epoch=0, samples=64)
        >>> report.files, report.samples
        ({0: ['a.jpg', 'b.jpg']}, {0: 64})
    """

    def __init__(self, listed: int = 50) -> None:
        self.listed = listed
        self.files: dict[int, list[str]] = {}  # epoch -> distinct unreadable files skipped
        self.samples: dict[int, int] = {}  # epoch -> samples in the batches read
        self._seen: dict[int, set[str]] = {}
        self._epoch: int | None = None
        self._reported: set[int] = set()

    def record(self, paths: Sequence[str], epoch: int, rank: int = 0, samples: int = 0) -> None:
        """Note a batch of ``samples`` read in ``epoch`` that replaced ``paths``; a new epoch first
        reports the one before."""
        if self._epoch is not None and epoch != self._epoch:
            self.report(rank)
        self._epoch = epoch
        self.samples[epoch] = self.samples.get(epoch, 0) + samples
        if not paths:
            return
        files, seen = self.files.setdefault(epoch, []), self._seen.setdefault(epoch, set())
        for path in paths:  # a file skipped twice in one epoch counts once
            if path not in seen:
                seen.add(path)
                files.append(path)

    def report(self, rank: int = 0) -> None:
        """Warn once about the files skipped in the epoch being recorded, if any."""
        epoch = self._epoch
        if epoch is None or epoch in self._reported or not self.files.get(epoch):
            return
        self._reported.add(epoch)
        paths = self.files[epoch]
        named = ", ".join(paths[: self.listed])
        more = f" and {len(paths) - self.listed} more" if len(paths) > self.listed else ""
        warnings.warn(
            f"on_bad_image='skip': rank {rank} skipped {len(paths)} unreadable image file(s) in epoch "
            f"{epoch}, among {self.samples.get(epoch, 0)} samples read (all loaders; each replaced by "
            f"a readable sample drawn at random): {named}{more}",
            UserWarning,
            stacklevel=3,
        )
