"""Every setting a user gives changes what runs or is refused (issue 31's walk).

Every argument of ``AugDataModule``, ``MixupCallback`` and ``ImageClassifier`` has an entry here (a
new argument without one fails :func:`test_every_argument_has_an_entry`): a non-default value, the
context it acts in, and what is observed (the batches a model is given, the trained weights, the mixed
batch, the ops that run). Each entry's observation must differ from its context's default, or the
value must be refused with a message naming the argument.

Every key of every config (each app's and each option of each group) must reach something that
runs: an argument of the ``_target_`` it sits under (then the walk above, or Lightning's own
classes), a key that an interpolation of another node reads, or a key the app reads itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from helpers import Recorder, tiny_trainer
from torchvision.transforms import v2

from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings, MixupCallback

Observe = Callable[[dict[str, Any]], Any]


def _digest(*tensors: torch.Tensor) -> str:
    sha = hashlib.sha256()
    for tensor in tensors:
        sha.update(str((tuple(tensor.shape), tensor.dtype)).encode())
        sha.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return sha.hexdigest()[:16]


def _refused(build: Callable[[], Any]) -> Any:
    """What ``build`` gives, or the refusal it raised (its type and message)."""
    try:
        return build()
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        return ("refused", type(err).__name__, str(err))


@dataclasses.dataclass
class Entry:
    """A non-default value (``change``) in its ``context``, observed by ``observe``; ``names``: what a
    refusal of it must name (default: the argument)."""

    change: dict[str, Any]
    context: dict[str, Any] = dataclasses.field(default_factory=dict)
    observe: str = "default"
    names: str | None = None
    refused: bool = False


class _DictShapes(torch.utils.data.Dataset):
    """The shapes' samples as ``{"image", "label"}`` dicts (Hugging Face rows, your own dicts)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, label = self.data[index][:2]
        return {"image": image, "label": label}


def _dict_factory(shapes: Any) -> Callable[[str], Any]:
    def factory(split: str) -> Any:
        data = shapes(split)
        return None if data is None else _DictShapes(data)

    factory.num_classes = 4  # type: ignore[attr-defined]
    return factory


DATAMODULE: dict[str, Entry] = {
    "dataset": Entry({"dataset": "other"}),
    "train_transforms": Entry({"train_transforms": [v2.RandomResizedCrop(32), v2.RandomHorizontalFlip(1.0)]}),
    "eval_transforms": Entry({"eval_transforms": [v2.Resize(32), v2.CenterCrop(24)]}),
    # the same flip by the other library: the same batches, run by albumentations
    "backend": Entry(
        {
            "backend": "albumentations",
            "train_transforms": [{"_target_": "albumentations.HorizontalFlip", "p": 1}],
        },
        context={
            "train_transforms": [{"_target_": "torchvision.transforms.v2.RandomHorizontalFlip", "p": 1}],
            "eval_transforms": (),
        },
    ),
    "mean": Entry({"mean": [0.2, 0.3, 0.4]}),
    "std": Entry({"std": [0.5, 0.5, 0.5]}),
    "loader": Entry({"loader": LoaderSettings(batch_size=16, num_workers=0)}),
    "num_classes": Entry({"num_classes": 5}, names="num_classes=5", refused=True),  # the data has 4
    "seed": Entry({"seed": 1}),
    "device_transforms": Entry(
        {"device_transforms": [{"_target_": "lightning_aug.device.augment.HorizontalFlip", "p": 1.0}]}
    ),
    # the same batches (what in_memory promises), held as one tensor
    "in_memory": Entry({"in_memory": True}, context={"train_transforms": (), "eval_transforms": ()}),
    "image_key": Entry(
        {"image_key": "picture"}, context={"dataset": "dicts"}, names="'picture'", refused=True
    ),
    "label_key": Entry({"label_key": "target"}, context={"dataset": "dicts"}, names="'target'", refused=True),
    "sampler": Entry({"sampler": "balanced"}),
    "num_aug_repeats": Entry({"num_aug_repeats": 2}),
    "repeated_epoch": Entry({"repeated_epoch": "repeats"}, context={"num_aug_repeats": 2}),
    "progressive_resize": Entry(
        {"progressive_resize": {"start_size": 16, "end_size": 32, "end_epoch": 1, "multiple": 16}}
    ),
}


def _observe_datamodule(shapes: Any, kwargs: dict[str, Any], tmp_path: Path) -> Any:
    """The batches (images and targets, after the device stage) that a model is given in one training
    epoch and one validation pass, what holds the training data and which library augments it."""
    kwargs = dict(kwargs)
    data = kwargs.pop("dataset", "shapes")
    if data == "other":
        from lightning_aug.data.datasets import SyntheticShapes

        other = SyntheticShapes(
            tmp_path / "other", num_classes=4, train_per_class=16, val_per_class=4, seed=1
        )
        other.prepare()
        dataset: Any = other
    else:
        dataset = _dict_factory(shapes) if data == "dicts" else shapes
    options = {
        "train_transforms": [v2.RandomResizedCrop(32)],
        "eval_transforms": [v2.Resize(32), v2.CenterCrop(32)],
        "loader": LoaderSettings(batch_size=8, num_workers=0),
        "seed": 0,
        **kwargs,
    }

    def run() -> Any:
        dm = AugDataModule(dataset, **options)
        model = Recorder(num_classes=4)
        tiny_trainer(max_epochs=1, num_sanity_val_steps=0).fit(model, dm)
        return (
            [_digest(*model.seen["train"]), _digest(*model.targets["train"])],
            [_digest(*model.seen["val"]), _digest(*model.targets["val"])],
            type(dm.datasets["train"]).__name__,  # what holds the data
            [type(t).__module__.split(".")[0] for t in dm.train_pipeline.transforms],  # who runs them
            dm.num_classes,
        )

    return _refused(run)


def test_every_argument_has_an_entry() -> None:
    for cls, table in [(AugDataModule, DATAMODULE), (MixupCallback, MIXUP), (ImageClassifier, MODEL)]:
        arguments = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
        assert sorted(table) == sorted(arguments), cls.__name__


def _check(argument: str, entry: Entry, default: Any, changed: Any) -> None:
    def refused(found: Any) -> bool:
        return isinstance(found, tuple) and found[:1] == ("refused",)

    assert not refused(default), f"{argument}: its context is refused: {default}"
    if entry.refused:
        assert refused(changed), f"{argument}={entry.change} was expected to be refused: {changed}"
        named = entry.names or argument
        assert named in changed[2], f"{argument}={entry.change}: refused without naming it: {changed[2]}"
        return
    assert not refused(changed), f"{argument}={entry.change}: {changed}"
    assert changed != default, f"{argument}={entry.change} changed nothing observable: {changed}"


@pytest.mark.parametrize("argument", sorted(DATAMODULE))
def test_each_datamodule_argument_changes_the_batches_or_is_refused(
    argument: str, small_shapes: object, tmp_path: Path
) -> None:
    entry = DATAMODULE[argument]
    default = _observe_datamodule(small_shapes, entry.context, tmp_path)
    changed = _observe_datamodule(small_shapes, {**entry.context, **entry.change}, tmp_path)
    _check(argument, entry, default, changed)


# ---------------------------------------------------------------- MixupCallback

MIXUP: dict[str, Entry] = {
    "mixup_alpha": Entry({"mixup_alpha": 0.2}),
    "cutmix_alpha": Entry({"cutmix_alpha": 1.0}),
    "cutmix_minmax": Entry({"cutmix_minmax": (0.2, 0.8)}, context={"mixup_alpha": 0.0, "cutmix_alpha": 1.0}),
    "prob": Entry({"prob": 0.5}, context={"mode": "elem"}),
    "switch_prob": Entry({"switch_prob": 0.9}, context={"cutmix_alpha": 1.0, "mode": "elem"}),
    "mode": Entry({"mode": "elem"}),
    "correct_lam": Entry(
        {"correct_lam": False}, context={"mixup_alpha": 0.0, "cutmix_alpha": 1.0, "mode": "elem"}
    ),
    "label_smoothing": Entry({"label_smoothing": 0.0}),
    "num_classes": Entry({"num_classes": 6}),
    "off_epoch": Entry({"off_epoch": 1}),
    "image_key": Entry({"image_key": "x"}, observe="dict", names="['x']", refused=True),
    "target_key": Entry({"target_key": "y"}, observe="dict", names="['y']", refused=True),
    "seed": Entry({"seed": 1}),
    "log_lambda": Entry({"log_lambda": True}, observe="logged"),
    "chunk_fraction": Entry({"chunk_fraction": 0.5}, context={"kernel": "chunked"}, observe="ops"),
    "kernel": Entry({"kernel": "chunked"}, observe="ops"),
    "multi_label": Entry({"multi_label": True}),
    "keep_int_targets": Entry({"keep_int_targets": True}, context={"off_epoch": 0}),
}


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(8, 3, 16, 16, generator=generator), torch.arange(8) % 4


def _count_ops(run: Callable[[], Any]) -> int:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            Count.ops += 1
            return func(*args, **(kwargs or {}))

    with Count():
        run()
    return Count.ops


def _observe_mixup(kwargs: dict[str, Any], observe: str, tmp_path: Path) -> Any:
    """The mixed batch of epoch 1 (images and targets), or what the observation names: the ops that
    run, a dict batch's keys, the metrics logged."""
    options = {"num_classes": 4, "seed": 0, **kwargs}

    def run() -> Any:
        callback = MixupCallback(**options)
        images, targets = _batch()
        if "multi_label" in kwargs:
            targets = torch.nn.functional.one_hot(targets, 4).float()
        trainer = SimpleNamespace(current_epoch=1, global_rank=0, datamodule=None)
        if observe == "ops":
            return _count_ops(lambda: callback.transform_batch(images, targets, trainer))  # type: ignore[arg-type]
        if observe == "dict":
            batch = {"image": images, "label": targets}
            callback.on_train_batch_start(trainer, None, batch, 0)  # type: ignore[arg-type]
            return _digest(batch["image"], batch["label"])
        if observe == "logged":
            model = Recorder(num_classes=4)
            loader = torch.utils.data.DataLoader(
                [[images[i], targets[i]] for i in range(8)],
                batch_size=4,
                collate_fn=lambda b: [torch.stack([x for x, _ in b]), torch.stack([y for _, y in b])],
            )
            trainer_ = tiny_trainer(max_steps=1, callbacks=[callback], logger=False)
            trainer_.fit(model, loader)
            return sorted(trainer_.callback_metrics)
        out_images, out_targets = callback.transform_batch(images, targets, trainer)  # type: ignore[arg-type]
        return _digest(out_images, out_targets)

    return _refused(run)


@pytest.mark.parametrize("argument", sorted(MIXUP))
def test_each_mixup_argument_changes_the_mixed_batch_or_is_refused(argument: str, tmp_path: Path) -> None:
    entry = MIXUP[argument]
    default = _observe_mixup(entry.context, entry.observe, tmp_path)
    changed = _observe_mixup({**entry.context, **entry.change}, entry.observe, tmp_path)
    _check(argument, entry, default, changed)


# ---------------------------------------------------------------- ImageClassifier

MODEL: dict[str, Entry] = {
    "num_classes": Entry({"num_classes": 5}),
    "arch": Entry({"arch": "resnet18"}),
    "width": Entry({"width": 4}),
    "cifar_stem": Entry({"cifar_stem": True}, context={"arch": "resnet18"}),
    "pretrained": Entry({"pretrained": True}, refused=True),  # small_cnn has no weights: refused
    "lr": Entry({"lr": 0.1}),
    "weight_decay": Entry({"weight_decay": 0.5}),
    "scheduler": Entry({"scheduler": "none"}),
    "multi_label": Entry({"multi_label": True}, refused=True),  # single-label data: refused
    "name": Entry({"name": "resnet10t"}, context={"arch": "timm", "name": "resnet18"}),
}


def _observe_model(shapes: Any, kwargs: dict[str, Any]) -> Any:
    """The weights after two training steps on the shapes (from the same initial draw) and the
    output's shape."""
    if kwargs.get("arch") == "timm":
        pytest.importorskip("timm")
    options = {"num_classes": 4, "width": 8, **kwargs}

    def run() -> Any:
        torch.manual_seed(0)
        model = ImageClassifier(**options)
        dm = AugDataModule(
            shapes,
            train_transforms=[v2.Resize(32)],
            eval_transforms=[v2.Resize(32)],
            loader=LoaderSettings(batch_size=8, num_workers=0),
            seed=0,
        )
        tiny_trainer(max_steps=2, limit_val_batches=0, num_sanity_val_steps=0).fit(model, dm)
        return _digest(*model.parameters()), tuple(model.eval()(torch.zeros(1, 3, 32, 32)).shape)

    return _refused(run)


@pytest.mark.parametrize("argument", sorted(MODEL))
def test_each_model_argument_changes_the_trained_weights_or_is_refused(
    argument: str, small_shapes: object
) -> None:
    entry = MODEL[argument]
    default = _observe_model(small_shapes, entry.context)
    changed = _observe_model(small_shapes, {**entry.context, **entry.change})
    _check(argument, entry, default, changed)


# ---------------------------------------------------------------- every key of every config

CONF = Path(__file__).resolve().parents[1] / "conf"
SPECIAL = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted path, parent node)`` of every leaf key of a composed config (``hydra`` left out)."""
    from omegaconf import DictConfig

    out: list[tuple[str, Any]] = []
    for key in node:
        if not prefix and key == "hydra":
            continue
        path = f"{prefix}{key!s}"
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_interpolation():
            out += _leaves(child, f"{path}.")  # (an empty group, callbacks=none: no key)
        else:
            out.append((path, node))
    return out


def _interpolated(node: Any) -> set[str]:
    """The config paths that interpolations anywhere in ``node`` read (``${a.b}``, ``${oc.select:a.b,x}``)."""
    import re

    from omegaconf import OmegaConf

    text = OmegaConf.to_yaml(node)
    found = set(re.findall(r"\$\{([A-Za-z_][\w.]*)\}", text))
    found |= set(re.findall(r"\$\{oc\.select:([\w.]+)", text))
    return found


def _target_owner(cfg: Any, path: str) -> tuple[str, str] | None:
    """``(target, argument)`` of the nearest ``_target_`` above the key at ``path``."""
    from omegaconf import DictConfig, OmegaConf

    parts = path.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        node = OmegaConf.select(cfg, ".".join(parts[:depth]), throw_on_resolution_failure=False)
        if isinstance(node, DictConfig) and "_target_" in node:
            return str(node._get_node("_target_")._value()), parts[depth]
    return None


def _accepts(target: str, argument: str) -> bool:
    from hydra._internal.utils import _locate

    found = _locate(target)
    signature = inspect.signature(found.__init__ if inspect.isclass(found) else found)
    kinds = {p.kind for p in signature.parameters.values()}
    return argument in signature.parameters or inspect.Parameter.VAR_KEYWORD in kinds


def _train_configs() -> list[tuple[str, list[str]]]:
    """Every option of every group, each composed into the train config (the bench experiments into
    the bench app's)."""
    groups = sorted(p for p in CONF.iterdir() if p.is_dir())
    return [("train", [])] + [
        ("bench" if option.stem.startswith("bench_") else "train", [f"{group.name}={option.stem}"])
        for group in groups
        for option in sorted(group.glob("*.yaml"))
    ]


# keys that no _target_ argument or interpolation reads: the app reads them itself (a module whose
# source reads the key, or a function of which it is an argument)
APP_READS = {
    "train": {
        "ckpt_path": "cli/train.py",
        "test": "cli/train.py",
        "seed": "cli/common.py",
        "model.compile": "cli/common.py",  # applied to the module built, not passed to it
        "model.channels_last": "cli/common.py",
    },
    "preview": {f"preview.{k}": "cli/preview.py" for k in ("rows", "cols", "scale", "file")},
    "bench": {
        f"bench.{k}": "bench/data_path.py"
        for k in (
            "images",
            "repeats",
            "workers_sweep",
            "decode_threads_sweep",
            "thread_loader_sweep",
            "device",
            "mixup_shape",
            "fit_epochs",
            "max_spread",
            "compare_augment",
        )
    },
    "prepare": {
        "prepare.verify": "cli/prepare.py",
        "prepare.verify_decode": "cli/prepare.py",
        **{
            f"prepare.{k}": "lightning_aug.data.shards.prepare.prepare_shards"
            for k in (
                "output_dir",
                "splits",
                "max_side",
                "quality",
                "num_workers",
                "chunk_bytes",
                "on_bad_image",
                "seed",
                "overwrite",
                "storage_options",
                "staging_dir",
                "timeout",
                "retries",
            )
        },
    },
    "predict": {
        **{k: "cli/predict.py" for k in ("ckpt_path", "top_k", "predict.tta", "predict.resize")},
        **{
            k: "cli/predict.py"
            for k in ("predict.trusted_targets", "loader.batch_size", "loader.num_workers")
        },
        **{
            f"data.{k}": "cli/predict.py"
            for k in ("predict_root", "decoder", "on_bad_image", "max_image_pixels")
        },
    },
}


def _unread(app: str, overrides: list[str]) -> list[str]:
    from helpers import compose_config

    cfg = compose_config(app, overrides)
    interpolated = _interpolated(cfg)
    source = Path(__file__).resolve().parents[1] / "lightning_aug"
    unread = []
    for path, _ in _leaves(cfg):
        if path.rsplit(".", 1)[-1] in SPECIAL or path.split(".")[0] == "task_name":
            continue  # Hydra's own keys; the run folder's name
        reads = {**APP_READS["train"], **APP_READS.get(app, {})}
        reader = next((reads[k] for k in reads if path == k or path.startswith(f"{k}.")), None)
        if reader is not None and reader.endswith(".py"):
            if path.rsplit(".", 1)[-1] not in (source / reader).read_text():
                unread.append(f"{path} (not in {reader})")
            continue
        if reader is not None:  # a function of which the key is an argument
            if not _accepts(reader, path.split(".")[1]):
                unread.append(f"{path} (not an argument of {reader})")
            continue
        owner = _target_owner(cfg, path)
        if owner is not None:
            if not _accepts(*owner):
                unread.append(f"{path} (not an argument of {owner[0]})")
            continue
        if not any(path == r or path.startswith(f"{r}.") for r in interpolated):
            unread.append(path)
    return unread


@pytest.mark.parametrize(("app", "overrides"), _train_configs())
def test_every_key_of_every_group_option_reaches_what_runs(app: str, overrides: list[str]) -> None:
    """A key nothing reads (a model key the module has no argument for, a leftover of a renamed option)
    would be accepted by Hydra and do nothing."""
    assert _unread(app, overrides) == []


@pytest.mark.parametrize("app", ["preview", "bench", "prepare", "predict"])
def test_every_key_of_each_app_reaches_what_runs(app: str) -> None:
    assert _unread(app, []) == []


def test_a_train_key_given_to_an_app_that_does_not_read_it_is_warned(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """preview, bench and prepare compose on train's config; a key of it they do not read (prepare
    builds no model) is said to do nothing, and what they do read is not."""
    import sys

    from lightning_aug.cli import precheck

    args = ["prepare.output_dir=/tmp/x", "model=resnet18", "trainer.max_epochs=3", "data.num_classes=3"]
    monkeypatch.setattr(sys, "argv", ["lightning-aug-prepare", *args])
    precheck("prepare", "lightning-aug-prepare")
    said = capsys.readouterr().err.splitlines()
    assert said == [
        "lightning-aug-prepare: warning: model=resnet18 does nothing here: prepare does not read model "
        "(lightning-aug-train does)",
        "lightning-aug-prepare: warning: trainer.max_epochs=3 does nothing here: prepare does not read "
        "trainer (lightning-aug-train does)",
    ]
    monkeypatch.setattr(sys, "argv", ["lightning-aug-preview", "model=resnet18", "mixup=cutmix"])
    precheck("preview", "lightning-aug-preview")
    assert capsys.readouterr().err.count("warning") == 1  # mixup is previewed; the model is not
    monkeypatch.setattr(sys, "argv", ["lightning-aug-train", "model=resnet18", "test=false"])
    precheck("train", "lightning-aug-train")
    assert capsys.readouterr().err == ""
