"""LightningCLI (jsonargparse) builds the DataModule and every built-in dataset factory, from a YAML file
and from command-line arguments; lists append with ``+=``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import fake_cifar, write_image_folder

from lightning_aug.data.datasets import CIFAR10, CIFAR100, ImageFolder, Photos, SyntheticShapes

pytest.importorskip("jsonargparse")

from lightning_aug.cli.lightning import main

EXAMPLE = Path(__file__).parents[1] / "examples" / "lightning_cli" / "config.yaml"


def _dataset(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``class_path`` + ``init_args`` of the built-in factory ``name``, its files made in ``tmp_path``."""
    if name == "SyntheticShapes":
        args: dict[str, Any] = {"root": str(tmp_path / "synthetic"), "train_per_class": 4, "val_per_class": 2}
        cls: type = SyntheticShapes
    elif name == "Photos":
        pytest.importorskip("skimage")
        args, cls = {"root": str(tmp_path / "photos"), "train_per_class": 4, "val_per_class": 2}, Photos
    elif name == "ImageFolder":
        for split in ("train", "val"):
            write_image_folder(tmp_path / "images" / split, {"cat": 4, "dog": 4}, size=40)
        args, cls = {"root": str(tmp_path / "images")}, ImageFolder
    else:
        cls = CIFAR10 if name == "CIFAR10" else CIFAR100
        fake_cifar(tmp_path / "cifar", cls.tv_class, monkeypatch)
        args = {"root": str(tmp_path / "cifar")}
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": args}


COMMON = [
    "--trainer.fast_dev_run=true",
    "--trainer.accelerator=cpu",
    "--data.loader.batch_size=4",
    "--data.loader.num_workers=0",
    "--data.loader.persistent_workers=false",
]
NAMES = ["SyntheticShapes", "Photos", "ImageFolder", "CIFAR10", "CIFAR100"]


def _fit(args: list[str], tmp_path: Path) -> Any:
    cli = main(["fit", *COMMON, f"--trainer.default_root_dir={tmp_path / 'run'}", *args])
    assert cli.trainer.state.finished
    return cli


@pytest.mark.parametrize("name", NAMES)
def test_fit_from_a_yaml_file(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {
        "data": {
            "dataset": _dataset(name, tmp_path, monkeypatch),
            "train_transforms": [
                {"class_path": "torchvision.transforms.v2.RandomResizedCrop", "init_args": {"size": [32, 32]}}
            ],
            "eval_transforms": [
                {"class_path": "torchvision.transforms.v2.Resize", "init_args": {"size": [32, 32]}}
            ],
        },
        "model": {"width": 8},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = _fit(["--config", str(path)], tmp_path)
    factory = cli.datamodule.dataset
    assert type(factory).__name__ == name and cli.model.hparams.num_classes == cli.datamodule.num_classes
    assert [type(t).__name__ for t in cli.datamodule.train_pipeline.transforms] == ["RandomResizedCrop"]


@pytest.mark.parametrize("name", NAMES)
def test_fit_from_command_line_arguments(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = _dataset(name, tmp_path, monkeypatch)
    args = [f"--data.dataset={dataset['class_path']}"]
    args += [f"--data.dataset.{key}={value}" for key, value in dataset["init_args"].items()]
    args += [
        "--data.backend=albumentations",
        "--data.train_transforms+=albumentations.RandomCrop",
        "--data.train_transforms.height=24",
        "--data.train_transforms.width=24",
        "--data.train_transforms.pad_if_needed=true",
        "--data.train_transforms+=albumentations.HorizontalFlip",
        "--data.eval_transforms+=albumentations.CenterCrop",
        "--data.eval_transforms.height=24",
        "--data.eval_transforms.width=24",
        "--data.eval_transforms.pad_if_needed=true",
        "--model.width=8",
    ]
    cli = _fit(args, tmp_path)
    assert [type(t).__name__ for t in cli.datamodule.train_pipeline.transforms] == [
        "RandomCrop",
        "HorizontalFlip",
    ]
    assert type(cli.datamodule.dataset).__name__ == name


def test_the_shipped_example_config_runs(tmp_path: Path) -> None:
    cli = _fit(
        [
            "--config",
            str(EXAMPLE),
            f"--data.dataset.root={tmp_path / 'synthetic'}",
            "--data.train_transforms+=torchvision.transforms.v2.RandomVerticalFlip",
        ],
        tmp_path,
    )
    names = [type(t).__name__ for t in cli.datamodule.train_pipeline.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip"]
    assert any(type(c).__name__ == "MixupCallback" for c in cli.trainer.callbacks)
