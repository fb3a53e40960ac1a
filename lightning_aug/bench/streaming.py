"""Shards against image folders: how training batches mix, preparation rate, and loader throughput
on the same images.

Rows:

- ``mixing``: scikit-learn's digits as a class-sorted folder of 32x32 PNGs (as image folders list
  class by class), the folder loader against shards of it with chunks of ``--chunk-sizes`` and
  ``shuffle_chunks`` of 1 and the default, with 0 and ``--workers`` workers: distinct classes per
  batch of 64 (first 10 batches) and the largest share one class takes of a batch; and how many of
  the sample pairs that shared a batch in epoch 0 share one again in epoch 1 (the folder loader's
  reshuffle gives about batch size / samples).
- ``prepare``: ``lightning_aug.data.datasets.streaming.prepare_shards`` of ``--prepare-images``
  photographs (``data=photos``: ImageNet-like 500x375 JPEGs, stored as they are) with 1 and with
  ``--workers`` processes: images per second, and the speed-up.
- ``outage`` (``--outage TIMEOUT RETRIES``; needs moto, the ``dev`` extra): shards of the digits
  served by an S3-compatible server on 127.0.0.1, which is stopped after the first batch of an
  epoch: seconds until the loader fails, and its message.
- ``loader``: the ``imagenet_alb`` train pipeline (RandomResizedCrop(224) while decoding + flip) over
  ``--images`` synthetic ``--size`` x ``--size`` JPEGs, ``--workers`` loader workers, whole epochs
  after a warm-up one: from the image folder, from shards of the same files, and from shards
  re-encoded at ``--max-side`` (JPEG quality 90).

Run::

    python -m lightning_aug.bench.streaming                      # 10,000 photos; 400 images of 1024 px
    python -m lightning_aug.bench.streaming --prepare-images 2000 --images 200
    python -m lightning_aug.bench.streaming --prepare-images 0 --images 0      # the mixing rows only
    python -m lightning_aug.bench.streaming --prepare-images 0 --images 0 --chunk-sizes --outage 60 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["loader_rate", "main", "mixing_rows", "outage_row", "prepare_rate"]


def outage_row(root: Path, timeout: float, retries: int, workers: int) -> dict[str, Any]:
    """The ``outage`` row (see the module)."""
    import os

    import boto3
    from moto.server import ThreadedMotoServer

    from lightning_aug.data.datasets import ImageFolder
    from lightning_aug.data.datasets.digits import write_digits
    from lightning_aug.data.datasets.streaming import StreamingShards, prepare_shards
    from lightning_aug.data.loader import LoaderSettings
    from lightning_aug.datamodule import AugDataModule
    from lightning_aug.errors import DataError, one_line

    digits = write_digits(root / "digits")
    local = root / "digit-shards-outage"
    if not (local / "lightning_aug.json").exists():
        prepare_shards(ImageFolder(digits), local, num_workers=workers, chunk_bytes="64KB", splits=("train",))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    keys = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}
    options = {"endpoint_url": f"http://{host}:{port}", **keys}
    client = boto3.client("s3", **options)
    client.create_bucket(Bucket="bench")
    for path in local.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), "bench", f"digits/{path.relative_to(local)}")
    factory = StreamingShards(
        "s3://bench/digits",
        cache_dir=str(root / f"outage-cache-{os.getpid()}"),
        storage_options=options,
        timeout=timeout,
        retries=retries,
    )
    datamodule = AugDataModule(factory, loader=LoaderSettings(batch_size=32, num_workers=workers), seed=0)
    datamodule.setup("fit")
    batches = iter(datamodule.train_dataloader())
    next(batches)
    server.stop()
    start = time.perf_counter()
    message = "no error"
    try:
        for _ in batches:
            pass
    except DataError as err:
        message = one_line(err)
    return {
        "row": f"outage, timeout {timeout:g} s, {retries} attempt(s), {workers} worker(s)",
        "seconds to fail": round(time.perf_counter() - start, 1),
        "message": message,
    }


def _epochs(factory: Any, workers: int) -> list[list[list[tuple[int, int]]]]:
    """The ``(sample, label)`` pairs of each training batch of 64 of epochs 0 and 1, in order
    (samples by their pixels' hash: the same image in every loader)."""
    import numpy as np

    from lightning_aug.data.loader import LoaderSettings
    from lightning_aug.datamodule import AugDataModule

    loader = LoaderSettings(batch_size=64, num_workers=workers, persistent_workers=False)
    datamodule = AugDataModule(factory, loader=loader, seed=0)
    datamodule.setup("fit")
    made = datamodule.train_dataloader()
    epochs = []
    for epoch in (0, 1):
        if hasattr(made.sampler, "set_epoch"):  # as Lightning does; a shuffled loader's generator moves on
            made.sampler.set_epoch(epoch)
        batches = []
        for images, labels in made:
            keys = [hash(np.asarray(image).tobytes()) for image in images]
            batches.append(list(zip(keys, labels.tolist(), strict=True)))
        epochs.append(batches)
    return epochs


def _mix(batches: list[list[tuple[int, int]]], first: int = 10) -> tuple[float, float]:
    import numpy as np

    distinct, share = [], []
    for batch in batches[:first]:
        counts = np.bincount([label for _, label in batch], minlength=10)
        distinct.append(int((counts > 0).sum()))
        share.append(float(counts.max()) / len(batch))
    return float(np.mean(distinct)), float(np.max(share))


def _together_again(one: list[list[tuple[int, int]]], two: list[list[tuple[int, int]]]) -> float:
    """The share of sample pairs in one batch of ``one`` that are in one batch of ``two`` again."""
    where = {key: b for b, batch in enumerate(two) for key, _ in batch}
    pairs = again = 0
    for batch in one:
        keys = [key for key, _ in batch]
        for i in range(len(keys)):
            for j in range(i + 1, len(keys)):
                pairs += 1
                again += where.get(keys[i], -1) == where.get(keys[j], -2)
    return again / max(1, pairs)


def mixing_rows(root: Path, chunk_sizes: list[str], workers: int) -> list[dict[str, Any]]:
    """The ``mixing`` rows (see the module)."""
    from lightning_aug.data.datasets import ImageFolder
    from lightning_aug.data.datasets.digits import write_digits
    from lightning_aug.data.datasets.streaming import SHUFFLE_CHUNKS, StreamingShards, prepare_shards

    digits = write_digits(root / "digits")
    cases: list[tuple[str, Any]] = [("image folder (class-sorted)", lambda: ImageFolder(digits))]
    for size in chunk_sizes:
        out = root / f"digit-shards-{size}"
        if not (out / "lightning_aug.json").exists():
            prepare_shards(
                ImageFolder(digits), out, num_workers=workers, chunk_bytes=size, splits=("train", "val")
            )
        for window in sorted({1, SHUFFLE_CHUNKS}):
            cases.append(
                (
                    f"shards, {size} chunks, shuffle_chunks={window}",
                    lambda o=out, w=window: StreamingShards(str(o), shuffle_chunks=w),
                )
            )
    rows = []
    for name, make in cases:
        for count in (0, workers):
            first, second = _epochs(make(), count)
            distinct, share = _mix(first)
            rows.append(
                {
                    "row": f"mixing, {name}, {count} worker(s)",
                    "classes per batch": round(distinct, 2),
                    "largest class share": round(share, 3),
                    "pairs together again": round(_together_again(first, second), 4),
                }
            )
    return rows


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
    images = metadata["splits"]["train"]["samples"]
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


def loader_rows(root: Path, images: int, size: int, max_side: int, workers: int) -> list[dict[str, Any]]:
    """The ``loader`` rows (see the module)."""
    from lightning_aug.data.datasets import SyntheticShapes
    from lightning_aug.data.datasets.streaming import StreamingShards, prepare_shards

    per_class = max(1, images // 10)
    folder = SyntheticShapes(
        root=root / "synthetic", image_size=size, train_per_class=per_class, val_per_class=1, test_per_class=0
    )
    folder.prepare()
    prepare_shards(folder, root / "shards", splits=("train",), num_workers=workers)
    prepare_shards(folder, root / "shards-small", splits=("train",), num_workers=workers, max_side=max_side)
    base = loader_rate(folder, workers)
    rows = []
    for name, rate in (
        ("loader, image folder", base),
        ("loader, shards (same files)", loader_rate(StreamingShards(str(root / "shards")), workers)),
        (
            f"loader, shards re-encoded at max side {max_side}",
            loader_rate(StreamingShards(str(root / "shards-small")), workers),
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
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--prepare-images", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--chunk-sizes", nargs="*", default=["64KB", "1MB", "64MB"], help="of the mixing rows"
    )
    parser.add_argument(
        "--outage", nargs=2, type=float, metavar=("TIMEOUT", "RETRIES"), help="measure the outage row"
    )
    args = parser.parse_args(argv)

    root = args.root or Path(tempfile.mkdtemp(prefix="lightning-aug-bench-streaming-"))
    rows: list[dict[str, Any]] = []
    if args.chunk_sizes:
        rows += mixing_rows(root, args.chunk_sizes, args.workers)
    if args.prepare_images:
        one = prepare_rate(args.prepare_images, 1, root)
        many = prepare_rate(args.prepare_images, args.workers, root)
        many["speed-up"] = round(many["img/s"] / one["img/s"], 2)
        rows += [one, many]
    if args.outage:
        rows.append(outage_row(root, args.outage[0], int(args.outage[1]), args.workers))
    if args.images:
        rows += loader_rows(root, args.images, args.size, args.max_side, args.workers)
    for row in rows:
        print(" | ".join(f"{k}: {v}" for k, v in row.items()))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
