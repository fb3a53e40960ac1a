"""``lightning-aug-train``: fit, validate and test a model from the config tree.

Usage::

    lightning-aug-train                                   # the default recipe on the built-in dataset
    lightning-aug-train augment=cifar_alb mixup=cutmix loader.num_workers=8
    lightning-aug-train data=imagefolder data.root=/path/to/images
    lightning-aug-train -m mixup=none,mixup,cutmix        # a sweep
    python -m lightning_aug.cli.train --cfg job           # print the composed config

The run folder (Hydra's output dir) receives the CSV logs, ``checkpoints/`` and ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lightning_aug.cli import CONFIG_PATH, precheck

__all__ = ["main", "train"]

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job: fit, then test on the best checkpoint where the data has a test split
    and the model a ``test_step``.

    Returns:
        The final logged metrics (validation accuracy under ``val/acc``), also written as a flat
        JSON object to ``<run folder>/metrics.json``.
    """
    from hydra.utils import instantiate
    from lightning.pytorch import seed_everything
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.utilities.model_helpers import is_overridden

    from lightning_aug.cli.common import (
        build_callbacks,
        build_datamodule,
        build_loggers,
        build_model,
        check_config,
        check_resume,
        config_errors,
        data_errors,
        log_through_hydra,
    )

    log_through_hydra()
    with config_errors("lightning-aug-train"):
        check_config(cfg)
        seed_everything(cfg.seed, workers=False)
        datamodule = build_datamodule(cfg)
        model = build_model(cfg, datamodule)
        callbacks = build_callbacks(cfg, datamodule)
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg))
        resume = cfg.get("ckpt_path")
        if resume is not None:  # refused whole if it names code outside this config's modules
            check_resume(resume, cfg)
    with data_errors("lightning-aug-train"):
        trainer.fit(model, datamodule, ckpt_path=resume, weights_only=True)
    logged = trainer.callback_metrics
    # one key per meaning: Lightning also keeps "<name>_epoch" beside "<name>" for values logged per
    # step and per epoch (the same number); "<name>_step" (the last step's) stays
    metrics = {
        k: float(v) for k, v in logged.items() if not (k.endswith("_epoch") and k[: -len("_epoch")] in logged)
    }
    testable = is_overridden("test_step", getattr(model, "_orig_mod", model))  # unwrap torch.compile
    if cfg.get("test") and datamodule.dataset("test") is not None and not testable:
        log.info("the model has no test_step: not tested (the test split is left unused)")
    if cfg.get("test") and datamodule.dataset("test") is not None and testable:
        checkpoint = trainer.checkpoint_callback
        best = "best" if isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_path else None
        with data_errors("lightning-aug-train"):
            tested = trainer.test(model, datamodule, ckpt_path=best, verbose=False)
        for results in tested:
            metrics.update({k: float(v) for k, v in results.items()})
    if trainer.is_global_zero:
        _report(metrics, Path(cfg.paths.output_dir))
    return metrics


def _report(metrics: dict[str, float], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    width = max(map(len, metrics), default=0)
    print("\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items())))
    print(f"metrics: {path}")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``val/acc`` (for sweepers that optimise it)."""
    return train(cfg).get("val/acc")


def main() -> None:
    """The console script: the command line checked (:func:`~lightning_aug.cli.precheck`), then Hydra."""
    precheck("train", "lightning-aug-train")
    _hydra_main()


if __name__ == "__main__":
    main()
