"""The user's own folder trains on the first try, and every refusal is right: same-size folders (the
digits as PNGs) with any preset, photographs of mixed sizes with nothing but the folder, errors in the
order to fix them, the same message from the apps, LightningCLI and Python, Lightning's checkpoint
names, and the same accuracy on every entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import (
    DIGITS_SIZE,
    DigitsRecipe,
    one_error_line,
    photo_folder,
    run_app,
    run_command,
    write_image_folder,
)

from lightning_aug import AugDataModule, LoaderSettings
from lightning_aug.data.datasets import ImageFolder
from lightning_aug.errors import DataError


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("skimage")
    return photo_folder(tmp_path_factory.mktemp("photos") / "photos")


def _train(tmp_path: Path, *args: str, epochs: int = 1) -> Any:
    return run_app(
        "train",
        *args,
        f"trainer.max_epochs={epochs}",
        "+trainer.enable_progress_bar=false",
        "loader.batch_size=32",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )


@pytest.mark.parametrize("augment", [None, "none"])
def test_a_same_size_png_folder_trains_with_the_default_augment_and_with_none(
    digits: Path, tmp_path: Path, augment: str | None
) -> None:
    result = _train(
        tmp_path,
        "data=imagefolder",
        f"data.root={digits}",
        *([f"augment={augment}"] if augment else []),
        epochs=2,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val/acc"] > 0.5
    if augment is None:
        said = f"augment=auto: cifar_tv at {DIGITS_SIZE}x{DIGITS_SIZE} (the 64 images sampled"
        assert said in result.stderr + result.stdout


@pytest.mark.slow
def test_a_flat_folder_of_photographs_of_mixed_sizes_trains_with_nothing_but_its_root(
    photos: Path, tmp_path: Path
) -> None:
    result = _train(tmp_path, "data=imagefolder", f"data.root={photos}")
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stderr + result.stdout
    assert "augment=auto: imagenet_alb" in said and "has images of several sizes" in said
    assert "has no val/ folder: 10% of each class" in said
    assert "val/acc" in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_a_missing_folder_is_named_as_missing_first(tmp_path: Path) -> None:
    line = one_error_line(
        _train(tmp_path, "data=imagefolder", f"data.root={tmp_path / 'nope'}", "augment=none")
    )
    missing = f"image folder root '{tmp_path / 'nope'}' does not exist (data.root)"
    assert line == f"lightning-aug-train: config error: {missing}"


def _varied(root: Path) -> Path:
    write_image_folder(root / "a", {"x": 3}, size=20)
    write_image_folder(root / "b", {"x": 3}, size=28)
    for split in ("a", "b"):  # two classes, two sizes
        (root / split / "x").rename(root / f"class_{split}")
        (root / split).rmdir()
    return root


def test_a_varied_folder_with_a_preset_without_crops_names_two_files_and_sizes(tmp_path: Path) -> None:
    root = _varied(tmp_path / "varied")
    line = one_error_line(_train(tmp_path, "data=imagefolder", f"data.root={root}", "augment=none"))
    assert line.startswith("lightning-aug-train: data error: the train images come in several sizes (")
    assert f"{root}/class_a/0.png is 20x20, {root}/class_b/0.png is 28x28" in line
    assert "augment=imagenet_alb or imagenet_tv" in line


def test_the_same_refusal_from_python_and_lightning_cli_before_any_worker(tmp_path: Path) -> None:
    pytest.importorskip("jsonargparse")
    from lightning_aug.cli.lightning import main

    root = _varied(tmp_path / "varied")
    datamodule = AugDataModule(ImageFolder(root), loader=LoaderSettings(batch_size=2, num_workers=2))
    with pytest.raises(DataError) as from_python:
        datamodule.setup("fit")  # no loader made: no worker started
    assert f"{root}/class_a/0.png is 20x20, {root}/class_b/0.png is 28x28" in str(from_python.value)
    with pytest.raises(DataError) as from_cli:
        main(
            [
                "fit",
                "--data.dataset=lightning_aug.data.datasets.ImageFolder",
                f"--data.dataset.root={root}",
                "--data.loader.batch_size=2",
                "--data.loader.num_workers=2",
                "--trainer.max_epochs=1",
                f"--trainer.default_root_dir={tmp_path / 'cli'}",
            ]
        )
    assert str(from_cli.value) == str(from_python.value)
    result = run_command(  # the module as a script: one line, as the apps say it
        [
            sys.executable,
            "-m",
            "lightning_aug.cli.lightning",
            "fit",
            "--data.dataset=lightning_aug.data.datasets.ImageFolder",
            f"--data.dataset.root={root}",
            "--data.loader.num_workers=0",
            f"--trainer.default_root_dir={tmp_path / 'cli2'}",
        ],
        cwd=tmp_path,
    )
    last = result.stderr.strip().splitlines()[-1]  # after Lightning's own log lines
    assert (
        result.returncode == 2
        and last == f"python -m lightning_aug.cli.lightning: data error: {from_python.value}"
    )
    assert "Traceback" not in result.stderr


def test_same_size_folders_pass_the_check_and_the_valid_neighbours_of_the_refusal(tmp_path: Path) -> None:
    """Refused only what cannot batch: one size without crops, and several sizes with a crop, pass."""
    same = tmp_path / "same"
    write_image_folder(same, {"a": 3, "b": 3}, size=24)
    for root, transforms in ((same, []), (_varied(tmp_path / "varied"), ["crop"])):
        from torchvision.transforms import v2

        built = [v2.RandomResizedCrop(16)] if transforms else []
        evals = [v2.Resize(18), v2.CenterCrop(16)] if transforms else []
        datamodule = AugDataModule(
            ImageFolder(root, val_split=0.3),
            train_transforms=built,
            eval_transforms=evals,
            loader=LoaderSettings(batch_size=2, num_workers=0),
        )
        datamodule.setup("fit")
        images, _ = next(iter(datamodule.train_dataloader()))
        assert images.shape[0] == 2


def test_a_custom_dataset_of_two_sizes_names_them_at_the_batch(tmp_path: Path) -> None:
    """A dataset without image_sizes is checked per batch: two samples and their sizes, not torch.stack's
    "stack expects each tensor to be equal size"."""
    import numpy as np

    class TwoSizes:
        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
            return np.zeros((8 if index % 2 else 10, 8, 3), dtype=np.uint8), index % 2

    datamodule = AugDataModule(
        lambda split: TwoSizes(), num_classes=2, loader=LoaderSettings(batch_size=4, num_workers=0)
    )
    datamodule.setup("fit")
    with pytest.raises(
        DataError,
        match=r"one batch holds images of two sizes after the train pipeline "
        r"\(sample \d: 8x(10|8), sample \d: 8x(8|10)\)",
    ):
        next(iter(datamodule.train_dataloader()))


def test_a_folder_of_classes_holds_out_ten_percent_and_a_split_with_val_folders_is_refused(
    tmp_path: Path,
) -> None:
    write_image_folder(tmp_path / "flat", {"a": 10, "b": 10})
    factory = ImageFolder(tmp_path / "flat")
    assert len(factory("train")) == 18 and len(factory("val")) == 2 and factory("test") is None
    for split in ("train", "test"):
        write_image_folder(tmp_path / "no_val" / split, {"a": 10, "b": 10})
    factory = ImageFolder(tmp_path / "no_val")
    assert len(factory("train")) == 18 and len(factory("val")) == 2 and len(factory("test")) == 20
    for split in ("train", "val"):
        write_image_folder(tmp_path / "both" / split, {"a": 4, "b": 4})
    assert len(ImageFolder(tmp_path / "both")("val")) == 8
    with pytest.raises(
        ValueError, match=r"val_split=0.2 \(data.val_split\) .* has train/ and val/ folders already"
    ):
        ImageFolder(tmp_path / "both", val_split=0.2)("train")


def test_experiments_for_a_gpu_say_trainer_cpu_on_a_machine_without_one(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line = one_error_line(run_app("train", "experiment=cifar10_resnet18", cwd=tmp_path))
    assert (
        "(experiment=cifar10_resnet18 trains on a GPU) needs a CUDA GPU" in line and "add trainer=cpu" in line
    )


@pytest.mark.slow
def test_predict_takes_a_checkpoint_named_as_lightning_names_them(digits: Path, tmp_path: Path) -> None:
    pytest.importorskip("jsonargparse")
    from lightning_aug.cli.lightning import main

    main(
        [
            "fit",
            "--data.dataset=lightning_aug.data.datasets.ImageFolder",
            f"--data.dataset.root={digits}",
            "--data.loader.batch_size=64",
            "--data.loader.num_workers=0",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=3",
            f"--trainer.default_root_dir={tmp_path / 'cli'}",
        ]
    )
    checkpoint = next((tmp_path / "cli").rglob("epoch=0-step=3.ckpt"))
    result = run_app(
        "predict",
        f"ckpt_path={checkpoint}",  # unquoted, as typed
        f"data.predict_root={digits / 'val' / '7'}",
        f"hydra.run.dir={tmp_path / 'predict'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (tmp_path / "predict" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + len(list((digits / "val" / "7").glob("*.png")))


# ---------------------------------------------------------------- the same recipe on every path

RECIPE_EPOCHS = DigitsRecipe.EPOCHS


def _python(digits: Path) -> float:
    from lightning.pytorch import Trainer, seed_everything
    from torchvision.transforms import v2

    from lightning_aug import ImageClassifier

    seed_everything(0, workers=False)
    datamodule = AugDataModule(
        ImageFolder(digits),
        train_transforms=[v2.RandomCrop(DIGITS_SIZE, padding=4), v2.RandomHorizontalFlip()],
        loader=LoaderSettings(batch_size=64, num_workers=2),
        seed=0,
    )
    model = ImageClassifier(num_classes=10, arch="small_cnn")
    trainer = Trainer(
        max_epochs=RECIPE_EPOCHS,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule)
    return float(trainer.callback_metrics["val/acc"])


def _lightning_cli(digits: Path, tmp_path: Path) -> float:
    from lightning_aug.cli.lightning import main

    config = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": RECIPE_EPOCHS,
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
        },
        "model": {"arch": "small_cnn"},
        "data": {
            "dataset": {
                "class_path": "lightning_aug.data.datasets.ImageFolder",
                "init_args": {"root": str(digits)},
            },
            "train_transforms": [
                {
                    "class_path": "torchvision.transforms.v2.RandomCrop",
                    "init_args": {"size": DIGITS_SIZE, "padding": 4},
                },
                {"class_path": "torchvision.transforms.v2.RandomHorizontalFlip"},
            ],
            "loader": {"batch_size": 64, "num_workers": 2},
            "seed": 0,
        },
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(config))
    cli = main(
        ["fit", f"--config={tmp_path / 'recipe.yaml'}", f"--trainer.default_root_dir={tmp_path / 'cli'}"]
    )
    return float(cli.trainer.callback_metrics["val/acc"])


@pytest.mark.slow
def test_the_same_recipe_reaches_the_same_accuracy_from_the_app_lightning_cli_and_python(
    digits: Path, digits_recipe: Any, tmp_path: Path
) -> None:
    pytest.importorskip("jsonargparse")
    app = digits_recipe.app("folder", "data=imagefolder", f"data.root={digits}")
    cli = _lightning_cli(digits, tmp_path)
    python = _python(digits)
    accuracies = {"app": app, "LightningCLI": cli, "Python": python}
    assert min(accuracies.values()) > 0.9, accuracies
    assert max(accuracies.values()) - min(accuracies.values()) <= 0.02, accuracies
