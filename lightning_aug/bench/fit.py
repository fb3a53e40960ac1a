"""``trainer.fit`` with the configured DataModule against the classic pipeline, and the bound the
model's training step alone sets on the speed-up."""

from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig

__all__ = ["fit_speedup"]


def _model_step_ms_per_image(
    cfg: DictConfig, dm: Any, batch_shape: list[int], device: Any, steps: int = 3
) -> float:
    """Wall time per image of the model's training step alone (forward, loss, backward, optimiser
    step) on a random float batch of ``batch_shape`` on ``device``: no data loading at all."""
    import torch

    from lightning_aug.cli.common import build_model

    model = build_model(cfg, dm).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    images = torch.randn(batch_shape, device=device)
    labels = torch.randint(0, dm.num_classes, (batch_shape[0],), device=device)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) * 1e3 / (steps * batch_shape[0])


def fit_speedup(
    cfg: DictConfig, dm: Any, baseline: Any, epochs: int, image_shape: list[int]
) -> dict[str, Any]:
    """Wall time of ``trainer.fit`` with the configured DataModule and with the baseline pipeline, and
    the bound on the speed-up: the fit cannot be faster than the model's training steps alone."""
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch import LightningDataModule, Trainer, seed_everything
    from torch.utils.data import DataLoader

    from lightning_aug.cli.common import build_callbacks, build_model

    workers = dm.loader.resolve_num_workers(1)

    class Baseline(LightningDataModule):
        def train_dataloader(self) -> DataLoader:
            return DataLoader(
                baseline,
                batch_size=dm.loader.batch_size,
                shuffle=True,
                num_workers=workers,
                drop_last=True,
                persistent_workers=workers > 0,
            )

    walls, images = {}, {}
    for name, datamodule in (("configured", dm), ("baseline", Baseline())):
        seed_everything(cfg.seed, workers=False)
        model = build_model(cfg, dm)
        callbacks = [c for c in build_callbacks(cfg, dm) if "ModelCheckpoint" not in type(c).__name__]
        trainer: Trainer = instantiate(
            cfg.trainer,
            max_epochs=epochs,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=callbacks,
        )
        start = time.perf_counter()
        trainer.fit(model, datamodule)
        walls[name] = time.perf_counter() - start
        images[name] = trainer.global_step * dm.loader.batch_size
        root_device = trainer.strategy.root_device
        del model, trainer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    model_ms = _model_step_ms_per_image(cfg, dm, [dm.loader.batch_size, *image_shape], root_device)
    baseline_ms = walls["baseline"] * 1e3 / max(images["baseline"], 1)
    return {
        "configured_s": round(walls["configured"], 2),
        "baseline_s": round(walls["baseline"], 2),
        "speedup": round(walls["baseline"] / walls["configured"], 3),
        "baseline_ms_per_image": round(baseline_ms, 3),
        "model_step_ms_per_image": round(model_ms, 3),
        "speedup_limit": round(baseline_ms / model_ms, 3),
    }
