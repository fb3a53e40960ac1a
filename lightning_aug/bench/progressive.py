"""What progressive resizing saves: the time of one training epoch at each crop size of a ramp, on
the photographs (``data=photos``, ImageNet-like 500x375 JPEGs) through the ``imagenet_alb`` pipeline
(crop while decoding), with the DataModule's loader alone and with ``trainer.fit`` of a small CNN.

Usage::

    python -m lightning_aug.bench.progressive                     # sizes 128 160 192 224, 2 workers
    python -m lightning_aug.bench.progressive --sizes 128 224 --workers 2 --width 16 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

__all__ = ["epoch_times", "main"]


def _datamodule(size: int, workers: int, per_class: int) -> Any:
    from hydra import compose, initialize_config_module

    from lightning_aug.cli.common import build_datamodule

    with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "data=photos",
                "augment=imagenet_alb",
                f"data.train_per_class={per_class}",
                f"loader.num_workers={workers}",
                "loader.persistent_workers=false",
                "datamodule.progressive_resize={start_size:" + f"{size},end_size:{size},end_epoch:1" + "}",
            ],
        )
    return build_datamodule(cfg), cfg


def epoch_times(
    sizes: list[int], workers: int, width: int, repeats: int, per_class: int = 60
) -> dict[int, dict[str, float]]:
    """Seconds of one epoch per crop size: the train loader alone (median of ``repeats`` passes) and
    ``trainer.fit`` of one epoch of ``ImageClassifier(width=width)`` on the CPU (validation off)."""
    from lightning.pytorch import Trainer, seed_everything

    from lightning_aug.models import ImageClassifier

    results: dict[int, dict[str, float]] = {}
    for size in sizes:
        dm, _ = _datamodule(size, workers, per_class)
        dm.prepare_data()
        dm.setup("fit")
        passes = []
        for _ in range(repeats):
            start = time.perf_counter()
            images = sum(len(batch[0]) for batch in dm.train_dataloader())
            passes.append(time.perf_counter() - start)
        seed_everything(0)
        trainer = Trainer(
            max_epochs=1,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
        start = time.perf_counter()
        trainer.fit(ImageClassifier(num_classes=dm.num_classes, width=width), dm)
        results[size] = {
            "images": images,
            "loader_s": statistics.median(passes),
            "fit_s": time.perf_counter() - start,
        }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 192, 224])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--width", type=int, default=16, help="channels of the small CNN's first stage")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=60, help="training photographs per class (9)")
    args = parser.parse_args(argv)
    results = epoch_times(args.sizes, args.workers, args.width, args.repeats, args.per_class)
    last = results[args.sizes[-1]]
    print(
        f"one training epoch on the photographs, {args.workers} workers, imagenet_alb, "
        f"small CNN width {args.width}"
    )
    print(f"{'crop':>6} {'images':>7} {'loader s':>9} {'x last':>7} {'fit s':>8} {'x last':>7}")
    for size, row in results.items():
        print(
            f"{size:>6} {row['images']:>7} {row['loader_s']:>9.2f} "
            f"{row['loader_s'] / last['loader_s']:>7.2f} {row['fit_s']:>8.2f} "
            f"{row['fit_s'] / last['fit_s']:>7.2f}"
        )


if __name__ == "__main__":
    main()
