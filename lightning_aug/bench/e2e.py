"""End to end against timm's own pipeline: the same recipe, the same LightningModule and seeds, the
photographs read, augmented and mixed by lightning_aug, then by timm; fit time and accuracy of each.

Run::

    python -m lightning_aug.bench.e2e                         # 9 x 120 photographs, 64 px, 6 epochs
    python -m lightning_aug.bench.e2e --epochs 2 --per-class 40 --json e2e.json
    python -m lightning_aug.bench.e2e --decode-threads 1      # one decode thread a worker

The recipe: a timm ``resnet18`` (:class:`~lightning_aug.models.ImageClassifier` ``arch="timm"``, the
same class for both), random resized crops of ``--size`` with flips, mixup 0.8 / cutmix 1.0 with label
smoothing 0.1, batches of 64 from ``--workers`` workers, seed 0. lightning_aug: ``AugDataModule`` over
the photographs' folder (albumentations crop while decoding, uint8 batches, normalised on the
device, in the layout of the model) and ``MixupCallback``; timm: ``timm.data.ImageDataset`` with
``create_transform`` (PIL decode, float tensors) in a DataLoader, and ``timm.data.Mixup`` in the
training step, as timm's train script does. Both evaluate on the held-out photographs resized and
centre-cropped the same way. Each row gives the fit's seconds (``trainer.fit``, loaders' start-up
included) and the final validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Literal

__all__ = ["compare", "main"]


def _photos(per_class: int, val_per_class: int, root: str | None) -> Any:
    from lightning_aug.data.datasets import Photos

    photos = Photos(root=root, train_per_class=per_class, val_per_class=val_per_class, test_per_class=0)
    photos.prepare()
    return photos


def _trainer(epochs: int, callbacks: list[Any]) -> Any:
    from lightning.pytorch import Trainer

    return Trainer(
        max_epochs=epochs,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )


def _model(num_classes: int, cls: Any = None) -> Any:
    """The one model of both runs: ``cls`` (``ImageClassifier`` or a subclass of it) as a timm resnet18."""
    from lightning_aug.models import ImageClassifier

    return (cls or ImageClassifier)(num_classes=num_classes, arch="timm", name="resnet18", lr=3e-3)


def _ours(
    photos: Any, size: int, epochs: int, workers: int, decode_threads: int | Literal["auto"]
) -> dict[str, Any]:
    import albumentations as A
    from lightning.pytorch import seed_everything

    from lightning_aug.data.datasets import ImageFolder
    from lightning_aug.data.loader import LoaderSettings
    from lightning_aug.data.transforms import RandomResizedCrop
    from lightning_aug.datamodule import AugDataModule
    from lightning_aug.device.mixing import MixupCallback

    seed_everything(0, workers=False)
    datamodule = AugDataModule(
        ImageFolder(photos.path),
        train_transforms=[RandomResizedCrop(size=(size, size)), A.HorizontalFlip(p=0.5)],
        eval_transforms=[A.SmallestMaxSize(max_size=int(size / 0.875)), A.CenterCrop(size, size)],
        backend="albumentations",
        loader=LoaderSettings(batch_size=64, num_workers=workers, decode_threads=decode_threads),
        seed=0,
    )
    mixup = MixupCallback(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, seed=0)
    trainer = _trainer(epochs, [mixup])
    start = time.perf_counter()
    trainer.fit(_model(photos.num_classes), datamodule)
    return {"seconds": time.perf_counter() - start, "val_acc": float(trainer.callback_metrics["val/acc"])}


def _timm_data(photos: Any, size: int, workers: int) -> Any:
    """timm's data pipeline as a LightningDataModule: ``ImageDataset`` + ``create_transform`` (PIL)."""
    import torch
    from lightning.pytorch import LightningDataModule
    from timm.data import ImageDataset, create_transform

    def loader(split: str, train: bool) -> Any:
        # color_jitter=None: no jitter (timm takes None, its annotation says float)
        transform = create_transform(
            size,
            is_training=train,
            color_jitter=None,  # type: ignore[arg-type]
            crop_pct=0.875,
        )
        dataset = ImageDataset(str(photos.path / split), transform=transform)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=64,
            shuffle=train,
            drop_last=train,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    data = LightningDataModule()
    data.train_dataloader = lambda: loader("train", True)  # type: ignore[method-assign]
    data.val_dataloader = lambda: loader("val", False)  # type: ignore[method-assign]
    return data


def _timm(photos: Any, size: int, epochs: int, workers: int) -> dict[str, Any]:
    from lightning.pytorch import seed_everything
    from timm.data import Mixup

    from lightning_aug.models import ImageClassifier

    seed_everything(0, workers=False)
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=photos.num_classes)

    class MixedInTheStep(ImageClassifier):
        """The same model; timm's mixup on the batch in the training step, as timm's train loop does."""

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            images, labels = batch
            return super().training_step(mixup(images, labels), batch_idx)

    model = _model(photos.num_classes, MixedInTheStep)
    trainer = _trainer(epochs, [])
    start = time.perf_counter()
    trainer.fit(model, _timm_data(photos, size, workers))
    return {"seconds": time.perf_counter() - start, "val_acc": float(trainer.callback_metrics["val/acc"])}


def compare(
    per_class: int = 120,
    val_per_class: int = 13,
    size: int = 64,
    epochs: int = 6,
    workers: int = 2,
    root: str | None = None,
    decode_threads: int | Literal["auto"] = "auto",
) -> dict[str, Any]:
    """Both pipelines on the same photographs (timm's first, then ours: a warm file cache for both);
    ``{"lightning_aug": {...}, "timm": {...}, "ratio": timm seconds / ours}``."""
    photos = _photos(per_class, val_per_class, root)
    rows = {
        "timm": _timm(photos, size, epochs, workers),
        "lightning_aug": _ours(photos, size, epochs, workers, decode_threads),
    }
    for row in rows.values():
        row["seconds"] = round(row["seconds"], 2)
        row["val_acc"] = round(row["val_acc"], 4)
    return {
        "images": {"train": per_class * photos.num_classes, "val": val_per_class * photos.num_classes},
        "size": size,
        "epochs": epochs,
        "workers": workers,
        "decode_threads": decode_threads,
        **rows,
        "speedup": round(rows["timm"]["seconds"] / rows["lightning_aug"]["seconds"], 3),
    }


def _decode_threads(value: str) -> int | str:
    """``--decode-threads`` as LoaderSettings takes it, refused before either fit starts."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1 or auto, got {value!r}")
    return int(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_aug.bench.e2e", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--per-class", type=int, default=120, help="training photographs per class (9)")
    parser.add_argument("--val-per-class", type=int, default=13)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--decode-threads",
        default="auto",
        type=_decode_threads,
        help="lightning_aug's loader.decode_threads (an int >= 1, or auto)",
    )
    parser.add_argument("--root", default=None, help="where the photographs are written (default: the cache)")
    parser.add_argument("--json", help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    sizes = (args.per_class, args.val_per_class, args.size, args.epochs, args.workers)
    result = compare(*sizes, root=args.root, decode_threads=args.decode_threads)
    for name in ("timm", "lightning_aug"):
        print(f"{name:<14} fit {result[name]['seconds']:>8.2f} s   val/acc {result[name]['val_acc']:.4f}")
    print(
        f"lightning_aug is {result['speedup']:.3f}x timm's pipeline ({result['images']} images, "
        f"{result['size']} px, {result['epochs']} epochs, {result['workers']} workers, "
        f"decode_threads={result['decode_threads']})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
