"""A callback for the streaming DDP test: each rank writes the digests of the images its training steps
received to ``<output_dir>/probe_rank<r>.json``. Used through ``+callbacks.probe._target_``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class Probe(Callback):
    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.samples: list[str] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.samples += [hashlib.sha1(image.cpu().numpy().tobytes()).hexdigest() for image in batch[0]]

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        path = self.output_dir / f"probe_rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"samples": self.samples, "world": trainer.world_size}))
