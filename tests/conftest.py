"""Shared fixtures, made once per test session: a small generated synthetic set, a private cache folder,
one real checkpoint, the digits as a folder, shards and tars, and the seeded recipe's accuracy on each
data path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import DIGITS_SIZE, DigitsRecipe, RepeatedImageFactory, digits_folder, write_webdataset
from lightning.pytorch import Trainer

from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings
from lightning_aug.data.datasets import SyntheticShapes


def _threads_per_worker() -> None:
    """Under pytest-xdist (the test command runs ``-n auto``), each worker computes with its share of
    the cores, and so do the apps and scripts it starts (``OMP_NUM_THREADS``): two workers each
    spinning two OpenMP threads on two cores ran an app 10x slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


_threads_per_worker()


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep every default cache folder of the tests out of the user's home."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LIGHTNING_AUG_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def small_shapes(tmp_path_factory: pytest.TempPathFactory) -> SyntheticShapes:
    """4 classes, 64x64, 16/4/4 images per class; generated once per session."""
    data = SyntheticShapes(
        root=tmp_path_factory.mktemp("shapes"),
        num_classes=4,
        train_per_class=16,
        val_per_class=4,
        test_per_class=4,
    )
    data.prepare()
    return data


@pytest.fixture(autouse=True)
def _no_wandb_run_left() -> Any:
    """A W&B run a test started in this process (building the loggers starts it) is finished after the
    test, so that the next test's WandbLogger does not attach to it (and write into its folder)."""
    yield
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


@pytest.fixture()
def repeated() -> RepeatedImageFactory:
    return RepeatedImageFactory()


@pytest.fixture(scope="session")
def real_checkpoint(tmp_path_factory: pytest.TempPathFactory, small_shapes: Any) -> dict[str, Any]:
    """A checkpoint of a real one-step run (ImageClassifier + AugDataModule) on ``small_shapes``, as a
    dict; written once per test session."""
    folder = tmp_path_factory.mktemp("real")
    datamodule = AugDataModule(small_shapes, loader=LoaderSettings(batch_size=16, num_workers=0), seed=0)
    trainer = Trainer(
        accelerator="cpu", max_steps=1, logger=False, enable_progress_bar=False, default_root_dir=folder
    )
    trainer.fit(ImageClassifier(num_classes=4, width=8), datamodule)
    trainer.save_checkpoint(folder / "real.ckpt")
    return torch.load(folder / "real.ckpt", weights_only=True)


# ---------------------------------------------------------------- the digits, once per test session


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's digits as a class-sorted folder of ``DIGITS_SIZE`` PNGs (train/<digit>,
    val/<digit>); the tests read it, none writes into it."""
    return digits_folder(tmp_path_factory.mktemp("digits") / "digits", size=DIGITS_SIZE)


@pytest.fixture(scope="session")
def digit_shards(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits folder prepared as shards with the default options (one shard set per test run)."""
    from lightning_aug.data.datasets import ImageFolder
    from lightning_aug.data.shards.prepare import prepare_shards

    out = tmp_path_factory.mktemp("digit-shards") / "shards"
    prepare_shards(ImageFolder(digits), out, num_workers=2)
    return out


@pytest.fixture(scope="session")
def digit_tars(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits as WebDataset tars of 400 samples, in the folder's class-sorted order."""
    return write_webdataset(digits, tmp_path_factory.mktemp("digit-tars") / "tars", per_tar=400)


@pytest.fixture(scope="session")
def digits_recipe(tmp_path_factory: pytest.TempPathFactory) -> DigitsRecipe:
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base  # one for all workers
    return DigitsRecipe(tmp_path_factory.mktemp("recipe"), shared / "digits_recipe")
