"""Test helpers: a recording LightningModule and a quiet CPU Trainer."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor, nn


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
