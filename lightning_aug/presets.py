"""``augment=auto``: the augment preset that fits the data, chosen when the config is resolved.

Images of one size (CIFAR, the built-in sets, digits or MNIST exported as PNGs, Tiny-ImageNet, any
pre-resized folder) get ``cifar_tv`` at their own size (pad 4, random crop back, flip); images of
many sizes (photographs) get ``imagenet_alb`` (224 crops while decoding). The sizes come from the
data's arguments where they say it (``image_size``, CIFAR) and otherwise from the headers of a seeded
sample of an image folder's files (a few dozen header reads; the folder is not listed whole). Data
whose sizes cannot be seen (your own dataset factory, remote shards) gets no augmentation (tensor
conversion only); the DataModule still refuses data of several sizes in one line. The choice and
its reason are logged by the apps (:func:`said`); ``augment=<name>`` chooses yourself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Choice", "auto_augment", "choose", "said"]


@dataclass(frozen=True)
class Choice:
    """The preset ``augment=auto`` resolves to, the image size it crops to, and why."""

    preset: str
    size: tuple[int, int] | None
    reason: str


_CHOICES: dict[str, Choice] = {}
_LAST: list[Choice] = []


def _target(data: Mapping[str, Any]) -> str:
    return str(data.get("_target_", "")).rsplit(".", 1)[-1]


def _decide(data: Mapping[str, Any]) -> Choice:
    target = _target(data)
    if target == "Photos":
        return Choice("imagenet_alb", None, "data=Photos holds landscape and portrait photographs")
    size = data.get("image_size")
    if isinstance(size, int) and not isinstance(size, bool):
        return Choice("cifar_tv", (size, size), f"data={target} draws {size}x{size} images")
    if target in ("CIFAR10", "CIFAR100"):
        return Choice("cifar_tv", (32, 32), f"data={target} has 32x32 images")
    if target in ("ImageFolder", "ImageFiles") and isinstance(data.get("root"), str):
        from lightning_aug.data.datasets.folder import probe_folder_sizes

        seen = probe_folder_sizes(data["root"], limit=64, seed=0)
        sizes = {size: path for path, size in seen}
        if len(sizes) == 1:
            (height, width), _ = next(iter(sizes.items()))
            return Choice(
                "cifar_tv",
                (height, width),
                f"the {len(seen)} files sampled of {data['root']} are all {width}x{height}",
            )
        if len(sizes) > 1:
            (a, path_a), (b, path_b) = list(sizes.items())[:2]
            seen_sizes = f"{path_a}: {a[1]}x{a[0]}, {path_b}: {b[1]}x{b[0]}"
            return Choice("imagenet_alb", None, f"{data['root']} has images of several sizes ({seen_sizes})")
        return Choice("imagenet_alb", None, f"no image could be read in {data['root']} to see their sizes")
    if (
        target == "StreamingShards"
        and isinstance(data.get("input_dir"), str)
        and "://" not in data["input_dir"]
    ):
        return _shard_choice(data["input_dir"])
    if target in ("FileList", "HuggingFace") and (data.get("file") or data.get("path")):
        return _listed_choice(data)
    return Choice("none", None, f"the image sizes of data={target or '?'} cannot be seen from its arguments")


def _shard_choice(input_dir: str) -> Choice:
    """The sizes of up to 64 samples of the first train chunk of local shards."""
    try:
        from lightning_aug.data.datasets.streaming import StreamingShards

        dataset = StreamingShards(input_dir, cache_dir=None).build("train")
        seen = dataset.image_sizes(limit=64) if dataset is not None else []
    except Exception:  # the factory says what is wrong when it is built
        seen = []
    sizes = {size for _, size in seen}
    if len(sizes) == 1:
        height, width = next(iter(sizes))
        return Choice(
            "cifar_tv",
            (height, width),
            f"the {len(seen)} samples read of {input_dir} are all {width}x{height}",
        )
    return Choice(
        "imagenet_alb", None, f"the shards of {input_dir} hold images of several sizes (or none readable)"
    )


def _listed_choice(data: Mapping[str, Any]) -> Choice:
    """The sizes of up to 64 images of the train split of a file list or a Hugging Face dataset (the
    factory built from the config: the list read, the dataset's memory map opened)."""
    from hydra.utils import instantiate

    where = data.get("file") or data.get("path")
    try:
        dataset = instantiate(dict(data), _convert_="all")("train")
        seen = dataset.image_sizes(limit=64) if dataset is not None else []
    except Exception:  # the factory says what is wrong when the app builds it
        return Choice("imagenet_alb", None, f"no image of {where} could be read to see their sizes")
    sizes = {size for _, size in seen}
    if len(sizes) == 1:
        height, width = next(iter(sizes))
        return Choice(
            "cifar_tv", (height, width), f"the {len(seen)} images read of {where} are all {width}x{height}"
        )
    return Choice("imagenet_alb", None, f"{where} lists images of several sizes")


def choose(data: Mapping[str, Any]) -> Choice:
    """The preset for ``data`` (a data config), decided once per process for the same config."""
    key = json.dumps(dict(data), sort_keys=True, default=str)
    if key not in _CHOICES:
        _CHOICES[key] = _decide(data)
    _LAST[:] = [_CHOICES[key]]
    return _CHOICES[key]


def said() -> str | None:
    """The last choice of ``augment=auto`` in words, for the apps' log; ``None`` if none was made."""
    if not _LAST:
        return None
    choice = _LAST[0]
    at = f" at {choice.size[1]}x{choice.size[0]}" if choice.size and choice.preset == "cifar_tv" else ""
    return f"augment=auto: {choice.preset}{at} ({choice.reason}); augment=<name> chooses another"


def _preset(name: str) -> dict[str, Any]:
    from importlib.resources import files

    from omegaconf import OmegaConf

    text = (files("lightning_aug.conf") / "augment" / f"{name}.yaml").read_text()
    node = OmegaConf.create(text)
    return dict(OmegaConf.to_container(node, resolve=False))  # type: ignore[arg-type]


def auto_augment(key: str, *, _root_: Any) -> Any:
    """The OmegaConf resolver ``${lightning_aug.auto_augment:<key>}`` of ``conf/augment/auto.yaml``:
    ``key`` (``backend``, ``train_transforms``, ``eval_transforms``) of the chosen preset."""
    from omegaconf import OmegaConf

    data = _root_.get("data") if _root_ is not None else None
    plain = OmegaConf.to_container(data, resolve=True) if data is not None else {}
    choice = choose({str(k): v for k, v in plain.items()} if isinstance(plain, Mapping) else {})
    preset = _preset(choice.preset)
    if choice.preset == "cifar_tv" and choice.size is not None:
        height, width = choice.size
        preset["train_transforms"]["crop"]["size"] = height if height == width else [height, width]
    return preset[key]
