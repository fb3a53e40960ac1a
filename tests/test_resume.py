"""Resume and reproduction: a run resumed from an epoch-end checkpoint sees the same batches as the
uninterrupted run (data order, per-sample and device augmentation, mixup); the same seed reproduces
a run end to end. (Persistent workers keep their RNG streams in the worker processes, which no
checkpoint holds: after a resume they are seeded anew; the data order still continues.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import Recorder, tiny_trainer
from lightning.pytorch import seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torchvision.transforms import v2

from lightning_aug import AugDataModule, LoaderSettings, MixupCallback
from lightning_aug.data.datasets import SyntheticShapes
from lightning_aug.device.augment import HorizontalFlip, RandomCrop


def run(
    data: SyntheticShapes, workers: int, epochs: int, ckpt_dir: Path | None = None, resume: str | None = None
) -> Recorder:
    seed_everything(3)  # the model's initial weights
    dm = AugDataModule(
        data,
        [v2.RandomResizedCrop(48, scale=(0.5, 1.0))],
        [v2.CenterCrop(48)],
        device_transforms=[RandomCrop(padding=2), HorizontalFlip()],
        loader=LoaderSettings(batch_size=16, num_workers=workers),  # fresh workers each epoch
        seed=3,
    )
    model = Recorder(num_classes=4)
    callbacks: list[Any] = [MixupCallback(mode="elem", cutmix_alpha=1.0, label_smoothing=0.0)]
    if ckpt_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, save_last=True))
    trainer = tiny_trainer(
        max_epochs=epochs, limit_val_batches=0, callbacks=callbacks, enable_checkpointing=ckpt_dir is not None
    )
    trainer.fit(model, dm, ckpt_path=resume)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_at_epoch_end_continues_every_stream(
    small_shapes: SyntheticShapes, tmp_path: Path, workers: int
) -> None:
    full = run(small_shapes, workers, epochs=2)
    run(small_shapes, workers, epochs=1, ckpt_dir=tmp_path)
    resumed = run(small_shapes, workers, epochs=2, resume=str(tmp_path / "last.ckpt"))
    per_epoch = len(full.seen["train"]) // 2
    assert per_epoch == 4 and len(resumed.seen["train"]) == per_epoch
    for images, targets, images_r, targets_r in zip(
        full.seen["train"][per_epoch:],
        full.targets["train"][per_epoch:],
        resumed.seen["train"],
        resumed.targets["train"],
        strict=True,
    ):
        torch.testing.assert_close(images_r, images)  # same order, augmentation and mixing
        torch.testing.assert_close(targets_r, targets)


@pytest.mark.slow
def test_same_seed_reproduces_a_run(small_shapes: SyntheticShapes) -> None:
    a, b = run(small_shapes, 2, epochs=2), run(small_shapes, 2, epochs=2)
    for x, y in zip(a.seen["train"] + a.targets["train"], b.seen["train"] + b.targets["train"], strict=True):
        assert torch.equal(x, y)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
