from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import albumentations as A
import pytest
import torch
from helpers import Recorder, RepeatedImageFactory, tiny_trainer
from lightning.pytorch import Trainer
from lightning.pytorch.trainer.states import RunningStage
from torch import Tensor
from torchvision.transforms import v2

from lightning_aug import AugDataModule, BatchTransform, ImageClassifier, LoaderSettings
from lightning_aug.data.datasets import SyntheticShapes
from lightning_aug.device.normalize import IMAGENET_MEAN, IMAGENET_STD

BACKENDS = ["albumentations", "torchvision"]


def crop_flip(backend: str, size: int = 40) -> list[Any]:
    """A random crop + flip with enough variety that two independent draws almost never agree."""
    if backend == "albumentations":
        return [A.RandomResizedCrop(size=(size, size), scale=(0.3, 1.0)), A.HorizontalFlip()]
    return [v2.RandomResizedCrop(size=(size, size), scale=(0.3, 1.0)), v2.RandomHorizontalFlip()]


def center(backend: str, size: int = 40) -> list[Any]:
    return [A.CenterCrop(size, size)] if backend == "albumentations" else [v2.CenterCrop(size)]


def make_dm(data: Any, backend: str, seed: int = 0, **loader: Any) -> AugDataModule:
    settings = {"batch_size": 8, "num_workers": 0, **loader}
    return AugDataModule(
        data,
        crop_flip(backend),
        center(backend),
        backend=backend,
        loader=LoaderSettings(**settings),
        seed=seed,
    )


def first_batch(dm: AugDataModule) -> Tensor:
    dm.prepare_data()
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))[0]


class RecordingDataModule(AugDataModule):
    """Keeps the raw uint8 batches as they leave the loader, before the device stage."""

    raw: list[Tensor]

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        self.raw = [*getattr(self, "raw", []), batch[0].clone()]
        return batch


class StageProbe(BatchTransform):
    """A training-only batch transform that records the stage of each call and marks the batch."""

    def __init__(self) -> None:
        self.calls: list[tuple[RunningStage | None, bool]] = []

    def transform_batch(self, images: Tensor, targets: Tensor, trainer: Trainer) -> tuple[Tensor, Tensor]:
        self.calls.append((trainer.state.stage, trainer.training))
        return images + 1000.0, targets


@pytest.mark.parametrize("backend", BACKENDS)
def test_trainer_sees_normalised_float_and_only_training_batches_are_transformed(
    small_shapes: SyntheticShapes, backend: str
) -> None:
    dm = RecordingDataModule(
        small_shapes,
        crop_flip(backend),
        center(backend),
        backend=backend,
        loader=LoaderSettings(batch_size=8, num_workers=2),
        seed=0,
    )
    model, probe = Recorder(), StageProbe()
    trainer = tiny_trainer(max_steps=3, limit_val_batches=2, num_sanity_val_steps=1, callbacks=[probe])
    trainer.fit(model, dm)
    trainer.validate(model, dm, verbose=False)
    trainer.test(model, dm, verbose=False)

    # the worker output: uint8 CHW batches
    assert all(r.dtype == torch.uint8 and r.shape == (8, 3, 40, 40) for r in dm.raw)
    # training-only callbacks: called once per training batch, in the training stage only
    assert probe.calls == [(RunningStage.TRAINING, True)] * 3
    assert all(b.min() > 900 for b in model.seen["train"])
    assert all(b.max() < 100 for b in model.seen["val"] + model.seen["test"])
    # what the model sees is the raw batch, as float, normalised per channel with the configured stats
    assert len(dm.raw) == len(model.ordered)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for raw, (stage, seen) in zip(dm.raw, model.ordered, strict=True):
        assert seen.dtype == torch.float32
        if stage == "train":
            seen = seen - 1000.0  # undo the probe's mark
        torch.testing.assert_close(seen, (raw.float() / 255 - mean) / std, rtol=1e-4, atol=1e-3)
        expected_channel_mean = (raw.float().mean(dim=(0, 2, 3)) / 255 - mean.flatten()) / std.flatten()
        expected_channel_std = raw.float().std(dim=(0, 2, 3)) / 255 / std.flatten()
        torch.testing.assert_close(seen.mean(dim=(0, 2, 3)), expected_channel_mean, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(seen.std(dim=(0, 2, 3)), expected_channel_std, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_augment_the_same_image_differently(repeated: RepeatedImageFactory, backend: str) -> None:
    dm = make_dm(repeated, backend, batch_size=1, num_workers=2)
    dm.setup("fit")
    samples = [batch[0][0] for batch in dm.train_dataloader()]  # batch i comes from worker i % 2
    worker0, worker1 = samples[0::2], samples[1::2]
    assert len(worker0) == len(worker1) == 8
    differing = sum(not torch.equal(a, b) for a, b in zip(worker0, worker1, strict=True))
    assert differing >= 7  # identical seeding would make every pair equal


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("num_workers", [0, 2])
def test_same_seed_same_first_batch_and_other_seed_differs(
    small_shapes: SyntheticShapes, backend: str, num_workers: int
) -> None:
    torch.manual_seed(123)  # the global RNG must not matter
    a = first_batch(make_dm(small_shapes, backend, seed=5, num_workers=num_workers))
    torch.manual_seed(456)
    b = first_batch(make_dm(small_shapes, backend, seed=5, num_workers=num_workers))
    c = first_batch(make_dm(small_shapes, backend, seed=6, num_workers=num_workers))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("persistent", [True, False])
def test_epochs_differ(repeated: RepeatedImageFactory, backend: str, persistent: bool) -> None:
    dm = make_dm(repeated, backend, batch_size=4, num_workers=2, persistent_workers=persistent)
    dm.setup("fit")
    loader = dm.train_dataloader()
    epoch1 = torch.cat([b[0] for b in loader])
    epoch2 = torch.cat([b[0] for b in loader])  # the same loader object, as Lightning reuses it
    assert epoch1.shape == epoch2.shape == (16, 3, 40, 40)
    assert sum(not torch.equal(x, y) for x, y in zip(epoch1, epoch2, strict=True)) >= 14


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("num_workers", [0, 2])
def test_ranks_read_disjoint_parts_and_a_sample_is_augmented_alike_on_any(
    repeated: RepeatedImageFactory, backend: str, num_workers: int
) -> None:
    """Two ranks read different samples of the epoch; the same sample gets the same augmentation
    whatever the world size (a function of seed, epoch and sample alone)."""
    seen: dict[int, dict[int, torch.Tensor]] = {}
    for world, rank in ((2, 0), (2, 1), (1, 0)):
        dm = make_dm(repeated, backend, batch_size=4, num_workers=num_workers, pin_memory=False)
        dm.trainer = SimpleNamespace(global_rank=rank, num_devices=1, world_size=world)  # type: ignore[assignment]
        dm.setup("fit")
        loader = dm.train_dataloader()
        order = [key.sample for key in loader.sampler]
        loader.sampler.set_epoch(0)
        images = torch.cat([b[0] for b in loader])
        seen.setdefault(world, {}).update(dict(zip(order, images, strict=True)))
    assert sorted(seen[2]) == list(range(16))  # the two halves cover the epoch, disjoint
    assert all(torch.equal(seen[2][i], seen[1][i]) for i in range(16))
    assert sum(not torch.equal(seen[1][i], seen[1][0]) for i in range(16)) >= 12  # augmented per sample


@pytest.mark.slow
def test_small_cnn_learns_the_builtin_dataset(tmp_path: Any) -> None:
    """4 epochs of a small CNN on 10 classes x 150 training images of 32x32: validation accuracy above
    0.6 (chance is 0.1)."""
    data = SyntheticShapes(
        root=tmp_path, train_per_class=150, val_per_class=20, test_per_class=0, image_size=32
    )
    dm = AugDataModule(
        data,
        [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()],
        backend="torchvision",
        loader=LoaderSettings(batch_size=32, num_workers=2, persistent_workers=True),
        seed=0,
    )
    model = ImageClassifier(num_classes=dm.num_classes, width=16, lr=5e-3)
    trainer = tiny_trainer(max_epochs=4)
    trainer.fit(model, dm)
    accuracy = trainer.callback_metrics["val/acc"].item()
    assert accuracy > 0.6, f"validation accuracy {accuracy:.3f}"


def test_module_hook_is_skipped_with_lightnings_warning(small_shapes: SyntheticShapes) -> None:
    """Documented: the DataModule's on_after_batch_transfer wins over the module's (Lightning warns)."""

    class Overriding(Recorder):
        def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
            raise AssertionError("not called")

    dm = make_dm(small_shapes, "torchvision")
    model = Overriding()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_trainer(max_steps=1, limit_val_batches=0).fit(model, dm)
    assert any("overridden `on_after_batch_transfer` in both" in str(w.message) for w in caught)
    assert model.seen["train"][0].dtype == torch.float32


def test_works_without_a_trainer(small_shapes: SyntheticShapes) -> None:
    dm = make_dm(small_shapes, "albumentations")
    raw = first_batch(dm)
    labels = torch.arange(8)
    images, targets = dm.on_after_batch_transfer((raw, labels), 0)
    assert targets is labels
    assert images.dtype == torch.float32 and images.shape == raw.shape
    assert dm.num_classes == 4


# ---------------------------------------------------------------- error paths, one per argument
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"dataset": "cifar10"},
            TypeError,
            "dataset must be a dataset factory called with a split name, got str",
        ),
        ({"train_transforms": A.HorizontalFlip()}, TypeError, "train pipeline: transforms must be a list"),
        (
            {"train_transforms": [v2.RandomHorizontalFlip()]},
            TypeError,
            "train pipeline transform 0: backend 'albumentations'",
        ),
        (
            {"eval_transforms": [{"_target_": "albumentations.Nope"}]},
            ValueError,
            "eval pipeline transform 0: unknown transform target",
        ),
        ({"backend": "opencv"}, ValueError, "backend must be one of .* got 'opencv'"),
        (
            {"mean": [0.5, 0.5]},
            ValueError,
            r"mean must be a sequence of 1 or 3 floats \(0-1 scale\), got \[0.5, 0.5\]",
        ),
        ({"mean": "0.5"}, ValueError, "mean must be a sequence of 1 or 3 floats"),
        (
            {"std": [0.2, 0.0, 0.2]},
            ValueError,
            r"std must be a sequence of 1 or 3 positive floats .* got \[0.2, 0.0, 0.2\]",
        ),
        ({"mean": [0.5], "std": [0.2, 0.2, 0.2]}, ValueError, "mean and std must have the same length"),
        ({"loader": {"batch_size": 8}}, TypeError, "loader must be a LoaderSettings, got dict"),
        ({"num_classes": 1}, ValueError, "num_classes must be an int >= 2 or None, got 1"),
        ({"num_classes": 2.0}, ValueError, "num_classes must be an int >= 2 or None, got 2.0"),
        ({"seed": -1}, ValueError, "seed must be an int >= 0 or None, got -1"),
        ({"seed": "42"}, ValueError, "seed must be an int >= 0 or None, got '42'"),
    ],
)
def test_constructor_errors(repeated: RepeatedImageFactory, kwargs: dict, error: type, message: str) -> None:
    args = {"dataset": repeated, "backend": "albumentations", **kwargs}
    with pytest.raises(error, match=message):
        AugDataModule(**args)


def test_mean_and_std_default_to_the_factory_then_imagenet(
    repeated: RepeatedImageFactory, tmp_path: Any
) -> None:
    from lightning_aug.data.datasets import CIFAR10

    cifar = AugDataModule(CIFAR10(tmp_path))
    assert (cifar.mean, cifar.std) == (CIFAR10.mean, CIFAR10.std)
    assert AugDataModule(repeated).mean == IMAGENET_MEAN
    assert AugDataModule(CIFAR10(tmp_path), mean=[0.5], std=[0.25]).std == (0.25,)


def test_seed_zero_is_respected(repeated: RepeatedImageFactory) -> None:
    assert AugDataModule(repeated, seed=0).run_seed == 0


def test_seed_from_lightning_global_seed(
    repeated: RepeatedImageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PL_GLOBAL_SEED", "17")
    assert AugDataModule(repeated).run_seed == 17


def test_factory_without_train_split() -> None:
    dm = AugDataModule(lambda split: None)
    with pytest.raises(ValueError, match="returned no train split"):
        dm.setup("fit")


def test_factory_returning_something_else() -> None:
    dm = AugDataModule(lambda split: 42)
    with pytest.raises(TypeError, match="returned int for split 'train'; expected a map-style dataset"):
        dm.setup("fit")


def test_missing_test_split_is_named(tmp_path: Any) -> None:
    data = SyntheticShapes(root=tmp_path, num_classes=2, train_per_class=1, val_per_class=1, test_per_class=0)
    dm = AugDataModule(data, seed=0)
    dm.prepare_data()
    dm.setup("test")
    with pytest.raises(ValueError, match="the dataset factory SyntheticShapes has no 'test' split"):
        dm.test_dataloader()


def test_train_split_smaller_than_a_batch(repeated: RepeatedImageFactory) -> None:
    dm = AugDataModule(repeated, loader=LoaderSettings(batch_size=32, num_workers=0), seed=0)
    dm.setup("fit")
    with pytest.raises(
        ValueError, match="the train split has 16 samples, fewer than batch_size=32 with drop_last"
    ):
        dm.train_dataloader()
    small = AugDataModule(
        repeated, loader=LoaderSettings(batch_size=32, num_workers=0, drop_last=False), seed=0
    )
    small.setup("fit")
    assert len(small.train_dataloader()) == 1


def test_loader_before_setup() -> None:
    with pytest.raises(RuntimeError, match="the 'train' split is not set up: call setup\\(\\) first"):
        AugDataModule(RepeatedImageFactory()).train_dataloader()


def test_unknown_num_classes() -> None:
    dm = AugDataModule(lambda split: [(torch.zeros(3, 2, 2, dtype=torch.uint8), 0)], seed=0)
    dm.setup("fit")
    with pytest.raises(ValueError, match="num_classes is unknown: .* pass num_classes to AugDataModule"):
        _ = dm.num_classes


@pytest.mark.parametrize(
    ("batch", "error", "message"),
    [
        (
            {"image": torch.zeros(1)},
            TypeError,
            "expects \\(images, labels\\) batches from its own loaders, got dict",
        ),
        (
            (torch.zeros(2, 3, 4, 4), torch.zeros(2)),
            TypeError,
            "images must be a uint8 \\(N, C, H, W\\) batch, got torch.float32",
        ),
    ],
)
def test_bad_batches_in_the_device_stage(
    repeated: RepeatedImageFactory, batch: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        AugDataModule(repeated).on_after_batch_transfer(batch, 0)


def test_unknown_stage(repeated: RepeatedImageFactory) -> None:
    with pytest.raises(ValueError, match="stage must be one of .* got 'tune'"):
        AugDataModule(repeated).setup("tune")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_skip_trains_through_and_reports_exactly_the_bad_files(tmp_path: Any, num_workers: int) -> None:
    from helpers import bad_image_folder

    from lightning_aug.data.datasets import ImageFolder

    bad = bad_image_folder(tmp_path)
    dm = AugDataModule(
        ImageFolder(tmp_path, on_bad_image="skip"),
        loader=LoaderSettings(batch_size=3, num_workers=num_workers, drop_last=False),
        seed=0,
    )
    model = Recorder(num_classes=2)
    with pytest.warns(
        UserWarning, match=r"skipped 2 unreadable image file\(s\) in epoch 0, among 6 samples read"
    ):
        tiny_trainer(max_epochs=1, limit_val_batches=0).fit(model, dm)
    assert list(dm.skipped_files) == [0] and sorted(dm.skipped_files[0]) == bad  # exactly the two, once
    assert sum(len(b) for b in model.seen["train"]) == 6  # every sample served, the batch shape kept
    assert all(b.dtype == torch.float32 for b in model.seen["train"])


def test_the_skip_report_counts_the_samples_read_and_names_each_file_once() -> None:
    """Files that drop_last leaves out are not read: the report counts what the batches held."""
    from lightning_aug.data.skips import SkipReport

    report = SkipReport(listed=2)
    report.record(["a.jpg", "b.jpg"], epoch=0, samples=4)
    report.record([], epoch=0, samples=4)
    report.record(["a.jpg", "c.jpg"], epoch=0, samples=4)
    with pytest.warns(
        UserWarning, match=r"skipped 3 .* epoch 0, among 12 samples read .*: a.jpg, b.jpg and 1 more"
    ):
        report.record([], epoch=1, samples=4)  # a new epoch reports the last
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report.report()  # epoch 1 had no skips: no warning
    assert report.files == {0: ["a.jpg", "b.jpg", "c.jpg"]} and report.samples == {0: 12, 1: 4}


def test_raise_stops_training_naming_the_file(tmp_path: Any) -> None:
    from helpers import bad_image_folder

    from lightning_aug.data.datasets import ImageFolder

    bad = bad_image_folder(tmp_path)
    dm = AugDataModule(ImageFolder(tmp_path), loader=LoaderSettings(batch_size=6, num_workers=0), seed=0)
    with pytest.raises(ValueError, match="cannot decode image file") as raised:
        tiny_trainer(max_epochs=1, limit_val_batches=0).fit(Recorder(num_classes=2), dm)
    assert any(path in str(raised.value) for path in bad)  # which one comes first depends on the shuffle
