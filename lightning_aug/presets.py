"""``augment=auto``: the augment preset that fits the data, chosen when the config is resolved.

Images of one size (CIFAR, the built-in sets, digits or MNIST exported as PNGs, Tiny-ImageNet, any
pre-resized folder) get ``cifar_tv`` at their own size (pad 4, random crop back, flip); images of
many sizes (photographs) get ``imagenet_alb`` (224 crops while decoding). The sizes are what the
data's factory declares (:meth:`~lightning_aug.data.source.DatasetFactory.image_sizes`), whatever
its class: its arguments where they say it (``image_size``, CIFAR), the headers of a seeded sample of
an image folder's files (a few dozen header reads; the folder is not listed whole), a file list's or
table's train images, the first chunk of local shards. Data whose sizes cannot be seen (your own
dataset function, remote shards) gets no augmentation (tensor conversion only); the DataModule still
refuses data of several sizes in one line. The choice and its reason are logged by the apps
(:func:`said`); ``augment=<name>`` chooses yourself.
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


def _where(data: Mapping[str, Any]) -> str:
    """How the reason names the data: its folder, file or path argument, else its class."""
    for key in ("root", "file", "path", "input_dir"):
        if isinstance(data.get(key), str):
            return str(data[key])
    return f"data={str(data.get('_target_', '?')).rsplit('.', 1)[-1]}"


def _decide(data: Mapping[str, Any]) -> Choice:
    """The choice from the sizes the data's factory declares
    (:meth:`~lightning_aug.data.source.DatasetFactory.image_sizes`): whatever the factory is, no
    matching on its name. A factory that cannot be built chooses nothing and says nothing: the app
    builds it next and says what is wrong."""
    from hydra.utils import instantiate

    from lightning_aug.data.source import as_factory

    where = _where(data)
    try:
        seen = as_factory(instantiate(dict(data), _convert_="all")).image_sizes(limit=64, seed=0)
    except Exception:  # the factory says what is wrong when the app builds it
        return Choice("imagenet_alb", None, "")
    if seen is None:
        return Choice("none", None, f"the image sizes of {where} cannot be seen without decoding them")
    sizes = {tuple(size): name for name, size in seen}
    if len(sizes) == 1:
        (height, width), name = next(iter(sizes.items()))
        said = (
            f"the {len(seen)} images sampled of {where} are all {width}x{height}"
            if len(seen) > 1
            else (f"{name} images are {width}x{height}")
        )
        return Choice("cifar_tv", (int(height), int(width)), said)
    if len(sizes) > 1:
        (a, name_a), (b, name_b) = list(sizes.items())[:2]
        seen_sizes = f"{name_a}: {a[1]}x{a[0]}, {name_b}: {b[1]}x{b[0]}"
        return Choice("imagenet_alb", None, f"{where} has images of several sizes ({seen_sizes})")
    return Choice("imagenet_alb", None, f"no image could be read in {where} to see their sizes")


def choose(data: Mapping[str, Any]) -> Choice:
    """The preset for ``data`` (a data config), decided once per process for the same config."""
    key = json.dumps(dict(data), sort_keys=True, default=str)
    if key not in _CHOICES:
        _CHOICES[key] = _decide(data)
    _LAST[:] = [_CHOICES[key]]
    return _CHOICES[key]


def said() -> str | None:
    """The last choice of ``augment=auto`` in words, for the apps' log; ``None`` if none was made."""
    if not _LAST or not _LAST[0].reason:  # a factory that cannot be built: its own error comes next
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
