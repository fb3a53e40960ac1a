"""Recipes users expect (issue 23): any timm model, their own LightningModule, logger presets,
bf16-true precision, channels_last batches, progressive resizing, EMA, TTA in predict, a kornia
device op, and no hparams clash between their module and the DataModule."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import compose_config, digits_folder, one_error_line, photo_folder, run_app, tiny_trainer
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image
from torch import Tensor

from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings, MixupCallback
from lightning_aug.cli.common import build_callbacks, build_model, check_config
from lightning_aug.data.datasets import ImageFolder, SyntheticShapes
from lightning_aug.data.loader import collate_uint8
from lightning_aug.data.progressive import ProgressiveResize
from lightning_aug.device.augment import ColorJitter, HorizontalFlip, RandomCrop, RandomErasing
from lightning_aug.device.stage import DeviceStage

TESTS = Path(__file__).resolve().parent
USER = {"PYTHONPATH": str(TESTS / "user_package") + os.pathsep + os.environ.get("PYTHONPATH", "")}
SMALL = ["trainer.max_epochs=1", "data.train_per_class=8", "data.val_per_class=4", "data.test_per_class=4"]


def _metrics(run: Path) -> dict[str, float]:
    return json.loads((run / "metrics.json").read_text())


# ---------------------------------------------------------------- models


def test_timm_model_trains_one_epoch_with_its_head_sized_from_the_data(tmp_path: Path) -> None:
    result = run_app(
        "train", "model=timm", "model.name=resnet18", *SMALL, f"hydra.run.dir={tmp_path}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"val/acc", "test/acc"} <= set(_metrics(tmp_path))
    model = build_model(compose_config("train", ["model=timm", "model.name=resnet18"]), _shapes_dm())
    assert type(model.net).__module__.startswith("timm.") and model.net.get_classifier().out_features == 10


def test_a_timm_name_typed_as_arch_or_misspelt_is_refused_with_the_way(tmp_path: Path) -> None:
    line = one_error_line(run_app("train", "model.arch=resnet50", f"hydra.run.dir={tmp_path}", cwd=tmp_path))
    assert "model.arch=resnet50" in line or "'resnet50'" in line
    assert "model=timm model.name=resnet50" in line
    with pytest.raises(
        ValueError, match=r"name must be a timm model name.*'resnet5o'.*did you mean.*resnet50"
    ):
        ImageClassifier(num_classes=3, arch="timm", name="resnet5o")
    with pytest.raises(ValueError, match="goes with arch='timm'"):
        ImageClassifier(num_classes=3, arch="small_cnn", name="resnet18")
    ImageClassifier(num_classes=3, arch="timm", name="resnet18")  # the valid neighbour


def test_a_user_module_by_target_trains_without_test_step_and_its_hparams_do_not_clash(
    tmp_path: Path,
) -> None:
    """Its own arguments only; it saves ``mean``, ``std`` and ``seed`` as the DataModule does, and the
    CSV logger (on by default) records both; no test_step: the app skips testing."""
    result = run_app(
        "train",
        "model=custom",
        "model._target_=modules.TinyNet",
        "+model.hidden=8",
        *SMALL,
        f"hydra.run.dir={tmp_path}",
        cwd=tmp_path,
        **USER,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _metrics(tmp_path)
    assert "val/acc" in metrics and not any(k.startswith("test/") for k in metrics)
    assert "no test_step" in (tmp_path / "train.log").read_text()
    saved = (tmp_path / "csv" / "hparams.yaml").read_text()
    assert "hidden: 8" in saved and "mean: 0.5" in saved and "datamodule:" in saved
    assert list((tmp_path / "checkpoints").glob("*.ckpt"))


def test_a_target_swapped_on_the_default_preset_is_told_to_start_from_model_custom(tmp_path: Path) -> None:
    line = one_error_line(
        run_app("train", "model._target_=modules.TinyNet", f"hydra.run.dir={tmp_path}", cwd=tmp_path, **USER)
    )
    assert "unknown argument(s)" in line and "model=custom model._target_=modules.TinyNet" in line


# ---------------------------------------------------------------- loggers


def test_tensorboard_and_two_loggers_at_once_each_write_under_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_app("train", "logger=[csv,tensorboard]", *SMALL, f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert "val/acc" in (run / "csv" / "metrics.csv").read_text()
    assert not (run / "csv" / "events.out.tfevents").exists()
    cfg = compose_config("train", ["logger=tensorboard"])
    assert list(cfg.logger) == ["tensorboard"]


def test_wandb_offline_and_mlflow_in_a_local_folder_write_under_the_run(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    run = tmp_path / "run"
    result = run_app(
        "train", "logger=[wandb,mlflow]", *SMALL, f"hydra.run.dir={run}", cwd=tmp_path, WANDB_SILENT="true"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    import sqlite3

    with sqlite3.connect(run / "mlflow" / "mlflow.db") as db:
        keys = {row[0] for row in db.execute("select key from metrics")}
    assert "val/acc" in keys
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "wandb").exists()


def test_a_logger_whose_package_is_missing_is_refused_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r"logger.wandb .*needs the wandb package.*lightning-aug\[loggers\]"):
        check_config(compose_config("train", ["logger=[csv,wandb]"]))
    check_config(compose_config("train", ["logger=[csv,tensorboard]"]))  # installed: taken


# ---------------------------------------------------------------- precision and layout


class _Seen(Callback):
    def __init__(self) -> None:
        self.batches: list[tuple[Tensor, Tensor]] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, idx: int
    ) -> None:
        self.batches.append((batch[0], batch[1]))


def _shapes_dm(**kwargs: Any) -> AugDataModule:
    options: dict[str, Any] = {"loader": LoaderSettings(batch_size=16, num_workers=0), "seed": 0}
    return AugDataModule(SyntheticShapes(train_per_class=8, val_per_class=4), **{**options, **kwargs})


def test_bf16_true_with_mixup_trains_on_bfloat16_batches_and_soft_targets() -> None:
    seen = _Seen()
    mixup = MixupCallback(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1)
    trainer = tiny_trainer(
        max_epochs=1, precision="bf16-true", callbacks=[mixup, seen], limit_train_batches=3
    )
    model = ImageClassifier(num_classes=10, width=8)
    trainer.fit(model, _shapes_dm())
    images, targets = seen.batches[0]
    assert images.dtype == torch.bfloat16 and targets.dtype == torch.bfloat16 and targets.ndim == 2
    assert torch.isfinite(trainer.callback_metrics["val/loss"])


def test_the_device_stage_keeps_channels_last_and_todays_values() -> None:
    """A channels_last batch (as the loaders give) comes out channels_last, equal to the contiguous
    batch's output: normalisation, the device ops, and mixup."""
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 256, (8, 3, 24, 20), dtype=np.uint8))
    last = batch.contiguous(memory_format=torch.channels_last)
    targets = torch.arange(8) % 4
    ops = [RandomCrop(padding=2), HorizontalFlip(), ColorJitter(0.4, 0.4, 0.4), RandomErasing(p=0.5)]
    for stage_ops in ([], ops[:2], ops):
        for mixed in (False, True):
            outputs = []
            for images in (batch.clone(), last.clone()):
                stage = DeviceStage((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), stage_ops)
                transforms = (
                    [MixupCallback(mixup_alpha=0.8, cutmix_alpha=1.0, num_classes=4, seed=1)] if mixed else []
                )
                rng_batch = np.random.default_rng(3)
                outputs.append(stage(images, targets, transforms, None, True, rng_batch))
            (plain, soft), (kept, soft_kept) = outputs
            assert kept.is_contiguous(memory_format=torch.channels_last) and not kept.is_contiguous()
            # equal up to float rounding: a reduction (the jitter's means) may sum in another order
            # in another layout (one thread does)
            torch.testing.assert_close(plain, kept, rtol=0, atol=1e-5, msg=str((stage_ops, mixed)))
            assert torch.equal(soft, soft_kept), (stage_ops, mixed)


def _aten_ops(run: Any) -> list[tuple[str, int]]:
    """The aten ops ``run()`` dispatches, in order, with the elements of each one's output."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[tuple[str, int]] = []

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            size = out.numel() if isinstance(out, Tensor) else 0
            self.ops.append((str(func.overloadpacket.__name__), size))
            return out

    with Record() as record:
        run()
    return record.ops


@pytest.mark.parametrize("stage_ops", ["none", "moves", "colour"])
def test_the_device_stage_writes_the_models_layout_in_its_one_conversion(stage_ops: str) -> None:
    """A channels_last uint8 batch (as the loaders stack it) comes out in the layout asked for, equal in
    value whatever the layout, by the same ops: the uint8 -> float conversion is the only copy, and it
    writes the layout (no extra pass for either)."""
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 256, (8, 24, 20, 3), dtype=np.uint8)).permute(0, 3, 1, 2)
    ops = {"none": [], "moves": [RandomCrop(padding=2), HorizontalFlip()], "colour": [ColorJitter(0.4)]}
    stage = DeviceStage((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), ops[stage_ops])
    stage(batch, torch.zeros(8), (), None, True, np.random.default_rng(3))  # its affine, made once
    out, recorded = {}, {}
    for layout in (torch.contiguous_format, torch.channels_last):

        def run(layout: torch.memory_format = layout) -> None:
            out[layout] = stage(
                batch, torch.zeros(8), (), None, True, np.random.default_rng(3), memory_format=layout
            )[0]

        recorded[layout] = _aten_ops(run)
    assert out[torch.contiguous_format].is_contiguous()
    last = out[torch.channels_last]
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
    assert torch.equal(out[torch.contiguous_format], last)
    assert recorded[torch.contiguous_format] == recorded[torch.channels_last]
    copying = ("_to_copy", "copy_", "clone", "contiguous", "empty_like")
    whole = [op for op, size in recorded[torch.channels_last] if op in copying and size >= last.numel()]
    assert whole == ["_to_copy"], recorded[torch.channels_last]  # the batch copied once, converting


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_fit_gives_the_model_its_own_layout(channels_last: bool) -> None:
    """On a CPU trainer the batches follow the model: a model left contiguous (a user's, or the apps'
    ``model.channels_last=auto`` off a GPU) gets contiguous batches, in training and validation; one
    converted to channels_last gets channels_last batches."""

    class Layouts(ImageClassifier):
        def __init__(self) -> None:
            super().__init__(num_classes=10, width=8)
            self.layouts: set[tuple[str, bool]] = set()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            self.layouts.add(("train", batch[0].is_contiguous()))
            return super().training_step(batch, batch_idx)

        def validation_step(self, batch: Any, batch_idx: int) -> Any:
            self.layouts.add(("val", batch[0].is_contiguous()))
            return super().validation_step(batch, batch_idx)

    model = Layouts()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    tiny_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1).fit(model, _shapes_dm())
    assert model.layouts == {("train", not channels_last), ("val", not channels_last)}


def test_the_loaders_stack_hwc_arrays_into_channels_last_batches(tmp_path: Path) -> None:
    samples = [(torch.from_numpy(np.full((6, 5, 3), i, np.uint8)).permute(2, 0, 1), i) for i in range(4)]
    images, labels = collate_uint8(samples)
    assert images.shape == (4, 3, 6, 5) and images.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(images, torch.stack([s[0] for s in samples])) and labels.tolist() == [0, 1, 2, 3]
    dm = AugDataModule(
        ImageFolder(digits_folder(tmp_path / "digits")),
        loader=LoaderSettings(batch_size=8, num_workers=0),
        seed=0,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))[0]
    assert batch.is_contiguous(memory_format=torch.channels_last)
    memory = _shapes_dm(in_memory=True, train_transforms=[], eval_transforms=[])
    memory.setup("fit")
    assert next(iter(memory.train_dataloader()))[0].is_contiguous(memory_format=torch.channels_last)


def test_model_channels_last_and_compile_keys_are_read_by_the_apps() -> None:
    cfg = compose_config("train", ["model.channels_last=true", "model.width=8"])
    model = build_model(cfg, _shapes_dm())
    assert model.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert (
        not build_model(compose_config("train", []), _shapes_dm())
        .net[0]
        .weight.is_contiguous(memory_format=torch.channels_last)
    )  # auto on a CPU trainer: off
    compiled = build_model(compose_config("train", ["model.compile=reduce-overhead"]), _shapes_dm())
    assert type(compiled).__name__ == "OptimizedModule" and isinstance(compiled._orig_mod, ImageClassifier)
    with pytest.raises(ValueError, match=r"model.compile must be true, false or a torch.compile mode"):
        check_config(compose_config("train", ["model.compile=fastest"]))


# ---------------------------------------------------------------- progressive resizing


def _photo_dm(root: Path, ramp: ProgressiveResize | None, workers: int, **kwargs: Any) -> AugDataModule:
    from lightning_aug.data.transforms import RandomResizedCrop

    return AugDataModule(
        ImageFolder(photo_folder(root, per_class=6), val_split=0.25),
        train_transforms=[RandomResizedCrop(size=(64, 64))],
        eval_transforms={
            "resize": {"_target_": "albumentations.SmallestMaxSize", "max_size": 64},
            "crop": {"_target_": "albumentations.CenterCrop", "height": 64, "width": 64},
        },
        backend="albumentations",
        loader=LoaderSettings(batch_size=8, num_workers=workers, persistent_workers=workers > 0),
        seed=0,
        progressive_resize=ramp,
        **kwargs,
    )


class _Sizes(Callback):
    def __init__(self) -> None:
        self.sizes: dict[int, set[tuple[int, int]]] = {}

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, idx: int
    ) -> None:
        self.sizes.setdefault(trainer.current_epoch, set()).add(tuple(batch[0].shape[-2:]))


RAMP = ProgressiveResize(start_size=32, end_size=64, end_epoch=2, multiple=16)
SCHEDULE = {0: {(32, 32)}, 1: {(48, 48)}, 2: {(64, 64)}}


@pytest.mark.parametrize(
    ("workers", "reload"), [(2, 0), (0, 1)], ids=["persistent-workers", "reload-loaders"]
)
def test_progressive_resizing_follows_the_schedule_and_resumes_mid_ramp(
    tmp_path: Path, workers: int, reload: int
) -> None:
    sizes = _Sizes()
    model = ImageClassifier(num_classes=10, width=8)
    trainer = tiny_trainer(max_epochs=3, callbacks=[sizes], reload_dataloaders_every_n_epochs=reload)
    trainer.fit(model, _photo_dm(tmp_path / "photos", RAMP, workers))
    assert sizes.sizes == SCHEDULE
    # stopped after epoch 0 (mid-ramp), resumed: epochs 1 and 2 at their sizes
    first = tiny_trainer(max_epochs=1, enable_checkpointing=True, default_root_dir=tmp_path / "a")
    first.fit(ImageClassifier(num_classes=10, width=8), _photo_dm(tmp_path / "photos", RAMP, workers))
    resumed = _Sizes()
    tiny_trainer(max_epochs=3, callbacks=[resumed], reload_dataloaders_every_n_epochs=reload).fit(
        ImageClassifier(num_classes=10, width=8),
        _photo_dm(tmp_path / "photos", RAMP, workers),
        ckpt_path=str(next((tmp_path / "a").rglob("*.ckpt"))),
    )
    assert resumed.sizes == {1: {(48, 48)}, 2: {(64, 64)}}


def test_progressive_resizing_of_in_memory_data_resizes_on_the_device_and_needs_a_crop_elsewhere() -> None:
    sizes = _Sizes()
    dm = _shapes_dm(in_memory=True, progressive_resize={"start_size": 32, "end_size": 64, "end_epoch": 1})
    tiny_trainer(max_epochs=2, callbacks=[sizes], limit_val_batches=0).fit(ImageClassifier(10, width=8), dm)
    assert sizes.sizes == {0: {(32, 32)}, 1: {(64, 64)}}
    with pytest.raises(ValueError, match="leading RandomResizedCrop, and it has none"):
        _shapes_dm(progressive_resize=RAMP)
    with pytest.raises(ValueError, match=r"start_size \(96\) must be at most end_size"):
        ProgressiveResize(start_size=96, end_size=64, end_epoch=2)
    saved = dm.hparams["progressive_resize"]  # as checkpoints keep it: rebuilt, never another target
    assert _shapes_dm(in_memory=True, progressive_resize=saved).progressive_resize == dm.progressive_resize
    with pytest.raises(ValueError, match="must describe a ProgressiveResize, got _target_ 'os.system'"):
        _shapes_dm(in_memory=True, progressive_resize={**saved, "_target_": "os.system"})


# ---------------------------------------------------------------- EMA and TTA


def test_the_ema_preset_validates_and_keeps_the_averaged_weights(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint

    cfg = compose_config(
        "train", ["callbacks=ema", "callbacks.ema.decay=0.9", f"paths.output_dir={tmp_path}"]
    )
    callbacks = build_callbacks(cfg)
    ema = next(c for c in callbacks if isinstance(c, EMAWeightAveraging))
    assert any(isinstance(c, ModelCheckpoint) for c in callbacks)
    model = ImageClassifier(num_classes=10, width=8)
    trainer = tiny_trainer(max_epochs=2, callbacks=[ema])
    trainer.fit(model, _shapes_dm())
    averaged = dict(ema._average_model.module.state_dict())  # type: ignore[union-attr]
    for name, value in model.state_dict().items():
        assert torch.equal(value, averaged[name]), name  # after fit the model holds the average


def test_tta_averages_the_flipped_view_and_the_predict_app_takes_it(tmp_path: Path) -> None:
    model = ImageClassifier(num_classes=4, width=8).eval()
    images = torch.randn(3, 3, 16, 16)
    plain = model.predict_step((images, torch.zeros(3)), 0)
    model.predict_tta = True
    both = model.predict_step((images, torch.zeros(3)), 0)
    expected = (model(images).softmax(1) + model(images.flip(-1)).softmax(1)) / 2
    assert torch.allclose(both, expected, atol=1e-6) and not torch.allclose(both, plain)
    run = tmp_path / "train"
    assert run_app("train", *SMALL, "logger=none", f"hydra.run.dir={run}", cwd=tmp_path).returncode == 0
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # the size the model was trained at (SyntheticShapes: 64x64)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    rows = {}
    for tta in ("false", "true"):
        out = tmp_path / f"predict_{tta}"
        result = run_app(
            "predict",
            f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
            f"data.predict_root={folder}",
            f"predict.tta={tta}",
            f"hydra.run.dir={out}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        rows[tta] = (out / "predictions.csv").read_text().splitlines()[1]
    assert rows["false"] != rows["true"]


# ---------------------------------------------------------------- kornia


def test_a_kornia_device_op_sees_unit_range_floats_and_is_reproducible() -> None:
    K = pytest.importorskip("kornia.augmentation")
    import sys

    sys.path.insert(0, str(TESTS.parent / "examples"))
    try:
        from kornia_op import KorniaOp, main
    finally:
        sys.path.pop(0)
    batch = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 3, 16, 16), dtype=np.uint8))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    stage = DeviceStage(mean, std, [KorniaOp(K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0))])
    out, _ = stage(batch.clone(), torch.zeros(4), train=True, rng=np.random.default_rng(5))
    again, _ = stage(batch.clone(), torch.zeros(4), train=True, rng=np.random.default_rng(5))
    assert torch.equal(out, again)  # parameters from the batch's generator
    unit = out * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5  # jittered in [0, 1], then normalised
    assert not torch.allclose(out, DeviceStage(mean, std, [])(batch.clone(), torch.zeros(4))[0])
    assert 0.0 <= main() <= 1.0  # the example trains end to end
