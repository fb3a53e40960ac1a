"""The user's own data: file lists, Hugging Face datasets, dict items, multi-label targets, samplers,
plain function transforms; on the digits and photographs packages ship."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import (
    DDP_ON_CPU,
    DIGITS_SIZE,
    Recorder,
    one_error_line,
    photo_folder,
    run_app,
    tiny_trainer,
    write_file_list,
    write_hf_dataset,
)
from torchvision.transforms import v2

from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings, MixupCallback
from lightning_aug.data.datasets import FileList
from lightning_aug.errors import DataError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TESTS = Path(__file__).parent


def _train(tmp_path: Path, *args: str, **env: str) -> Any:
    return run_app(
        "train",
        *args,
        "+trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        **env,
    )


# ---------------------------------------------------------------- file lists


@pytest.mark.slow
def test_a_file_list_of_photographs_with_class_names_and_a_split_column_trains_cropping_while_decoding(
    tmp_path: Path,
) -> None:
    pytest.importorskip("skimage")
    photos = photo_folder(tmp_path / "photos", per_class=8)
    listed = tmp_path / "list.csv"
    rng = np.random.default_rng(0)
    with listed.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "species", "fold"])  # columns named as the user names them
        for path in sorted(photos.rglob("*.jpg")):
            writer.writerow(
                [os.path.relpath(path, tmp_path), path.parent.name, "val" if rng.random() < 0.25 else "train"]
            )
    result = _train(
        tmp_path,
        "data=filelist",
        f"data.file={listed}",
        "data.path_column=file",
        "data.label_column=species",
        "data.split_column=fold",
        "trainer.max_epochs=1",
        "loader.batch_size=16",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "augment=auto: imagenet_alb" in said
    assert "train images decoded by" in said and "RandomResizedCrop runs while decoding" in said
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "val/acc" in metrics


def test_file_list_errors_name_the_file_column_and_rows(tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("path,label\na.png,cat\n")
    with pytest.raises(DataError, match=r"has no column 'file' \(its columns: \['path', 'label'\]\)"):
        FileList(listed, path_column="file")
    listed.write_text("path,label,split\na.png,cat,train\nb.png,dog,holdout\n")
    with pytest.raises(DataError, match=r"list\.csv', line 3: split column 'split' holds \['holdout'\]"):
        FileList(listed, split_column="split")
    with pytest.raises(DataError, match=r"list\.csv', line 3: label 'dog' is not among the classes given"):
        FileList(listed, classes=["cat"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FileList(tmp_path / "nope.csv")
    listed.write_text("path,label,split\na.png,cat,train\nb.png,dog,val\n")
    factory = FileList(listed, split_column="split")  # the valid neighbour: built, files checked later
    assert factory.classes == ["cat", "dog"] and factory.num_classes == 2
    with pytest.raises(DataError, match=r"1 of the 1 train files are missing .*a\.png"):
        factory("train")


def test_a_file_list_checkpoints_its_path_and_fingerprint_not_its_rows(digits: Path, tmp_path: Path) -> None:
    listed = write_file_list(digits, tmp_path / "list.csv")
    factory = FileList(listed, split_column="split")
    datamodule = AugDataModule(factory)
    recorded = datamodule.hparams["dataset"]
    assert recorded["file"] == str(listed) and recorded["fingerprint"] == factory.fingerprint
    assert len(json.dumps(dict(datamodule.hparams))) < 2000  # 1797 rows, not recorded
    rows = [(str(p), p.parent.name) for p in sorted(digits.rglob("*.png"))[:148]]
    from_python = AugDataModule(FileList(samples=rows))
    said = from_python.hparams["dataset"]["samples"]["_unrebuildable_"]
    assert said.startswith("a list of 148 samples (SHA-256 ") and "pass samples=" in said
    with listed.open("a") as handle:
        handle.write("extra.png,3,train\n")
    with pytest.raises(DataError, match="changed since the checkpoint was written"):
        FileList(listed, split_column="split", fingerprint=factory.fingerprint)


@pytest.mark.slow
def test_a_multi_label_file_list_trains_with_mixup_and_bce(digits: Path, tmp_path: Path) -> None:
    listed = write_file_list(digits, tmp_path / "multi.csv", multi_label=True)  # two labels an image
    result = _train(
        tmp_path,
        "data=filelist",
        f"data.file={listed}",
        "data.split_column=split",
        "data.multi_label=true",  # the one switch: the model and mixup follow it
        "mixup=mixup",
        "trainer.max_epochs=4",
        "loader.batch_size=64",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # every label off scores 0.8 per label and a map of the positive rate, 0.2; measured 0.83 / 0.71 at
    # 3 epochs, 0.87 / 0.81 at 6
    assert metrics["val/acc"] > 0.8 and metrics["val/map"] > 0.6, metrics


def test_multi_label_mixing_equals_timms(digits: Path, tmp_path: Path) -> None:
    timm_mixup = pytest.importorskip("timm.data.mixup")
    import inspect

    if "multi_label" not in inspect.signature(timm_mixup.mixup_target).parameters:
        pytest.skip("this timm has no multi-label mixup")
    factory = FileList(
        write_file_list(digits, tmp_path / "multi.csv", multi_label=True),
        split_column="split",
        multi_label=True,
    )
    datamodule = AugDataModule(factory, loader=LoaderSettings(batch_size=16, num_workers=0), seed=0)
    datamodule.setup("fit")
    images, targets = next(iter(datamodule.train_dataloader()))
    assert targets.dtype == torch.float32 and targets.shape == (16, 10) and (targets.sum(1) == 2).all()
    for mode in ("batch", "pair", "elem"):
        mixup = MixupCallback(
            mode=mode, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10, multi_label=True, seed=0
        )
        _, ours = mixup.transform_batch(images.float(), targets.clone(), None)
        lam = torch.as_tensor(mixup.last_params.lam, dtype=torch.float32).view(-1, 1)
        expected = timm_mixup.mixup_target(targets.clone(), 10, lam, 0.1, multi_label=True)
        torch.testing.assert_close(ours, expected)


def test_the_multi_label_example_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "multi_label.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(result.stdout.split("val/acc (per label): ")[1].split()[0])
    assert accuracy > 0.85  # above the 0.815 of predicting every label off


# ---------------------------------------------------------------- Hugging Face datasets


@pytest.mark.slow
def test_the_same_recipe_reaches_the_same_accuracy_on_every_data_path(
    digits: Path, digit_shards: Path, digit_tars: Path, digits_recipe: Any, tmp_path: Path
) -> None:
    """The digits as a folder, a file list, a Hugging Face save_to_disk folder and parquet files, shards
    and WebDataset tars, with 2 workers: the same seeded recipe of the app reaches the same validation
    accuracy (the first four train on the very same batches: the same order and augmentation)."""
    pytest.importorskip("datasets")
    pytest.importorskip("litdata")
    paths = {
        "folder": ["data=imagefolder", f"data.root={digits}"],
        "file list": [
            "data=filelist",
            f"data.file={write_file_list(digits, tmp_path / 'list.csv')}",
            "data.split_column=split",
        ],
        "save_to_disk": ["data=huggingface", f"data.path={write_hf_dataset(digits, tmp_path / 'hf')}"],
        "parquet": [
            "data=huggingface",
            f"data.path={write_hf_dataset(digits, tmp_path / 'pq', parquet=True)}",
        ],
        "shards": [
            "data=streaming",
            f"data.input_dir={digit_shards}",
            f"data.cache_dir={tmp_path / 'cache'}",
        ],
        "tars": ["data=webdataset", f"data.root={digit_tars}"],
    }
    accuracy = {name: digits_recipe.app(name, *data) for name, data in paths.items()}
    assert min(accuracy.values()) > 0.9, accuracy
    assert max(accuracy.values()) - min(accuracy.values()) <= 0.02, accuracy
    assert accuracy["folder"] == accuracy["file list"] == accuracy["save_to_disk"] == accuracy["parquet"]


def test_hugging_face_errors_name_the_columns_and_splits(digits: Path, tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    from lightning_aug.data.datasets import HuggingFace

    path = write_hf_dataset(digits, tmp_path / "hf")
    with pytest.raises(DataError, match=r"has no column 'img' \(its columns: \['image', 'label'\]\)"):
        HuggingFace(str(path), image_column="img")
    with pytest.raises(
        DataError, match=r"has no split 'dev' \(data.splits.val\); it has \['train', 'validation'\]"
    ):
        HuggingFace(str(path), splits={"val": "dev"})
    factory = HuggingFace(str(path))
    assert factory.classes == [str(d) for d in range(10)] and factory("test") is None
    image, label = factory("val")[0]
    assert image.shape == (DIGITS_SIZE, DIGITS_SIZE, 3) and 0 <= label < 10


class DictItems:
    """A user's own dataset of dict items."""

    def __init__(self, keys: tuple[str, str] = ("image", "label")) -> None:
        self.keys = keys

    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            self.keys[0]: np.full((16, 16, 3), index * 7 % 256, dtype=np.uint8),
            self.keys[1]: index % 2,
            "id": index,
        }


def test_a_dataset_of_dict_items_trains_and_other_keys_are_named(tmp_path: Path) -> None:
    datamodule = AugDataModule(
        lambda split: DictItems(), num_classes=2, loader=LoaderSettings(batch_size=8, num_workers=0)
    )
    trainer = tiny_trainer(max_epochs=1)
    trainer.fit(Recorder(num_classes=2), datamodule)
    assert trainer.global_step == 4
    other = AugDataModule(
        lambda split: DictItems(("pixels", "target")),
        num_classes=2,
        loader=LoaderSettings(batch_size=8, num_workers=0),
    )
    other.setup("fit")
    with pytest.raises(
        DataError, match=r"dicts with keys \['id', 'pixels', 'target'\], without 'image' and 'label'"
    ):
        next(iter(other.train_dataloader()))
    named = AugDataModule(
        lambda split: DictItems(("pixels", "target")),
        num_classes=2,
        image_key="pixels",
        label_key="target",
        loader=LoaderSettings(batch_size=8, num_workers=0),
    )
    named.setup("fit")
    images, labels = next(iter(named.train_dataloader()))
    assert images.shape == (8, 3, 16, 16) and labels.dtype == torch.int64


# ---------------------------------------------------------------- targets and samplers


def test_targets_keep_one_dtype_and_shape_across_50_batches_with_prob_half() -> None:
    mixup = MixupCallback(prob=0.5, label_smoothing=0.0, num_classes=10, seed=0)
    kinds, mixed = set(), 0
    for _ in range(50):
        images, labels = torch.rand(16, 3, 8, 8), torch.randint(0, 10, (16,))
        _, targets = mixup.transform_batch(images, labels, None)
        kinds.add((targets.dtype, tuple(targets.shape)))
        mixed += mixup.last_params is not None and mixup.last_params.any_applied
    assert kinds == {(torch.float32, (16, 10))} and 10 < mixed < 40


def _imbalanced_list(digits: Path, tmp_path: Path) -> Path:
    """1000 rows of digit 0 files and 100 of digit 1 files (10:1), from the digits folder."""
    zeros = sorted((digits / "train" / "0").glob("*.png"))
    ones = sorted((digits / "train" / "1").glob("*.png"))
    listed = tmp_path / "imbalanced.csv"
    with listed.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for i in range(1000):
            writer.writerow([zeros[i % len(zeros)], "zero", "train"])
        for i in range(100):
            writer.writerow([ones[i % len(ones)], "one", "train"])
        writer.writerow([zeros[0], "zero", "val"])
        writer.writerow([ones[0], "one", "val"])
    return listed


def test_balanced_sampling_draws_each_class_within_ten_percent_of_equal(digits: Path, tmp_path: Path) -> None:
    factory = FileList(_imbalanced_list(digits, tmp_path), split_column="split")
    datamodule = AugDataModule(
        factory,
        sampler="balanced",
        loader=LoaderSettings(batch_size=100, num_workers=2, drop_last=False),
        seed=0,
    )
    datamodule.setup("fit")
    counts = Counter(int(label) for _, labels in datamodule.train_dataloader() for label in labels)
    assert sum(counts.values()) == 1100
    assert all(abs(count - 550) <= 55 for count in counts.values()), counts
    plain = AugDataModule(
        factory, loader=LoaderSettings(batch_size=100, num_workers=0, drop_last=False), seed=0
    )
    plain.setup("fit")
    assert (
        Counter(int(x) for _, y in plain.train_dataloader() for x in y)[factory.classes.index("one")] == 100
    )


def test_balanced_sampling_needs_labels_it_can_see(tmp_path: Path) -> None:
    datamodule = AugDataModule(lambda split: DictItems(), num_classes=2, sampler="balanced")
    with pytest.raises(ValueError, match="sampler='balanced' needs the labels of the train split"):
        datamodule.setup("fit")
    with pytest.raises(ValueError, match="sampler must be 'random' or 'balanced', got 'weighted'"):
        AugDataModule(lambda split: DictItems(), sampler="weighted")  # type: ignore[arg-type]


@pytest.mark.slow
def test_repeated_augmentation_under_two_ddp_processes(digits: Path, tmp_path: Path) -> None:
    """num_aug_repeats=3: each sample three times per epoch across the two ranks, three crops."""
    listed = tmp_path / "small.csv"
    with listed.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for path in sorted(digits.rglob("*.png"))[::15]:  # 120 of every class
            split = "train" if zlib.crc32(path.name.encode()) % 5 else "val"  # not hash(): per process
            writer.writerow([path, path.parent.name, split])
    result = _train(
        tmp_path,
        "data=filelist",
        f"data.file={listed}",
        "data.split_column=split",
        "augment=imagenet_tv",
        "augment.train_transforms.crop.size=24",
        "augment.eval_transforms.resize.size=28",
        "augment.eval_transforms.crop.size=24",
        "datamodule.num_aug_repeats=3",
        "datamodule.repeated_epoch=repeats",  # every sample 3 times an epoch (default: timm's length)
        *DDP_ON_CPU,
        "loader.batch_size=8",
        "loader.num_workers=0",
        "loader.persistent_workers=false",
        "loader.drop_last=false",
        "+callbacks.probe._target_=repeat_probe.RepeatProbe",
        f"+callbacks.probe.output_dir={tmp_path}",
        PYTHONPATH=str(TESTS),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen: dict[int, list[tuple[int, str]]] = {}
    for rank in (0, 1):
        for sample, repeat, digest in json.loads((tmp_path / f"repeats_rank{rank}.json").read_text()):
            seen.setdefault(sample, []).append((repeat, digest))
    train_size = len(seen)
    assert train_size > 80
    # 3 times each; an odd 3 x train_size is padded with one read again, as DistributedSampler pads
    assert sum(len(copies) for copies in seen.values()) == 3 * train_size + (3 * train_size) % 2
    assert all(sorted({r for r, _ in copies}) == [0, 1, 2] for copies in seen.values())
    assert all(len({d for _, d in copies}) == 3 for copies in seen.values())  # 3 different crops


class _Kill(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize(("sampler", "repeats"), [("balanced", 1), ("random", 2)])
def test_resume_mid_epoch_with_each_sampler(digits: Path, tmp_path: Path, sampler: str, repeats: int) -> None:
    from lightning.pytorch import Callback
    from lightning.pytorch.callbacks import ModelCheckpoint

    listed = _imbalanced_list(digits, tmp_path)

    class Kill(Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step == 13:
                raise _Kill

    def run(resume: Path | None = None, kill: bool = False) -> Recorder:
        datamodule = AugDataModule(
            FileList(listed, split_column="split"),
            train_transforms=[v2.RandomCrop(DIGITS_SIZE, padding=2)],
            sampler=sampler,  # type: ignore[arg-type]
            num_aug_repeats=repeats,
            loader=LoaderSettings(batch_size=32, num_workers=2, persistent_workers=False),
            seed=1,
        )
        model = Recorder(num_classes=2)
        callbacks: list[Any] = [
            ModelCheckpoint(
                dirpath=tmp_path / "ckpt", every_n_train_steps=5, save_top_k=-1, filename="{step}"
            )
        ]
        if kill:
            callbacks.append(Kill())
        with contextlib.suppress(_Kill):
            tiny_trainer(
                max_epochs=1, limit_val_batches=0, callbacks=callbacks, enable_checkpointing=True
            ).fit(model, datamodule, ckpt_path=resume)
        return model

    full = run()
    run(kill=True)
    resumed = run(resume=tmp_path / "ckpt" / "step=10.ckpt")
    assert len(resumed.seen["train"]) == len(full.seen["train"]) - 10
    assert all(torch.equal(a, b) for a, b in zip(resumed.seen["train"], full.seen["train"][10:], strict=True))


def test_image_classifier_trains_multi_label_on_soft_and_hard_targets() -> None:
    model = ImageClassifier(num_classes=4, multi_label=True, width=4)
    images = torch.rand(6, 3, 16, 16)
    hard = torch.tensor([[1, 0, 1, 0]] * 6, dtype=torch.float32)
    loss = model._step((images, hard), "train")
    assert torch.isfinite(loss) and loss.ndim == 0
    assert model.predict_step((images, hard), 0).shape == (6, 4)  # sigmoids: rows need not sum to 1
    with pytest.raises(
        ValueError, match=r"multi_label targets must be rows of one value per class, of shape \(6, 4\)"
    ):
        model._step((images, torch.zeros(6, dtype=torch.int64)), "train")


def test_a_train_app_error_for_missing_listed_files_is_one_line(digits: Path, tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("path,label\n" + f"{digits / 'train' / '0' / '0000.png'},0\nmissing.png,1\n" * 5)
    line = one_error_line(_train(tmp_path, "data=filelist", f"data.file={listed}", "data.val_split=0.2"))
    assert "4 of the 8 train files are missing" in line and "missing.png" in line
