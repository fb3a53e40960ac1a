"""A callback for the DDP test: each rank writes what its training steps received (image hashes and
mixup lambdas) to ``<run folder>/probe_rank<r>.json``. Used through ``+callbacks.probe._target_``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from lightning_aug import MixupCallback


class Probe(Callback):
    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.hashes: list[str] = []
        self.lambdas: list[list[float]] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        mixup = next(c for c in trainer.callbacks if isinstance(c, MixupCallback))  # type: ignore[attr-defined]
        if mixup.last_params is not None:
            self.lambdas.append([round(float(v), 6) for v in mixup.last_params.lam])

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        datamodule: Any = trainer.datamodule
        sampler = trainer.train_dataloader.sampler  # type: ignore[union-attr]
        sampler.set_epoch(trainer.current_epoch)
        indices = [key.sample for key in sampler]
        train = datamodule.datasets["train"]
        self.hashes = [hashlib.sha1(train.dataset.samples[i][0].encode()).hexdigest() for i in indices]
        path = self.output_dir / f"probe_rank{trainer.global_rank}.json"
        path.write_text(
            json.dumps({"samples": self.hashes, "lambdas": self.lambdas, "world": trainer.world_size})
        )
