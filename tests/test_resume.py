"""Resume exactly mid-epoch, and each sample's augmentation a function of (seed, epoch, sample).

Measured as the issue describes: scikit-learn's digits as a PNG folder, random crop + flip in the
workers (or, in memory, on the device), mixup on the device, batches of 32, a checkpoint every 5
steps, the run killed after step 13 and resumed from its step-10 checkpoint: the resumed run trains on
the uninterrupted run's batches, bit for bit, from step 10 on."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import DDP_ON_CPU, DIGITS_SIZE, Recorder, run_app, tiny_trainer
from lightning.pytorch import Callback, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torchvision.transforms import v2

from lightning_aug import AugDataModule, LoaderSettings, MixupCallback
from lightning_aug.data.datasets import ImageFolder
from lightning_aug.device.augment import HorizontalFlip, RandomCrop

TESTS = Path(__file__).parent


class Killed(Exception):
    pass


class Kill(Callback):
    """Stops the run after ``step`` as a kill would: the checkpoints written so far stay."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise Killed


def _datamodule(digits: Path, workers: int, in_memory: bool) -> AugDataModule:
    # workers < 0: that many persistent workers (the apps' default): Lightning starts their iterator
    # before it sets the epoch of a resumed run
    loader = LoaderSettings(batch_size=32, num_workers=abs(workers), persistent_workers=workers < 0)
    if in_memory:  # no per-sample pipeline: crop and flip on the device
        return AugDataModule(
            ImageFolder(digits),
            device_transforms=[RandomCrop(padding=2), HorizontalFlip()],
            in_memory=True,
            loader=loader,
            seed=3,
        )
    return AugDataModule(
        ImageFolder(digits),
        train_transforms=[v2.RandomCrop(DIGITS_SIZE, padding=2), v2.RandomHorizontalFlip()],
        loader=loader,
        seed=3,
    )


def _run(
    digits: Path,
    workers: int,
    in_memory: bool = False,
    ckpt_dir: Path | None = None,
    resume: Path | None = None,
    kill_after: int | None = None,
    epochs: int = 1,
) -> Recorder:
    seed_everything(3)  # the model's initial weights
    model = Recorder(num_classes=10)
    callbacks: list[Any] = [MixupCallback(mode="elem", cutmix_alpha=1.0, label_smoothing=0.1)]
    if ckpt_dir is not None:
        callbacks.append(
            ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=5, save_top_k=-1, filename="{step}")
        )
    if kill_after is not None:
        callbacks.append(Kill(kill_after))
    trainer = tiny_trainer(
        max_epochs=epochs, limit_val_batches=0, callbacks=callbacks, enable_checkpointing=ckpt_dir is not None
    )
    with contextlib.suppress(Killed):
        trainer.fit(model, _datamodule(digits, workers, in_memory), ckpt_path=resume)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("in_memory", [False, True], ids=["image_folder", "in_memory"])
@pytest.mark.parametrize("workers", [0, 2, -2], ids=["0", "2", "2-persistent"])
def test_a_killed_run_resumed_mid_epoch_trains_on_the_uninterrupted_runs_batches(
    digits: Path, tmp_path: Path, workers: int, in_memory: bool
) -> None:
    full = _run(digits, workers, in_memory)
    _run(digits, workers, in_memory, ckpt_dir=tmp_path, kill_after=13)
    resumed = _run(digits, workers, in_memory, resume=tmp_path / "step=10.ckpt")
    assert len(full.seen["train"]) == 1434 // 32 and len(resumed.seen["train"]) == 1434 // 32 - 10
    for step, (images, targets) in enumerate(
        zip(resumed.seen["train"], resumed.targets["train"], strict=True)
    ):
        assert torch.equal(images, full.seen["train"][10 + step]), f"batch {10 + step} differs"
        assert torch.equal(targets, full.targets["train"][10 + step])  # the same mixing


@pytest.mark.slow
def test_the_same_seed_gives_the_same_batches_with_0_1_and_2_workers(digits: Path) -> None:
    def batches(workers: int) -> list[torch.Tensor]:
        datamodule = _datamodule(digits, workers, in_memory=False)
        datamodule.setup("fit")
        loader = datamodule.train_dataloader()
        out = []
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            out += [images for i, (images, _) in enumerate(loader) if i < 6]
        return out

    reference = batches(0)
    for workers in (1, 2):
        assert all(torch.equal(a, b) for a, b in zip(reference, batches(workers), strict=True)), workers
    assert not torch.equal(reference[0], reference[6])  # epoch 1 is another order and augmentation


def test_a_checkpoint_without_a_position_still_resumes_with_lightnings_warning(
    digits: Path, tmp_path: Path
) -> None:
    """A checkpoint of lightning_aug 0.2 holds no position in the epoch: the run resumes from the
    epoch's first batch, with the warning Lightning gives for a loader it cannot resume."""
    _run(digits, 0, ckpt_dir=tmp_path, kill_after=13)
    checkpoint = torch.load(tmp_path / "step=10.ckpt", weights_only=True)
    state = checkpoint["AugDataModule"]
    del state["train_position"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    with pytest.warns(UserWarning, match="resuming from a checkpoint that ended before the epoch ended"):
        resumed = _run(digits, 0, resume=tmp_path / "old.ckpt")
    assert len(resumed.seen["train"]) == 1434 // 32 - 10  # Lightning counts the steps it had done


@pytest.mark.slow
def test_two_ddp_processes_resumed_mid_epoch_train_on_the_uninterrupted_batches(
    digits: Path, tmp_path: Path
) -> None:
    """Two CPU processes (gloo) through the train app: killed after step 13 and resumed from the
    step-10 checkpoint, each rank trains on its uninterrupted batches (after the device stage and
    mixup) from step 10 on."""
    common = [
        "data=imagefolder",
        f"data.root={digits}",  # augment=auto: cifar_tv at the digits' size
        "mixup=mixup_cutmix",
        *DDP_ON_CPU,
        "loader.batch_size=16",
        "loader.num_workers=1",
        "loader.persistent_workers=false",
        "+callbacks.steps._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        "+callbacks.steps.every_n_train_steps=5",
        "+callbacks.steps.save_top_k=-1",
        f"+callbacks.steps.dirpath={tmp_path / 'steps'}",
        "+callbacks.probe._target_=resume_probe.ResumeProbe",
        f"+callbacks.probe.output_dir={tmp_path}",
    ]
    env = {"PYTHONPATH": str(TESTS)}
    for name, extra in (
        ("full", []),
        ("killed", ["+callbacks.probe.kill_after=13"]),
    ):
        result = run_app(
            "train",
            *common,
            f"+callbacks.probe.name={name}",
            f"hydra.run.dir={tmp_path / name}",
            *extra,
            cwd=tmp_path,
            timeout=900,
            **env,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        if name == "full":
            for path in (tmp_path / "steps").iterdir():
                path.unlink()  # the killed run writes its own
    checkpoint = tmp_path / "steps" / "epoch=0-step=10.ckpt"
    assert checkpoint.exists(), sorted(p.name for p in (tmp_path / "steps").iterdir())
    result = run_app(
        "train",
        *common,
        "+callbacks.probe.name=resumed",
        f"ckpt_path={checkpoint}",
        f"hydra.run.dir={tmp_path / 'resumed'}",
        cwd=tmp_path,
        timeout=900,
        **env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        full = json.loads((tmp_path / f"full_rank{rank}.json").read_text())
        resumed = json.loads((tmp_path / f"resumed_rank{rank}.json").read_text())
        assert full["world"] == resumed["world"] == 2
        steps = sorted(int(s) for s in resumed["batches"])
        assert steps == [s for s in sorted(int(s) for s in full["batches"]) if s >= 10] and len(steps) >= 5
        assert all(resumed["batches"][str(s)] == full["batches"][str(s)] for s in steps), rank
    assert (
        json.loads((tmp_path / "full_rank0.json").read_text())["batches"]
        != json.loads((tmp_path / "full_rank1.json").read_text())["batches"]
    )
