"""The config tree and the Hydra apps: every option of every group, every experiment, the console
scripts as subprocesses (overrides, multirun, preview) and the errors of bad overrides."""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from helpers import (
    BIN,
    compose_config,
    fake_cifar,
    run_command,
    write_file_list,
    write_hf_dataset,
    write_image_folder,
    write_webdataset,
)
from hydra.utils import instantiate
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue
from PIL import Image

from lightning_aug import AugDataModule, LoaderSettings, MixupCallback
from lightning_aug.cli.common import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_model,
    check_config,
)
from lightning_aug.cli.train import train

CONF = importlib.resources.files("lightning_aug.conf")
GROUPS = {
    group.name: sorted(p.name.removesuffix(".yaml") for p in group.iterdir() if p.name.endswith(".yaml"))
    for group in CONF.iterdir()
    if group.is_dir() and not group.name.startswith("__")
}
CUDA = torch.cuda.is_available()
# small and fast: the built-in set at 10 images a class, no worker processes
SMALL = [
    "data.train_per_class=8",
    "data.val_per_class=4",
    "data.test_per_class=4",
    "loader.num_workers=0",
    "loader.persistent_workers=false",
    "loader.batch_size=16",
]


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LitData shards of a small synthetic set (data=streaming), prepared once."""
    from lightning_aug.data.datasets import SyntheticShapes
    from lightning_aug.data.datasets.streaming import prepare_shards

    root = tmp_path_factory.mktemp("shards")
    source = SyntheticShapes(
        root=root / "src", num_classes=10, image_size=32, train_per_class=4, val_per_class=2, test_per_class=2
    )
    prepare_shards(source, root / "shards", num_workers=1)
    return root / "shards"


@pytest.fixture()
def data_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shards: Path) -> dict[str, Path]:
    """Local stand-ins for everything that would be downloaded: CIFAR-10/100 files, an image folder
    and torchvision's ResNet-18 ImageNet weights (a random state dict in the hub cache)."""
    roots = {
        "cifar10": tmp_path / "cifar10",
        "cifar100": tmp_path / "cifar100",
        "imagefolder": tmp_path / "images",
        "streaming": shards,
    }
    fake_cifar(roots["cifar10"], torchvision.datasets.CIFAR10, monkeypatch, n_train=40, n_test=20)
    fake_cifar(roots["cifar100"], torchvision.datasets.CIFAR100, monkeypatch, n_train=40, n_test=20)
    for split, count in (("train", 6), ("val", 2)):
        write_image_folder(roots["imagefolder"] / split, {"cat": count, "dog": count}, size=40)
    roots["filelist"] = write_file_list(roots["imagefolder"], tmp_path / "list.csv")
    roots["huggingface"] = write_hf_dataset(roots["imagefolder"], tmp_path / "hf")
    roots["webdataset"] = write_webdataset(roots["imagefolder"], tmp_path / "tars", per_tar=5)
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    torch.save(torchvision.models.resnet18().state_dict(), hub / url.rsplit("/", 1)[1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return roots


def compose_train(overrides: list[str], tmp_path: Path, config: str = "train") -> DictConfig:
    return compose_config(config, [f"paths.output_dir={tmp_path / 'run'}", *overrides])


def data_overrides(cfg_data: str, roots: dict[str, Path]) -> list[str]:
    if cfg_data == "streaming":
        return [f"data.input_dir={roots[cfg_data]}"]
    if cfg_data == "filelist":
        return [f"data.file={roots[cfg_data]}", "data.split_column=split"]
    if cfg_data == "huggingface":
        return [f"data.path={roots[cfg_data]}"]
    return [f"data.root={roots[cfg_data]}"] if cfg_data in roots else []


def test_the_groups_of_the_issue_are_there() -> None:
    expected = {
        "data": {
            "synthetic",
            "imagefolder",
            "cifar10",
            "cifar100",
            "streaming",
            "filelist",
            "huggingface",
            "webdataset",
        },
        "augment": {
            "cifar_tv",
            "cifar_alb",
            "imagenet_tv",
            "imagenet_alb",
            "none",
            "randaugment",
            "trivialaugment",
        },
        "loader": {"default", "auto"},
        "mixup": {"none", "mixup", "cutmix", "mixup_cutmix"},
        "model": {"small_cnn", "resnet18"},
        "trainer": {"cpu", "gpu", "ddp"},
        "experiment": {"quick", "cifar10_resnet18", "imagefolder_finetune"},
        "debug": {"fdr", "overfit"},
    }
    for group, options in expected.items():
        assert options <= set(GROUPS[group]), group
    assert {"callbacks", "logger"} <= set(GROUPS)


CASES = [(g, o) for g, options in sorted(GROUPS.items()) if g not in ("experiment", "debug") for o in options]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_composes_and_instantiates(
    group: str, option: str, tmp_path: Path, data_dirs: dict[str, Path]
) -> None:
    overrides = [f"{group}={option}"]
    if group == "data":
        overrides += data_overrides(option, data_dirs)
    if group == "trainer" and option == "gpu" and not CUDA:
        overrides += [
            "trainer.accelerator=cpu",
            "trainer.precision=32-true",
        ]  # the rest of the file still counts
    cfg = compose_train(overrides, tmp_path)
    if group == "model" and option == "custom":  # your own module: its _target_ must be given
        with pytest.raises(MissingMandatoryValue, match="_target_"):
            check_config(cfg)
        cfg = compose_train(
            [*overrides, "model._target_=lightning_aug.ImageClassifier", "+model.width=8"], tmp_path
        )
        check_config(cfg)
        assert build_model(cfg, build_datamodule(cfg)).hparams.num_classes == 10  # passed as it takes it
        return
    check_config(cfg)
    if group == "data":
        factory = instantiate(cfg.data)
        factory.prepare() if hasattr(factory, "prepare") else None
        assert len(factory("train")) > 0
    elif group == "augment":  # both pipelines keep the uint8 CHW contract on a 64x64 image
        dm = build_datamodule(cfg)
        image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        for pipeline in (dm.train_pipeline, dm.eval_pipeline):
            out = pipeline(image)
            assert out.dtype == torch.uint8 and out.ndim == 3 and out.shape[0] == 3
    elif group == "loader":
        assert isinstance(instantiate(cfg.loader), LoaderSettings)
    elif group == "mixup":
        callbacks = build_callbacks(cfg)
        assert sum(isinstance(c, MixupCallback) for c in callbacks) == (option != "none")
    elif group == "model":
        model = build_model(cfg, build_datamodule(cfg))
        assert model.hparams.num_classes == 10 and model.hparams.arch == option
    elif group == "trainer":
        assert isinstance(instantiate(cfg.trainer, logger=False), Trainer)
    elif group == "sampler":  # the training order the DataModule gets
        dm = build_datamodule(cfg)
        assert (dm.sampler, dm.num_aug_repeats) == {
            "random": ("random", 1),
            "balanced": ("balanced", 1),
            "repeated": ("random", 3),
        }[option]
    elif group == "callbacks":
        built = [instantiate(v) for v in cfg.callbacks.values()]
        assert all(isinstance(c, Callback) for c in built)
        assert len(built) == {"none": 0, "default": 1, "ema": 2, "data_stall": 2}[option]
    elif group == "logger":
        built = build_loggers(cfg) or []
        assert all(isinstance(lg, Logger) for lg in built) and len(built) == (option != "none")
        for logger in built:  # each under the run folder
            assert str(tmp_path) in str(getattr(logger, "save_dir", None) or logger._tracking_uri)
    else:
        pytest.fail(f"no check for group {group}")


TOP_LEVEL = {
    "task_name",
    "seed",
    "ckpt_path",
    "test",
    "paths",
    "datamodule",
    "data",
    "augment",
    "loader",
    "model",
    "trainer",
    "callbacks",
    "logger",
}
EVERY = [(g, o) for g, options in sorted(GROUPS.items()) for o in options]


@pytest.mark.parametrize(("group", "option"), EVERY, ids=[f"{g}={o}" for g, o in EVERY])
def test_every_option_adds_no_stray_top_level_key(group: str, option: str, tmp_path: Path) -> None:
    """A file whose package header Hydra ignores (a ``# @package`` line that is not first) lands at
    the top level: every option of every group must only fill the keys of the app's config."""
    config = "bench" if option.startswith("bench_") else "train"  # the bench recipes set bench.*
    overrides = [f"{group}={option}"]
    if option in ("imagefolder", "imagefolder_finetune"):
        overrides.append(f"data.root={tmp_path}")
    cfg = compose_train(overrides, tmp_path, config=config)
    expected = TOP_LEVEL | ({"bench"} if config == "bench" else set())
    assert set(cfg) <= expected, sorted(set(cfg) - expected)
    if group == "mixup":
        mixers = [c for c in cfg.callbacks.values() if c["_target_"] == "lightning_aug.MixupCallback"]
        assert len(mixers) == (option != "none")


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_gpu_trainer_as_shipped(tmp_path: Path) -> None:
    assert isinstance(instantiate(compose_train(["trainer=gpu"], tmp_path).trainer, logger=False), Trainer)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", GROUPS["experiment"])
def test_every_experiment_runs_fast_dev_run(
    experiment: str, tmp_path: Path, data_dirs: dict[str, Path]
) -> None:
    cfg = compose_train([f"experiment={experiment}"], tmp_path)
    overrides = [
        f"experiment={experiment}",
        "++trainer.fast_dev_run=true",
        "loader.batch_size=8",
    ]
    data_name = {"CIFAR10": "cifar10", "ImageFolder": "imagefolder"}.get(cfg.data._target_.rsplit(".", 1)[1])
    if data_name:
        overrides.append(f"data.root={data_dirs[data_name]}")
    if cfg.data._target_.endswith("StreamingShards"):
        overrides.append(f"data.input_dir={data_dirs['streaming']}")
    if cfg.trainer.accelerator == "gpu" and not CUDA:
        overrides += ["trainer.accelerator=cpu", "trainer.precision=32-true"]
    if cfg.loader.num_workers == "auto":
        overrides.append("loader.num_workers=0")  # fast_dev_run: one batch; no worker start-up
        overrides.append("loader.persistent_workers=false")
        overrides.append("loader.prefetch_factor=null")
    metrics = train(compose_train(overrides, tmp_path))
    assert 0.0 <= metrics["val/acc"] <= 1.0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == pytest.approx(metrics)


def test_debug_options_compose(tmp_path: Path) -> None:
    assert compose_train(["debug=fdr"], tmp_path).trainer.fast_dev_run is True
    assert compose_train(["debug=overfit"], tmp_path).trainer.overfit_batches == 1


def test_seed_zero_reaches_every_consumer(tmp_path: Path) -> None:
    cfg = compose_train(["seed=0", "mixup=cutmix"], tmp_path)
    dm = build_datamodule(cfg)
    mixup = next(c for c in build_callbacks(cfg) if isinstance(c, MixupCallback))
    assert dm.seed == 0 and dm.run_seed == 0 and mixup.seed == 0 and cfg.data.seed == 0


def test_augment_presets_follow_the_dataset_size(tmp_path: Path, data_dirs: dict[str, Path]) -> None:
    synthetic = compose_train(["augment=cifar_alb"], tmp_path)
    cifar = compose_train(
        ["augment=cifar_alb", "data=cifar10", f"data.root={data_dirs['cifar10']}"], tmp_path
    )
    crops = [c.augment.train_transforms.crop for c in (synthetic, cifar)]
    assert [(c.height, c.width) for c in crops] == [(64, 64), (32, 32)]


def run_app(app: str, *args: str, cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return run_command([str(BIN / app), *args], cwd=cwd, timeout=600, **extra_env)


@pytest.mark.slow
def test_train_console_script_writes_metrics(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_app(
        "lightning-aug-train",
        *SMALL,
        "trainer.max_epochs=2",
        "augment=cifar_alb",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"val/acc", "val/loss", "test/acc", "train/loss", "train/loss_step"} <= set(metrics)
    assert "train/loss_epoch" not in metrics  # the same value as train/loss: one key per meaning
    assert all(isinstance(v, float) for v in metrics.values())
    assert "val/acc" in result.stdout and str(run / "metrics.json") in result.stdout
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "csv" / "metrics.csv").is_file()
    assert (run / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow
def test_multirun_two_jobs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_app(
        "lightning-aug-train",
        "-m",
        "mixup=none,cutmix",
        *SMALL,
        "debug=fdr",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        assert "val/acc" in json.loads((sweep / job / "metrics.json").read_text())
    overrides = [(sweep / job / ".hydra" / "overrides.yaml").read_text() for job in ("0", "1")]
    assert "mixup=none" in overrides[0] and "mixup=cutmix" in overrides[1]


def test_preview_writes_a_grid(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_app(
        "lightning-aug-preview",
        *SMALL,
        "mixup=mixup_cutmix",
        "preview.rows=2",
        "preview.cols=3",
        "preview.scale=1",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    path = run / "preview.png"
    assert f"preview: {path}" in result.stdout
    image = np.asarray(Image.open(path).convert("RGB"))
    # 3 columns of 64 px tiles with 4 px gaps; 2 rows of tile + two label lines
    assert image.shape == (4 + 2 * (64 + 26 + 6), 4 + 3 * (64 + 4), 3)
    tile = image[4 : 4 + 64, 4 : 4 + 64]
    assert tile.std() > 10 and len(np.unique(tile.reshape(-1, 3), axis=0)) > 50  # not blank


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("augment=nope", "Could not find 'augment/nope'"),
        ("loader.batchsize=3", "unknown key loader.batchsize: did you mean loader.batch_size?"),
        ("loader.batch_size=abc", "loader.batch_size: lightning_aug.LoaderSettings expects int, got 'abc'"),
        ("loader.batch_size=0", "batch_size must be an int >= 1, got 0"),
        ("mixup=cutmix callbacks.mixup.prob=2", "prob must be a probability in [0, 1], got 2"),
        (
            "trainer.max_epochs=abc",
            "trainer.max_epochs: lightning.pytorch.Trainer expects int or NoneType, got 'abc'",
        ),
        ("+model.widht=3", r"model: unknown argument(s) ['widht'] for lightning_aug.ImageClassifier"),
        ("data=imagefolder", "Missing mandatory value: root"),
    ],
)
def test_bad_overrides_fail_clearly(override: str, message: str, tmp_path: Path) -> None:
    result = run_app(
        "lightning-aug-train", *override.split(), f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert result.returncode == 2  # every configuration error
    assert message in result.stderr
    assert "site-packages/lightning" not in result.stderr  # no traceback from inside a library


def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    result = run_app("lightning-aug-train", "--cfg", "job", "mixup=cutmix", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "_target_: lightning_aug.MixupCallback" in result.stdout and "cutmix_alpha: 1.0" in result.stdout


def test_user_config_dir_adds_experiments(tmp_path: Path) -> None:
    (tmp_path / "my" / "experiment").mkdir(parents=True)
    (tmp_path / "my" / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /augment: cifar_alb\nloader:\n  batch_size: 7\n"
    )
    result = run_app(
        "lightning-aug-train",
        "--config-dir",
        str(tmp_path / "my"),
        "experiment=mine",
        "--cfg",
        "job",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "batch_size: 7" in result.stdout and "albumentations.Pad" in result.stdout


def test_datamodule_built_from_config_is_an_augdatamodule(tmp_path: Path) -> None:
    assert isinstance(build_datamodule(compose_train([], tmp_path)), AugDataModule)


@pytest.mark.slow
def test_ddp_two_cpu_processes_shard_data_and_draw_different_mixup(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_app(
        "lightning-aug-train",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=1",
        "mixup=mixup_cutmix",
        *SMALL,
        "+callbacks.probe._target_=ddp_probe.Probe",
        f"+callbacks.probe.output_dir={run}",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        PYTHONPATH=str(Path(__file__).parent),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((run / f"probe_rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    samples = [set(r["samples"]) for r in ranks]
    assert samples[0] and samples[1] and not samples[0] & samples[1]  # disjoint shards
    assert len(samples[0] | samples[1]) == 80  # together, the whole train split (8 x 10 classes)
    assert ranks[0]["lambdas"] and ranks[0]["lambdas"] != ranks[1]["lambdas"]  # mixup differs per rank
    assert "val/acc" in json.loads((run / "metrics.json").read_text())  # reduced metrics, written once


def test_presets_change_and_drop_named_transforms_from_the_command_line(tmp_path: Path) -> None:
    changed = build_datamodule(
        compose_train(["augment=imagenet_tv", "augment.train_transforms.crop.size=192"], tmp_path)
    )
    assert list(changed.train_pipeline.transforms[0].size) == [192, 192]
    dropped = build_datamodule(
        compose_train(["augment=randaugment", "augment.train_transforms.flip=null"], tmp_path)
    )
    assert [type(t).__name__ for t in dropped.train_pipeline.transforms] == ["RandomCrop", "RandAugment"]


def _odd_image_folder(root: Path) -> list[str]:
    """root/train/{odd,plain} and root/val/{odd,plain}: the odd-file corpus in train/odd; the names of
    its files that PIL cannot read either (what skip must report)."""
    from odd_files import write_odd_folder
    from test_decoding_contract import _reference

    paths = write_odd_folder(root / "train")
    for split, count in (("train", 6), ("val", 2)):
        write_image_folder(root / split, {"plain": count}, size=40)
    write_image_folder(root / "val", {"odd": 2}, size=40)
    return sorted(p.name for p in paths if _reference(p) is None)


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["pil", "cv2", "auto"])
def test_train_skips_exactly_the_unreadable_files_of_an_odd_folder(tmp_path: Path, decoder: str) -> None:
    """One epoch over the odd-file corpus with on_bad_image=skip: exit 0, and the warning names every
    unreadable file (PIL cannot read it either) and no other."""
    unreadable = _odd_image_folder(tmp_path / "images")
    run = tmp_path / "run"
    result = run_app(
        "lightning-aug-train",
        "data=imagefolder",
        f"data.root={tmp_path / 'images'}",
        "data.on_bad_image=skip",
        f"data.decoder={decoder}",
        "augment=imagenet_alb",
        "augment.train_transforms.crop.size=[32,32]",
        "augment.eval_transforms.resize.max_size=36",
        "augment.eval_transforms.crop.height=32",
        "augment.eval_transforms.crop.width=32",
        "loader.num_workers=0",
        "loader.persistent_workers=false",
        "loader.batch_size=16",
        "loader.drop_last=false",  # every sample read: each unreadable one is named (only those read are)
        "trainer.max_epochs=1",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        PYTHONWARNINGS="default",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = re.search(
        r"skipped (\d+) unreadable image file\(s\) in epoch 0, among (\d+) samples read .*?: (.*)",
        result.stderr,
    )
    assert found is not None, result.stderr[-3000:]
    named = sorted(Path(p).name for p in found.group(3).split(", "))
    assert named == unreadable and int(found.group(1)) == len(unreadable)
    assert {"broken_empty.jpg", "broken_bomb.png", "broken_truncated.jpg"} <= set(named)
    assert json.loads((run / "metrics.json").read_text())["val/acc"] >= 0.0


def _readme_block(name: str) -> str:
    """The code block of the README or a docs page that follows ``<!-- readme-test: name -->``."""
    root = Path(__file__).parents[1]
    text = "".join(page.read_text() for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))])
    after = text.split(f"<!-- readme-test: {name} -->", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_the_readme_compose_example_trains(tmp_path: Path) -> None:
    script = tmp_path / "compose.py"
    script.write_text(_readme_block("compose"))
    result = run_command(
        [sys.executable, str(script)], cwd=tmp_path, LIGHTNING_AUG_CACHE=str(tmp_path / "cache")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / "checkpoints").glob("*.ckpt"))  # paths.output_dir: the working directory


@pytest.mark.parametrize("option", ["imagefolder", "cifar10", "cifar100", "synthetic", "photos"])
def test_a_data_group_composes_on_its_own(option: str, tmp_path: Path) -> None:
    """compose("data/<option>") without train.yaml: no interpolation into keys it lacks."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
        cfg = compose(f"data/{option}", overrides=[f"data.root={tmp_path}"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    assert data["seed"] == 0 and data["root"] == str(tmp_path)


def test_callbacks_instantiate_outside_the_apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = compose_config("train", ["mixup=mixup"])
    checkpoint, mixup = (instantiate(cfg.callbacks[name]) for name in ("model_checkpoint", "mixup"))
    assert checkpoint.dirpath == str(tmp_path / "checkpoints") and mixup.seed == 0
