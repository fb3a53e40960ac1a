"""A checkpoint from elsewhere cannot run code: every name it holds is resolved and checked before
anything is built, on every loading path (Python, predict, resume, LightningCLI).

The hostile checkpoints are edited copies of a real one, as an attacker would write them: targets that
start with ``lightning_aug.`` (the old, spelling-based check let them through) but walk into numpy,
torch, pathlib, shutil and os; an ``_instantiator`` entry; a ``class_path``. Each payload is shown to
be real first: built by Hydra outside our loaders, it creates its marker file.
"""

from __future__ import annotations

import contextlib
import copy
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import one_error_line, run_app

from lightning_aug import AugDataModule, ImageClassifier
from lightning_aug.trust import Trust, Untrusted, check_hparams, resolve

HPARAMS, MODEL = "datamodule_hyper_parameters", "hyper_parameters"


class Payload:
    """An object whose unpickling creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def payloads(folder: Path) -> dict[str, tuple[dict[str, Any], Path]]:
    """Each attack as ``(spec, marker)``: a ``_target_`` with a trusted-looking prefix that resolves to
    ``numpy.load``, ``torch.load``, ``pathlib.Path.write_text``, ``shutil.copyfile``, ``os.system``."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = {name: folder / f"pwned-{name}" for name in ("numpy", "torch", "pathlib", "shutil", "os")}
    np.save(folder / "evil.npy", np.array([Payload(marker["numpy"])], dtype=object), allow_pickle=True)
    (folder / "evil.pt").write_bytes(pickle.dumps(Payload(marker["torch"])))
    (folder / "source.txt").write_text("x")
    specs = {
        "numpy": {
            "_target_": "lightning_aug.data.datasets.folder.np.load",
            "file": str(folder / "evil.npy"),
            "allow_pickle": True,
        },
        "torch": {
            "_target_": "lightning_aug.models.torch.load",
            "f": str(folder / "evil.pt"),
            "weights_only": False,
        },
        "pathlib": {
            "_target_": "lightning_aug.trust.Path.write_text",
            "_args_": [{"_target_": "lightning_aug.trust.Path", "_args_": [str(marker["pathlib"])]}, "pwned"],
        },
        "shutil": {
            "_target_": "lightning_aug.data.shards.prepare.shutil.copyfile",
            "src": str(folder / "source.txt"),
            "dst": str(marker["shutil"]),
        },
        "os": {"_target_": "lightning_aug.hparams.os.system", "_args_": [f"touch {marker['os']}"]},
    }
    return {name: (specs[name], marker[name]) for name in specs}


def test_the_payloads_are_real_and_spelt_as_trusted(tmp_path: Path) -> None:
    """The control: each payload, built by Hydra outside our loaders, does what its author wants; its
    target starts with ``lightning_aug.``, which the old check took for trusted. (Hydra's own blocklist
    stops ``os.system``, and only that.)"""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    for name, (spec, marker) in payloads(tmp_path).items():
        assert spec["_target_"].startswith("lightning_aug.")
        if name == "os":
            with pytest.raises(InstantiationException):
                instantiate(spec)
            continue
        with contextlib.suppress(Exception):  # numpy, torch: the payload runs, then its result fails
            instantiate(spec)
        assert marker.exists(), name


PLACES = ["dataset", "loader", "train_transforms", "eval_transforms", "model"]


def _hostile(checkpoint: dict[str, Any], place: str, spec: Any) -> dict[str, Any]:
    """``checkpoint`` with ``spec`` nested where ``place`` says."""
    out = copy.deepcopy(checkpoint)
    spec = copy.deepcopy(spec)
    if place == "dataset":
        out[HPARAMS]["dataset"] = spec
    elif place == "loader":
        out[HPARAMS]["loader"]["batch_size"] = spec
    elif place in ("train_transforms", "eval_transforms"):
        out[HPARAMS][place] = [{"_target_": "torchvision.transforms.v2.RandomHorizontalFlip"}, spec]
    else:
        out[MODEL]["width"] = spec
    return out


def _where(place: str) -> str:
    return {
        "dataset": r"dataset\._target_",
        "loader": r"loader\.batch_size\._target_",
        "train_transforms": r"train_transforms\[1\]\._target_",
        "eval_transforms": r"eval_transforms\[1\]\._target_",
        "model": r"width\._target_",
    }[place]


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("attack", ["numpy", "torch", "pathlib", "shutil", "os"])
def test_hostile_targets_are_refused_in_python_before_anything_runs(
    tmp_path: Path, real_checkpoint: dict[str, Any], attack: str, place: str
) -> None:
    spec, marker = payloads(tmp_path)[attack]
    path = tmp_path / "hostile.ckpt"
    torch.save(_hostile(real_checkpoint, place, spec), path)
    for cls in (AugDataModule, ImageClassifier):  # the whole checkpoint is refused, by either class
        with pytest.raises(Untrusted, match=rf"^{_where(place)}: checkpoint .*hostile\.ckpt' names "):
            cls.load_from_checkpoint(path)
    assert not marker.exists()


def test_the_refusal_says_what_the_name_resolves_to(tmp_path: Path, real_checkpoint: dict[str, Any]) -> None:
    said = {
        "numpy": "walks into module numpy",
        "torch": "walks into module torch",
        "pathlib": "is pathlib.Path.write_text (a function of module pathlib)",
        "shutil": "walks into module shutil",
        "os": "walks into module os",
    }
    for attack, (spec, _) in payloads(tmp_path).items():
        with pytest.raises(
            Untrusted, match=r"eval_transforms\[1\]._target_: .* names 'lightning_aug\."
        ) as info:
            check_hparams(
                _hostile({HPARAMS: {"eval_transforms": []}, MODEL: {}}, "eval_transforms", spec)[HPARAMS],
                "",
                "checkpoint 'x'",
                Trust(),
            )
        assert said[attack] in str(info.value), (attack, str(info.value))
        assert "Pass eval_transforms yourself (load_from_checkpoint(path, eval_transforms=...))" in str(
            info.value
        )


def test_an_argument_passed_instead_replaces_the_hostile_one(
    tmp_path: Path, real_checkpoint: dict[str, Any]
) -> None:
    spec, marker = payloads(tmp_path)["numpy"]
    path = tmp_path / "hostile.ckpt"
    torch.save(_hostile(real_checkpoint, "eval_transforms", spec), path)
    rebuilt = AugDataModule.load_from_checkpoint(path, eval_transforms=[])
    assert rebuilt.eval_pipeline.transforms == [] and not marker.exists()


@pytest.mark.parametrize(
    "entry",
    [
        {"_instantiator": "lightning_aug.hparams.os.system"},
        {"_instantiator": "builtins.exec"},
        {
            "_instantiator": "lightning.pytorch.cli.instantiate_module",
            "_class_path": "lightning_aug.trust.Path",
        },
        {"dataset": {"class_path": "lightning_aug.hparams.os.system", "init_args": {"command": "true"}}},
    ],
    ids=["instantiator-os", "instantiator-exec", "class-path-of-pathlib", "nested-class-path"],
)
def test_instantiators_and_class_paths_are_resolved_and_checked(
    tmp_path: Path, real_checkpoint: dict[str, Any], entry: dict[str, Any]
) -> None:
    for key in (HPARAMS, MODEL):
        if key == MODEL and "dataset" in entry:
            continue
        hostile = copy.deepcopy(real_checkpoint)
        hostile[key].update(entry)
        path = tmp_path / "hostile.ckpt"
        torch.save(hostile, path)
        for cls in (AugDataModule, ImageClassifier):
            with pytest.raises(Untrusted, match=r"(_instantiator|_class_path|class_path): checkpoint "):
                cls.load_from_checkpoint(path)


def test_an_interpolation_is_refused(tmp_path: Path, real_checkpoint: dict[str, Any]) -> None:
    hostile = copy.deepcopy(real_checkpoint)
    hostile[HPARAMS]["dataset"]["root"] = "${oc.env:AWS_SECRET_ACCESS_KEY}"
    torch.save(hostile, tmp_path / "hostile.ckpt")
    with pytest.raises(Untrusted, match=r"dataset\.root: .*an interpolation that would be resolved"):
        AugDataModule.load_from_checkpoint(tmp_path / "hostile.ckpt")


def test_a_pickled_checkpoint_is_refused_without_running_it(
    tmp_path: Path, real_checkpoint: dict[str, Any]
) -> None:
    marker = tmp_path / "pwned"
    hostile = copy.deepcopy(real_checkpoint)
    hostile[HPARAMS]["extra"] = Payload(marker)
    torch.save(hostile, tmp_path / "pickled.ckpt")
    for cls in (AugDataModule, ImageClassifier):
        with pytest.raises(ValueError, match="cannot be read as a checkpoint without running code"):
            cls.load_from_checkpoint(tmp_path / "pickled.ckpt")
    assert not marker.exists()


def test_trusted_targets_let_a_users_own_module_and_callable_through(
    tmp_path: Path, real_checkpoint: dict[str, Any]
) -> None:
    own = copy.deepcopy(real_checkpoint)
    own[HPARAMS]["dataset"] = {"_target_": "helpers.RepeatedImageFactory", "length": 8}
    own[HPARAMS]["eval_transforms"] = [{"_target_": "helpers.halve", "_partial_": True}]
    torch.save(own, tmp_path / "own.ckpt")
    with pytest.raises(Untrusted, match=r"dataset\._target_: .* names 'helpers.RepeatedImageFactory'"):
        AugDataModule.load_from_checkpoint(tmp_path / "own.ckpt")
    with pytest.raises(Untrusted, match=r"eval_transforms\[0\]\._target_: .*a function of module"):
        AugDataModule.load_from_checkpoint(tmp_path / "own.ckpt", trusted_targets=["helpers"])
    rebuilt = AugDataModule.load_from_checkpoint(  # a module's classes, and one function by its path
        tmp_path / "own.ckpt", trusted_targets=["helpers.", "helpers.halve"]
    )
    assert type(rebuilt.dataset).__name__ == "RepeatedImageFactory" and rebuilt.dataset.length == 8
    assert rebuilt.eval_pipeline.transforms[0].lambd.func.__name__ == "halve"  # a partial, in v2.Lambda
    model = ImageClassifier.load_from_checkpoint(  # one class and one function, each by its path
        tmp_path / "own.ckpt", trusted_targets=["helpers.RepeatedImageFactory", "helpers.halve"]
    )
    assert torch.equal(model.state_dict()["net.0.weight"], real_checkpoint["state_dict"]["net.0.weight"])


def test_trust_is_decided_on_the_resolved_object() -> None:
    trust = Trust()
    for path in (
        "lightning_aug.AugDataModule",
        "torchvision.transforms.v2.RandomCrop",
        "albumentations.HorizontalFlip",
    ):
        assert isinstance(resolve(path, trust), type)
    # the same class reached through another trusted module's attribute is still that class
    assert resolve("lightning_aug.data.transforms.v2.RandomCrop", trust).__name__ == "RandomCrop"
    for path in (
        "os.system",  # not imported at all
        "lightning_aug.data.datasets.folder.np.load",
        "torchvision.io.decode_jpeg",  # torchvision, but not its transforms
        "torchvision.transforms.v2.functional.hflip",  # a function of a trusted module
        "lightning_aug.cli.common.instantiate",  # hydra's function, imported by ours
        "lightning_aug.AugDataModule.load_from_checkpoint",  # a method of a trusted class
        "lightning_aug..x",
        "__import__",
    ):
        with pytest.raises(Untrusted):
            resolve(path, trust)


# ---------------------------------------------------------------- the apps


@pytest.fixture(scope="module")
def hostile_files(
    tmp_path_factory: pytest.TempPathFactory, real_checkpoint: dict[str, Any]
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("hostile")
    attacks = payloads(folder / "payloads")
    files: dict[str, Any] = {"markers": [marker for _, marker in attacks.values()], "folder": folder}
    cases = {
        "eval-numpy": _hostile(real_checkpoint, "eval_transforms", attacks["numpy"][0]),
        "loader-torch": _hostile(real_checkpoint, "loader", attacks["torch"][0]),
        "train-shutil": _hostile(real_checkpoint, "train_transforms", attacks["shutil"][0]),
        "model-os": _hostile(real_checkpoint, "model", attacks["os"][0]),
    }
    instantiator = copy.deepcopy(real_checkpoint)
    instantiator[MODEL]["_instantiator"] = "lightning_aug.hparams.os.system"
    cases["instantiator"] = instantiator
    for name, checkpoint in cases.items():
        torch.save(checkpoint, folder / f"{name}.ckpt")
        files[name] = folder / f"{name}.ckpt"
    return files


EXPECTED = {
    "eval-numpy": r"eval_transforms\[1\]\._target_",
    "loader-torch": r"loader\.batch_size\._target_",
    "train-shutil": r"train_transforms\[1\]\._target_",
    "model-os": r"width\._target_",
    "instantiator": r"_instantiator",
}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["eval-numpy", "instantiator"])
def test_predict_refuses_a_hostile_checkpoint_in_one_line(
    tmp_path: Path, hostile_files: dict[str, Any], small_shapes: Any, case: str
) -> None:
    result = run_app(
        "predict",
        f"ckpt_path={hostile_files[case]}",
        f"data.predict_root={small_shapes.root}",
        f"hydra.run.dir={tmp_path / 'predict'}",
        cwd=tmp_path,
    )
    line = one_error_line(result)
    assert line.startswith("lightning-aug-predict: config error: ") and f"{case}.ckpt' names" in line
    import re

    assert re.search(EXPECTED[case], line), line
    assert (
        not any(m.exists() for m in hostile_files["markers"])
        and not (tmp_path / "predict" / "predictions.csv").exists()
    )


@pytest.mark.slow
@pytest.mark.parametrize("case", ["train-shutil", "model-os"])
def test_resuming_the_train_app_refuses_a_hostile_checkpoint(
    tmp_path: Path, hostile_files: dict[str, Any], small_shapes: Any, case: str
) -> None:
    result = run_app(
        "train",
        "data=synthetic",
        f"data.root={small_shapes.root}",
        "model.width=8",
        f"ckpt_path={hostile_files[case]}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    line = one_error_line(result)
    import re

    assert line.startswith("lightning-aug-train: config error: ") and re.search(EXPECTED[case], line), line
    assert not any(m.exists() for m in hostile_files["markers"])


@pytest.mark.parametrize("subcommand", ["fit", "predict"])
def test_the_lightning_cli_refuses_a_hostile_checkpoint(
    tmp_path: Path, hostile_files: dict[str, Any], small_shapes: Any, subcommand: str
) -> None:
    pytest.importorskip("jsonargparse")
    from lightning_aug.cli.lightning import main

    args = [
        subcommand,
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--data.dataset=lightning_aug.data.datasets.SyntheticShapes",
        f"--data.dataset.root={small_shapes.root}",
        "--data.dataset.num_classes=4",
        "--data.loader.batch_size=4",
        "--data.loader.num_workers=0",
        "--model.width=8",
        f"--ckpt_path={hostile_files['loader-torch']}",
    ]
    with pytest.raises(Untrusted, match=r"loader\.batch_size\._target_: ckpt_path .*walks into module torch"):
        main(args)
    assert not any(m.exists() for m in hostile_files["markers"])


@pytest.mark.slow
def test_our_own_checkpoints_still_load_resume_and_predict(tmp_path: Path, small_shapes: Any) -> None:
    """A checkpoint written by the train app resumes (a second epoch) and predicts; one written by the
    LightningCLI (its ``_instantiator`` entry included) loads in Python."""
    run = tmp_path / "run"
    common = ["data=synthetic", f"data.root={small_shapes.root}", "model.width=8"]
    first = run_app("train", *common, "trainer.max_epochs=1", f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = run / "checkpoints" / "last.ckpt"
    resumed = run_app(
        "train",
        *common,
        "trainer.max_epochs=2",
        f"ckpt_path={checkpoint}",
        f"hydra.run.dir={tmp_path / 'run2'}",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # its class names edited as a spreadsheet attacker would: predictions.csv shows them as text
    edited = torch.load(checkpoint, weights_only=True)
    classes = edited["AugDataModule"]["classes"]
    edited["AugDataModule"]["classes"] = ["=1+1" if i == 0 else c for i, c in enumerate(classes)]
    torch.save(edited, tmp_path / "edited.ckpt")
    predicted = run_app(
        "predict",
        f"ckpt_path={tmp_path / 'edited.ckpt'}",
        f"data.predict_root={small_shapes.root}",
        f"hydra.run.dir={tmp_path / 'p'}",
        cwd=tmp_path,
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    import csv

    with (tmp_path / "p" / "predictions.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert len(rows) > 1 and all(row[-1] == "" for row in rows[1:])
    cells = {cell for row in rows[1:] for cell in row[1:-1:2]}
    assert "'=1+1" in cells and "=1+1" not in cells and set(classes[1:]) & cells


def test_a_lightning_cli_checkpoint_loads_in_python(tmp_path: Path, small_shapes: Any) -> None:
    pytest.importorskip("jsonargparse")
    from lightning_aug.cli.lightning import main

    cli = main(
        [
            "fit",
            "--trainer.accelerator=cpu",
            "--trainer.max_steps=1",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            "--data.dataset=lightning_aug.data.datasets.SyntheticShapes",
            f"--data.dataset.root={small_shapes.root}",
            "--data.dataset.num_classes=4",
            "--data.loader.batch_size=4",
            "--data.loader.num_workers=0",
            "--data.train_transforms+=torchvision.transforms.v2.RandomHorizontalFlip",
            "--model.width=8",
        ]
    )
    path = next((tmp_path / "run").rglob("*.ckpt"))
    saved = torch.load(path, weights_only=True)
    assert saved[MODEL]["_instantiator"] == "lightning.pytorch.cli.instantiate_module"
    model = ImageClassifier.load_from_checkpoint(path)
    datamodule = AugDataModule.load_from_checkpoint(path)
    assert torch.equal(model.net[0].weight, cli.model.net[0].weight)
    assert [type(t).__name__ for t in datamodule.train_pipeline.transforms] == ["RandomHorizontalFlip"]


def test_predictions_csv_escapes_cells_a_spreadsheet_would_run() -> None:
    from lightning_aug.cli.predict import _cell

    for formula in ('=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert _cell(formula) == "'" + formula
    for plain in ("cat", "0.500000", "a=b", "dir/=x.png", ""):
        assert _cell(plain) == plain


def test_a_resumed_run_trusts_the_classes_its_own_config_names(
    tmp_path: Path, real_checkpoint: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import compose_config

    from lightning_aug.cli.common import check_resume

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "user_package"))
    cfg = compose_config("train", ["model=custom", "model._target_=modules.TinyNet"])
    own = copy.deepcopy(real_checkpoint)
    own[MODEL] = {"_class_path": "modules.TinyNet", "hidden": 8}  # the user's module, as saved
    torch.save(own, tmp_path / "own.ckpt")
    check_resume(tmp_path / "own.ckpt", cfg)  # its config names modules.TinyNet: trusted
    with pytest.raises(Untrusted, match=r"_class_path: ckpt_path .* names 'modules.TinyNet'"):
        check_resume(tmp_path / "own.ckpt", compose_config("train", []))  # the default model's config
    own[MODEL]["hidden"] = {"_target_": "modules.torch.load", "f": "x"}  # the same module's imports: no
    torch.save(own, tmp_path / "own.ckpt")
    with pytest.raises(Untrusted, match=r"hidden\._target_: .*walks into module torch"):
        check_resume(tmp_path / "own.ckpt", cfg)


@pytest.mark.slow
def test_predict_builds_your_own_transform_only_when_you_trust_it(
    tmp_path: Path, real_checkpoint: dict[str, Any], small_shapes: Any
) -> None:
    import os

    own = copy.deepcopy(real_checkpoint)
    own[HPARAMS]["eval_transforms"] = [{"_target_": "helpers.halve", "_partial_": True}]
    torch.save(own, tmp_path / "own.ckpt")
    env = {"PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    common = [f"ckpt_path={tmp_path / 'own.ckpt'}", f"data.predict_root={small_shapes.root}"]
    refused = run_app("predict", *common, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path, **env)
    assert "eval_transforms[0]._target_: ckpt_path" in one_error_line(refused)
    assert "'helpers.halve', which would import module helpers" in refused.stderr
    assert "If you trust the checkpoint: predict.trusted_targets=[<module or callable>]" in refused.stderr
    trusted = run_app(
        "predict",
        *common,
        "predict.trusted_targets=[helpers.halve]",
        f"hydra.run.dir={tmp_path / 'b'}",
        cwd=tmp_path,
        **env,
    )
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    assert len((tmp_path / "b" / "predictions.csv").read_text().splitlines()) > 1
