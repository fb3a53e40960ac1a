from __future__ import annotations

import pytest
import torch

from lightning_aug import ImageClassifier
from lightning_aug.device.mixing.functional import smooth_one_hot


@pytest.mark.parametrize(
    ("arch", "kwargs"), [("small_cnn", {"width": 8}), ("resnet18", {"cifar_stem": True})]
)
def test_forward_and_both_target_kinds(arch: str, kwargs: dict) -> None:
    model = ImageClassifier(num_classes=5, arch=arch, **kwargs)
    images = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 3])
    assert model(images).shape == (4, 5)
    loss_idx = model._step((images, labels), "val")
    loss_soft = model._step((images, smooth_one_hot(labels, 5)), "val")
    torch.testing.assert_close(loss_idx, loss_soft)  # one-hot soft targets == class indices


def test_resnet18_standard_stem_downsamples() -> None:
    model = ImageClassifier(num_classes=3, arch="resnet18")
    assert model.net.conv1.stride == (2, 2)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, "num_classes must be an int >= 2, got 1"),
        ({"arch": "vit"}, "arch must be 'small_cnn', 'resnet18' or 'timm', got 'vit'$"),
        ({"arch": "resnet50"}, r"got 'resnet50' \(timm's 'resnet50': arch=timm name=resnet50\)"),
        ({"cifar_stem": True}, "cifar_stem needs arch='resnet18', got arch='small_cnn'"),
        ({"width": 0}, "width must be an int >= 1, got 0"),
        ({"lr": 0}, "lr must be a positive float, got 0"),
        ({"weight_decay": -1.0}, r"weight_decay must be a float >= 0, got -1.0"),
        (
            {"pretrained": True},
            "pretrained must be a bool and needs arch='resnet18' or 'timm', got True for 'small_cnn'",
        ),
        ({"scheduler": "cosine"}, "scheduler must be 'onecycle' or 'none', got 'cosine'"),
    ],
)
def test_constructor_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageClassifier(**{"num_classes": 4, **kwargs})


def test_bad_targets_are_named() -> None:
    model = ImageClassifier(num_classes=4, width=4)
    with pytest.raises(
        ValueError, match=r"targets must be int64 class indices .* got torch.float32 of shape \(2,\)"
    ):
        model._step((torch.randn(2, 3, 16, 16), torch.zeros(2)), "val")
