"""The clock of a DataModule's batches: how long the training process waited for each batch (its
loader tells :meth:`StageClock.fetched`) and how long its device stage took, without a host sync.

:class:`~lightning_aug.device.stage.DeviceStage` runs its work inside :meth:`StageClock.timing` when
it is given a clock (``DataStallMonitor`` gives it one). On the host the clock reads
``time.perf_counter``; on a CUDA batch it also records a pair of CUDA events on the current stream.
The runs the monitor claims (:meth:`StageClock.claim`) are read only once the GPU has passed their
second event (:meth:`StageClock.poll` asks, it never waits), so the timing adds no synchronisation to
a step.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["StageClock"]


class StageClock:
    """Host and device times of the device stage, batch by batch.

    Attributes:
        host_ms: the host time of the last stage run, in milliseconds (on CUDA, the time to launch it).
        started: the ``time.perf_counter()`` at which the last stage run started.
        fetch_s, fetch_ended, fetch_ready: how long the training loader's last ``next()`` took (the
            wait for the batch), when it returned, and whether a worker's batch was ready
            (:meth:`fetched`).
    """

    def __init__(self, pending: int = 256) -> None:
        self.host_ms = 0.0
        self.started = 0.0
        self.fetch_s = 0.0
        self.fetch_ended = 0.0
        self.fetch_ready: bool | None = None
        self.events: tuple[Any, Any] | None = None  # the last run's CUDA events, until claimed
        self._pending: deque[tuple[Any, Any]] = deque(maxlen=pending)  # oldest dropped beyond this

    @contextmanager
    def timing(self, device: torch.device) -> Iterator[None]:
        """Time the stage run inside the block, on the host and, on a CUDA ``device``, with a pair of
        events recorded on the current stream (kept as :attr:`events` until :meth:`claim` or the next
        run)."""
        self.started = time.perf_counter()
        start = None
        if device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            start.record()
        try:
            yield
        finally:
            self.events = None
            if start is not None:
                end = torch.cuda.Event(enable_timing=True)
                end.record()
                self.events = (start, end)
            self.host_ms = (time.perf_counter() - self.started) * 1e3

    def fetched(self, seconds: float, ended: float, ready: bool | None) -> None:
        """The training loader's last ``next()`` took ``seconds`` and returned at ``ended``, with a
        worker's batch ``ready`` or not (:class:`~lightning_aug.data.loader.FetchClock`: the owner's
        loader tells it)."""
        self.fetch_s, self.fetch_ended, self.fetch_ready = seconds, ended, ready

    def claim(self) -> None:
        """Keep the last run's CUDA events for :meth:`poll` (the runs of measured training steps;
        validation's and the skipped steps' are never claimed)."""
        if self.events is not None:
            self._pending.append(self.events)
            self.events = None

    def poll(self) -> list[float]:
        """The GPU milliseconds of the claimed stage runs finished since the last call, oldest first;
        runs the GPU has not reached yet stay for a later call (nothing waits for the GPU)."""
        done = []
        while self._pending and self._pending[0][1].query():
            start, end = self._pending.popleft()
            done.append(start.elapsed_time(end))
        return done
