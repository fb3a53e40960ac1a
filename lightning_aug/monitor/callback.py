"""``DataStallMonitor``: is the GPU waiting for data, by how much, and what to change."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch.utils.data import DataLoader
from typing_extensions import override

from lightning_aug._checks import check_bool, check_int
from lightning_aug.data.loader import available_cpus
from lightning_aug.device.clock import StageClock
from lightning_aug.device.stage import StageHost
from lightning_aug.monitor.headspace import replay_steps
from lightning_aug.monitor.plot import plot_steps
from lightning_aug.monitor.report import StallReport, StepTimes
from lightning_aug.monitor.workers import children_cpu_seconds

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer

__all__ = ["DataStallMonitor"]


class DataStallMonitor(Callback):
    """Measures, per training step, the time spent waiting for the next batch, the device stage's
    time and the rest of the step; logs them; says at the end of fit what limits the run and what to
    try, with the numbers it used.

    Per step (read with ``time.perf_counter``): the **wait** is the time the training loader's
    ``next()`` took (``AugDataModule``'s loaders time it); the **transfer** runs from the batch's
    arrival to the start of the device stage (Lightning's transfer and hooks); the **device stage** is
    ``AugDataModule``'s (its host time, and on CUDA its GPU time from CUDA events read once the GPU
    has passed them: no host sync per step); the **training step** runs from ``on_train_batch_start``
    to ``on_train_batch_end``. With a DataModule of your own, everything between two steps counts as
    wait (Lightning's logging and hooks included). Validation and the first ``skip_steps`` of the fit
    (workers starting, kernels tuning) are not measured.

    Logged every ``log_every_n_steps`` steps (the trainer's; to every logger and the progress bar), as
    means over the last ``window`` steps:
    ``data/wait_fraction``, ``data/stage_ms``, ``data/batches_per_s``. At the end of fit (rank 0):
    the verdict (:class:`~lightning_aug.monitor.report.StallReport`, also ``report``), written with
    the per-step times to ``data_stall.json`` and drawn to ``data_stall.png`` in ``dirpath``.

    Args:
        skip_steps: steps at the start of the fit that are not measured.
        window: steps the logged means are taken over.
        headspace: after ``skip_steps + window`` steps, replay ``headspace_steps`` batches cached from
            the following steps to time a step without the loader (model, optimizer and random state
            are restored: the run trains as without it), and say what a perfect loader would gain.
        headspace_steps: batches cached and replayed (kept on the device meanwhile).
        margin: the suggested workers make batches this many times as fast as the model takes them.
        dirpath: where ``data_stall.json`` and ``data_stall.png`` go; ``None``: the trainer's
            ``default_root_dir``.
        plot: draw ``data_stall.png``.

    Example::

        >>> monitor = DataStallMonitor(headspace=True)
        >>> monitor.report is None  # until a fit ends
        True
    """

    def __init__(
        self,
        skip_steps: int = 3,
        window: int = 20,
        headspace: bool = False,
        headspace_steps: int = 8,
        margin: float = 1.2,
        dirpath: str | Path | None = None,
        plot: bool = True,
    ) -> None:
        self.skip_steps = check_int("skip_steps", skip_steps, 0)
        self.window = check_int("window", window, 1)
        self.headspace = check_bool("headspace", headspace)
        self.headspace_steps = check_int("headspace_steps", headspace_steps, 1)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 1:
            raise ValueError(f"margin must be a number >= 1, got {margin!r}")
        self.margin = float(margin)
        self.dirpath = None if dirpath is None else Path(dirpath)
        self.plot = check_bool("plot", plot)
        self.report: StallReport | None = None
        self.times = StepTimes()
        self._reset()

    def _reset(self) -> None:
        self.times = StepTimes()
        self.report = None
        self._clock: StageClock | None = None
        self._host: StageHost | None = None
        self._stage_gpu_ms: list[float] = []
        self._last_end: float | None = None
        self._start = 0.0
        self._wait: tuple[float, float, float, bool | None] | None = None  # wait, stage, transfer, ready
        self._seen = 0
        self._overhead = 0.0
        self._cached: list[Any] = []
        self._headspace_ms: float | None = None
        # the workers' CPU seconds and the wall seconds of the measured training (validation paused)
        self._cpu_mark: tuple[float, float] | None = None
        self._cpu_spent, self._wall_spent = 0.0, 0.0

    def _resume_cpu(self) -> None:
        cpu = children_cpu_seconds()
        self._cpu_mark = None if cpu is None else (cpu, time.perf_counter())

    def _pause_cpu(self) -> None:
        if self._cpu_mark is not None:
            cpu = children_cpu_seconds()
            if cpu is not None:
                self._cpu_spent += cpu - self._cpu_mark[0]
                self._wall_spent += time.perf_counter() - self._cpu_mark[1]
            self._cpu_mark = None

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._reset()
        if self.headspace and not pl_module.automatic_optimization:
            raise ValueError(
                "DataStallMonitor(headspace=True) replays training steps with Lightning's automatic "
                "optimization; this module optimizes manually (headspace=False measures the rest)"
            )
        datamodule = trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning
        if isinstance(datamodule, StageHost):
            self._host, self._clock = datamodule, StageClock()
            datamodule.stage.clock = self._clock

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._host is not None and self._host.stage.clock is self._clock:
            self._host.stage.clock = None
        self._host, self._clock, self._cached = None, None, []

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_end = time.perf_counter()

    @override
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.training:
            self._pause_cpu()

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.training:  # validation within an epoch is not waiting for a training batch
            if self._seen > self.skip_steps:
                self._resume_cpu()
            self._last_end = time.perf_counter()

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._pause_cpu()

    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        self._wait = None
        if self._seen == self.skip_steps and self._cpu_mark is None:
            self._resume_cpu()
        last = self._last_end
        if last is not None and self._seen >= self.skip_steps:
            clock = self._clock
            stage = 0.0
            if clock is not None and clock.started >= last:  # this step's stage run
                stage = clock.host_ms / 1e3
                clock.claim()  # its GPU time, read once the GPU has passed it
            if clock is not None and clock.fetch_ended >= last:  # our loader timed its next()
                arrived = clock.fetch_ended
                transfer = max((clock.started if clock.started >= arrived else now) - arrived, 0.0)
                self._wait = (clock.fetch_s, stage, transfer, clock.fetch_ready)
            else:  # a loader of its own: everything between the steps but the stage is the wait
                self._wait = (max(now - last - stage, 0.0), stage, 0.0, None)
            if self.headspace and self._headspace_ms is None and len(self.times) >= self.window:
                self._cached.append(batch)
        self._start = time.perf_counter()
        self._overhead += self._start - now

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        self._seen += 1
        if self._wait is not None and self._last_end is not None:
            wait, stage, transfer, ready = self._wait
            interval = now - self._last_end
            self.times.add(wait, stage, now - self._start, interval, transfer, ready)
            if self._clock is not None:
                self._stage_gpu_ms.extend(self._clock.poll())
            if self._seen % max(1, trainer.log_every_n_steps) == 0:  # type: ignore[attr-defined]  # Lightning's own cadence
                self._log(pl_module)
        if len(self._cached) >= self.headspace_steps:
            self._headspace_ms = replay_steps(trainer, pl_module, self._cached) * 1e3
            self._cached = []
        end = time.perf_counter()
        self._overhead += end - now
        self._last_end = end

    def _log(self, pl_module: LightningModule) -> None:
        window = slice(-self.window, None)
        waits, stages, intervals = (
            self.times.wait[window],
            self.times.stage[window],
            self.times.interval[window],
        )
        total = sum(intervals)
        gpu = self._stage_gpu_ms[-self.window :]
        stage_ms = sum(gpu) / len(gpu) if gpu else sum(stages) / len(stages) * 1e3
        metrics = {
            "data/wait_fraction": sum(waits) / total if total > 0 else 0.0,
            "data/stage_ms": stage_ms,
            "data/batches_per_s": len(intervals) / total if total > 0 else 0.0,
        }
        pl_module.log_dict(metrics, prog_bar=True, on_step=True, on_epoch=False, batch_size=1)

    def _workers_busy(self, trainer: Trainer) -> float | None:
        """The share of the measured time the workers spent on a CPU (``None``: not known)."""
        workers = self._workers(trainer)
        if not workers or self._wall_spent <= 0:
            return None
        return self._cpu_spent / (workers * self._wall_spent)

    def _workers(self, trainer: Trainer) -> int | None:
        loader = trainer.train_dataloader
        return loader.num_workers if isinstance(loader, DataLoader) else None

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not len(self.times):
            rank_zero_info(
                f"data stall: no training step measured (the first {self.skip_steps} are skipped: "
                "DataStallMonitor(skip_steps=...))"
            )
            return
        if self._clock is not None:
            self._stage_gpu_ms.extend(self._clock.poll())
        gpu = self._stage_gpu_ms  # the measured training steps' (claimed) runs
        self.report = StallReport.of(
            self.times,
            self._workers(trainer),
            max(1, available_cpus() // max(1, trainer.num_devices)),
            self.margin,
            stage_ms=sum(gpu) / len(gpu) if gpu else None,
            headspace_ms=self._headspace_ms,
            overhead=self._overhead,
            workers_busy=self._workers_busy(trainer),
        )
        if trainer.global_rank != 0:
            return
        out = self.dirpath or Path(trainer.default_root_dir)
        out.mkdir(parents=True, exist_ok=True)
        record = {**self.report.to_dict(), "per_step_s": dataclasses.asdict(self.times)}
        (out / "data_stall.json").write_text(json.dumps(record, indent=1))
        written = [str(out / "data_stall.json")]
        if self.plot:
            written.append(str(plot_steps(self.times, self.report, out / "data_stall.png")))
        rank_zero_info("\n".join([*self.report.advice, f"data stall: {' '.join(written)}"]))
