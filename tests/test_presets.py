"""Every augmentation preset in conf/augment builds with its backend and honours the uint8 CHW contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import RepeatedImageFactory, compose_config
from omegaconf import OmegaConf

from lightning_aug import AugDataModule
from lightning_aug.data.pipeline import Pipeline

CONF = Path(__file__).resolve().parents[1] / "conf" / "augment"
PRESETS = sorted(p.stem for p in CONF.glob("*.yaml"))
# input size -> expected output size of (train, eval) for each preset family
SIZES = {
    "cifar": ((32, 32), (32, 32), (32, 32)),
    "imagenet": ((300, 400), (224, 224), (224, 224)),
    "none": ((20, 30), (20, 30), (20, 30)),
}


def load(name: str) -> dict:
    """The preset as the apps compose it (what it inherits included), over 32x32 CIFAR-style data."""
    augment = compose_config("train", [f"augment={name}", "data=cifar10"]).augment
    return OmegaConf.to_container(augment, resolve=True)  # type: ignore[return-value]


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_and_outputs_uint8_chw(name: str) -> None:
    preset = load(name)
    family = "imagenet" if name.startswith("imagenet") else "none" if name == "none" else "cifar"
    (h, w), train_hw, eval_hw = SIZES[family]
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    train = Pipeline(preset["train_transforms"], preset["backend"], name=f"{name} train")
    evaluation = Pipeline(preset["eval_transforms"], preset["backend"], name=f"{name} eval")
    train.reseed(0)
    outs = [train(image) for _ in range(4)]
    assert all(o.dtype == torch.uint8 and tuple(o.shape) == (3, *train_hw) for o in outs)
    assert tuple(evaluation(image).shape) == (3, *eval_hw)
    if preset["train_transforms"]:
        assert not all(torch.equal(outs[0], o) for o in outs[1:])  # it augments
    assert torch.equal(evaluation(image), evaluation(image))  # evaluation is deterministic


@pytest.mark.parametrize("name", PRESETS)
def test_preset_keys_are_datamodule_arguments(name: str) -> None:
    preset = load(name)
    dm = AugDataModule(RepeatedImageFactory(), **preset)  # every key is an argument
    dm.setup("fit")
    image, label = dm.datasets["train"][0]  # a training sample through the preset's pipeline
    assert image.dtype == torch.uint8 and image.ndim == 3 and label == 0


def test_cifar_presets_of_both_backends_pad_with_zeros_and_crop_the_same_window() -> None:
    """With the flip off, both backends' random crops are windows of the same zero-padded image."""
    image = np.random.default_rng(1).integers(1, 256, (32, 32, 3), dtype=np.uint8)
    padded = torch.from_numpy(np.pad(image, ((4, 4), (4, 4), (0, 0)))).permute(2, 0, 1)
    windows = {padded[:, y : y + 32, x : x + 32].numpy().tobytes() for y in range(9) for x in range(9)}
    for name in ("cifar_tv", "cifar_alb"):
        preset = load(name)
        preset["train_transforms"]["flip"]["p"] = 0.0
        pipe = Pipeline(preset["train_transforms"], preset["backend"])
        assert all(pipe(image).numpy().tobytes() in windows for _ in range(10))
