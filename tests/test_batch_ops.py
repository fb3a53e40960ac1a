from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from helpers import Recorder, RepeatedImageFactory, tiny_trainer
from torch import Tensor
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from lightning_aug import AugDataModule, LoaderSettings
from lightning_aug.data.datasets import InMemoryDataset, SyntheticShapes
from lightning_aug.device.augment import (
    ColorJitter,
    DeviceOp,
    HorizontalFlip,
    RandomCrop,
    RandomErasing,
    apply_ops,
    apply_ops_moving_first,
    sample_ops,
)
from lightning_aug.seeding import Stream, batch_rng


def reference(op: DeviceOp, image: Tensor, p: dict[str, Tensor]) -> Tensor:
    """The per-sample torchvision equivalent of ``op`` with the sample's parameters ``p``."""
    if isinstance(op, RandomCrop):
        h, w = op._out(image.shape[1], image.shape[2])
        padded = TF.pad(image, [op.padding], fill=op.fill)
        return TF.crop(padded, int(p["top"]), int(p["left"]), h, w)
    if isinstance(op, HorizontalFlip):
        return TF.horizontal_flip(image) if bool(p["flip"]) else image
    if isinstance(op, ColorJitter):
        out = image
        if "brightness" in p:
            out = TF.adjust_brightness(out, float(p["brightness"]))
        if "contrast" in p:
            out = TF.adjust_contrast(out, float(p["contrast"]))
        if "saturation" in p:
            out = TF.adjust_saturation(out, float(p["saturation"]))
        return out
    if isinstance(op, RandomErasing):
        y0, y1, x0, x1 = (int(v) for v in p["boxes"])
        return TF.erase(image, y0, x0, y1 - y0, x1 - x0, torch.tensor(op.value)) if y1 > y0 else image
    raise AssertionError(op)


OPS = {
    "crop": RandomCrop(padding=4),
    "crop_smaller": RandomCrop(padding=2, size=20, fill=0.5),
    "flip": HorizontalFlip(p=0.5),
    "jitter": ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
    "brightness_only": ColorJitter(brightness=0.3),
    "erasing": RandomErasing(p=0.7, value=0.25),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_batched_op_equals_per_sample_reference(name: str) -> None:
    op = OPS[name]
    images = torch.rand(12, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    params = op.sample(12, 24, 24, np.random.default_rng(1))
    batched = apply_ops(images.clone(), [op], [params])
    for i in range(12):
        expected = reference(op, images[i], {k: v[i] for k, v in params.items()})
        torch.testing.assert_close(batched[i], expected, atol=1e-5, rtol=1e-5)
    if name != "brightness_only":  # it augments: not every sample unchanged
        assert not torch.equal(batched, images) or batched.shape != images.shape


def test_parameters_vary_per_sample() -> None:
    g = np.random.default_rng(0)
    crop = RandomCrop(padding=4).sample(64, 32, 32, g)
    assert len(np.unique(crop["top"])) > 5 and crop["left"].min() >= 0 and crop["left"].max() <= 8
    flips = HorizontalFlip(p=0.5).sample(64, 32, 32, g)["flip"]
    assert 10 < int(flips.sum()) < 54
    boxes = RandomErasing(p=1.0).sample(64, 32, 32, g)["boxes"]
    assert ((boxes[:, 1] - boxes[:, 0]) > 0).all() and (boxes[:, 1] <= 32).all() and (boxes[:, 3] <= 32).all()


def test_sequence_of_ops_equals_the_per_sample_chain() -> None:
    ops = [RandomCrop(padding=3, size=16), HorizontalFlip(), ColorJitter(0.2, 0.2, 0.2), RandomErasing(p=1.0)]
    images = torch.rand(6, 3, 20, 20)
    params = sample_ops(ops, 6, 20, 20, np.random.default_rng(3))
    batched = apply_ops(images, ops, params)
    assert batched.shape == (6, 3, 16, 16)
    for i in range(6):
        expected = images[i]
        for op, p in zip(ops, params, strict=True):
            expected = reference(op, expected, {k: v[i] for k, v in p.items()})
        torch.testing.assert_close(batched[i], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RandomCrop(padding=-1), "padding must be an int >= 0, got -1"),
        (lambda: RandomCrop(size=0), "size must be an int >= 1 or None, got 0"),
        (lambda: RandomCrop(fill=2.0), r"fill must be a probability in \[0, 1\], got 2.0"),
        (lambda: HorizontalFlip(p=1.5), r"p must be a probability in \[0, 1\], got 1.5"),
        (lambda: ColorJitter(brightness=-0.1), r"brightness must be a probability in \[0, 1\], got -0.1"),
        (lambda: RandomErasing(scale=(0.5, 0.1)), r"scale must be \(min, max\) with 0 < min <= max <= 1"),
        (lambda: RandomErasing(ratio=(0, 1)), r"ratio must be \(min, max\) with 0 < min <= max"),
        (
            lambda: RandomCrop(size=50).sample(1, 32, 32, np.random.default_rng()),
            "size=50 is larger than the padded",
        ),
    ],
)
def test_bad_arguments(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_datamodule_applies_batch_ops_to_training_batches_only(repeated: RepeatedImageFactory) -> None:
    ops = [RandomCrop(padding=4), HorizontalFlip()]
    dm = AugDataModule(
        repeated, device_transforms=ops, loader=LoaderSettings(batch_size=8, num_workers=0), seed=0
    )
    model = Recorder(num_classes=2)
    tiny_trainer(max_steps=2, limit_val_batches=1).fit(model, dm)
    raw = torch.from_numpy(repeated("train").image).permute(2, 0, 1)
    plain = dm.stage.normalize(raw.unsqueeze(0))[0]
    for images in model.seen["val"]:
        assert all(torch.equal(img, plain) for img in images)  # never augmented
    trained = torch.cat(model.seen["train"])
    assert sum(not torch.allclose(img, plain) for img in trained) >= 12  # augmented per sample


@pytest.mark.parametrize(
    "ops",
    [
        [RandomCrop(padding=4), HorizontalFlip(), ColorJitter(0.3, 0.3, 0.3), RandomErasing()],
        [RandomCrop(padding=4, fill=1.0), HorizontalFlip()],  # all on the uint8 batch
        [RandomCrop(padding=3, fill=0.5), HorizontalFlip()],  # 127.5 is no uint8: all on floats
        [HorizontalFlip(), ColorJitter(brightness=0.5), RandomCrop(padding=2)],  # a crop after floats
    ],
    ids=["mixed", "moves_only", "half_fill", "crop_last"],
)
def test_datamodule_device_stage_equals_reference_then_normalise(
    repeated: RepeatedImageFactory, ops: list[DeviceOp]
) -> None:
    dm = AugDataModule(repeated, device_transforms=ops, seed=3)
    raw = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    images, _ = dm.device_stage((raw, torch.zeros(5, dtype=torch.int64)), train=True)
    params = sample_ops(ops, 5, 16, 16, batch_rng(3, 0, Stream.BATCH_OPS, 0, 0))  # without a trainer: batch 0
    mean, std = torch.tensor(dm.mean).view(3, 1, 1), torch.tensor(dm.std).view(3, 1, 1)
    for i in range(5):
        expected = raw[i].float() / 255
        for op, p in zip(ops, params, strict=True):
            expected = reference(op, expected, {k: v[i] for k, v in p.items()})
        torch.testing.assert_close(images[i], (expected - mean) / std, atol=1e-4, rtol=1e-4)


def test_device_augmentation_is_a_function_of_the_batch(repeated: RepeatedImageFactory) -> None:
    """The ops' parameters come from (run seed, rank, epoch, batch): the same batch of another
    DataModule of the same seed (a resumed run) gets the same augmentation; others do not."""
    raw = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    flips = [HorizontalFlip(), RandomCrop(padding=2)]

    def stage(seed: int, epoch: int, batch: int) -> torch.Tensor:
        dm = AugDataModule(repeated, device_transforms=flips, seed=seed)
        return dm.stage.augment(raw.clone(), batch_rng(seed, 0, Stream.BATCH_OPS, epoch, batch))

    first = stage(0, 2, 7)
    assert torch.equal(first, stage(0, 2, 7))
    assert not torch.equal(first, stage(0, 2, 8)) and not torch.equal(first, stage(0, 3, 7))
    assert not torch.equal(first, stage(1, 2, 7))


def test_batch_transforms_must_be_ops(repeated: RepeatedImageFactory) -> None:
    with pytest.raises(
        TypeError, match=r"device_transforms\[0\] must be a lightning_aug.device.augment.DeviceOp, got str"
    ):
        AugDataModule(repeated, device_transforms=["flip"])  # type: ignore[list-item]


# ---------------------------------------------------------------- in memory
@pytest.mark.parametrize("batch_size", [4, 7])
def test_in_memory_serves_the_same_samples_as_the_normal_loader(
    small_shapes: SyntheticShapes, batch_size: int
) -> None:
    def batches(in_memory: bool) -> list[tuple[Tensor, Tensor]]:
        dm = AugDataModule(
            small_shapes,
            loader=LoaderSettings(batch_size=batch_size, num_workers=0),
            seed=0,
            in_memory=in_memory,
        )
        dm.setup("fit")
        return list(dm.train_dataloader()) + list(dm.val_dataloader())

    normal, memory = batches(False), batches(True)
    assert len(normal) == len(memory) > 2
    for (a, la), (b, lb) in zip(normal, memory, strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_in_memory_is_one_tensor_indexed_per_batch(small_shapes: SyntheticShapes) -> None:
    dm = AugDataModule(
        small_shapes, seed=0, in_memory=True, loader=LoaderSettings(batch_size=8, num_workers=0)
    )
    dm.setup("fit")
    train = dm.datasets["train"]
    assert isinstance(train, InMemoryDataset) and train.images.shape == (64, 3, 64, 64)
    assert dm.num_classes == 4 and train.classes == small_shapes("train").classes


def test_in_memory_refuses_per_sample_transforms(repeated: RepeatedImageFactory) -> None:
    with pytest.raises(ValueError, match="in_memory=True serves whole batches without per-sample transforms"):
        AugDataModule(repeated, train_transforms=[v2.RandomHorizontalFlip()], in_memory=True)


def test_in_memory_needs_one_image_size() -> None:
    samples = [(torch.zeros(3, 4, 4, dtype=torch.uint8), 0), (torch.zeros(3, 5, 4, dtype=torch.uint8), 1)]
    with pytest.raises(
        ValueError, match=r"in_memory needs images of one size, got \(3, 4, 4\) and \(3, 5, 4\)"
    ):
        InMemoryDataset.from_dataset(samples)


@pytest.mark.parametrize(
    "op", [RandomCrop(padding=4), RandomCrop(padding=2, size=12, fill=1.0), HorizontalFlip(p=0.5)]
)
def test_pixel_moving_ops_give_the_same_result_on_uint8(op: DeviceOp) -> None:
    raw = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    params = sample_ops([op], 6, 16, 16, np.random.default_rng(0))[0]
    assert op.moves_pixels_only
    on_uint8 = apply_ops(raw, [op], [params])
    assert on_uint8.dtype == torch.uint8
    on_float = apply_ops(raw.float() / 255, [op], [params])
    torch.testing.assert_close(on_uint8.float() / 255, on_float, rtol=0, atol=1e-7)


def test_which_ops_only_move_pixels() -> None:
    assert not RandomCrop(fill=0.5).moves_pixels_only  # its fill has no uint8 value
    assert not ColorJitter(brightness=0.2).moves_pixels_only
    assert not RandomErasing().moves_pixels_only


@pytest.mark.parametrize(
    "ops",
    [
        [RandomCrop(padding=4)],
        [HorizontalFlip(p=0.5)],
        [RandomCrop(padding=3, size=13), HorizontalFlip(p=0.5), RandomCrop(size=11, padding=0)],
        [
            HorizontalFlip(p=0.5),
            RandomCrop(padding=2, size=9),
            ColorJitter(0.3, 0.3, 0.3),
            RandomErasing(p=0.8),
        ],
    ],
)
def test_device_path_moves_pixels_as_the_gather_path(ops: list[DeviceOp]) -> None:
    """The GPU path (crops and flips as one grid_sample of the float batch, every parameter in one
    copy) gives the CPU path's batch exactly; run here on CPU tensors."""
    raw = torch.randint(0, 256, (9, 3, 17, 15), dtype=torch.uint8)
    params = sample_ops(ops, 9, 17, 15, np.random.default_rng(4))
    moving = next((i for i, op in enumerate(ops) if not op.moves_pixels_only), len(ops))
    done = apply_ops_moving_first(raw, ops, params, moving)
    assert done is not None
    got, on_255 = done
    assert on_255 == (moving == len(ops))
    expected = apply_ops(raw, ops[:moving], params[:moving]).float()
    if not on_255:
        expected = apply_ops(expected / 255, ops[moving:], params[moving:])
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "ops",
    [[RandomCrop(padding=2, fill=1.0)], [RandomCrop(padding=2, size=6), RandomCrop(padding=1)]],
)
def test_moves_without_one_pixel_map_take_the_generic_path(ops: list[DeviceOp]) -> None:
    """A crop filling with a non-zero value, or a padded crop after a crop (its padding would show
    pixels the first crop cut away), has no single pixel map."""
    raw = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    params = sample_ops(ops, 2, 8, 8, np.random.default_rng(0))
    assert apply_ops_moving_first(raw, ops, params, len(ops)) is None
