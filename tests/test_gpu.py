"""The device stage and mixing on a CUDA GPU: no host sync, the CPU path's results, bf16/fp16 and
channels_last. Run with ``pytest -m gpu`` on a machine with CUDA; skipped elsewhere."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from helpers import RepeatedImageFactory, tiny_trainer

from lightning_aug import AugDataModule, LoaderSettings, MixupCallback
from lightning_aug.device.augment import ColorJitter, HorizontalFlip, RandomCrop, RandomErasing

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (run with pytest -m gpu there)"
    ),
]

OPS = [RandomCrop(padding=4), HorizontalFlip(), ColorJitter(0.4, 0.4, 0.4), RandomErasing(p=0.5)]


@contextlib.contextmanager
def no_host_sync() -> Iterator[None]:
    """Any host-device synchronisation inside raises (torch.cuda.set_sync_debug_mode("error"))."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _stage(dm: AugDataModule, raw: torch.Tensor, labels: torch.Tensor, mixup: MixupCallback) -> Any:
    return dm.device_stage((raw, labels), [mixup], train=True)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_device_stage_and_mixup_on_cuda_equal_the_cpu_path_without_a_sync(
    repeated: RepeatedImageFactory, mode: str
) -> None:
    raw = torch.randint(0, 256, (32, 3, 24, 24), dtype=torch.uint8)
    labels = torch.randint(0, 10, (32,))
    results = []
    for device in ("cpu", "cuda"):
        dm = AugDataModule(repeated, device_transforms=OPS, num_classes=10, seed=5)
        mixup = MixupCallback(num_classes=10, seed=5, mode=mode, cutmix_alpha=1.0)  # type: ignore[arg-type]
        batch_raw, batch_labels = raw.to(device), labels.to(device)
        _stage(dm, batch_raw, batch_labels, mixup)  # buffers made, generators advanced alike
        if device == "cuda":
            with no_host_sync():
                out = [_stage(dm, batch_raw, batch_labels, mixup) for _ in range(3)]
        else:
            out = [_stage(dm, batch_raw, batch_labels, mixup) for _ in range(3)]
        results.append([(x.cpu(), y.cpu()) for x, y in out])
    for (a, ya), (b, yb) in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(ya.float(), yb.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_mixup_in_half_precision_and_channels_last(dtype: torch.dtype, channels_last: bool) -> None:
    x = torch.rand(16, 3, 32, 32, device="cuda")
    labels = torch.randint(0, 10, (16,), device="cuda")
    reference = MixupCallback(num_classes=10, seed=1, mode="elem", cutmix_alpha=1.0, kernel="batched")
    expected, expected_targets = reference.transform_batch(x.clone(), labels, None)
    images = x.to(dtype)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    mixup = MixupCallback(num_classes=10, seed=1, mode="elem", cutmix_alpha=1.0)
    with no_host_sync():
        out, targets = mixup.transform_batch(images, labels, None)
    assert out.dtype == dtype and out is images
    torch.testing.assert_close(out.float(), expected, rtol=0, atol=2e-2)
    torch.testing.assert_close(targets, expected_targets)
    assert np.isfinite(out.float().cpu().numpy()).all()


class _NoSyncDataModule(AugDataModule):
    """Raises on a host sync anywhere in the device stage and mixing during a real fit."""

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        with no_host_sync():
            return super().on_after_batch_transfer(batch, dataloader_idx)


def test_short_fit_on_cuda_has_no_host_sync_in_the_device_stage(repeated: RepeatedImageFactory) -> None:
    from lightning_aug import ImageClassifier

    dm = _NoSyncDataModule(
        repeated,
        device_transforms=OPS,
        loader=LoaderSettings(batch_size=8, num_workers=0, persistent_workers=False),
        seed=0,
    )
    model = ImageClassifier(num_classes=dm.num_classes, arch="small_cnn", width=8)
    trainer = tiny_trainer(
        accelerator="gpu",
        devices=1,
        max_steps=3,
        callbacks=[MixupCallback(mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem")],
    )
    trainer.fit(model, dm)
    assert trainer.global_step == 3


def test_bf16_true_fit_on_cuda_gets_channels_last_bfloat16_batches(repeated: RepeatedImageFactory) -> None:
    """Pinned, transferred, normalised, augmented and mixed: the batch reaches the step in the
    layout the loader stacked (channels_last) and the precision's dtype."""
    from lightning.pytorch import Callback

    from lightning_aug import ImageClassifier

    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Seen(Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            seen.append((batch[0], batch[1]))

    dm = AugDataModule(
        repeated,
        device_transforms=OPS,
        loader=LoaderSettings(batch_size=8, num_workers=2, pin_memory=True),
        seed=0,
    )
    model = ImageClassifier(num_classes=dm.num_classes, width=8).to(memory_format=torch.channels_last)
    mixup = MixupCallback(mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem")
    trainer = tiny_trainer(
        accelerator="gpu", devices=1, max_steps=3, precision="bf16-true", callbacks=[mixup, Seen()]
    )
    trainer.fit(model, dm)
    images, targets = seen[0]
    assert images.is_cuda and images.dtype == torch.bfloat16 and targets.dtype == torch.bfloat16
    assert images.is_contiguous(memory_format=torch.channels_last)
