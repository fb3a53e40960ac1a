"""One context for every batch op (issue 32): device ops and batch callbacks are given the pixels
they declare and the batch's generator; an op gives the same images plugged either way; mixing
draws the same with and without AugDataModule; the training order is one object with its state."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from helpers import Recorder, tiny_trainer
from torch import Tensor
from torchvision.transforms import v2

from lightning_aug import AugDataModule, BatchTransform, LoaderSettings, MixupCallback
from lightning_aug.data.order import TrainingOrder
from lightning_aug.device.context import BatchContext
from lightning_aug.device.ops import BatchOps, ModuleOp


def _training_batches(small_shapes: Any, **kwargs: Any) -> list[Tensor]:
    dm = AugDataModule(
        small_shapes,
        train_transforms=[v2.Resize(32)],
        eval_transforms=[v2.Resize(32)],
        loader=LoaderSettings(batch_size=16, num_workers=0),
        seed=3,
        **{k: v for k, v in kwargs.items() if k != "callbacks"},
    )
    model = Recorder(num_classes=4)
    trainer = tiny_trainer(max_epochs=2, limit_val_batches=0, callbacks=kwargs.get("callbacks", []))
    trainer.fit(model, dm)
    return model.seen["train"]


def test_a_kornia_op_gives_the_same_images_as_a_device_op_and_as_a_batch_callback(small_shapes: Any) -> None:
    """kornia's colour ops clamp to [0, 1]: given as a callback after the normalisation they would
    ruin the images; declared ``pixels="unit"`` they are given the batch in [0, 1] as device ops are,
    and draw from the same generator."""
    K = pytest.importorskip("kornia.augmentation")

    def jitter() -> ModuleOp:
        return ModuleOp(
            K.AugmentationSequential(K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0), K.RandomAffine(10.0))
        )

    as_op = _training_batches(small_shapes, device_transforms=[jitter()])
    as_callback = _training_batches(small_shapes, callbacks=[BatchOps([jitter()])])
    plain = _training_batches(small_shapes)
    assert len(as_op) == len(as_callback) == 8
    for a, b, c in zip(as_op, as_callback, plain, strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
        assert not torch.allclose(a, c)  # the control: the op did change the images
    with pytest.raises(
        TypeError, match=r"device_transforms\[0\] must be .*DeviceOp, got ColorJitter .*ModuleOp"
    ):
        AugDataModule(small_shapes, device_transforms=[K.ColorJitter(0.4, p=1.0)])


class _Seen(BatchTransform):
    """Records the range of the images it is given."""

    def __init__(self, pixels: str) -> None:
        type(self).pixels = pixels  # type: ignore[assignment]
        self.ranges: list[tuple[float, float]] = []

    def transform_batch(self, images: Tensor, targets: Tensor, trainer: Any) -> tuple[Tensor, Tensor]:
        self.ranges.append((float(images.min()), float(images.max())))
        return images, targets


def test_a_batch_transform_is_given_the_pixels_it_declares(small_shapes: Any) -> None:
    class Unit(_Seen):
        pass

    class Normalized(_Seen):
        pass

    unit, normalized = Unit("unit"), Normalized("normalized")
    images = _training_batches(small_shapes, callbacks=[unit, normalized])
    assert min(low for low, _ in unit.ranges) >= -1e-6 and max(high for _, high in unit.ranges) <= 1 + 1e-6
    assert min(low for low, _ in normalized.ranges) < -0.5  # ImageNet's statistics: about [-2.1, 2.6]
    torch.testing.assert_close(images, _training_batches(small_shapes))  # back to normalised after it

    class Odd(_Seen):
        pass

    with pytest.raises(
        ValueError, match=r"Odd\.pixels must be 'unit' \(floats in \[0, 1\]\) or 'normalized'"
    ):
        _training_batches(small_shapes, callbacks=[Odd("0-255")])


def test_mixup_mixes_alike_with_and_without_the_datamodule() -> None:
    """The same seed and batch coordinates give the same mixed batch whether AugDataModule's device
    stage hands the context or the callback builds it from the trainer (a DataModule of your own)."""
    from helpers import RepeatedImageFactory

    dm = AugDataModule(RepeatedImageFactory(), seed=11, num_classes=4)
    raw = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (8, 3, 16, 16), dtype=np.uint8))
    labels = torch.arange(8) % 4
    trainer = SimpleNamespace(current_epoch=2, global_rank=0, datamodule=None, precision="32-true")
    for mode in ("batch", "elem"):
        dm.batch_coordinates = (2, 3)  # what on_after_batch_transfer sets for batch 3 of epoch 2
        hosted = MixupCallback(mixup_alpha=0.4, cutmix_alpha=1.0, mode=mode, num_classes=4)  # the run seed
        mixed, soft = dm.device_stage((raw.clone(), labels), [hosted], trainer, train=True)  # type: ignore[arg-type]
        alone = MixupCallback(mixup_alpha=0.4, cutmix_alpha=1.0, mode=mode, num_classes=4, seed=11)
        batch = [dm.stage.normalize(raw.clone()), labels]
        alone.on_train_batch_start(trainer, None, batch, 3)  # type: ignore[arg-type]
        assert torch.equal(mixed, batch[0]) and torch.equal(soft, batch[1]), mode
        other = MixupCallback(mixup_alpha=0.4, cutmix_alpha=1.0, mode=mode, num_classes=4, seed=11)
        moved = [dm.stage.normalize(raw.clone()), labels]
        other.on_train_batch_start(trainer, None, moved, 4)  # the control: another batch, another draw
        assert not torch.equal(moved[0], batch[0])


def test_the_training_order_is_one_object_with_its_resume_state() -> None:
    """A fresh order restored from another's state starts its sampler at the next unseen sample, on
    the uninterrupted order; the generator state travels with it."""
    first = TrainingOrder("random", 1, "dataset", lambda: 7)
    sampler = first.sampler_for(40, train=True, num_replicas=1, rank=0, drop_last=True)
    sampler.set_epoch(1)
    whole = [key.sample for key in sampler]
    for _ in range(3):
        first.next_batch(1)
    first.generator(True, 0).manual_seed(123)
    state = first.state_dict(batch_size=4, drop_last=True, rank=0)
    assert state["train_position"] == {"epoch": 1, "samples": 12}
    resumed = TrainingOrder("random", 1, "dataset", lambda: 7)
    resumed.load_state_dict(state, batch_size=4, rank=0)
    again = resumed.sampler_for(40, train=True, num_replicas=1, rank=0, drop_last=True)
    again.set_epoch(1)
    assert [key.sample for key in again] == whole[12:]
    assert torch.equal(resumed.generator(True, 0).get_state(), first.generator(True, 0).get_state())
    with pytest.raises(ValueError, match="repeated_epoch must be 'dataset' or 'repeats', got 'twice'"):
        TrainingOrder("random", 2, "twice")  # type: ignore[arg-type]


def test_a_context_draws_the_batch_generator_of_its_coordinates() -> None:
    from lightning_aug.seeding import Stream, batch_rng

    context = BatchContext(seed=5, epoch=1, batch=2, rank=1)
    expected = batch_rng(5, 1, Stream.MIXUP, 1, 2).integers(1 << 30, size=4)
    assert np.array_equal(context.generator(Stream.MIXUP).integers(1 << 30, size=4), expected)
    trainer = SimpleNamespace(current_epoch=1, global_rank=1)
    assert BatchContext.of_trainer(trainer, 5, 2).generator(Stream.MIXUP).integers(1 << 30) == expected[0]
