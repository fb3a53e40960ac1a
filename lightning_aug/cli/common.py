"""What the Hydra apps share: strict config checks and building the objects from one config."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lightning_aug.cli import clean
from lightning_aug.datamodule import AugDataModule
from lightning_aug.targets import check_target_args

__all__ = [
    "build_batch_path",
    "build_callbacks",
    "build_datamodule",
    "build_model",
    "check_config",
    "config_errors",
    "data_errors",
    "log_through_hydra",
]


def _walk(node: Any, path: str) -> None:
    if isinstance(node, Mapping):
        if "_target_" in node:
            check_target_args(node, path or "<root>")
        for key, value in node.items():
            _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _walk(value, f"{path}[{i}]")


def check_config(cfg: DictConfig) -> None:
    """Fail before building anything: missing values (``???``), unknown ``_target_`` classes and
    arguments that a target does not take (albumentations would only warn), named by config path.

    Raises:
        omegaconf.MissingMandatoryValue: a ``???`` value was not given.
        ValueError: an unknown target or argument.
    """
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    _walk(container, "")
    check_accelerator(container.get("trainer"))  # type: ignore[union-attr]
    for name, spec in (container.get("callbacks") or {}).items():  # type: ignore[union-attr]
        if not (isinstance(spec, Mapping) and "_target_" in spec):
            raise ValueError(f"callbacks.{name} has no _target_: every callback entry must name its class")


def check_accelerator(trainer: Any) -> None:
    """Refuse a GPU trainer on a machine without one, saying what runs instead (Lightning's own
    "No supported gpu backend found!" names no way out).

    Raises:
        ValueError: ``trainer.accelerator`` is ``gpu``/``cuda`` and torch sees no CUDA device.
    """
    if not isinstance(trainer, Mapping) or str(trainer.get("accelerator")) not in ("gpu", "cuda"):
        return
    import torch

    if torch.cuda.is_available():
        return
    chosen = ""
    try:
        from hydra.core.hydra_config import HydraConfig

        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
        if choices.get("experiment"):
            chosen = f" (experiment={choices['experiment']} trains on a GPU)"
    except Exception:  # outside an app: no choices to name
        pass
    raise ValueError(
        f"trainer.accelerator={trainer.get('accelerator')}{chosen} needs a CUDA GPU, and torch sees none on "
        "this machine: add trainer=cpu to run on the CPU (the recipe's other settings stay)"
    )


class _DropTips(logging.Filter):
    """Lightning's advertisements ("💡 Tip: For seamless cloud logging ..."): nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


# warnings our dependencies raise about their own code, which a user of the apps can do nothing about
DEPENDENCY_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's _pytree on torch >= 2.9
)


def log_through_hydra() -> None:
    """One console line per log record under a Hydra app: Lightning's packages add their own console
    handlers on import and also propagate to the root logger, where Hydra has its console and job-file
    handlers; theirs are removed, so each record is printed once in Hydra's format (and kept in the
    run folder's log file). Lightning's tips and the dependencies' warnings about their own code
    (:data:`DEPENDENCY_WARNINGS`) are left out."""
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # not Hydra's file handlers
                logger.removeHandler(handler)
        logger.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        if not any(isinstance(f, _DropTips) for f in logging.getLogger(name).filters):
            logging.getLogger(name).addFilter(_DropTips())
    for pattern in DEPENDENCY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def build_datamodule(cfg: DictConfig) -> AugDataModule:
    """The DataModule, given its arguments as the config says them (``_target_`` mappings it builds
    itself), so that its ``hparams`` are the config."""
    spec = OmegaConf.to_container(cfg.datamodule, resolve=True, throw_on_missing=True)
    _say_auto_augment()
    datamodule = instantiate(spec, _recursive_=False, _convert_="all")
    if not isinstance(datamodule, AugDataModule):
        raise TypeError(f"datamodule must build an AugDataModule, got {type(datamodule).__name__}")
    return datamodule


def _say_auto_augment() -> None:
    """Log what ``augment=auto`` chose (an app's config names its choices)."""
    from hydra.core.hydra_config import HydraConfig

    from lightning_aug.presets import said

    if HydraConfig.initialized() and HydraConfig.get().runtime.choices.get("augment") == "auto" and said():
        logging.getLogger("lightning_aug").info(said())


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """The callbacks of ``cfg.callbacks`` (a dict keyed by name), in the order of their keys."""
    return [instantiate(spec, _convert_="all") for spec in (cfg.get("callbacks") or {}).values()]


def build_model(cfg: DictConfig, datamodule: AugDataModule) -> Any:
    """The LightningModule; ``num_classes: null`` is taken from the DataModule."""
    overrides = {"num_classes": datamodule.num_classes} if cfg.model.get("num_classes") is None else {}
    return instantiate(cfg.model, _convert_="all", **overrides)


@contextmanager
def config_errors(app: str) -> Iterator[None]:
    """Turn a bad configuration found while building (a missing value, an unknown target or
    argument, a value our constructors reject) into one clear line on stderr and exit status 2,
    instead of a traceback. Errors during training are not caught."""
    try:
        yield
    except (InstantiationException, OmegaConfBaseException, ValueError, TypeError, FileNotFoundError) as err:
        message = str(err).strip()
        if isinstance(err, InstantiationException):
            cause: BaseException = err
            while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
                cause = cause.__cause__  # Hydra wraps each nested target's error again
            if cause is not err:  # ours name the argument and value: say only that
                message = str(cause).strip()
        message = " ".join(message.split())  # one line
        print(f"{app}: config error: {clean(message)}", file=sys.stderr)
        raise SystemExit(2) from None


@contextmanager
def data_errors(app: str) -> Iterator[None]:
    """Turn a :class:`~lightning_aug.errors.DataError` (bad input data found while running: a
    missing or corrupt shard, a label outside the classes), also one raised in a DataLoader worker,
    into one line on stderr and exit status 2, like a configuration error."""
    from lightning_aug.errors import DataError, one_line

    try:
        yield
    except DataError as err:
        print(f"{app}: data error: {clean(one_line(err))}", file=sys.stderr)
        raise SystemExit(2) from None


def build_batch_path(cfg: DictConfig, app: str) -> tuple[AugDataModule, list[Any]]:
    """The DataModule, prepared and set up for fitting, and the ``BatchTransform`` callbacks of the
    config, exactly as training would use them: what the preview and bench apps show and time."""
    from lightning.pytorch import seed_everything

    from lightning_aug.device.mixing.callback import MixupCallback
    from lightning_aug.device.protocol import BatchTransform

    with config_errors(app):
        check_config(cfg)
        seed_everything(cfg.seed, workers=False)
        datamodule = build_datamodule(cfg)
        transforms = [c for c in build_callbacks(cfg) if isinstance(c, BatchTransform)]
    for transform in transforms:
        if isinstance(transform, MixupCallback) and transform.num_classes is None:
            transform.num_classes = datamodule.num_classes
    with data_errors(app):
        datamodule.prepare_data()
        datamodule.setup("fit")
    return datamodule, transforms
