"""LitData shards: prepare, train, resume mid-epoch, DDP coverage, a loopback S3 server, bad files."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import BIN, Recorder, run_command, write_image_folder
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

pytest.importorskip("litdata")

from lightning_aug import AugDataModule, LoaderSettings
from lightning_aug.data.datasets import ImageFolder, SyntheticShapes
from lightning_aug.data.datasets.streaming import StreamingShards, prepare_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 train, 8 val, 8 test samples of 4 classes in shards of a few KB (several shards a split)."""
    root = tmp_path_factory.mktemp("streaming")
    factory = SyntheticShapes(
        root=root / "src", num_classes=4, image_size=16, train_per_class=12, val_per_class=2, test_per_class=2
    )
    prepare_shards(factory, root / "shards", num_workers=2, chunk_bytes="4KB")
    return root / "shards"


def _digests(batches: list[torch.Tensor]) -> list[str]:
    return [hashlib.sha1(image.numpy().tobytes()).hexdigest() for batch in batches for image in batch]


class _Scheduled(Recorder):
    """A recorder whose schedule reads ``estimated_stepping_batches`` (as OneCycleLR recipes do)."""

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.01)
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - min(step / total, 1.0))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _datamodule(shards: Path, workers: int) -> AugDataModule:
    loader = LoaderSettings(batch_size=4, num_workers=workers, persistent_workers=False)
    return AugDataModule(StreamingShards(str(shards)), loader=loader, seed=0)


def _trainer(tmp_path: Path, **kwargs: Any) -> Trainer:
    return Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        **kwargs,
    )


def test_prepare_writes_shards_and_metadata(shards: Path) -> None:
    metadata = json.loads((shards / "lightning_aug.json").read_text())
    assert metadata["splits"] == {"train": 48, "val": 8, "test": 8} and metadata["num_classes"] == 4
    assert len(list((shards / "train").glob("chunk-*.bin"))) > 2
    factory = StreamingShards(str(shards))
    assert factory.num_classes == 4 and len(factory("train")) == 48 and factory("predict") is not None


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_repeats_and_loses_no_sample(shards: Path, tmp_path: Path, workers: int) -> None:
    full = _Scheduled(num_classes=4)
    checkpoints = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=5, save_top_k=-1, filename="{step}"
    )
    _trainer(tmp_path, max_epochs=1, callbacks=[checkpoints]).fit(full, _datamodule(shards, workers))
    epoch = _digests(full.seen["train"])
    assert len(epoch) == 48 and len(set(epoch)) == 48  # every sample once
    resumed = _Scheduled(num_classes=4)
    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(resumed, _datamodule(shards, workers), ckpt_path=tmp_path / "ckpt" / "step=5.ckpt")
    rest = _digests(resumed.seen["train"])
    assert len(rest) == 48 - 5 * 4, "resumed at the start of the epoch, not at the next unseen sample"
    assert sorted(epoch[:20] + rest) == sorted(epoch)  # none repeated, none lost
    # (LitData reshuffles the rest of the epoch's order within the loaded shards on resume)


def test_bad_files_at_preparation_are_listed_and_left_out(tmp_path: Path) -> None:
    for split in ("train", "val"):
        write_image_folder(tmp_path / "images" / split, {"a": 3, "b": 3})
    (tmp_path / "images" / "train" / "a" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "images" / "train" / "b" / "empty.jpg").write_bytes(b"")
    factory = ImageFolder(tmp_path / "images")
    with pytest.warns(
        UserWarning, match=r"(?s)left out 2 unreadable image file\(s\).*broken.png.*\n.*empty.jpg"
    ):
        metadata = prepare_shards(factory, tmp_path / "shards", num_workers=1)
    assert metadata["splits"]["train"] == 6 and len(metadata["unreadable"]["train"]) == 2
    assert len(StreamingShards(str(tmp_path / "shards"))("train")) == 6
    with pytest.raises(
        ValueError, match=r"(?s)2 unreadable image file\(s\), no metadata written.*broken.png"
    ):
        prepare_shards(factory, tmp_path / "strict", num_workers=1, on_bad_image="raise")
    assert not (tmp_path / "strict" / "lightning_aug.json").exists()


def test_reencoding_shrinks_to_max_side(tmp_path: Path) -> None:
    factory = SyntheticShapes(
        root=tmp_path / "src",
        num_classes=2,
        image_size=64,
        train_per_class=2,
        val_per_class=1,
        test_per_class=0,
    )
    prepare_shards(factory, tmp_path / "shards", num_workers=1, max_side=24, quality=80)
    image, _ = StreamingShards(str(tmp_path / "shards"), decoder="cv2")("train")[0]
    assert image.shape == (24, 24, 3)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("''", "data.input_dir must name the folder or URL of prepared shards, got ''"),
        ("{missing}", "data.input_dir '{missing}' does not exist or is not a directory"),
        ("{empty}", "data.input_dir '{empty}' holds no prepared shards"),
    ],
)
def test_a_missing_or_empty_input_dir_is_one_clear_line(tmp_path: Path, value: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    paths = {"missing": str(tmp_path / "nope"), "empty": str(tmp_path / "empty")}
    result = run_command(
        [
            str(BIN / "lightning-aug-train"),
            "data=streaming",
            f"data.input_dir={value.format(**paths)}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message.format(**paths) in lines[0], result.stderr


def test_input_dir_is_mandatory(tmp_path: Path) -> None:
    result = run_command([str(BIN / "lightning-aug-train"), "data=streaming"], cwd=tmp_path)
    assert result.returncode != 0 and "input_dir" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_two_ddp_processes_read_disjoint_samples_covering_the_epoch(shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_command(
        [
            str(BIN / "lightning-aug-train"),
            "data=streaming",
            f"data.input_dir={shards}",
            "trainer=ddp",
            "trainer.devices=2",
            "trainer.max_epochs=1",
            "trainer.accelerator=cpu",
            "+trainer.limit_val_batches=0",
            "test=false",
            "loader.batch_size=4",
            "loader.num_workers=0",
            "loader.persistent_workers=false",
            "augment=none",
            "+callbacks.probe._target_=streaming_probe.Probe",
            f"+callbacks.probe.output_dir={run}",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        timeout=600,
        PYTHONPATH=str(Path(__file__).parent),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((run / f"probe_rank{r}.json").read_text()) for r in (0, 1)]
    assert all(p["world"] == 2 for p in ranks)
    a, b = (set(p["samples"]) for p in ranks)
    assert not a & b and len(a) == len(b) == 24 and len(a | b) == 48  # disjoint, the whole epoch


@pytest.mark.slow
def test_train_from_a_loopback_s3_server(shards: Path, tmp_path: Path) -> None:
    """Shards on an S3-compatible server (moto) on 127.0.0.1, trained from s3:// through the CLI with
    the credentials and endpoint in the environment, as users set them."""
    pytest.importorskip("moto")
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="data")
        for path in shards.rglob("*"):
            if path.is_file():
                s3.upload_file(str(path), "data", f"shapes/{path.relative_to(shards)}")
        run = tmp_path / "run"
        result = run_command(
            [
                str(BIN / "lightning-aug-train"),
                "data=streaming",
                "data.input_dir=s3://data/shapes",
                "augment=none",
                f"data.cache_dir={tmp_path / 'cache'}",
                "trainer.max_epochs=1",
                "loader.batch_size=8",
                "loader.num_workers=2",
                f"hydra.run.dir={run}",
            ],
            cwd=tmp_path,
            timeout=600,
            **env,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = json.loads((run / "metrics.json").read_text())
        assert "val/acc" in metrics and "test/acc" in metrics
        assert list((tmp_path / "cache").rglob("chunk-*.bin"))  # the shards came over S3
    finally:
        server.stop()
        for key in ("AWS_ENDPOINT_URL",):
            os.environ.pop(key, None)


def test_preparing_again_keeps_the_splits_already_written(shards: Path, tmp_path: Path) -> None:
    """An interrupted preparation is run again: a split already written is kept, not redone."""
    import shutil

    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    shutil.rmtree(copy / "val")  # as if interrupted before val
    before = {p: p.stat().st_mtime_ns for p in (copy / "train").iterdir()}
    factory = SyntheticShapes(
        root=shards.parent / "src",
        num_classes=4,
        image_size=16,
        train_per_class=12,
        val_per_class=2,
        test_per_class=2,
    )
    metadata = prepare_shards(factory, copy, num_workers=1, chunk_bytes="4KB")
    assert {p: p.stat().st_mtime_ns for p in (copy / "train").iterdir()} == before  # untouched
    assert (
        metadata["splits"] == {"train": 48, "val": 8, "test": 8} and (copy / "val" / "index.json").is_file()
    )
