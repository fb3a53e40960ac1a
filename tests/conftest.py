"""Shared fixtures: a small generated synthetic set and a private cache folder for every test session."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torchvision
from torch.utils.data import Dataset

from lightning_aug.datasets import SyntheticShapes


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


class RepeatedImage(Dataset):
    """``length`` copies of one image: differences between samples can only come from augmentation."""

    def __init__(self, length: int = 16, size: int = 48) -> None:
        rng = np.random.default_rng(0)
        self.image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.image, 0


class RepeatedImageFactory:
    """Dataset factory of :class:`RepeatedImage` for every split."""

    num_classes = 2

    def __init__(self, length: int = 16) -> None:
        self.length = length

    def __call__(self, split: str) -> RepeatedImage:
        return RepeatedImage(self.length)


@pytest.fixture()
def repeated() -> RepeatedImageFactory:
    return RepeatedImageFactory()


def write_image_folder(root: Path, classes: dict[str, int], size: int = 20) -> None:
    """``root/<class>/<i>.png`` with ``classes[name]`` small random images each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )


def fake_cifar(
    root: Path, tv_class: type, monkeypatch: pytest.MonkeyPatch, n_train: int = 20, n_test: int = 10
) -> Path:
    """Write tiny CIFAR files in torchvision's layout, point the class's checksums at them and return a
    ``.tar.gz`` of them (for the download path)."""
    rng = np.random.default_rng(0)
    label_key = "labels" if tv_class is torchvision.datasets.CIFAR10 else "fine_labels"
    folder = root / tv_class.base_folder
    folder.mkdir(parents=True)
    n_classes = 10 if tv_class is torchvision.datasets.CIFAR10 else 100

    def write(name: str, n: int) -> list[str]:
        entry = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: rng.integers(0, n_classes, n).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(entry))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    train_names = [e[0] for e in tv_class.train_list]
    per = n_train // len(train_names)
    monkeypatch.setattr(tv_class, "train_list", [write(name, per) for name in train_names])
    monkeypatch.setattr(tv_class, "test_list", [write(tv_class.test_list[0][0], n_test)])
    meta = dict(tv_class.meta)
    (folder / meta["filename"]).write_bytes(pickle.dumps({meta["key"]: [f"c{i}" for i in range(n_classes)]}))
    meta["md5"] = hashlib.md5((folder / meta["filename"]).read_bytes()).hexdigest()
    monkeypatch.setattr(tv_class, "meta", meta)
    archive = root / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=tv_class.base_folder)
    return archive
