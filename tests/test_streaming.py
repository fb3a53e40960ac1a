"""Shards: prepared from a class-sorted folder of real digits they train as the folder does; never stale;
checked (chunks, labels, layout); remote faults named; resume, DDP, a loopback S3 server."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import (
    BIN,
    LoopbackS3,
    Recorder,
    ScheduledRecorder,
    flip_bytes,
    one_error_line,
    run_app,
    run_command,
    samples_per_rank,
    write_image_folder,
)
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

pytest.importorskip("litdata")

from lightning_aug import AugDataModule, LoaderSettings
from lightning_aug.data.datasets import ImageFolder, SyntheticShapes
from lightning_aug.data.datasets.streaming import StreamingShards
from lightning_aug.data.shards.layout import ChunkFile, ChunkInfo
from lightning_aug.data.shards.prepare import prepare_shards
from lightning_aug.errors import DataError

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 train, 8 val, 8 test samples of 4 classes in chunks of a few KB (several chunks a split)."""
    root = tmp_path_factory.mktemp("streaming")
    factory = SyntheticShapes(
        root=root / "src", num_classes=4, image_size=16, train_per_class=12, val_per_class=2, test_per_class=2
    )
    prepare_shards(factory, root / "shards", num_workers=2, chunk_bytes="4KB")
    return root / "shards"


def _metadata(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "lightning_aug.json").read_text())


def _digests(batches: list[torch.Tensor]) -> list[str]:
    return [hashlib.sha1(image.numpy().tobytes()).hexdigest() for batch in batches for image in batch]


def _all_samples(shards: Path, split: str = "train") -> list[tuple[str, int]]:
    """Every ``(name, label)`` of a split, read chunk by chunk."""
    metadata = _metadata(shards)
    found = []
    for entry in metadata["splits"][split]["chunks"]:
        info = ChunkInfo(**entry)
        file = ChunkFile(str(shards / split / info.name), info, info.name)
        for position in range(info.samples):
            _, label, name = file.read(position)
            found.append((name.decode(), label))
        file.close()
    return found


# ---------------------------------------------------------------- mixing and outcome


def _class_mix(factory: Any, workers: int, batches: int = 10) -> tuple[float, float]:
    """Mean distinct classes per training batch of 64, and the largest share one class takes of a
    batch, over the first ``batches`` batches."""
    loader = LoaderSettings(batch_size=64, num_workers=workers, persistent_workers=False)
    datamodule = AugDataModule(factory, loader=loader, seed=0)
    datamodule.setup("fit")
    distinct, share = [], []
    for i, (_, labels) in enumerate(datamodule.train_dataloader()):
        if i == batches:
            break
        counts = np.bincount(labels.numpy(), minlength=10)
        distinct.append(int((counts > 0).sum()))
        share.append(counts.max() / len(labels))
    return float(np.mean(distinct)), float(np.max(share))


@pytest.mark.parametrize("workers", [0, 2])
def test_shards_of_a_class_sorted_folder_mix_classes_as_the_folder_does(
    digits: Path, digit_shards: Path, workers: int
) -> None:
    folder = _class_mix(ImageFolder(digits), workers)
    shards = _class_mix(StreamingShards(str(digit_shards)), workers)
    assert folder[0] >= 9.5, folder
    assert abs(shards[0] - folder[0]) <= 0.1 * folder[0], (folder, shards)  # within 10%
    assert shards[1] <= folder[1] + 0.1, (folder, shards)  # no class takes over a batch


def test_every_chunk_holds_every_class(digits: Path, tmp_path: Path) -> None:
    """Written in a seeded random order: small chunks of a class-sorted folder hold all ten digits
    (written in the folder's order, a chunk would hold one or two), and the order is the same for the
    same seed."""
    prepare_shards(ImageFolder(digits), tmp_path / "a", num_workers=2, chunk_bytes="64KB", splits=["train"])
    metadata = _metadata(tmp_path / "a")
    assert len(metadata["splits"]["train"]["chunks"]) >= 10 and metadata["options"]["order_seed"] == 0
    samples = _all_samples(tmp_path / "a")
    start = 0
    for entry in metadata["splits"]["train"]["chunks"]:
        labels = [label for _, label in samples[start : start + entry["samples"]]]
        start += entry["samples"]
        if len(labels) >= 60:
            share = np.bincount(labels, minlength=10) / len(labels)
            assert (share > 0).all() and share.max() < 0.3, share
    prepare_shards(ImageFolder(digits), tmp_path / "b", num_workers=2, chunk_bytes="64KB", splits=["train"])
    assert sorted(samples) == sorted(_all_samples(tmp_path / "b"))  # every image once
    assert [name for name, _ in samples] == [name for name, _ in _all_samples(tmp_path / "b")]


# ---------------------------------------------------------------- never stale


def test_prepare_writes_chunks_with_checksums_and_a_record_of_the_source(shards: Path) -> None:
    metadata = _metadata(shards)
    assert {s: e["samples"] for s, e in metadata["splits"].items()} == {"train": 48, "val": 8, "test": 8}
    assert metadata["num_classes"] == 4 and metadata["format"] == 2
    chunks = metadata["splits"]["train"]["chunks"]
    assert len(chunks) > 2 and sum(c["samples"] for c in chunks) == 48
    for chunk in chunks:
        data = (shards / "train" / chunk["name"]).read_bytes()
        assert len(data) == chunk["bytes"] and zlib.crc32(data) == chunk["crc32"]
        assert hashlib.sha256(data).hexdigest() == chunk["sha256"]
    manifest = json.loads((shards / "train" / "lightning_aug_split.json").read_text())
    assert manifest["source"]["kind"] == "files" and manifest["source"]["samples"] == 48
    assert manifest["options"] == metadata["options"] and "key" in manifest
    assert not list(shards.rglob("lightning_aug_pending.json"))
    factory = StreamingShards(str(shards))
    assert factory.num_classes == 4 and len(factory("train")) == 48 and factory("predict") is not None


def test_an_unchanged_rerun_keeps_every_split(shards: Path, tmp_path: Path) -> None:
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("chunk-*.bin")}
    factory = SyntheticShapes(
        root=shards.parent / "src",
        num_classes=4,
        image_size=16,
        train_per_class=12,
        val_per_class=2,
        test_per_class=2,
    )
    metadata = prepare_shards(factory, copy, num_workers=1, chunk_bytes="4KB")
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("chunk-*.bin")} == before
    assert metadata["splits"] == _metadata(shards)["splits"]


def _small_folder(root: Path, per_class: int = 6) -> Path:
    for split in ("train", "val"):
        write_image_folder(root / split, {"a": per_class, "b": per_class}, size=24)
    return root


def _read_counts(out: Path) -> dict[str, int]:
    factory = StreamingShards(str(out))
    return {split: len(factory(split)) for split in factory.metadata.splits}  # type: ignore[arg-type]


def test_preparing_again_after_adding_files_is_refused_then_rewritten(tmp_path: Path) -> None:
    images = _small_folder(tmp_path / "images")
    prepare_shards(ImageFolder(images), tmp_path / "shards", num_workers=1)
    write_image_folder(images / "train", {"a": 9, "b": 9}, size=24)  # 3 more files per class
    with pytest.raises(DataError, match=r"train: source samples 12 -> 18.*prepare\.overwrite=true"):
        prepare_shards(ImageFolder(images), tmp_path / "shards", num_workers=1)
    metadata = _metadata(tmp_path / "shards")  # untouched: what training reads is what it says
    assert metadata["splits"]["train"]["samples"] == 12 == _read_counts(tmp_path / "shards")["train"]
    metadata = prepare_shards(ImageFolder(images), tmp_path / "shards", num_workers=1, overwrite=True)
    counts = _read_counts(tmp_path / "shards")
    assert counts == {"train": 18, "val": 12} == {s: e["samples"] for s, e in metadata["splits"].items()}


def test_changing_max_side_is_refused_then_rewritten(tmp_path: Path) -> None:
    images = _small_folder(tmp_path / "images")
    prepare_shards(ImageFolder(images), tmp_path / "shards", num_workers=1)
    with pytest.raises(DataError, match=r"\(train: max_side None -> 16 \| val: max_side None -> 16\)"):
        prepare_shards(ImageFolder(images), tmp_path / "shards", num_workers=1, max_side=16)
    image, _ = StreamingShards(str(tmp_path / "shards"), decoder="cv2")("train")[0]
    assert image.shape == (24, 24, 3)
    prepare_shards(ImageFolder(images), tmp_path / "shards", num_workers=1, max_side=16, overwrite=True)
    assert _metadata(tmp_path / "shards")["options"]["max_side"] == 16
    image, _ = StreamingShards(str(tmp_path / "shards"), decoder="cv2")("train")[0]
    assert image.shape == (16, 16, 3)


def test_preparing_another_dataset_over_shards_is_refused_then_rewritten(
    digit_shards: Path, tmp_path: Path
) -> None:
    out = tmp_path / "shards"
    shutil.copytree(digit_shards, out)
    other = SyntheticShapes(
        root=tmp_path / "src",
        num_classes=4,
        image_size=16,
        train_per_class=5,
        val_per_class=2,
        test_per_class=0,
    )
    with pytest.raises(DataError, match=r"train: source samples \d+ -> 20; classes \(10 -> 4"):
        prepare_shards(other, out, num_workers=1)
    assert _metadata(out)["num_classes"] == 10
    prepare_shards(other, out, num_workers=1, overwrite=True)
    assert _metadata(out)["num_classes"] == 4 and _read_counts(out) == {"train": 20, "val": 8}
    labels = [label for _, label in _all_samples(out)]
    assert sorted(set(labels)) == [0, 1, 2, 3]
    datamodule = AugDataModule(StreamingShards(str(out)), loader=LoaderSettings(batch_size=4, num_workers=0))
    Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    ).fit(Recorder(num_classes=4), datamodule)


def test_a_folder_not_written_by_prepare_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    images = _small_folder(tmp_path / "images")
    (tmp_path / "out" / "train").mkdir(parents=True)
    (tmp_path / "out" / "train" / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(DataError, match=r"train/ holds files not written by lightning-aug-prepare"):
            prepare_shards(ImageFolder(images), tmp_path / "out", num_workers=1, overwrite=overwrite)
    assert (tmp_path / "out" / "train" / "notes.txt").read_text() == "mine"


def test_an_interrupted_split_continues_only_from_the_same_data(tmp_path: Path) -> None:
    images = _small_folder(tmp_path / "images")
    out = tmp_path / "shards"
    prepare_shards(ImageFolder(images), out, num_workers=1)
    # as if a run over other data had been interrupted in val: its work is begun again, with a word
    (out / "lightning_aug.json").unlink()
    (out / "val" / "lightning_aug_split.json").unlink()
    (out / "val" / "lightning_aug_pending.json").write_text(json.dumps({"key": "other data", "samples": 3}))
    (out / "val" / "chunk-0-9.bin").write_bytes(b"left over")
    with pytest.warns(UserWarning, match=r"val: the interrupted preparation found there was of other data"):
        metadata = prepare_shards(ImageFolder(images), out, num_workers=1)
    assert not (out / "val" / "chunk-0-9.bin").exists() and _read_counts(out) == {"train": 12, "val": 12}
    assert metadata["splits"]["val"]["samples"] == 12


@pytest.mark.slow
def test_a_killed_preparation_stops_its_workers_and_a_rerun_writes_every_image_once(tmp_path: Path) -> None:
    """kill -9 of ``lightning-aug-prepare``'s main process: its workers and the processes they
    started exit within a second instead of writing on or waiting forever; the rerun continues and
    every image is in the shards exactly once."""
    images = _small_folder(tmp_path / "images", per_class=60)
    out = tmp_path / "shards"
    script = (
        "import slow_factory; from lightning_aug.data.shards.prepare import prepare_shards; "
        f"prepare_shards(slow_factory.Slow({str(images)!r}), {str(out)!r}, num_workers=2, chunk_bytes='8KB')"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS), "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while len(list((out / "train").glob("chunk-*.bin"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    children = _descendants(process.pid)  # LitData's workers and the uploaders they start
    assert children, "no worker processes seen"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(1.0)
    assert not [pid for pid in children if _alive(pid)], "processes still running a second after the kill"
    assert not (out / "lightning_aug.json").exists()
    prepare_shards(ImageFolder(images), out, num_workers=2, chunk_bytes="8KB")
    names = sorted(name for name, _ in _all_samples(out))
    assert names == sorted(str(p) for p in (images / "train").rglob("*.png"))  # each exactly once


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


# ---------------------------------------------------------------- integrity


def _damage(folder: Path, how: str) -> str:
    """Damage the largest train chunk; returns its name."""
    chunks = _metadata(folder)["splits"]["train"]["chunks"]
    name = max(chunks, key=lambda c: c["bytes"])["name"]
    path = folder / "train" / name
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "missing":
        path.unlink()
    else:
        flip_bytes(path, 400, skip=64)
    return name


@pytest.mark.parametrize("how", ["truncated", "missing", "corrupt"])
def test_a_damaged_chunk_is_one_error_naming_it(digit_shards: Path, tmp_path: Path, how: str) -> None:
    out = tmp_path / "shards"
    shutil.copytree(digit_shards, out)
    name = _damage(out, how)
    datamodule = AugDataModule(
        StreamingShards(str(out), cache_dir=str(tmp_path / "cache")), loader=LoaderSettings(num_workers=0)
    )
    with pytest.raises(DataError, match=rf"{name} of split 'train' in {out} is {how}"):
        datamodule.setup("fit")  # (reads the first chunk to see the image sizes)
        for _ in datamodule.train_dataloader():
            pass


def _set_label(folder: Path, chunk_name: str, position: int, label: int) -> None:
    """Rewrite one sample's label and the chunk's checksums in the metadata, as a careless or hostile
    author of consistent shards would."""
    path = folder / "train" / chunk_name
    data = bytearray(path.read_bytes())
    begin = struct.unpack_from("<I", data, 4 + 4 * position)[0]
    image_size = struct.unpack_from("<I", data, begin)[0]
    struct.pack_into("<q", data, begin + 12 + image_size, label)
    path.write_bytes(bytes(data))
    metadata = _metadata(folder)
    for split in ("train",):
        for chunk in metadata["splits"][split]["chunks"]:
            if chunk["name"] == chunk_name:
                chunk["crc32"] = zlib.crc32(bytes(data))
                chunk["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (folder / "lightning_aug.json").write_text(json.dumps(metadata))


def test_a_label_outside_the_classes_names_the_chunk_and_sample(digit_shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    shutil.copytree(digit_shards, out)
    name = _metadata(out)["splits"]["train"]["chunks"][0]["name"]
    _set_label(out, name, position=5, label=200)
    dataset = StreamingShards(str(out), cache_dir=str(tmp_path / "cache"))("train")
    with pytest.raises(
        DataError,
        match=rf"{name} of split 'train' in .*: sample 5 \(.*\.png\) has label 200, outside the 10 classes",
    ):
        for index in range(len(dataset)):
            dataset[index]


@pytest.mark.parametrize("damage", ["index", "split"])
def test_a_missing_index_or_split_is_one_line(digit_shards: Path, tmp_path: Path, damage: str) -> None:
    out = tmp_path / "shards"
    shutil.copytree(digit_shards, out)
    if damage == "index":
        (out / "train" / "index.json").unlink()
    else:
        shutil.rmtree(out / "train")
    result = _train(out, tmp_path)
    lines = [one_error_line(result)]
    assert (
        f"split 'train' is listed in lightning_aug.json but {out / 'train' / 'index.json'} is missing"
        in lines[0]
    )


def _train(
    input_dir: Path | str, tmp_path: Path, *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_app(
        "train",
        "data=streaming",
        f"data.input_dir={input_dir}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "augment=none",
        "trainer.max_epochs=1",
        "+trainer.enable_progress_bar=false",
        "loader.batch_size=32",
        f"hydra.run.dir={tmp_path / 'run'}",
        *extra,
        cwd=tmp_path,
        timeout=600,
        **env,
    )


def test_the_train_app_reports_a_corrupt_chunk_read_in_a_worker_in_one_line(
    digit_shards: Path, tmp_path: Path
) -> None:
    out = tmp_path / "shards"
    shutil.copytree(digit_shards, out)
    name = _damage(out, "corrupt")
    result = _train(out, tmp_path, "loader.num_workers=2")
    lines = [one_error_line(result)]
    assert lines[0].startswith("lightning-aug-train: data error: ") and f"{name} of split 'train'" in lines[0]
    assert "is corrupt: its CRC-32" in lines[0]


def test_verify_checks_a_shard_folder_end_to_end(digit_shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    shutil.copytree(digit_shards, out)
    verify = [str(BIN / "lightning-aug-prepare"), f"prepare.output_dir={out}", "prepare.verify=true"]
    result = run_command([*verify, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "train: " in result.stdout and "10 classes" in result.stdout
    assert f"verified {out}: OK" in result.stdout and "labels and images checked" in result.stdout
    name = _damage(out, "corrupt")
    result = run_command([*verify, f"hydra.run.dir={tmp_path / 'run2'}"], cwd=tmp_path)
    assert result.returncode == 1
    assert f"{name} of split 'train' in {out} is corrupt" in result.stdout
    assert "val: " in result.stdout and "PROBLEMS FOUND" in result.stdout


@pytest.mark.parametrize("target", ["file", "below a file"])
def test_prepare_errors_are_one_line_with_status_2(tmp_path: Path, target: str) -> None:
    (tmp_path / "taken").write_text("a file")
    out = tmp_path / "taken" if target == "file" else tmp_path / "taken" / "shards"
    result = run_command(
        [
            str(BIN / "lightning-aug-prepare"),
            "data.train_per_class=2",
            "data.val_per_class=1",
            "data.test_per_class=0",
            f"prepare.output_dir={out}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
    )
    lines = [one_error_line(result)]
    assert (
        lines[0].startswith("lightning-aug-prepare: config error: ") and str(tmp_path / "taken") in lines[0]
    )


# ---------------------------------------------------------------- resume and DDP


def _datamodule(shards: Path, workers: int) -> AugDataModule:
    from torchvision.transforms import v2

    loader = LoaderSettings(batch_size=4, num_workers=workers, persistent_workers=False)
    crop = [v2.RandomCrop(16, padding=3)]  # worker-side augmentation: identical after the resume too
    return AugDataModule(StreamingShards(str(shards)), train_transforms=crop, loader=loader, seed=0)


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


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_continues_at_the_next_sample(shards: Path, tmp_path: Path, workers: int) -> None:
    full = ScheduledRecorder(num_classes=4)
    checkpoints = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=5, save_top_k=-1, filename="{step}"
    )
    _trainer(tmp_path, max_epochs=1, callbacks=[checkpoints]).fit(full, _datamodule(shards, workers))
    epoch = _digests(full.seen["train"])
    assert len(epoch) == 48 and len(set(epoch)) == 48  # every sample once (each augmented its own way)
    resumed = ScheduledRecorder(num_classes=4)
    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(resumed, _datamodule(shards, workers), ckpt_path=tmp_path / "ckpt" / "step=5.ckpt")
    rest = _digests(resumed.seen["train"])
    assert rest == epoch[20:]  # exactly the batches the uninterrupted run trained on next


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
    assert metadata["splits"]["train"]["samples"] == 6 and len(metadata["unreadable"]["train"]) == 2
    assert len(StreamingShards(str(tmp_path / "shards"))("train")) == 6
    with pytest.raises(
        ValueError, match=r"(?s)2 unreadable image file\(s\), no metadata written.*broken.png"
    ):
        prepare_shards(factory, tmp_path / "strict", num_workers=1, on_bad_image="raise")
    assert not (tmp_path / "strict" / "lightning_aug.json").exists()
    (tmp_path / "images" / "train" / "a" / "broken.png").unlink()  # fixed: the rerun begins train again
    (tmp_path / "images" / "train" / "b" / "empty.jpg").unlink()
    with pytest.warns(UserWarning, match="begun again"):
        metadata = prepare_shards(
            ImageFolder(tmp_path / "images"), tmp_path / "strict", num_workers=1, on_bad_image="raise"
        )
    assert metadata["splits"]["train"]["samples"] == 6 and not metadata["unreadable"]


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
    a, b = samples_per_rank(["data=streaming", f"data.input_dir={shards}"], tmp_path / "run", tmp_path)
    assert not a & b and len(a) == len(b) == 24 and len(a | b) == 48  # disjoint, the whole epoch


# ---------------------------------------------------------------- object storage


@pytest.mark.slow
def test_train_from_a_loopback_s3_server(shards: Path, tmp_path: Path) -> None:
    """Shards on an S3-compatible server (moto) on 127.0.0.1, trained from s3:// through the CLI with
    the credentials and endpoint in the environment, as users set them."""
    pytest.importorskip("moto")
    with LoopbackS3() as s3:
        s3.upload_folder(shards, "shapes")
        result = _train("s3://data/shapes", tmp_path, "loader.num_workers=2", "loader.batch_size=8", **s3.env)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "val/acc" in metrics and "test/acc" in metrics
    assert list((tmp_path / "cache").rglob("chunk-*.bin"))  # the chunks came over S3


@pytest.mark.slow
def test_prepare_to_a_loopback_s3_server_interrupted_then_rerun(
    digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Preparation to a plain-http S3-compatible endpoint: the upload fails half way, the rerun
    uploads only what is missing, and training reads what the metadata says."""
    pytest.importorskip("moto")
    from lightning_aug.data.shards.storage import S3Storage

    with LoopbackS3() as s3:
        for key, value in s3.env.items():
            monkeypatch.setenv(key, value)
        real_put, uploads = S3Storage.put_file, []

        def failing_put(self: S3Storage, name: str, local: Any, sha256: str) -> bool:
            if len(uploads) == 3:
                raise DataError("the network went away (simulated)")
            written = real_put(self, name, local, sha256)
            uploads.append(name) if written else None
            return written

        monkeypatch.setattr(S3Storage, "put_file", failing_put)
        options = {"num_workers": 2, "chunk_bytes": "256KB", "staging_dir": tmp_path / "staging"}
        with pytest.raises(DataError, match="simulated"):
            prepare_shards(ImageFolder(digits), "s3://data/digits", **options)
        assert "digits/lightning_aug.json" not in s3.keys("digits/")
        monkeypatch.setattr(S3Storage, "put_file", real_put)
        uploaded_before = [k for k in s3.keys("digits/train/") if "chunk-" in k]
        metadata = prepare_shards(ImageFolder(digits), "s3://data/digits", **options)
        assert len(uploaded_before) == 3 and "digits/lightning_aug.json" in s3.keys("digits/")
        factory = StreamingShards("s3://data/digits", cache_dir=str(tmp_path / "cache"))
        counts = {split: len(factory(split)) for split in ("train", "val")}  # type: ignore[arg-type]
        assert counts == {s: e["samples"] for s, e in metadata["splits"].items()}
        datamodule = AugDataModule(factory, loader=LoaderSettings(batch_size=64, num_workers=0))
        datamodule.setup("fit")
        served = sum(len(labels) for _, labels in datamodule.train_dataloader())
        assert served == (counts["train"] // 64) * 64
        assert not (tmp_path / "staging" / "train").exists()  # staged splits go once uploaded


@pytest.mark.slow
def test_an_s3_outage_mid_epoch_fails_naming_the_endpoint_within_the_timeout(
    digit_shards: Path, tmp_path: Path, digits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("moto")
    small = tmp_path / "small"
    prepare_shards(ImageFolder(digits), small, num_workers=2, chunk_bytes="128KB", splits=["train"])
    with LoopbackS3() as s3:
        for key, value in s3.env.items():
            monkeypatch.setenv(key, value)
        s3.upload_folder(small, "digits")
        factory = StreamingShards(
            "s3://data/digits", cache_dir=str(tmp_path / "cache"), timeout=4, retries=2, prefetch=0
        )
        datamodule = AugDataModule(factory, loader=LoaderSettings(batch_size=32, num_workers=0))
        datamodule.setup("fit")
        batches = iter(datamodule.train_dataloader())
        next(batches)
        s3.stop()
        start = time.monotonic()
        with pytest.raises(
            DataError,
            match=rf"cannot download chunk-\S+ of split 'train' in s3://data/digits .*"
            rf"\(endpoint {s3.endpoint}\) after 2 attempt",
        ):
            for _ in batches:
                pass
        assert time.monotonic() - start < 4 + 8  # the timeout, and a margin for this machine


@pytest.mark.slow
def test_prepare_to_a_missing_bucket_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("moto")
    with LoopbackS3() as s3:
        result = run_command(
            [
                str(BIN / "lightning-aug-prepare"),
                "data.train_per_class=2",
                "data.val_per_class=1",
                "data.test_per_class=0",
                "prepare.output_dir=s3://no-such-bucket/shards",
                f"hydra.run.dir={tmp_path / 'run'}",
            ],
            cwd=tmp_path,
            **s3.env,
        )
    lines = [one_error_line(result)]
    assert f"(endpoint {s3.endpoint}): bucket 'no-such-bucket' does not exist" in lines[0]
