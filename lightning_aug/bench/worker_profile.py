"""Where a DataLoader worker's time goes per image: cProfile of the configured train path
(``TransformedDataset.__getitems__``, a batch at a time, as a worker reads, at one decode thread) on the
photographs.

Usage::

    python -m lightning_aug.bench.worker_profile                      # imagenet_alb, 540 images
    python -m lightning_aug.bench.worker_profile --augment imagenet_tv --images 540 --top 25

Prints the wall time per image (unprofiled) and the functions with the most own time, in ms per
image: what docs/performance.md's "Why the per-worker targets are not met" reads.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from typing import Any

__all__ = ["main", "profile_workers_path"]


def profile_workers_path(augment: str, images: int, top: int) -> tuple[float, list[tuple[str, float]]]:
    """``(ms per image unprofiled, [(function, own ms per image), ...] for the ``top`` functions)``."""
    from hydra import compose, initialize_config_module

    from lightning_aug.bench.sweep import decode_threads
    from lightning_aug.cli.common import build_batch_path
    from lightning_aug.data.sampling import SampleKey

    with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
        cfg = compose("bench", overrides=["experiment=bench_imagenet", f"augment={augment}"])
    datamodule, _ = build_batch_path(cfg, "worker_profile")
    train: Any = datamodule.datasets["train"]
    count = min(images, len(train))
    batch = datamodule.loader.batch_size

    def one_pass(epoch: int) -> None:  # each pass another epoch: other crops, as in training
        keys = [SampleKey(i, epoch) for i in range(count)]
        with decode_threads(train, 1):  # the per-sample path: cProfile sees only the calling thread
            for start in range(0, count, batch):
                train.__getitems__(keys[start : start + batch])

    one_pass(0)  # warm: files in the page cache, decoders made
    start = time.perf_counter()
    one_pass(1)
    wall = (time.perf_counter() - start) * 1e3 / count
    profiler = cProfile.Profile()
    profiler.enable()
    one_pass(2)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    own = sorted(
        ((f"{func[2]} ({func[0].rsplit('/', 1)[-1]}:{func[1]})", row[2]) for func, row in stats.items()),
        key=lambda item: -item[1],
    )
    return wall, [(name, seconds * 1e3 / count) for name, seconds in own[:top]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--augment", default="imagenet_alb")
    parser.add_argument("--images", type=int, default=540)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    wall, rows = profile_workers_path(args.augment, args.images, args.top)
    print(f"augment={args.augment}: {wall:.3f} ms per image unprofiled; own time per image, profiled:")
    for name, ms in rows:
        print(f"  {ms:8.4f} ms  {name}")


if __name__ == "__main__":
    main()
