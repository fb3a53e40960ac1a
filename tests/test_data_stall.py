"""DataStallMonitor (issue 35): a loader slowed on purpose and a fast one are told apart, the worker
count it suggests removes the stall in a follow-up run, headspace leaves the run as it was, and the
app's ``callbacks=data_stall`` writes its verdict, JSON and chart."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import compose_config, run_app, tiny_trainer
from lightning.pytorch import LightningModule, seed_everything
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import Dataset

from lightning_aug import AugDataModule, DataStallMonitor, LoaderSettings
from lightning_aug.device.clock import StageClock
from lightning_aug.device.stage import DeviceStage
from lightning_aug.monitor.report import StallReport, StepTimes, suggested_workers

BATCH = 8
STEP_S = 0.040  # the model's step, slept: steady under a loaded machine
DELAY_S = 0.012  # a slow sample: 96 ms a batch of 8, against the 40 ms step


class SleepySamples(Dataset):
    """Samples that take ``delay`` seconds each to make: a loader slowed on purpose."""

    def __init__(self, delay: float, n: int = BATCH * 64) -> None:
        self.delay, self.n = delay, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        if self.delay:
            time.sleep(self.delay)
        return np.full((8, 8, 3), index % 251, dtype=np.uint8), index % 2


class SlowStep(LightningModule):
    """A training step of a known time (a sleep) around a small linear model with dropout (its random
    stream) and SGD with momentum (an optimizer state)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(3 * 8 * 8, 2))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        time.sleep(STEP_S)
        loss = nn.functional.cross_entropy(self.head(batch[0]), batch[1])
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def _fit(delay: float, workers: int, tmp_path: Path, steps: int = 30, **options: Any) -> tuple[Any, ...]:
    seed_everything(0, workers=False)
    datamodule = AugDataModule(
        lambda split: SleepySamples(delay) if split == "train" else None,
        num_classes=2,
        loader=LoaderSettings(batch_size=BATCH, num_workers=workers, persistent_workers=False),
        seed=0,
    )
    monitor = DataStallMonitor(dirpath=tmp_path, **options)
    model = SlowStep()
    trainer = tiny_trainer(
        max_steps=steps,
        limit_val_batches=0,
        callbacks=[monitor],
        logger=CSVLogger(tmp_path),
        log_every_n_steps=1,
    )
    trainer.fit(model, datamodule)
    assert monitor.report is not None
    return monitor.report, trainer, model


def test_a_slow_loader_and_a_fast_one_are_told_apart_and_the_suggested_workers_remove_the_stall(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """12 ms a sample, batches of 8, one worker: 96 ms a batch against a 40 ms step."""
    with caplog.at_level(logging.INFO):
        slow, trainer, _ = _fit(DELAY_S, 1, tmp_path / "slow")
    assert slow.wait_fraction > 0.5 and slow.limit == "loader", slow
    assert slow.suggested_workers is not None and slow.suggested_workers >= 3
    assert f"loader.num_workers={slow.suggested_workers}" in slow.advice[2]
    verdict = caplog.text
    assert "data stall:" in verdict and "limit: the loader: 1 worker gives" in verdict
    # logged to the logger and the progress bar
    assert {"data/wait_fraction", "data/stage_ms", "data/batches_per_s"} <= set(trainer.progress_bar_metrics)
    logged = (Path(trainer.logger.log_dir) / "metrics.csv").read_text().splitlines()[0]
    assert "data/wait_fraction" in logged and "data/batches_per_s" in logged
    assert trainer.logged_metrics["data/wait_fraction"] > 0.5

    fast, _, _ = _fit(0.0, 1, tmp_path / "fast")
    assert fast.wait_fraction < 0.1 and fast.limit == "model", fast
    assert fast.suggested_workers is None and "limit: the model" in fast.advice[1]

    # the follow-up run with the suggested workers: the stall is gone, within 20% (the time between
    # steps at most 1.2x the time they take without the wait), and the run trains at about 2x the rate
    follow, _, _ = _fit(DELAY_S, slow.suggested_workers, tmp_path / "follow")
    assert follow.interval_ms <= 1.2 * (follow.interval_ms - follow.wait_ms), follow
    assert follow.limit == "model" and follow.batches_per_s > 1.8 * slow.batches_per_s, (follow, slow)

    # the chart: the wait (red) fills the slow run's columns, not the fast one's
    def red(path: Path) -> float:
        pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
        return float(np.mean(np.all(pixels == (214, 69, 65), axis=1)))

    slow_red, fast_red = red(tmp_path / "slow" / "data_stall.png"), red(tmp_path / "fast" / "data_stall.png")
    assert slow_red > 4 * max(fast_red, 1e-4)  # waits of 54% against 6% of the steps here
    record = json.loads((tmp_path / "slow" / "data_stall.json").read_text())
    assert record["limit"] == "loader" and len(record["per_step_s"]["wait"]) == slow.steps == 30 - 3


def test_headspace_times_a_step_without_the_loader_and_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    plain, _, model = _fit(DELAY_S, 1, tmp_path / "plain", steps=24)
    spaced, _, replayed = _fit(
        DELAY_S, 1, tmp_path / "headspace", steps=24, headspace=True, headspace_steps=4, window=8
    )
    assert plain.headspace_ms is None and spaced.headspace_ms is not None
    # a step without waiting: the model's 40 ms, not the 96 ms between steps the loader allows
    assert STEP_S * 1e3 <= spaced.headspace_ms < 0.6 * spaced.interval_ms, spaced
    assert "a perfect loader would make this run" in spaced.advice[-1]
    # the replay trained nothing that stayed: same weights, optimizer state, dropout draws
    for (name, a), b in zip(model.state_dict().items(), replayed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_headspace_with_manual_optimization_is_refused_in_one_line(tmp_path: Path) -> None:
    class Manual(SlowStep):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False

    datamodule = AugDataModule(lambda split: SleepySamples(0.0) if split == "train" else None, num_classes=2)
    trainer = tiny_trainer(
        max_steps=2, callbacks=[DataStallMonitor(headspace=True)], default_root_dir=tmp_path
    )
    with pytest.raises(ValueError, match=r"DataStallMonitor\(headspace=True\) replays .* optimizes manually"):
        trainer.fit(Manual(), datamodule)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("margin", 0.5, "margin must be a number >= 1, got 0.5"),
        ("window", 0, "window must be"),
        ("headspace", "yes", "headspace must be"),
    ],
)
def test_bad_options_are_refused_naming_them(option: str, value: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        DataStallMonitor(**{option: value})


def test_suggested_workers_cover_the_model_with_the_margin() -> None:
    # without workers the training process loads: 30 ms of loading for a 10 ms model step
    assert suggested_workers(workers=0, wait=0.030, interval=0.040, margin=1.2) == 4
    # two workers busy for 40 ms between 10 ms steps: each makes a batch in 80 ms
    assert suggested_workers(workers=2, wait=0.030, interval=0.040, margin=1.0) == 8
    # never fewer than one more than now when the loader limits
    assert suggested_workers(workers=4, wait=0.0011, interval=0.010, margin=1.0) == 5


def test_more_workers_than_cpus_turn_the_advice_to_decoding_less() -> None:
    times = StepTimes()
    for _ in range(10):
        times.add(wait=0.090, stage=0.001, step=0.009, interval=0.100)
    report = StallReport.of(times, workers=2, cpus=4, margin=1.2)
    assert report.suggested_workers == 24 and report.limit == "loader"
    assert "24 workers would be needed" in report.advice[2] and "prepare.max_side" in report.advice[2]
    enough = StallReport.of(times, workers=2, cpus=32, margin=1.2)
    assert "loader.num_workers=24" in enough.advice[2]
    # workers that wait (reading, a network) 95% of the time share the CPUs: 24 of them use 1.2
    waiting = StallReport.of(times, workers=2, cpus=4, margin=1.2, workers_busy=0.05)
    assert "loader.num_workers=24" in waiting.advice[2] and "waiting (reading" in waiting.advice[1]
    busy = StallReport.of(times, workers=2, cpus=4, margin=1.2, workers_busy=0.97)
    assert "decoding and augmenting" in busy.advice[1] and "24 workers would be needed" in busy.advice[2]


def test_a_slow_device_stage_is_named_as_the_limit() -> None:
    times = StepTimes()
    for _ in range(10):
        times.add(wait=0.0005, stage=0.004, step=0.0055, interval=0.010)
    report = StallReport.of(times, workers=2, cpus=8, margin=1.2)
    assert report.limit == "device stage" and "limit: the device stage" in report.advice[1]


def test_the_stage_clock_times_the_device_stage_on_the_host() -> None:
    stage = DeviceStage((0.5,) * 3, (0.25,) * 3, [])
    stage.clock = clock = StageClock()
    images = torch.zeros((4, 3, 8, 8), dtype=torch.uint8)
    before = time.perf_counter()
    stage(images, torch.zeros(4, dtype=torch.long))
    assert clock.started >= before and clock.host_ms > 0 and clock.poll() == []  # no CUDA: no events


@pytest.mark.gpu
def test_the_stage_clock_reads_cuda_events_without_waiting() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    stage = DeviceStage((0.5,) * 3, (0.25,) * 3, [])
    stage.clock = clock = StageClock()
    images = torch.zeros((64, 3, 224, 224), dtype=torch.uint8, device="cuda")
    stage(images, torch.zeros(64, dtype=torch.long, device="cuda"))
    torch.cuda.synchronize()
    clock.claim()
    (gpu_ms,) = clock.poll()
    assert gpu_ms > 0 and clock.poll() == []


def test_the_train_app_reports_the_stall_with_callbacks_data_stall(tmp_path: Path) -> None:
    result = run_app(
        "train",
        "callbacks=data_stall",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=8",
        "+trainer.limit_val_batches=1",
        "test=false",
        "callbacks.data_stall.skip_steps=2",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "data stall: " in output and "limit: the " in output, output[-2000:]
    record = json.loads((tmp_path / "run" / "data_stall.json").read_text())
    assert record["steps"] == 6 and record["workers"] == 2
    assert Image.open(tmp_path / "run" / "data_stall.png").size == (900, 340)


def test_data_stall_composes_beside_another_callbacks_set() -> None:
    cfg = compose_config("train", ["callbacks=[ema,data_stall]"])
    assert set(cfg.callbacks) == {"model_checkpoint", "ema", "data_stall"}
    assert cfg.callbacks.data_stall._target_ == "lightning_aug.DataStallMonitor"


def test_the_stall_bench_runs_both_ways_and_writes_its_numbers(tmp_path: Path) -> None:
    from helpers import run_command

    out = tmp_path / "stall.json"
    result = run_command(
        [
            sys.executable,
            "-m",
            "lightning_aug.bench.stall",
            "--steps",
            "8",
            "--rounds",
            "1",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(out.read_text())
    assert len(record["rows"]["with"]) == len(record["rows"]["without"]) == 1
    assert 0 < record["monitor_overhead_fraction"] < 1 and record["interval_ms_with"] > 0
    assert "DataStallMonitor on cpu:" in result.stdout
