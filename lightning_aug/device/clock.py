"""The clock of a DataModule's batches: how long the training process waited for each batch (its
loader tells :meth:`StageClock.fetched`) and how long its device stage took, without a host sync.

:class:`~lightning_aug.device.stage.DeviceStage` calls :meth:`StageClock.start` and
:meth:`StageClock.stop` around its work when it is given a clock (``DataStallMonitor`` gives it one).
On the host the clock reads ``time.perf_counter``; on a CUDA batch it also records a pair of CUDA
events on the current stream, read only once the GPU has passed the second one (:meth:`StageClock.poll`
asks, it never waits), so the timing adds no synchronisation to a step.
"""

from __future__ import annotations

import time
from collections import deque
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
        self._pending: deque[tuple[Any, Any]] = deque(maxlen=pending)  # oldest dropped beyond this

    def start(self, device: torch.device) -> Any:
        """Mark the start of a stage run on ``device``; the returned mark goes to :meth:`stop`."""
        self.started = time.perf_counter()
        if device.type != "cuda":
            return None
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def fetched(self, seconds: float, ended: float, ready: bool | None) -> None:
        """The training loader's last ``next()`` took ``seconds`` and returned at ``ended``, with a
        worker's batch ``ready`` or not (:class:`~lightning_aug.data.loader.FetchClock`: the owner's
        loader tells it)."""
        self.fetch_s, self.fetch_ended, self.fetch_ready = seconds, ended, ready

    def stop(self, mark: Any) -> None:
        """Mark the end of the stage run that :meth:`start` gave ``mark`` for."""
        if mark is not None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._pending.append((mark, end))
        self.host_ms = (time.perf_counter() - self.started) * 1e3

    def poll(self) -> list[float]:
        """The GPU milliseconds of the stage runs finished since the last call, oldest first; runs the
        GPU has not reached yet stay for a later call (nothing waits for the GPU)."""
        done = []
        while self._pending and self._pending[0][1].query():
            start, end = self._pending.popleft()
            done.append(start.elapsed_time(end))
        return done
