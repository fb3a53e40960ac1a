"""The verdict of :class:`~lightning_aug.monitor.DataStallMonitor`: what the measured steps say, what
limits the run and what to try, with the numbers it used.

A batch a worker has ready still takes time to reach the training process (its tensors are passed
between processes: about 1.5 ms a batch on the 2-core development machine, whatever the worker
count): the **hand-over**, the median wait of the steps whose batch was ready when asked for (the
loader's queue said so). The wait beyond it is the **stall**: the loader not keeping up.

The arithmetic of the worker count: when the loader limits, all ``W`` workers are busy, so one
worker makes a batch in ``W * interval`` (the time between two steps); the model takes a batch every
``interval - stall``. ``W' = ceil(W * interval * margin / (interval - stall))`` workers make batches
``margin`` times as fast as the model takes them. Without workers (``W = 0``) the training process
loads each batch in ``wait``: ``W' = ceil(wait * margin / (interval - wait))``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["STALL_FRACTION", "StallReport", "StepTimes", "suggested_workers"]

STALL_FRACTION = 0.1  # stalled (waiting beyond the hand-over) more than this share: the loader limits
STAGE_FRACTION = 0.25  # the transfer or device stage taking more than this share of a step: it limits it

Limit = Literal["loader", "transfer", "device stage", "model"]


@dataclass
class StepTimes:
    """Per training step, in seconds: the wait for the batch (the loader's ``next``), the transfer (from
    the batch's arrival to the device stage: Lightning's transfer and hooks), the device stage (host
    time), the training step (forward, backward, optimizer), the time between the ends of two steps;
    and whether a worker's batch was ready when the wait began (``None``: not known)."""

    wait: list[float] = dataclasses.field(default_factory=list)
    transfer: list[float] = dataclasses.field(default_factory=list)
    ready: list[bool | None] = dataclasses.field(default_factory=list)
    stage: list[float] = dataclasses.field(default_factory=list)
    step: list[float] = dataclasses.field(default_factory=list)
    interval: list[float] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.interval)

    def add(
        self,
        wait: float,
        stage: float,
        step: float,
        interval: float,
        transfer: float = 0.0,
        ready: bool | None = None,
    ) -> None:
        self.wait.append(wait)
        self.transfer.append(transfer)
        self.ready.append(ready)
        self.stage.append(stage)
        self.step.append(step)
        self.interval.append(interval)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def suggested_workers(workers: int, wait: float, interval: float, margin: float) -> int:
    """Workers that make batches ``margin`` times as fast as the model takes them (module docstring).

    Example::

        >>> suggested_workers(workers=1, wait=0.022, interval=0.032, margin=1.2)  # 10 ms left per step
        4
    """
    busy = max(interval - wait, 1e-6)  # the model's share of a step
    if workers == 0:
        return max(1, math.ceil(wait * margin / busy))
    return max(workers + 1, math.ceil(workers * interval * margin / busy))


@dataclass(frozen=True)
class StallReport:
    """What :class:`~lightning_aug.monitor.DataStallMonitor` measured over a fit (means per step, in
    milliseconds), what limits the run, and what to try (``advice``, the verdict's lines).

    Attributes:
        steps: the training steps measured (the fit's first ``skip_steps`` are not).
        wait_fraction: the share of the measured time spent waiting for the next batch.
        stall_fraction: the share spent waiting beyond the hand-over (module docstring).
        handover_ms: the time a ready batch takes to come from a worker (0 without workers).
        stage_on: where ``stage_ms`` was measured: ``"cuda"`` (GPU time, CUDA events) or ``"host"``.
        workers: the training loader's workers (``None``: not a ``DataLoader``).
        cpus: the CPUs this process may use, per device on this node.
        workers_busy: the share of the measured time the workers spent on a CPU (decoding,
            augmenting) rather than waiting (reading files or a network, sleeping); ``None``: not known
            (no workers, or no ``/proc``). Busy workers need a CPU each; waiting ones do not.
        suggested_workers: when the loader limits: the workers that remove the wait (``None``
            otherwise).
        headspace_ms: the step time with batches already there (cached batches replayed), when
            measured (``headspace=True``).
        overhead_fraction: the monitor's own time over the measured time.
    """

    steps: int
    wait_fraction: float
    stall_fraction: float
    wait_ms: float
    handover_ms: float
    transfer_ms: float
    stage_ms: float
    stage_on: str
    step_ms: float
    interval_ms: float
    batches_per_s: float
    workers: int | None
    cpus: int
    workers_busy: float | None
    limit: Limit
    suggested_workers: int | None
    headspace_ms: float | None
    overhead_fraction: float
    advice: tuple[str, ...]

    @classmethod
    def of(
        cls,
        times: StepTimes,
        workers: int | None,
        cpus: int,
        margin: float,
        stage_ms: float | None = None,
        headspace_ms: float | None = None,
        overhead: float = 0.0,
        workers_busy: float | None = None,
    ) -> StallReport:
        """The report of ``times``; ``stage_ms``: the stage's GPU time where read (else its host time)."""
        total = sum(times.interval)
        wait, interval = _mean(times.wait), _mean(times.interval)
        fraction = sum(times.wait) / total if total > 0 else 0.0
        ready = [w for w, r in zip(times.wait, times.ready, strict=True) if r]
        handover = statistics.median(ready) if workers and ready else 0.0
        stall = _mean([max(w - handover, 0.0) for w in times.wait])
        stage = stage_ms if stage_ms is not None else _mean(times.stage) * 1e3
        transfer = _mean(times.transfer) * 1e3
        if interval > 0 and stall / interval > STALL_FRACTION:
            limit: Limit = "loader"
        elif interval > 0 and (transfer + handover * 1e3) / (interval * 1e3) > STAGE_FRACTION:
            limit = "transfer"
        elif interval > 0 and stage / (interval * 1e3) > STAGE_FRACTION:
            limit = "device stage"
        else:
            limit = "model"
        suggested = None
        if limit == "loader" and workers is not None:
            suggested = suggested_workers(workers, stall, interval, margin)  # no workers: stall = wait
        fields: dict[str, Any] = {
            "steps": len(times),
            "wait_fraction": fraction,
            "stall_fraction": stall / interval if interval > 0 else 0.0,
            "wait_ms": wait * 1e3,
            "handover_ms": handover * 1e3,
            "transfer_ms": transfer,
            "stage_ms": stage,
            "stage_on": "cuda" if stage_ms is not None else "host",
            "step_ms": _mean(times.step) * 1e3,
            "interval_ms": interval * 1e3,
            "batches_per_s": 1.0 / interval if interval > 0 else 0.0,
            "workers": workers,
            "cpus": cpus,
            "workers_busy": workers_busy,
            "limit": limit,
            "suggested_workers": suggested,
            "headspace_ms": headspace_ms,
            "overhead_fraction": overhead / total if total > 0 else 0.0,
            "advice": (),
        }
        report = cls(**fields)
        return dataclasses.replace(report, advice=report._advice(margin))

    def _advice(self, margin: float) -> tuple[str, ...]:
        handover = ""  # known where some batch was ready when asked for
        if self.handover_ms > 0:
            handover = f", {self.handover_ms:.1f} ms of it the hand-over of a ready batch from a worker"
        lines = [
            f"data stall: {self.wait_fraction:.0%} of {self.steps} measured training steps spent waiting "
            f"for the next batch ({self.wait_ms:.1f} of {self.interval_ms:.1f} ms between steps{handover}; "
            f"training step {self.step_ms:.1f} ms, transfer {self.transfer_ms:.1f} ms, device stage "
            f"{self.stage_ms:.1f} ms {self._stage_where()})"
        ]
        model_rate = 1e3 / max(self._model_ms, 1e-6)
        if self.limit == "loader":
            given = (
                "no worker (loading in the training process)"
                if self.workers == 0
                else (
                    f"{self.workers} worker{'s' if self.workers != 1 else ''}"
                    if self.workers is not None
                    else "the loader"
                )
            )
            busy = ""
            if self.workers_busy is not None:
                doing = "decoding and augmenting"
                if self.workers_busy < 0.5:
                    doing = "waiting (reading, a network)"
                busy = f"; the workers are on a CPU {self.workers_busy:.0%} of the time: mostly {doing}"
            lines.append(
                f"limit: the loader: {given} give{'s' if self.workers in (None, 0, 1) else ''} "
                f"{self.batches_per_s:.1f} batches/s, the model takes {model_rate:.1f}/s{busy}"
            )
            lines.extend(self._loader_advice(margin))
        elif self.limit == "transfer":
            lines.append(
                f"limit: the transfer ({self.handover_ms:.1f} ms from a worker + {self.transfer_ms:.1f} ms "
                f"to the device stage, of {self.interval_ms:.1f} ms a step): larger batches (the hand-over "
                "is per batch), pinned memory on CUDA (loader.pin_memory=true), no work of your own in "
                "on_before_batch_transfer or transfer_batch_to_device"
            )
        elif self.limit == "device stage":
            lines.append(
                f"limit: the device stage ({self.stage_ms:.1f} of {self.interval_ms:.1f} ms a step): "
                "fewer or cheaper device ops (augment=..., device_transforms), or mixup on fewer batches"
            )
        else:
            lines.append(
                f"limit: the model: the loader keeps up ({self.batches_per_s:.1f} batches/s are trained); "
                "a faster loader would not speed this run up"
            )
        if self.headspace_ms is not None:
            gain = self.interval_ms / self.headspace_ms if self.headspace_ms > 0 else float("inf")
            lines.append(
                f"headspace: with the batches already there a step takes {self.headspace_ms:.1f} ms "
                f"(cached batches replayed) against {self.interval_ms:.1f} ms now: a perfect loader "
                f"would make this run {gain:.2f}x as fast"
            )
        return tuple(lines)

    @property
    def _model_ms(self) -> float:
        """The time a step takes when the batch is there: the interval less the stall."""
        return self.interval_ms * (1 - self.stall_fraction)

    def _stage_where(self) -> str:
        return "of GPU time" if self.stage_on == "cuda" else "on the host"

    def _loader_advice(self, margin: float) -> list[str]:
        smaller = (
            "decode less per sample: shards re-encoded at a smaller side (lightning-aug-prepare "
            "prepare.max_side=...), a decoder that crops while decoding (data.decoder=cv2 or nvimgcodec), "
            "or the augmentation on the device (augment=cifar_device, device_transforms)"
        )
        if self.suggested_workers is None:
            return [f"try: more loader workers, or {smaller}"]
        per_batch = (self.workers or 1) * self.interval_ms if self.workers else self.wait_ms
        reason = (
            f"a worker makes a batch in {per_batch:.1f} ms, the model takes one every "
            f"{self._model_ms:.1f} ms; {margin:g}x that rate"
        )
        workers = self.suggested_workers
        # busy workers need a CPU each (the training process keeps one); waiting ones share them
        cpus_needed = workers * (1.0 if self.workers_busy is None else min(1.0, self.workers_busy))
        if cpus_needed + 1 > self.cpus:
            return [
                f"try: {workers} workers would be needed ({reason}), on {cpus_needed:.1f} CPUs, and this "
                f"process has {self.cpus} CPU{'s' if self.cpus != 1 else ''} per device: {smaller}"
            ]
        return [f"try: loader.num_workers={workers} (LoaderSettings(num_workers={workers}); {reason})"]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (``data_stall.json``)."""
        out = dataclasses.asdict(self)
        out["advice"] = list(self.advice)
        return out
