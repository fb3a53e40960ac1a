"""Hydra callbacks of the apps (``hydra.callbacks`` in ``conf/train.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lightning_aug.secrets import redact_files, secret_values, secrets_in_overrides

__all__ = ["RedactSecrets"]


def _secrets(config: DictConfig) -> set[str]:
    """The credentials in a job's config (resolved where it resolves) and in its overrides."""
    plain = {k: v for k, v in config.items() if k != "hydra"}
    found: set[str] = set()
    for resolve in (False, True):
        try:
            found |= secret_values(OmegaConf.to_container(OmegaConf.create(plain), resolve=resolve))
        except Exception:  # an interpolation that resolves only inside the job
            continue
    overrides = OmegaConf.select(config, "hydra.overrides.task", default=[]) or []
    return found | secrets_in_overrides(str(o) for o in overrides)


class RedactSecrets(Callback):
    """Rewrites what Hydra saved of a job (``config.yaml``, ``hydra.yaml``, ``overrides.yaml``, the
    multirun's ``multirun.yaml``) and, at its end, the job's log, with every credential of its config
    and overrides replaced by ``<redacted>`` (:mod:`lightning_aug.secrets`). Hydra writes those files
    before the job starts; this runs right after."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        output = Path(config.hydra.runtime.output_dir)
        saved = output / str(config.hydra.output_subdir) if config.hydra.output_subdir is not None else None
        files = [saved / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")] if saved else []
        redact_files(files, _secrets(config))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        redact_files(Path(config.hydra.runtime.output_dir).glob("*.log"), _secrets(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_files([Path(config.hydra.sweep.dir) / "multirun.yaml"], _secrets(config))
