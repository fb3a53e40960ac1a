"""WebDataset tars as they come (``data=webdataset``): one source file and one config, on the contract
every source follows; trained, resumed and split over ranks as the image folder they came from."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import (
    ScheduledRecorder,
    samples_per_rank,
    write_image_folder,
    write_webdataset,
)
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_aug import AugDataModule, LoaderSettings
from lightning_aug.data.datasets import ImageFolder
from lightning_aug.data.datasets.webdataset import WebDataset
from lightning_aug.errors import DataError

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def shape_tars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 train and 8 val images of 4 classes, 16x16, in tars of 10."""
    root = tmp_path_factory.mktemp("shapes")
    write_image_folder(root / "images" / "train", {c: 12 for c in "abcd"}, size=16)
    write_image_folder(root / "images" / "val", {c: 2 for c in "abcd"}, size=16)
    return write_webdataset(root / "images", root / "tars", per_tar=10)


def test_every_sample_of_the_folder_is_read_once_with_its_label(digits: Path, digit_tars: Path) -> None:
    folder, tars = ImageFolder(digits), WebDataset(digit_tars)
    assert tars.classes == folder("train").classes == [str(i) for i in range(10)] and tars.num_classes == 10
    for split in ("train", "val"):
        a, b = folder(split), tars(split)
        assert a is not None and b is not None and len(a) == len(b)
        assert sorted(a.targets.tolist()) == sorted(b.targets.tolist())
        for i in (0, len(b) // 2, len(b) - 1):  # the same pixels as the file, the same label
            name = b.sample_name(i).split("/", 1)[1]  # <digit>_<stem>
            digit, stem = name.split("_", 1)
            j = a.files().index(str(digits / split / digit / f"{stem}.png"))
            assert np.array_equal(np.asarray(a[j][0]), np.asarray(b[i][0])) and a[j][1] == b[i][1]
    assert tars("test") is None
    assert len(list(digit_tars.glob("train-*.tar"))) == 4  # 1437 samples, 400 a tar


def _datamodule(tars: Path, workers: int) -> AugDataModule:
    from torchvision.transforms import v2

    loader = LoaderSettings(batch_size=4, num_workers=workers, persistent_workers=False)
    return AugDataModule(
        WebDataset(tars), train_transforms=[v2.RandomCrop(16, padding=3)], loader=loader, seed=0
    )


def _digests(batches: list[torch.Tensor]) -> list[bytes]:
    return [image.numpy().tobytes() for batch in batches for image in batch]


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_continues_at_the_next_sample(
    shape_tars: Path, tmp_path: Path, workers: int
) -> None:
    def trainer(**kwargs: Any) -> Trainer:
        return Trainer(
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            default_root_dir=tmp_path,
            max_epochs=1,
            **kwargs,
        )

    full = ScheduledRecorder(num_classes=4)
    checkpoints = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=5, save_top_k=-1, filename="{step}"
    )
    trainer(callbacks=[checkpoints]).fit(full, _datamodule(shape_tars, workers))
    epoch = _digests(full.seen["train"])
    assert len(epoch) == 48 and len(set(epoch)) == 48  # every sample once
    resumed = ScheduledRecorder(num_classes=4)
    trainer().fit(resumed, _datamodule(shape_tars, workers), ckpt_path=tmp_path / "ckpt" / "step=5.ckpt")
    assert _digests(resumed.seen["train"]) == epoch[20:]  # the uninterrupted run's next batches


def test_batches_mix_classes_though_the_tars_are_class_sorted(shape_tars: Path) -> None:
    datamodule = _datamodule(shape_tars, 0)
    datamodule.setup("fit")
    first = next(iter(datamodule.train_dataloader()))
    assert len(set(first[1].tolist())) >= 2  # a permutation of all samples, not tar by tar


@pytest.mark.slow
def test_two_ddp_processes_read_disjoint_halves(shape_tars: Path, tmp_path: Path) -> None:
    a, b = samples_per_rank(["data=webdataset", f"data.root={shape_tars}"], tmp_path / "run", tmp_path)
    assert not a & b and len(a) == len(b) == 24 and len(a | b) == 48  # disjoint, the whole epoch


def test_bad_tars_are_refused_naming_the_tar_and_sample(tmp_path: Path, shape_tars: Path) -> None:
    import io
    import shutil

    def tars(name: str, members: dict[str, bytes]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        with tarfile.open(folder / "train-000000.tar", "w") as tar:
            for member, data in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return folder

    png = next((shape_tars.parent / "images" / "train" / "a").glob("*.png")).read_bytes()
    with pytest.raises(DataError, match=r"train-000000\.tar: sample 'x' has no label member \(x\.cls\)"):
        WebDataset(tars("nolabel", {"x.png": png})).build("train")
    with pytest.raises(
        DataError, match=r"train-000000\.tar/y\.cls: label '3\.0' is a number but not a class index"
    ):
        WebDataset(tars("floatlabel", {"x.png": png, "x.cls": b"0", "y.png": png, "y.cls": b"3.0"})).build(
            "train"
        )
    with pytest.raises(FileNotFoundError, match=r"has no train-\*\.tar"):
        WebDataset(tmp_path)  # a folder of folders, no tar
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "train-000000.tar")
    with pytest.raises(DataError, match=r"is not a regular file \(a FIFO\)"):
        WebDataset(fifo).build("train")
    broken = tmp_path / "broken"
    shutil.copytree(shape_tars, broken)
    first = sorted(broken.glob("train-*.tar"))[0]
    data = first.read_bytes()
    offset = data.index(b"\x89PNG")
    first.write_bytes(data[:offset] + b"not a png!" + data[offset + 10 :])
    source = WebDataset(broken)("train")
    with pytest.raises(DataError, match=r"cannot decode the image of train-000000\.tar/a_"):
        source[0]
    skipping = WebDataset(broken, on_bad_image="skip")("train")
    assert skipping[0][2] == (skipping.sample_name(0),) and len(skipping[1]) == 2
