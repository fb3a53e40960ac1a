"""Test helpers, shared by the test modules: a recording LightningModule, a quiet CPU Trainer, small
datasets and folders written on the fly, composing the shipped configs and running the apps."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
from lightning.pytorch import LightningModule, Trainer
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import Dataset


class Recorder(LightningModule):
    """A linear model that records the batches reaching each step."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)
        self.seen: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
        self.targets: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
        self.epochs: list[int] = []  # the epoch of each training batch
        self.ordered: list[tuple[str, Tensor]] = []  # every batch, in the order the steps saw them

    def _record(self, batch: Any, stage: str) -> Tensor:
        images, targets = (batch["image"], batch["label"]) if isinstance(batch, dict) else batch[:2]
        self.seen[stage].append(images.detach().clone())
        self.targets[stage].append(targets.detach().clone())
        if stage == "train":
            self.epochs.append(self.current_epoch)
        self.ordered.append((stage, self.seen[stage][-1]))
        return nn.functional.cross_entropy(self.head(images.mean(dim=(2, 3))), targets)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._record(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._record(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._record(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def tiny_trainer(**kwargs: Any) -> Trainer:
    options = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        **kwargs,
    }
    return Trainer(**options)


# one epoch on two CPU DDP ranks (gloo), as the app's DDP tests run it: training only
DDP_ON_CPU = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.max_epochs=1",
    "+trainer.limit_val_batches=0",
    "test=false",
]

BIN = Path(sys.executable).parent  # the console scripts of the installed package


def compose_config(config: str, overrides: list[str]) -> DictConfig:
    """The shipped config ``config`` (``train``, ``bench``, ``preview``) composed with ``overrides``."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
        return compose(config, overrides=overrides)


class AppServer:
    """The client of ``app_server.py``: one process per test session that has imported the apps and
    forks a fresh child for each app command (the same process a user starts, without paying the
    imports again: about 4 s a command on the 2-core CI machine)."""

    _server: subprocess.Popen[str] | None = None
    _replies: Any = None

    @classmethod
    def run(
        cls,
        args: list[str],
        cwd: Path | None,
        timeout: int,
        environment: dict[str, str],
        base: dict[str, str],
    ) -> subprocess.CompletedProcess[str]:
        if cls._server is None or cls._server.poll() is not None:
            read, write = os.pipe()
            # the server starts with Python's default warning filters; each command applies its own
            # PYTHONWARNINGS. What the imports print goes to a log, shown if the server cannot start.
            handle, log = tempfile.mkstemp(prefix="app_server_", suffix=".log")
            cls._server = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("app_server.py")), str(write)],
                stdin=subprocess.PIPE,
                stdout=handle,
                stderr=handle,
                text=True,
                pass_fds=(write,),
                env={k: v for k, v in base.items() if k != "PYTHONWARNINGS"},
            )
            os.close(handle)
            os.close(write)
            cls._replies = os.fdopen(read, "r")
            ready = cls._replies.readline()
            assert ready, f"the app server did not start: {Path(log).read_text()[-3000:]}"
        assert cls._server.stdin is not None
        request = {"argv": args, "cwd": str(cwd or Path.cwd()), "env": environment, "timeout": timeout}
        cls._server.stdin.write(json.dumps(request) + "\n")
        cls._server.stdin.flush()
        reply = json.loads(cls._replies.readline())
        if reply["returncode"] == "timeout":
            raise subprocess.TimeoutExpired(args, timeout)
        out, err = (Path(reply[k]).read_text(errors="replace") for k in ("stdout", "stderr"))
        for k in ("stdout", "stderr"):
            Path(reply[k]).unlink()
        return subprocess.CompletedProcess(args, reply["returncode"], out, err)


def run_command(
    args: list[str], cwd: Path | None = None, timeout: int = 900, fresh: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command (an app: ``[str(BIN / "lightning-aug-train"), ...]``) with warnings quiet and
    Hydra's short errors; the result, whatever its exit code. An app, ``python -m <module>`` or
    ``python <script>.py`` runs in a fork of the session's app server (``AppServer``) unless ``fresh``
    (a new interpreter: for what measures a start-up)."""
    # WANDB_SERVICE: a W&B service an in-process test started; a command starts its own
    inherited = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    base = {**inherited, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    environment = {**base, **env}
    app = Path(args[0]).parent == BIN and Path(args[0]).name.startswith("lightning-aug-")
    python = args[0] == sys.executable and len(args) > 1 and (args[1] == "-m" or args[1].endswith(".py"))
    if not fresh and (app or python):
        return AppServer.run(args, cwd, timeout, environment, base)
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment, check=False
    )


class RepeatedImage(Dataset):
    """``length`` copies of one image: differences between samples can only come from augmentation."""

    def __init__(self, length: int = 16, size: int = 48) -> None:
        rng = np.random.default_rng(0)
        self.image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.image, 0


class RepeatedImageFactory:
    """Dataset factory of :class:`RepeatedImage` for every split."""

    num_classes = 2

    def __init__(self, length: int = 16) -> None:
        self.length = length

    def __call__(self, split: str) -> RepeatedImage:
        return RepeatedImage(self.length)


def halve(image: Any) -> Any:
    """A plain-function per-sample transform, as users write them."""
    return image // 2


def write_image_folder(root: Path, classes: dict[str, int], size: int = 20) -> None:
    """``root/<class>/<i>.png`` with ``classes[name]`` small random images each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )


def fake_cifar(
    root: Path, tv_class: type, monkeypatch: pytest.MonkeyPatch, n_train: int = 20, n_test: int = 10
) -> Path:
    """Write tiny CIFAR files in torchvision's layout, point the class's checksums at them and return a
    ``.tar.gz`` of them (for the download path)."""
    rng = np.random.default_rng(0)
    label_key = "labels" if tv_class is torchvision.datasets.CIFAR10 else "fine_labels"
    folder = root / tv_class.base_folder
    folder.mkdir(parents=True)
    n_classes = 10 if tv_class is torchvision.datasets.CIFAR10 else 100

    def write(name: str, n: int) -> list[str]:
        entry = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: rng.integers(0, n_classes, n).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(entry))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    train_names = [e[0] for e in tv_class.train_list]
    per = n_train // len(train_names)
    monkeypatch.setattr(tv_class, "train_list", [write(name, per) for name in train_names])
    monkeypatch.setattr(tv_class, "test_list", [write(tv_class.test_list[0][0], n_test)])
    meta = dict(tv_class.meta)
    (folder / meta["filename"]).write_bytes(pickle.dumps({meta["key"]: [f"c{i}" for i in range(n_classes)]}))
    meta["md5"] = hashlib.md5((folder / meta["filename"]).read_bytes()).hexdigest()
    monkeypatch.setattr(tv_class, "meta", meta)
    archive = root / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=tv_class.base_folder)
    return archive


def bad_image_folder(root: Path) -> list[str]:
    """An image folder with a truncated JPEG, a text file named .jpg, a CMYK JPEG, an RGBA PNG and a
    grey image; returns the two bad paths (the truncated one sorts first)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        folder = root / split / "cls"
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / "a_truncated.jpg")
        data = (folder / "a_truncated.jpg").read_bytes()
        (folder / "a_truncated.jpg").write_bytes(data[: len(data) // 2])
        (folder / "b_text.jpg").write_text("this is not an image")
        Image.new("CMYK", (24, 24), (10, 200, 30, 0)).save(folder / "c_cmyk.jpg")
        Image.fromarray(rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)).save(folder / "d_rgba.png")
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(folder / "e_grey.png")
        (root / split / "other").mkdir()
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
            root / split / "other" / "ok.png"
        )
    return [str(root / "train" / "cls" / "a_truncated.jpg"), str(root / "train" / "cls" / "b_text.jpg")]


DIGITS_SIZE = 16  # the shared digits fixture: 8x8 digits at twice their size (a quarter of 32x32's compute)


def digits_folder(root: Path, size: int = 32, val_fraction: float = 0.2, layout: str = "split") -> Path:
    """scikit-learn's digits as a class-sorted folder of PNGs
    (:func:`lightning_aug.data.datasets.digits.write_digits`)."""
    from lightning_aug.data.datasets.digits import write_digits

    return write_digits(root, size=size, layout=layout, val_fraction=val_fraction)  # type: ignore[arg-type]


class LoopbackS3:
    """An S3-compatible server (moto) on 127.0.0.1 with a bucket, for the object-storage paths;
    ``env`` holds the variables boto3 reads. Used as a context manager; ``stop()`` takes it away."""

    def __init__(self, bucket: str = "data") -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        self.bucket = bucket
        self.running = False

    def __enter__(self) -> LoopbackS3:
        import boto3

        self.server.start()
        self.running = True
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
        }
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.client.create_bucket(Bucket=self.bucket)
        return self

    def upload_folder(self, folder: Path, prefix: str) -> None:
        for path in folder.rglob("*"):
            if path.is_file():
                self.client.upload_file(str(path), self.bucket, f"{prefix}/{path.relative_to(folder)}")

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.running = False

    def __exit__(self, *exc: object) -> None:
        self.stop()


def flip_bytes(path: Path, count: int, seed: int = 0, skip: int = 0) -> None:
    """Flip one bit in each of ``count`` random bytes of a file (after its first ``skip`` bytes)."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for position in rng.choice(np.arange(skip, len(data)), size=count, replace=False):
        data[position] ^= 0x10
    path.write_bytes(bytes(data))


def run_app(
    app: str, *args: str, cwd: Path, timeout: int = 900, fresh: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run an installed console script (``"train"``: ``lightning-aug-train``) with these arguments, as
    a user types them; the result, whatever its exit code (``fresh``: see ``run_command``)."""
    return run_command(
        [str(BIN / f"lightning-aug-{app}"), *args], cwd=cwd, timeout=timeout, fresh=fresh, **env
    )


def one_error_line(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The one line an app printed on stderr for a refusal, checked: exit ``status``, nothing else."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == status and len(lines) == 1, (result.returncode, result.stderr[-3000:])
    return lines[0]


def photo_folder(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """A flat folder of real photographs of mixed sizes, as users' photo folders come: ``root/<photo>/``
    holds ``per_class`` JPEGs cut from one of the photographs scikit-image and scikit-learn ship (the
    class), each a random crop of its own size (120 to 360 pixels a side). Written once per ``root``."""
    from lightning_aug.data.datasets.photos import PHOTO_NAMES, source_photos

    if (root / ".complete").exists():
        return root
    rng = np.random.default_rng(seed)
    for name, photo in zip(PHOTO_NAMES, source_photos(), strict=True):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = (int(v) for v in rng.integers(120, 361, size=2))
            h, w = min(h, photo.shape[0]), min(w, photo.shape[1])
            y, x = rng.integers(0, photo.shape[0] - h + 1), rng.integers(0, photo.shape[1] - w + 1)
            Image.fromarray(photo[y : y + h, x : x + w]).save(root / name / f"{i:03d}.jpg", quality=90)
    (root / ".complete").touch()
    return root


def write_file_list(folder: Path, file: Path, multi_label: bool = False) -> Path:
    """A CSV file list (``path,label,split``, paths relative to the file's folder) of an image folder
    ``folder/<split>/<class>/<image>``; ``multi_label``: labels of the class and the next one."""
    import csv
    import os

    classes = sorted({p.parent.name for p in folder.rglob("*.png")})
    with file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for path in sorted(folder.rglob("*.png")):
            split, label = path.parent.parent.name, path.parent.name
            if multi_label:
                label = f"{label} {classes[(classes.index(label) + 1) % len(classes)]}"
            writer.writerow([os.path.relpath(path, file.parent), label, split])
    return file


def write_hf_dataset(folder: Path, target: Path, parquet: bool = False) -> Path:
    """An image folder ``folder/<split>/<class>/<image>`` as a Hugging Face dataset of encoded images
    and ClassLabel labels: ``save_to_disk`` (a folder) or, with ``parquet``, ``<split>-00000.parquet``
    files."""
    import datasets

    classes = sorted({p.parent.name for p in folder.rglob("*.png")})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    splits = {}
    for split_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(split_folder.rglob("*.png"))
        rows = {"image": [str(f) for f in files], "label": [classes.index(f.parent.name) for f in files]}
        table = datasets.Dataset.from_dict(rows, features=features)
        name = {"val": "validation"}.get(split_folder.name, split_folder.name)
        splits[name] = table.cast_column("image", datasets.Image(decode=False)).map(
            lambda row: {"image": {"bytes": Path(row["image"]["path"]).read_bytes(), "path": None}}
        )
    if parquet:
        target.mkdir(parents=True, exist_ok=True)
        for name, table in splits.items():
            table.to_parquet(str(target / f"{name}-00000-of-00001.parquet"))
    else:
        datasets.DatasetDict(splits).save_to_disk(str(target))
    return target


class SizedFactory:
    """A dataset factory of one's own (no lightning_aug base class), which declares its image size:
    ``augment=auto`` asks it, whatever its name."""

    def __init__(self, side: int = 40) -> None:
        self.side = side

    def image_sizes(self, limit: int = 64, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        return [("mine", (self.side, self.side))]

    def __call__(self, split: str) -> RepeatedImage:
        return RepeatedImage(8)


def write_webdataset(folder: Path, target: Path, per_tar: int = 500) -> Path:
    """An image folder ``folder/<split>/<class>/<image>.png`` as WebDataset tars, as such datasets come:
    ``<split>-000000.tar`` ... of ``<key>.png`` + ``<key>.cls`` (the class's index among the sorted
    class names), ``per_tar`` samples a tar, in the folder's (class-sorted) order."""
    import io

    classes = sorted({p.parent.name for p in folder.rglob("*.png")})
    target.mkdir(parents=True, exist_ok=True)
    for split_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(split_folder.rglob("*.png"))
        for start in range(0, len(files), per_tar):
            with tarfile.open(target / f"{split_folder.name}-{start // per_tar:06d}.tar", "w") as tar:
                for path in files[start : start + per_tar]:
                    key = f"{path.parent.name}_{path.stem}"
                    tar.add(path, arcname=f"{key}.png")
                    label = str(classes.index(path.parent.name)).encode()
                    info = tarfile.TarInfo(f"{key}.cls")
                    info.size = len(label)
                    tar.addfile(info, io.BytesIO(label))
    return target


def samples_per_rank(data: list[str], run: Path, cwd: Path) -> list[set[str]]:
    """Train one epoch of ``data`` (the app's data overrides) on two CPU DDP ranks, with no
    augmentation, batches of 4; the digests of the images each rank's training steps received
    (``streaming_probe.Probe``)."""
    import json

    result = run_command(
        [
            str(BIN / "lightning-aug-train"),
            *data,
            *DDP_ON_CPU,
            "loader.batch_size=4",
            "loader.num_workers=0",
            "loader.persistent_workers=false",
            "augment=none",
            "+callbacks.probe._target_=streaming_probe.Probe",
            f"+callbacks.probe.output_dir={run}",
            f"hydra.run.dir={run}",
        ],
        cwd=cwd,
        timeout=600,
        PYTHONPATH=str(Path(__file__).parent),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((run / f"probe_rank{r}.json").read_text()) for r in (0, 1)]
    assert all(p["world"] == 2 for p in ranks)
    return [set(p["samples"]) for p in ranks]


class ScheduledRecorder(Recorder):
    """A recorder whose schedule reads ``estimated_stepping_batches`` (as one-cycle recipes do)."""

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.01)
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - min(step / total, 1.0))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class DigitsRecipe:
    """One seeded recipe of the train app (``augment=auto``, 8 epochs, batches of 64, 2 workers, seed
    0) on the digits, by data path; each path is trained once per test run, whichever tests (and
    whichever pytest-xdist workers: the results are kept in ``shared``, under a file lock) ask for it,
    and gives its validation accuracy."""

    EPOCHS = 8
    ARGS = (
        f"trainer.max_epochs={EPOCHS}",
        "loader.num_workers=2",
        "loader.batch_size=64",
        "seed=0",
        "+trainer.enable_progress_bar=false",
    )

    def __init__(self, folder: Path, shared: Path) -> None:
        self.folder, self.shared = folder, shared
        shared.mkdir(parents=True, exist_ok=True)

    def app(self, name: str, *data: str) -> float:
        """The validation accuracy of the recipe run by the train app on ``data`` (its overrides)."""
        from filelock import FileLock

        key = name.replace(" ", "_")
        with FileLock(str(self.shared / f"{key}.lock")):
            known = self.shared / f"{key}.json"
            if not known.exists():
                run = self.folder / key
                result = run_app("train", *data, *self.ARGS, f"hydra.run.dir={run}", cwd=self.folder)
                assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
                said = f"augment=auto: cifar_tv at {DIGITS_SIZE}x{DIGITS_SIZE}"
                assert said in result.stdout + result.stderr, name
                known.write_text((run / "metrics.json").read_text())
            return float(json.loads(known.read_text())["val/acc"])
