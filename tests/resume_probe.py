"""A callback for the resume tests run through the apps (DDP): each rank writes the digests of the
training batches its steps received (after the device stage and mixup), by global step, to
``<output_dir>/<name>_rank<r>.json``; with ``kill_after`` it ends the process after that step, as a
preempted job ends (no teardown, no checkpoint of its own). Used through ``+callbacks.probe._target_``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class ResumeProbe(Callback):
    def __init__(self, output_dir: str, name: str, kill_after: int | None = None) -> None:
        self.output_dir, self.name, self.kill_after = Path(output_dir), name, kill_after
        self.batches: dict[int, str] = {}

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        digest = hashlib.sha1()
        for tensor in batch[:2]:
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        self.batches[trainer.global_step] = digest.hexdigest()

    def _write(self, trainer: Trainer) -> None:
        path = self.output_dir / f"{self.name}_rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"world": trainer.world_size, "batches": self.batches}))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self.kill_after is not None and trainer.global_step == self.kill_after:
            self._write(trainer)
            os._exit(0)  # killed: checkpoints already written stay, nothing else happens

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer)
