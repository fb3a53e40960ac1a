from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch
import torchvision.transforms as T1
from PIL import Image
from torchvision.transforms import v2

from lightning_aug.data.pipeline import Pipeline, to_rgb_array, to_rgb_tensor
from lightning_aug.targets import check_target_args

RNG = np.random.default_rng(0)
HWC = RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)


def inputs() -> list:
    return [
        HWC,
        Image.fromarray(HWC),
        torch.from_numpy(HWC).permute(2, 0, 1).contiguous(),
        Image.fromarray(HWC[:, :, 0]),  # grey PIL
        HWC[:, :, 0],  # grey ndarray
    ]


@pytest.mark.parametrize("backend", ["albumentations", "torchvision"])
@pytest.mark.parametrize("index", range(5))
def test_empty_pipeline_converts_every_input_to_chw_uint8(backend: str, index: int) -> None:
    image = inputs()[index]
    out = Pipeline([], backend=backend)(image)
    assert out.dtype == torch.uint8 and tuple(out.shape) == (3, 12, 10)
    expected = (
        HWC
        if isinstance(image, torch.Tensor)
        else np.array(Image.fromarray(np.asarray(image)).convert("RGB"))
    )
    assert torch.equal(out.permute(1, 2, 0), torch.from_numpy(np.ascontiguousarray(expected)))


def test_both_backends_flip_identically() -> None:
    alb = Pipeline([A.HorizontalFlip(p=1.0)], backend="albumentations")(HWC)
    tv = Pipeline([v2.RandomHorizontalFlip(p=1.0)], backend="torchvision")(HWC)
    assert torch.equal(alb, tv)
    assert torch.equal(alb, torch.from_numpy(HWC[:, ::-1].copy()).permute(2, 0, 1))


@pytest.mark.parametrize("backend", ["albumentations", "torchvision"])
def test_mapping_specs_are_instantiated(backend: str) -> None:
    target = (
        "albumentations.RandomCrop" if backend == "albumentations" else "torchvision.transforms.v2.RandomCrop"
    )
    args = {"height": 8, "width": 6} if backend == "albumentations" else {"size": [8, 6]}
    out = Pipeline([{"_target_": target, **args}], backend=backend)(HWC)
    assert tuple(out.shape) == (3, 8, 6)


def test_albumentations_reseed_reproduces_and_seeds_differ() -> None:
    pipe = Pipeline([A.RandomResizedCrop(size=(8, 8))], backend="albumentations")

    def draw(seed: int) -> list[torch.Tensor]:
        pipe.reseed(seed)
        return [pipe(HWC) for _ in range(4)]

    first, again, other = draw(1), draw(1), draw(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match=r"backend must be one of .* got 'kornia'"):
        Pipeline([], backend="kornia")  # type: ignore[arg-type]


def test_transforms_must_be_a_list_or_named() -> None:
    with pytest.raises(
        TypeError, match="transforms must be a list or a mapping of named transforms, got HorizontalFlip"
    ):
        Pipeline(A.HorizontalFlip(), backend="albumentations")  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"got one transform \(albumentations.HorizontalFlip\); put it in a list"
    ):
        Pipeline({"_target_": "albumentations.HorizontalFlip"}, backend="albumentations")


def test_named_transforms_keep_their_order_and_none_drops_one() -> None:
    named = {
        "crop": {"_target_": "albumentations.CenterCrop", "height": 4, "width": 4},
        "flip": None,  # switched off, as augment.train_transforms.flip=null does
        "pad": {"_target_": "albumentations.PadIfNeeded", "min_height": 6, "min_width": 6},
    }
    pipe = Pipeline(named, backend="albumentations")
    assert [type(t).__name__ for t in pipe.transforms] == ["CenterCrop", "PadIfNeeded"]
    assert tuple(pipe(np.zeros((8, 8, 3), dtype=np.uint8)).shape) == (3, 6, 6)  # crop, then pad
    with pytest.raises(ValueError, match="train transform crop: unknown argument"):
        Pipeline({"crop": {"_target_": "albumentations.CenterCrop", "hieght": 4}}, "albumentations", "train")


def test_unknown_target() -> None:
    with pytest.raises(
        ValueError, match=r"train transform 0: unknown transform target 'albumentations.NoSuchFlip'"
    ):
        Pipeline([{"_target_": "albumentations.NoSuchFlip"}], backend="albumentations", name="train")


def test_unknown_argument_is_an_error_not_a_warning() -> None:
    with pytest.raises(
        ValueError, match=r"unknown argument\(s\) \['prob'\] for albumentations.HorizontalFlip"
    ):
        Pipeline([{"_target_": "albumentations.HorizontalFlip", "prob": 0.5}], backend="albumentations")


def test_spec_without_target() -> None:
    with pytest.raises(ValueError, match="expected a mapping with a '_target_' class path"):
        check_target_args({"p": 0.5}, "train transform 0")


def test_wrong_argument_type_names_the_argument() -> None:
    with pytest.raises(ValueError, match="train transform 0: albumentations.HorizontalFlip: ") as info:
        Pipeline(
            [{"_target_": "albumentations.HorizontalFlip", "p": "often"}],
            backend="albumentations",
            name="train",
        )
    assert "\np\n" in str(info.value) and "Input should be a valid number" in str(info.value)


@pytest.mark.parametrize(
    ("backend", "transform", "message"),
    [
        (
            "albumentations",
            v2.RandomHorizontalFlip(),
            "backend 'albumentations' expects albumentations transforms",
        ),
        ("torchvision", A.HorizontalFlip(), "backend 'torchvision' expects torchvision.transforms.v2"),
        ("torchvision", 3, "or a callable image -> image on CHW uint8 tensors .* got builtins.int"),
        ("albumentations", "flip", "or a callable image -> image on HWC uint8 arrays, got builtins.str"),
    ],
)
def test_transform_of_the_wrong_backend(backend: str, transform: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Pipeline([transform], backend=backend)  # type: ignore[arg-type]


def _invert(image: Any) -> Any:
    return 255 - image


@pytest.mark.parametrize("backend", ["torchvision", "albumentations"])
def test_a_plain_function_is_a_transform_of_either_backend(backend: str) -> None:
    """The contract: image -> image of the backend's type (tensor / array); it runs where it stands."""
    image = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    out = Pipeline([_invert], backend=backend)(image)  # type: ignore[arg-type]
    assert out.dtype == torch.uint8 and torch.equal(out, torch.from_numpy(255 - image).permute(2, 0, 1))
    assert Pipeline([_invert], backend=backend).draws_from_globals  # type: ignore[arg-type]


def test_torchvision_v1_transforms_and_lambdas_run_in_the_torchvision_backend() -> None:
    image = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    out = Pipeline([T1.RandomHorizontalFlip(p=1.0), lambda x: x.flip(-2)], backend="torchvision")(image)
    assert torch.equal(out, torch.from_numpy(image[::-1, ::-1].copy()).permute(2, 0, 1))


@pytest.mark.parametrize(
    ("backend", "transform"),
    [
        ("albumentations", A.Normalize()),
        ("torchvision", v2.ToDtype(torch.float32, scale=True)),
    ],
)
def test_float_output_is_refused(backend: str, transform: object) -> None:
    pipe = Pipeline([transform], backend=backend, name="train pipeline")
    with pytest.raises(TypeError, match="train pipeline must output a CHW uint8 tensor, got .*float"):
        pipe(HWC)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (HWC.astype(np.float32), "image ndarray must be uint8 HWC"),
        (torch.zeros(3, 4, 4), "image tensor must be uint8 CHW"),
        (torch.zeros(4, 4, 4, dtype=torch.uint8), r"got torch.uint8 of shape \(4, 4, 4\)"),
        ("path.jpg", "image must be a PIL image, an HWC uint8 ndarray or a CHW uint8 tensor, got str"),
    ],
)
def test_bad_images(image: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        to_rgb_tensor(image)


def test_rgb_conversions_share_memory_where_possible() -> None:
    assert to_rgb_array(HWC) is HWC
    assert to_rgb_tensor(HWC).data_ptr() == torch.from_numpy(HWC).data_ptr()
    grey = to_rgb_tensor(torch.zeros(1, 4, 4, dtype=torch.uint8))
    assert grey.shape == (3, 4, 4) and grey.stride(0) == 0  # expanded, not copied


def test_hydra_listconfig_arguments_are_converted() -> None:
    """Hydra hands lists as ListConfig; a transform expecting a tuple gets a plain container."""
    from omegaconf import OmegaConf

    spec = OmegaConf.create(
        {"_target_": "albumentations.RandomResizedCrop", "size": [8, 6], "scale": [0.5, 1.0]}
    )
    pipe = Pipeline([spec], backend="albumentations")
    assert tuple(pipe(HWC).shape) == (3, 8, 6)
    tv = OmegaConf.create({"_target_": "torchvision.transforms.v2.RandomResizedCrop", "size": [8, 6]})
    assert tuple(Pipeline([tv], backend="torchvision")(HWC).shape) == (3, 8, 6)


def test_wrong_element_types_in_a_list_argument_are_named() -> None:
    from omegaconf import OmegaConf

    spec = OmegaConf.create({"_target_": "albumentations.RandomResizedCrop", "size": ["a", "b"]})
    with pytest.raises(ValueError, match="pipeline transform 0: albumentations.RandomResizedCrop") as info:
        Pipeline([spec], backend="albumentations")
    assert "size.0" in str(info.value) and "Input should be a valid integer" in str(info.value)
