"""What ``DataStallMonitor`` costs a training step: ``python -m lightning_aug.bench.stall``.

The same fit (scikit-learn's digits as a folder of PNGs, 2 workers, the small CNN, batches of 64) runs
``--rounds`` times without the monitor and with it, alternately, ``--steps`` steps each; a timing
callback present in both runs reads the time between steps. Printed and written (``--out``, JSON):
the mean step interval of each, their difference, and the monitor's own time in its hooks over the
run's time (what it adds, measured directly: the A/B difference is within the machine's noise).

    python -m lightning_aug.bench.stall --steps 60 --rounds 2 [--device cuda] [--out stall.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "measure"]


def _fit(root: Path, steps: int, monitored: bool, device: str, out: Path) -> dict[str, float]:
    from lightning.pytorch import Callback, Trainer, seed_everything
    from torchvision.transforms import v2

    from lightning_aug.data.datasets import ImageFolder
    from lightning_aug.data.loader import LoaderSettings
    from lightning_aug.datamodule import AugDataModule
    from lightning_aug.models import ImageClassifier
    from lightning_aug.monitor.callback import DataStallMonitor

    class Intervals(Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_batch_end(self, *args: Any) -> None:
            self.ends.append(time.perf_counter())

    seed_everything(0, workers=False)
    datamodule = AugDataModule(
        ImageFolder(root),
        train_transforms=[v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()],
        loader=LoaderSettings(batch_size=64, num_workers=2),
        seed=0,
    )
    intervals = Intervals()
    monitor = DataStallMonitor(dirpath=out, plot=False) if monitored else None
    trainer = Trainer(
        accelerator=device,
        devices=1,
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[intervals, *([monitor] if monitor else [])],
    )
    trainer.fit(ImageClassifier(num_classes=10, arch="small_cnn"), datamodule)
    ends = intervals.ends[3:]  # as the monitor: the first steps start the workers
    row = {"interval_ms": (ends[-1] - ends[0]) / (len(ends) - 1) * 1e3}
    if monitor is not None and monitor.report is not None:
        row["overhead_fraction"] = monitor.report.overhead_fraction
        row["wait_fraction"] = monitor.report.wait_fraction
    return row


def measure(steps: int = 60, rounds: int = 2, device: str = "cpu") -> dict[str, Any]:
    """The A/B rows and their summary (module docstring)."""
    from lightning_aug.data.datasets.digits import write_digits

    with tempfile.TemporaryDirectory() as tmp:
        root = write_digits(Path(tmp) / "digits", size=32)
        rows: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
        for _ in range(rounds):
            for name in ("without", "with"):
                rows[name].append(_fit(root, steps, name == "with", device, Path(tmp) / "out"))
    without = statistics.mean(r["interval_ms"] for r in rows["without"])
    with_ = statistics.mean(r["interval_ms"] for r in rows["with"])
    return {
        "device": device,
        "steps": steps,
        "rounds": rounds,
        "interval_ms_without": without,
        "interval_ms_with": with_,
        "difference": with_ / without - 1,
        "monitor_overhead_fraction": statistics.mean(r["overhead_fraction"] for r in rows["with"]),
        "wait_fraction": statistics.mean(r["wait_fraction"] for r in rows["with"]),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.steps, args.rounds, args.device)
    print(
        f"DataStallMonitor on {result['device']}: {result['interval_ms_without']:.1f} ms a step without, "
        f"{result['interval_ms_with']:.1f} ms with ({result['difference']:+.1%}, the machine's noise "
        f"included); its hooks take {result['monitor_overhead_fraction']:.3%} of the run"
    )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
