"""Shared fixtures: a small generated synthetic set and a private cache folder for every test session."""

from __future__ import annotations

import pytest
from helpers import RepeatedImageFactory

from lightning_aug.data.datasets import SyntheticShapes


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


@pytest.fixture()
def repeated() -> RepeatedImageFactory:
    return RepeatedImageFactory()
