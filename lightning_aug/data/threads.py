"""A batch's decoding in threads of one process: a DataLoader worker's, or the main process's.

The decoders release the GIL while they decode (nvImageCodec, OpenCV) and so do the resizes after them
(OpenCV's, torch's), so threads of one process decode a batch side by side. Every random draw stays
in the thread that reads the samples, in the order of the per-sample path: the dataset makes each
sample's draws, hands the draw-free rest (:class:`Deferred`: decode the region, resize) to
:class:`DecodeThreads`, and runs the pipeline's remaining transforms from each sample's saved
generator state (:class:`~lightning_aug.data.datasets.base.TransformedDataset`). So a batch's images
are the per-sample path's, bit for bit, whatever the number of threads (tested).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lightning_aug._checks import check_int

__all__ = ["DecodeThreads", "Deferred"]


class Deferred:
    """A sample's decoding with its random draws made: the job a decode thread runs."""

    __slots__ = ("job",)

    def __init__(self, job: Callable[[], Any]) -> None:
        self.job = job


def _attempt(job: Callable[[], Any]) -> Any:
    try:
        return job()
    except Exception as err:  # handed back: the dataset's per-sample path applies on_bad_image to it
        return err


class DecodeThreads:
    """Runs a batch's jobs on ``threads`` threads of this process: the calling thread and
    ``threads - 1`` pool threads, started on first use in each process (a worker's after its fork),
    each taking the next job until none is left. A job that raises gives its exception in its place.

    Raises:
        ValueError: ``threads`` not an int >= 1.
    """

    def __init__(self, threads: int) -> None:
        self.threads = check_int("decode_threads", threads, 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def __getstate__(self) -> dict[str, Any]:  # a worker starts its own threads
        return {"threads": self.threads, "_pool": None, "_pid": 0}

    def run(self, jobs: list[Callable[[], Any]]) -> list[Any]:
        """Each job's result (or exception), in the order of ``jobs``."""
        if self.threads == 1 or len(jobs) < 2:
            return [_attempt(job) for job in jobs]
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="lightning_aug-decode")
            self._pid = os.getpid()
        out: list[Any] = [None] * len(jobs)
        taken = itertools.count()  # next() on it is atomic under the GIL: each job is taken once

        def share() -> None:
            while (i := next(taken)) < len(jobs):
                out[i] = _attempt(jobs[i])

        helpers = [self._pool.submit(share) for _ in range(min(self.threads, len(jobs)) - 1)]
        share()
        for helper in helpers:
            helper.result()
        return out

    def __repr__(self) -> str:
        return f"DecodeThreads({self.threads})"
