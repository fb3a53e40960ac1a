"""Lightning beyond Hydra: the Tuner, checkpoints that rebuild the DataModule (weights_only=True),
predicting on new images, resuming with a larger max_epochs, overfit batches, the recorded seed, and
the Hydra apps' console."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import BIN, Recorder, run_command, tiny_trainer, write_image_folder
from lightning.pytorch import Trainer
from PIL import Image
from torchvision.transforms import v2

from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings, MixupCallback
from lightning_aug.data.datasets import ImageFiles, ImageFolder, SyntheticShapes
from lightning_aug.device.augment import HorizontalFlip


def _datamodule(root: Path, seed: int | None = 0, **loader: Any) -> AugDataModule:
    settings = {"batch_size": 8, "num_workers": 0, "persistent_workers": False, **loader}
    return AugDataModule(
        SyntheticShapes(
            root=root, num_classes=4, image_size=32, train_per_class=8, val_per_class=2, test_per_class=2
        ),
        train_transforms=[v2.RandomResizedCrop(24, scale=(0.5, 1.0)), v2.RandomHorizontalFlip(0.3)],
        eval_transforms=[v2.CenterCrop(24)],
        loader=LoaderSettings(**settings),
        device_transforms=[HorizontalFlip(p=0.25)],
        seed=seed,
    )


def _fit(tmp_path: Path, dm: AugDataModule, max_epochs: int = 1, **kwargs: Any) -> tuple[Trainer, Path]:
    model = ImageClassifier(num_classes=dm.num_classes, width=8)
    trainer = Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[MixupCallback(mixup_alpha=0.2)],
        **kwargs,
    )
    trainer.fit(model, dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    return trainer, path


# ---------------------------------------------------------------- the Tuner


def test_the_tuner_scales_the_batch_size_and_finds_a_learning_rate(tmp_path: Path) -> None:
    from lightning.pytorch.tuner import Tuner

    dm = _datamodule(tmp_path / "data")
    model = ImageClassifier(num_classes=4, width=8)
    trainer = tiny_trainer(max_epochs=1, default_root_dir=tmp_path)
    found = Tuner(trainer).scale_batch_size(
        model, datamodule=dm, mode="power", init_val=4, max_trials=3, steps_per_trial=1
    )
    assert found == 16 and dm.batch_size == 16 and dm.loader.batch_size == 16  # 4 -> 8 -> 16
    dm.batch_size = 8
    finder = Tuner(tiny_trainer(max_epochs=10, default_root_dir=tmp_path)).lr_find(
        model, datamodule=dm, num_training=30, min_lr=1e-4, max_lr=1e-1
    )  # 4 batches an epoch: the range spans epochs
    assert finder is not None and len(finder.results["lr"]) == 30
    assert finder.suggestion() is not None and model.lr == finder.suggestion()


# ---------------------------------------------------------------- checkpoints


def test_a_checkpoint_loads_weights_only_and_rebuilds_the_datamodule(tmp_path: Path) -> None:
    dm = _datamodule(tmp_path / "data", seed=None)  # a drawn seed
    _, path = _fit(tmp_path, dm)
    checkpoint = torch.load(path, weights_only=True)  # no pickled objects anywhere
    hparams = checkpoint["datamodule_hyper_parameters"]
    assert hparams["seed"] == dm.run_seed and isinstance(hparams["dataset"], dict)
    rebuilt = AugDataModule.load_from_checkpoint(path, weights_only=True)
    assert rebuilt.seed == dm.run_seed and rebuilt.loader == dm.loader
    assert [type(t).__name__ for t in rebuilt.train_pipeline.transforms] == [
        "RandomResizedCrop",
        "RandomHorizontalFlip",
    ]
    assert rebuilt.device_transforms[0].p == 0.25 and rebuilt.dataset.counts == dm.dataset.counts
    model = ImageClassifier.load_from_checkpoint(path, weights_only=True)
    assert model.hparams.num_classes == 4
    fresh = _datamodule(tmp_path / "data", seed=dm.run_seed)  # the original objects, unused
    fresh.load_state_dict(checkpoint["AugDataModule"])  # as load_from_checkpoint: the streams go on
    assert checkpoint["AugDataModule"]["classes"] == dm.dataset.class_folders
    first = []
    for candidate in (fresh, rebuilt):
        candidate.setup("fit")
        first.append(next(iter(candidate.train_dataloader()))[0])
    assert torch.equal(first[0], first[1])  # the same pipeline, streams and data: the same batch


def test_an_argument_that_cannot_be_saved_is_named_when_rebuilding(tmp_path: Path) -> None:
    shapes = SyntheticShapes(
        root=tmp_path / "data", num_classes=4, image_size=32, train_per_class=4, val_per_class=2
    )
    dm = AugDataModule(
        lambda split: shapes(split),
        loader=LoaderSettings(batch_size=4, num_workers=0, persistent_workers=False),
        num_classes=4,
        seed=0,
    )
    assert "_unrebuildable_" in dm.hparams["dataset"]
    shapes.prepare()
    _, path = _fit(tmp_path, dm)
    assert torch.load(path, weights_only=True)["datamodule_hyper_parameters"]["seed"] == 0
    with pytest.raises(
        ValueError, match=r"cannot rebuild dataset: function .*lambda.*pass this argument yourself"
    ):
        AugDataModule.load_from_checkpoint(path, weights_only=True)
    assert AugDataModule.load_from_checkpoint(path, weights_only=True, dataset=shapes).dataset is shapes


def test_the_drawn_seed_reaches_the_logger(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    dm = _datamodule(tmp_path / "data", seed=None)
    model = ImageClassifier(num_classes=4, width=8)
    logger = CSVLogger(tmp_path / "logs")
    Trainer(
        max_epochs=1, accelerator="cpu", logger=logger, enable_progress_bar=False, limit_val_batches=0
    ).fit(model, dm)
    saved = (Path(logger.log_dir) / "hparams.yaml").read_text()
    assert f"seed: {dm.run_seed}" in saved


# ---------------------------------------------------------------- schedule and overfitting


def test_resuming_with_a_larger_max_epochs_keeps_the_schedule_going(tmp_path: Path) -> None:
    dm = _datamodule(tmp_path / "data")
    _, path = _fit(tmp_path / "first", dm, max_epochs=1)
    model = ImageClassifier(num_classes=4, width=8)
    trainer = Trainer(
        max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    trainer.fit(model, _datamodule(tmp_path / "data"), ckpt_path=path)  # OneCycleLR stopped here
    assert trainer.current_epoch == 3 and trainer.global_step == 3 * trainer.num_training_batches
    assert trainer.lr_scheduler_configs[0].scheduler.get_last_lr()[0] < 1e-6  # reached the end


def test_overfit_batches_hold_several_classes(tmp_path: Path) -> None:
    write_image_folder(
        tmp_path / "images" / "train", {c: 10 for c in "abcd"}, size=24
    )  # sorted: 8 of "a" first
    write_image_folder(tmp_path / "images" / "val", {c: 1 for c in "abcd"}, size=24)
    dm = AugDataModule(
        ImageFolder(tmp_path / "images"),
        loader=LoaderSettings(batch_size=8, num_workers=0, persistent_workers=False),
        seed=0,
    )
    model = Recorder(num_classes=4)
    tiny_trainer(max_epochs=2, overfit_batches=1).fit(model, dm)
    labels = [set(batch.tolist()) for batch in model.targets["train"]]
    assert len(labels) == 2 and labels[0] == labels[1] and len(labels[0]) > 1  # one fixed batch, mixed


# ---------------------------------------------------------------- predict


def _unlabelled(root: Path) -> list[str]:
    rng = np.random.default_rng(0)
    files = {"a/one.png": "PNG", "a/b/two.jpg": "JPEG", "three.webp": "WEBP", "a/b/c/four.bmp": "BMP"}
    for name, fmt in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30, 28, 3), dtype=np.uint8)).save(root / name, format=fmt)
    (root / "a" / "broken.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    return sorted([*files, "a/broken.jpg"])


def test_predict_reads_an_unlabelled_nested_folder(tmp_path: Path) -> None:
    names = _unlabelled(tmp_path / "new")
    data = ImageFiles(tmp_path / "new", on_bad_image="skip")
    assert sorted(str(Path(p).relative_to(tmp_path / "new")) for p, _ in data("predict").samples) == names
    dm = _datamodule(tmp_path / "data")
    _, path = _fit(tmp_path, dm)
    predictor = AugDataModule.load_from_checkpoint(path, weights_only=True, dataset=data)
    batches = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).predict(
        ImageClassifier.load_from_checkpoint(path, weights_only=True), predictor
    )
    probabilities = torch.cat(batches)
    assert probabilities.shape == (5, 4) and torch.allclose(probabilities.sum(1), torch.ones(5))
    assert predictor.predict_paths is not None and len(predictor.predict_paths) == 5


def test_the_predict_split_is_the_test_split_unless_a_predict_root_is_given(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "images" / "train", {"a": 2, "b": 2})
    write_image_folder(tmp_path / "images" / "val", {"a": 1, "b": 1})
    write_image_folder(tmp_path / "images" / "test", {"a": 1, "b": 2})
    assert len(ImageFolder(tmp_path / "images")("predict")) == 3
    _unlabelled(tmp_path / "new")
    assert len(ImageFolder(tmp_path / "images", predict_root=tmp_path / "new")("predict")) == 5
    dm = AugDataModule(lambda split: ImageFolder(tmp_path / "images")(split), seed=0)  # a plain callable
    dm.setup("predict")
    assert len(dm.datasets["predict"]) == 3


@pytest.mark.slow
def test_the_predict_app_writes_one_row_per_image(tmp_path: Path) -> None:
    names = _unlabelled(tmp_path / "new")
    _, path = _fit(tmp_path, _datamodule(tmp_path / "data"))
    run = tmp_path / "run"
    result = run_command(
        [
            str(BIN / "lightning-aug-predict"),
            f"ckpt_path={path}",
            f"data.predict_root={tmp_path / 'new'}",
            "top_k=2",
            "loader.num_workers=0",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    assert [row["file"] for row in rows] == names
    classes = set(SyntheticShapes(root=tmp_path / "data", num_classes=4).class_folders)
    for row in rows:
        if row["file"] == "a/broken.jpg":
            assert row["error"] and not row["class_1"]
            continue
        assert not row["error"] and {row["class_1"], row["class_2"]} <= classes
        assert 1.0 >= float(row["prob_1"]) >= float(row["prob_2"]) >= 0.0
    assert f"predictions: {run / 'predictions.csv'} (5 files, 1 unreadable)" in result.stdout


# ---------------------------------------------------------------- console


@pytest.mark.slow
def test_a_hydra_app_prints_each_log_record_once(tmp_path: Path) -> None:
    result = run_command(
        [
            str(BIN / "lightning-aug-train"),
            "data.train_per_class=4",
            "data.val_per_class=2",
            "data.test_per_class=2",
            "loader.num_workers=0",
            "loader.persistent_workers=false",
            "loader.batch_size=8",
            "debug=fdr",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "Seed set to" in line or "GPU available" in line
    ]
    assert len(lines) == 2, lines
    assert "Seed set to" in (tmp_path / "run" / "train.log").read_text()  # and kept in the job log


class _Counted:
    """A user's callable class: building it again could download data, so describe must not."""

    made = 0

    def __init__(self, size: int = 3) -> None:
        type(self).made += 1
        self.size = size

    def __call__(self, split: str) -> None:
        return None


def test_describe_gives_plain_data_that_builds_equal_objects() -> None:
    import albumentations as A

    from lightning_aug.hparams import UNREBUILDABLE, build, describe

    flip = v2.RandomHorizontalFlip(0.3)
    crop = A.RandomCrop(12, 10, pad_if_needed=True)
    loader = LoaderSettings(batch_size=5, num_workers=0, persistent_workers=False)
    for original in (
        flip,
        crop,
        loader,
        HorizontalFlip(p=0.2),
        SyntheticShapes(root="/tmp/x", num_classes=3),
    ):
        spec = describe(original)
        assert isinstance(spec, dict) and "_target_" in spec
        torch.save(spec, "/dev/null")  # plain data
        rebuilt = build(spec, "arg")
        assert type(rebuilt) is type(original)
    assert build(describe(flip), "x").p == 0.3 and build(describe(crop), "x").height == 12
    assert build(describe(loader), "x") == loader
    counted = _Counted(5)
    spec = describe(counted)
    assert UNREBUILDABLE in spec and _Counted.made == 1  # not built a second time
    with pytest.raises(ValueError, match=r"cannot rebuild dataset: _Counted .*pass this argument yourself"):
        build(spec, "dataset")
    assert describe(v2.InterpolationMode.BICUBIC) == {
        "_target_": "torchvision.transforms.functional.InterpolationMode",
        "_args_": ["bicubic"],
    }
