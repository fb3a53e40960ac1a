"""Shards against image folders: preparation rate, and loader throughput on the same images.

Rows:

- ``prepare``: ``lightning_aug.data.datasets.streaming.prepare_shards`` of ``--prepare-images``
  photographs (``data=photos``: ImageNet-like 500x375 JPEGs, stored as they are) with 1 and with
  ``--workers`` processes: images per second, and the speed-up.
- ``loader``: the ``imagenet_alb`` train pipeline (RandomResizedCrop(224) while decoding + flip) over
  ``--images`` synthetic ``--size`` x ``--size`` JPEGs, ``--workers`` loader workers, whole epochs
  after a warm-up one: from the image folder, from shards of the same files, and from shards
  re-encoded at ``--max-side`` (JPEG quality 90).

Run::

    python -m lightning_aug.bench.streaming                      # 10,000 photos; 400 images of 1024 px
    python -m lightning_aug.bench.streaming --prepare-images 2000 --images 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["loader_rate", "main", "prepare_rate"]


def prepare_rate(count: int, workers: int, root: Path) -> dict[str, Any]:
    """Seconds and images/s of preparing ``count`` photographs with ``workers`` processes."""
    from lightning_aug.data.datasets.photos import Photos
    from lightning_aug.data.datasets.streaming import prepare_shards

    per_class = -(-count // 9)
    photos = Photos(root=root / "photos", train_per_class=per_class, val_per_class=1, test_per_class=0)
    photos.prepare()
    out = root / f"shards-prepare-{workers}"
    start = time.perf_counter()
    metadata = prepare_shards(photos, out, splits=("train",), num_workers=workers)
    seconds = time.perf_counter() - start
    images = metadata["splits"]["train"]
    return {
        "row": f"prepare, {workers} worker(s)",
        "images": images,
        "seconds": round(seconds, 2),
        "img/s": round(images / seconds, 1),
    }


def loader_rate(dataset: Any, workers: int, epochs: int = 2) -> float:
    """Images per second of the ``imagenet_alb`` train loader over ``dataset`` (a factory), whole epochs
    after a warm-up one."""
    from lightning_aug.bench.data_path import _preset
    from lightning_aug.data.loader import LoaderSettings
    from lightning_aug.datamodule import AugDataModule

    augment = _preset("imagenet_alb")  # the shipped preset (no interpolations in it)
    dm = AugDataModule(
        dataset,
        train_transforms=augment["train_transforms"],
        eval_transforms=augment["eval_transforms"],
        backend=augment["backend"],
        loader=LoaderSettings(
            batch_size=32, num_workers=workers, persistent_workers=workers > 0, drop_last=False
        ),
        seed=0,
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    for _ in loader:  # warm-up: workers start, files enter the page cache / shards the LitData cache
        pass
    start, images = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            images += len(batch[0])
    return images / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--prepare-images", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    from lightning_aug.data.datasets import SyntheticShapes
    from lightning_aug.data.datasets.streaming import StreamingShards, prepare_shards

    root = args.root or Path(tempfile.mkdtemp(prefix="lightning-aug-bench-streaming-"))
    rows: list[dict[str, Any]] = []
    if args.prepare_images:
        one = prepare_rate(args.prepare_images, 1, root)
        many = prepare_rate(args.prepare_images, args.workers, root)
        many["speed-up"] = round(many["img/s"] / one["img/s"], 2)
        rows += [one, many]
    per_class = max(1, args.images // 10)
    folder = SyntheticShapes(
        root=root / "synthetic",
        image_size=args.size,
        train_per_class=per_class,
        val_per_class=1,
        test_per_class=0,
    )
    folder.prepare()
    prepare_shards(folder, root / "shards", splits=("train",), num_workers=args.workers)
    prepare_shards(
        folder, root / "shards-small", splits=("train",), num_workers=args.workers, max_side=args.max_side
    )
    base = loader_rate(folder, args.workers)
    for name, rate in (
        ("loader, image folder", base),
        ("loader, shards (same files)", loader_rate(StreamingShards(str(root / "shards")), args.workers)),
        (
            f"loader, shards re-encoded at max side {args.max_side}",
            loader_rate(StreamingShards(str(root / "shards-small")), args.workers),
        ),
    ):
        rows.append(
            {
                "row": name,
                "images": per_class * 10,
                "img/s": round(rate, 1),
                "vs image folder": round(rate / base, 2),
            }
        )
    for row in rows:
        print(" | ".join(f"{k}: {v}" for k, v in row.items()))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
