"""A callback for the repeated-augmentation DDP test: each rank writes ``(sample, repeat, image digest)``
of every training sample it read to ``<output_dir>/repeats_rank<r>.json`` (the keys from its sampler,
the digests from the batches its steps received, in the same order)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class RepeatProbe(Callback):
    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.digests: list[str] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.digests += [hashlib.sha1(image.cpu().numpy().tobytes()).hexdigest() for image in batch[0]]

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        sampler = trainer.train_dataloader.sampler  # type: ignore[union-attr]
        sampler.set_epoch(trainer.current_epoch)
        keys = list(sampler)
        rows = [[key.sample, key.repeat, digest] for key, digest in zip(keys, self.digests, strict=True)]
        path = self.output_dir / f"repeats_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(rows))
