"""Untrusted shards cannot run code; credentials never reach a file we write or a line we print."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import LoopbackS3, one_error_line, run_app, write_image_folder
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

pytest.importorskip("litdata")

from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings
from lightning_aug.data.datasets import ImageFolder
from lightning_aug.data.datasets.streaming import StreamingShards
from lightning_aug.data.shards.prepare import prepare_shards
from lightning_aug.errors import DataError
from lightning_aug.secrets import REDACTED, redact, secret_values, secrets_in_overrides

SECRET = "s3cr3t-Ab12Cd34-do-not-write"


class Payload:
    """An object whose unpickling creates ``marker``: what a hostile shard's author would store."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.marker),))


class _HostileSample:
    def __init__(self, data: np.ndarray, marker: str) -> None:
        self.data, self.marker = data, marker

    def __call__(self, index: int) -> dict[str, Any]:
        return {"image": self.data, "label": Payload(self.marker), "name": b"x.png"}


def _write_hostile(folder: Path, marker: Path, consistent: bool) -> None:
    """LitData chunks whose label field is pickled (index: ["no_header_numpy:4", "pickle", "bytes"]),
    beside a ``lightning_aug.json``: copied from real shards, or (``consistent``) made to list the
    hostile chunks with their true checksums."""
    import hashlib
    import zlib

    import litdata

    shutil.rmtree(folder, ignore_errors=True)
    (folder / "real").mkdir(parents=True)
    images = folder / "images"
    for split in ("train", "val"):
        write_image_folder(images / split, {"a": 4, "b": 4}, size=16)
    prepare_shards(ImageFolder(images), folder / "real", num_workers=1)
    data = np.frombuffer((images / "train" / "a" / "0.png").read_bytes(), dtype=np.uint8)

    for split in ("train", "val"):
        litdata.optimize(
            fn=_HostileSample(data, str(marker)),
            inputs=list(range(8)),
            output_dir=str(folder / "hostile" / split),
            chunk_bytes="64KB",
            num_workers=1,
            start_method="fork",
        )
    index = json.loads((folder / "hostile" / "train" / "index.json").read_text())
    assert "pickle" in index["config"]["data_format"]
    metadata = json.loads((folder / "real" / "lightning_aug.json").read_text())
    if consistent:
        for split in ("train", "val"):
            chunks = []
            for entry in json.loads((folder / "hostile" / split / "index.json").read_text())["chunks"]:
                raw = (folder / "hostile" / split / entry["filename"]).read_bytes()
                chunks.append(
                    {
                        "name": entry["filename"],
                        "samples": entry["chunk_size"],
                        "bytes": len(raw),
                        "crc32": zlib.crc32(raw),
                        "sha256": hashlib.sha256(raw).hexdigest(),
                    }
                )
            metadata["splits"][split] = {"samples": 8, "chunks": chunks, "source": {}}
    (folder / "hostile" / "lightning_aug.json").write_text(json.dumps(metadata))
    assert not marker.exists()


@pytest.mark.parametrize("consistent", [False, True])
def test_shards_with_a_pickled_field_are_refused_and_nothing_runs(tmp_path: Path, consistent: bool) -> None:
    marker = tmp_path / "pwned"
    _write_hostile(tmp_path / "work", marker, consistent)
    hostile = tmp_path / "work" / "hostile"
    line = one_error_line(_train(hostile, tmp_path))
    assert f"{hostile / 'train' / 'index.json'}: data format" in line and "'pickle'" in line
    assert "refusing to read these shards" in line
    assert not marker.exists()
    with pytest.raises(DataError, match="'pickle'"):  # the same from Python, and from verify
        StreamingShards(str(hostile))("train")
    from lightning_aug.data.shards.verify import verify_shards

    report = verify_shards(str(hostile))
    assert not report["ok"] and any("'pickle'" in line for line in report["lines"])
    assert not marker.exists()


@pytest.mark.slow
def test_shards_with_a_pickled_field_on_s3_are_refused_and_nothing_runs(tmp_path: Path) -> None:
    pytest.importorskip("moto")
    marker = tmp_path / "pwned"
    _write_hostile(tmp_path / "work", marker, consistent=True)
    with LoopbackS3() as s3:
        s3.upload_folder(tmp_path / "work" / "hostile", "hostile")
        line = one_error_line(_train("s3://data/hostile", tmp_path, "loader.num_workers=2", **s3.env))
    assert "s3://data/hostile/train/index.json: data format" in line and "'pickle'" in line
    assert not marker.exists()


def test_prepared_shards_still_train(tmp_path: Path) -> None:
    images = tmp_path / "images"
    for split in ("train", "val"):
        write_image_folder(images / split, {"a": 8, "b": 8}, size=16)
    prepare_shards(ImageFolder(images), tmp_path / "shards", num_workers=1)
    datamodule = AugDataModule(
        StreamingShards(str(tmp_path / "shards")), loader=LoaderSettings(batch_size=4, num_workers=0)
    )
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(ImageClassifier(num_classes=2, width=8), datamodule)
    assert trainer.global_step == 4


def _train(input_dir: Path | str, tmp_path: Path, *extra: str, **env: str) -> Any:
    return run_app(
        "train",
        "data=streaming",
        f"data.input_dir={input_dir}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "augment=none",
        "trainer.max_epochs=1",
        "loader.batch_size=4",
        f"hydra.run.dir={tmp_path / 'run'}",
        *extra,
        cwd=tmp_path,
        **env,
    )


# ---------------------------------------------------------------- credentials


def test_redaction_covers_secret_keys_and_url_userinfo() -> None:
    spec = {
        "storage_options": {
            "aws_access_key_id": "AKIAEXAMPLE",
            "aws_secret_access_key": SECRET,
            "region_name": "eu",
        },
        "urls": ["https://alice:pa55word@host/data", "s3://bucket/plain"],
        "token": None,
        "max_cache_size": "100GB",
    }
    clean = redact(spec)
    assert clean["storage_options"] == {
        "aws_access_key_id": REDACTED,
        "aws_secret_access_key": REDACTED,
        "region_name": "eu",
    }
    assert clean["urls"] == ["https://host/data", "s3://bucket/plain"] and clean["max_cache_size"] == "100GB"
    assert secret_values(spec) == {"AKIAEXAMPLE", SECRET, "alice", "pa55word", "alice:pa55word"}
    overrides = [
        f"+data.storage_options.aws_secret_access_key={SECRET}",
        "data.input_dir=https://bob:hunter22@h/x",
        "seed=1",
    ]
    assert secrets_in_overrides(overrides) == {SECRET, "hunter22", "bob:hunter22"}  # "bob": too short alone


def _files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.fixture()
def s3_shards(tmp_path: Path) -> Any:
    pytest.importorskip("moto")
    images = tmp_path / "images"
    for split in ("train", "val"):
        write_image_folder(images / split, {"a": 8, "b": 8}, size=16)
    prepare_shards(ImageFolder(images), tmp_path / "shards", num_workers=1)
    with LoopbackS3() as s3:
        s3.upload_folder(tmp_path / "shards", "shards")
        yield s3


@pytest.mark.slow
def test_a_secret_given_in_python_is_in_no_file_and_a_rebuild_reads_the_environment(
    tmp_path: Path, s3_shards: LoopbackS3, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    options = {
        "endpoint_url": s3_shards.endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": SECRET,
        "region_name": "us-east-1",
    }
    run = tmp_path / "run"
    factory = StreamingShards("s3://data/shards", cache_dir=str(tmp_path / "cache"), storage_options=options)
    datamodule = AugDataModule(factory, loader=LoaderSettings(batch_size=4, num_workers=2), seed=0)
    checkpoint = ModelCheckpoint(dirpath=run / "checkpoints", save_last=True)
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=1,
        default_root_dir=run,
        logger=CSVLogger(run),
        callbacks=[checkpoint],
        enable_progress_bar=True,
    )
    trainer.fit(ImageClassifier(num_classes=2, width=8), datamodule)
    written = [p for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "hparams.yaml" for p in written) and any(p.suffix == ".ckpt" for p in written)
    assert _files_holding(run, SECRET) == [] and _files_holding(tmp_path / "cache", SECRET) == []
    out, err = capfd.readouterr()
    assert SECRET not in out + err
    assert REDACTED in (next(run.rglob("hparams.yaml"))).read_text()
    # rebuilt from the checkpoint: the redacted key is not used; the environment's are
    with pytest.raises(
        DataError, match=r"no S3 credentials .*\['aws_access_key_id', 'aws_secret_access_key'\] redacted"
    ):
        rebuilt = AugDataModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", weights_only=True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
    rebuilt = AugDataModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert rebuilt.dataset.storage_options == {"endpoint_url": s3_shards.endpoint, "region_name": "us-east-1"}
    rebuilt.setup("fit")
    images, labels = next(iter(rebuilt.train_dataloader()))
    assert images.shape[0] == 4 and set(labels.tolist()) <= {0, 1}


@pytest.mark.slow
def test_a_secret_given_on_the_command_line_is_in_no_file_and_no_output(
    tmp_path: Path, s3_shards: LoopbackS3
) -> None:
    run = tmp_path / "run"
    env = {k: v for k, v in s3_shards.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = _train(
        "s3://data/shards",
        tmp_path,
        f"data.storage_options.endpoint_url={s3_shards.endpoint}",
        "+data.storage_options.aws_access_key_id=testing",
        f"+data.storage_options.aws_secret_access_key={SECRET}",
        "loader.num_workers=2",
        "logger=[csv,tensorboard,mlflow,wandb]",  # W&B records the command line in its run file
        **env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = {p.name for p in (run / ".hydra").iterdir()}
    assert {"config.yaml", "hydra.yaml", "overrides.yaml"} <= saved and list(run.rglob("*.ckpt"))
    written = {p.name for p in run.rglob("*") if p.is_file()}
    assert "mlflow.db" in written and "metrics.csv" in written and any(".tfevents." in n for n in written)
    assert _files_holding(run, SECRET) == [], "the secret was written down"
    wandb_runs = list(run.rglob("*.wandb"))  # the command line W&B keeps, redacted
    assert wandb_runs and b"aws_secret_access_key=" + REDACTED.encode() in wandb_runs[0].read_bytes()
    assert SECRET not in result.stdout + result.stderr
    assert f"aws_secret_access_key={REDACTED}" in (run / ".hydra" / "overrides.yaml").read_text()
    # a bad override beside it: the one-line error does not repeat the secret either
    result = run_app(
        "train",
        "data=streaming",
        f"data.input_dir=s3://nope-{SECRET}",
        f"+data.storage_options.aws_secret_access_key={SECRET}",
        "trainer.max_epochs=abc",
        f"hydra.run.dir={tmp_path / 'run2'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2 and SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("logger", ["csv", "wandb"])
def test_the_lightning_cli_saves_its_config_without_the_secret(
    tmp_path: Path, logger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("jsonargparse")
    from lightning_aug.cli.lightning import main

    images = tmp_path / "images"
    for split in ("train", "val"):
        write_image_folder(images / split, {"a": 4, "b": 4}, size=16)
    prepare_shards(ImageFolder(images), tmp_path / "shards", num_workers=1)
    run = tmp_path / "run"
    loggers = {
        "csv": [],  # Lightning's default logger (hparams.yaml)
        "wandb": [  # W&B records the command line, where the secret is
            "--trainer.logger=lightning.pytorch.loggers.WandbLogger",
            "--trainer.logger.offline=true",
            f"--trainer.logger.save_dir={run}",
        ],
    }[logger]
    args = [
        "fit",
        "--trainer.max_epochs=1",
        "--trainer.accelerator=cpu",
        f"--trainer.default_root_dir={run}",
        *loggers,
        "--data.dataset=lightning_aug.data.datasets.streaming.StreamingShards",
        f"--data.dataset.input_dir={tmp_path / 'shards'}",
        f"--data.dataset.cache_dir={tmp_path / 'cache'}",
        "--data.dataset.storage_options="
        + json.dumps({"aws_secret_access_key": SECRET, "region_name": "eu-west-1"}),
        "--data.loader.batch_size=4",
        "--data.loader.num_workers=0",
        "--model.width=8",
    ]
    monkeypatch.setattr("sys.argv", ["lightning_aug.cli.lightning", *args])  # as typed: W&B reads it
    cli = main()
    assert cli.trainer.state.finished
    if logger == "wandb":  # its run file is complete once the run is finished
        import wandb

        wandb.finish()
    saved = list(run.rglob("config.yaml"))
    assert saved and "eu-west-1" in saved[0].read_text() and REDACTED in saved[0].read_text()
    assert list(run.rglob("*.ckpt"))
    assert list(run.rglob("hparams.yaml" if logger == "csv" else "*.wandb"))
    assert _files_holding(run, SECRET) == []
