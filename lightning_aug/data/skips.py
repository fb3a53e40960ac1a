"""Bookkeeping of the unreadable files that ``on_bad_image="skip"`` replaced, reported per epoch."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

__all__ = ["SkipReport"]


class SkipReport:
    """The unreadable files skipped in each epoch (``files``), and one warning per epoch about them.

    Example::

        >>> report = SkipReport()
        >>> report.record(["a.jpg", "b.jpg", "a.jpg"], epoch=0)
        >>> report.files
        {0: ['a.jpg', 'b.jpg']}
    """

    def __init__(self) -> None:
        self.files: dict[int, list[str]] = {}  # epoch -> distinct unreadable files skipped
        self._epoch: int | None = None
        self._reported: set[int] = set()

    def record(self, paths: Sequence[str], epoch: int, rank: int = 0) -> None:
        """Note ``paths`` as skipped in ``epoch``; a new epoch first reports the one before."""
        if self._epoch is not None and epoch != self._epoch:
            self.report(rank)
        self._epoch = epoch
        seen = self.files.setdefault(epoch, [])
        for path in paths:  # a file skipped twice in one batch counts once
            if path not in seen:
                seen.append(path)

    def report(self, rank: int = 0) -> None:
        """Warn once about the files skipped in the epoch being recorded."""
        epoch = self._epoch
        if epoch is None or epoch in self._reported:
            return
        self._reported.add(epoch)
        paths = self.files.get(epoch, [])
        first = f"{paths[:5]}{' ...' if len(paths) > 5 else ''}"
        warnings.warn(
            f"on_bad_image='skip': rank {rank} skipped {len(paths)} unreadable image file(s) in epoch "
            f"{epoch} (each replaced by the next readable sample): {first}",
            UserWarning,
            stacklevel=3,
        )
