"""What the Hydra apps share: strict config checks and building the objects from one config."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lightning_aug.cli import clean
from lightning_aug.datamodule import AugDataModule
from lightning_aug.targets import check_target_args

__all__ = [
    "MODEL_APP_KEYS",
    "build_batch_path",
    "build_callbacks",
    "build_datamodule",
    "build_loggers",
    "build_model",
    "check_config",
    "check_resume",
    "config_errors",
    "data_errors",
    "log_through_hydra",
    "untrusted_errors",
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
    container = cast(dict, OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    if isinstance(container.get("model"), Mapping):
        container["model"] = _check_model(container["model"])
    _walk(container, "")
    check_accelerator(container.get("trainer"))
    for name, spec in (container.get("callbacks") or {}).items():
        _check_named_target(spec, f"callbacks.{name}", "callback")
    for name, spec in _logger_specs(container.get("logger")).items():
        _check_logger(spec, name)


def _check_named_target(spec: Any, where: str, kind: str) -> None:
    if not (isinstance(spec, Mapping) and "_target_" in spec):
        raise ValueError(f"{where} has no _target_: every {kind} entry must name its class")


# keys of the model group that the apps read (never passed to the module)
MODEL_APP_KEYS = ("compile", "channels_last")
_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_CLASSIFIER = "lightning_aug.ImageClassifier"


def _model_options(spec: Mapping[str, Any]) -> tuple[dict[str, Any], bool | str, bool | str]:
    """``(constructor arguments, compile, channels_last)`` of the model group: the app keys
    checked and split off.

    Raises:
        ValueError: a bad ``compile`` or ``channels_last``.
    """
    compile_ = spec.get("compile", False)
    if not (isinstance(compile_, bool) or compile_ in _COMPILE_MODES):
        raise ValueError(
            f"model.compile must be true, false or a torch.compile mode {list(_COMPILE_MODES)}, "
            f"got {compile_!r}"
        )
    channels_last = spec.get("channels_last", "auto")
    if not (isinstance(channels_last, bool) or channels_last == "auto"):
        raise ValueError(f"model.channels_last must be true, false or auto, got {channels_last!r}")
    return {k: v for k, v in spec.items() if k not in MODEL_APP_KEYS}, compile_, channels_last


def _check_model(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The model's constructor arguments (:func:`_model_options`), checked against the target. A
    ``_target_`` swapped on a preset of ImageClassifier's arguments is told to start from
    ``model=custom``.

    Raises:
        ValueError: a bad ``compile`` or ``channels_last``, an unknown target or argument.
    """
    args, _, _ = _model_options(spec)
    arch = args.get("arch")
    if args.get("_target_") == _CLASSIFIER and arch not in (None, "small_cnn", "resnet18", "timm"):
        from lightning_aug.models import _is_timm_name

        if _is_timm_name(arch):
            raise ValueError(
                f"model.arch={arch} is not a built-in architecture (small_cnn, resnet18) but a timm model: "
                f"model=timm model.name={arch}"
            )
    try:
        check_target_args(args, "model")
    except ValueError as err:
        target = args.get("_target_")
        if target != _CLASSIFIER and "arch" in args and "unknown argument" in str(err):
            raise ValueError(
                f"{err}. Those are ImageClassifier's arguments, from the model preset; for your own "
                f"LightningModule start from model=custom: model=custom model._target_={target} "
                "(+model.<argument>=... for its own arguments)"
            ) from None
        raise
    return args


def _logger_specs(spec: Any) -> dict[str, Any]:
    """The loggers of ``cfg.logger``: one mapping per logger keyed by name (``logger=[csv,tensorboard]``),
    or one logger's own ``_target_`` mapping (named ``logger``)."""
    if not spec:
        return {}
    if isinstance(spec, Mapping) and "_target_" in spec:
        return {"": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"logger must be a mapping of loggers keyed by name, got {spec!r}")
    return dict(spec)


# the package each of Lightning's loggers needs, and the extra that installs it
_LOGGER_PACKAGES = {
    "TensorBoardLogger": (("tensorboard", "tensorboardX"), "loggers"),
    "WandbLogger": (("wandb",), "loggers"),
    "MLFlowLogger": (("mlflow",), "loggers"),
    "CometLogger": (("comet_ml",), None),
    "NeptuneLogger": (("neptune",), None),
}


def _check_logger(spec: Any, name: str) -> None:
    import importlib.util

    where = f"logger.{name}" if name else "logger"
    _check_named_target(spec, where, "logger")
    needs = _LOGGER_PACKAGES.get(str(spec["_target_"]).rsplit(".", 1)[-1])
    if needs and not any(importlib.util.find_spec(package) for package in needs[0]):
        install = f"pip install 'lightning-aug[{needs[1]}]'" if needs[1] else f"pip install {needs[0][0]}"
        raise ValueError(
            f"{where} ({spec['_target_']}) needs the {needs[0][0]} package, not installed: {install}"
        )


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


def build_callbacks(cfg: DictConfig, datamodule: AugDataModule | None = None) -> list[Callback]:
    """The callbacks of ``cfg.callbacks`` (a dict keyed by name), in the order of their keys; a
    ``multi_label: null`` (mixing) follows the data's (``datamodule.multi_label``)."""
    specs = cast(dict, OmegaConf.to_container(cfg.get("callbacks") or {}, resolve=True))
    for name, spec in specs.items():
        if isinstance(spec, dict) and "multi_label" in spec and datamodule is not None:
            spec["multi_label"] = _follow_the_data(spec["multi_label"], datamodule, f"callbacks.{name}")
        elif isinstance(spec, dict) and spec.get("multi_label", False) is None:
            spec["multi_label"] = False
    return [instantiate(spec, _convert_="all") for spec in specs.values()]


def build_loggers(cfg: DictConfig) -> list[Any] | bool:
    """The loggers of ``cfg.logger`` (``False``: none), each writing under its own folder of the run,
    their experiments started with the config's credentials redacted from the command line they may
    record (:func:`lightning_aug.secrets.start_loggers`)."""
    from pathlib import Path

    from lightning_aug.secrets import secret_values, start_loggers

    spec = cfg.get("logger")
    specs = _logger_specs(OmegaConf.to_container(spec, resolve=True) if spec else None)
    for spec in specs.values():  # an SQLite tracking file (mlflow): its folder made, as a file store's is
        uri = spec.get("tracking_uri")
        if isinstance(uri, str) and uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    loggers = [instantiate(spec, _convert_="all") for spec in specs.values()]
    start_loggers(loggers, secret_values(OmegaConf.to_container(cfg, resolve=True)))
    return loggers or False


def build_model(cfg: DictConfig, datamodule: AugDataModule) -> Any:
    """The LightningModule of ``cfg.model``: ``num_classes`` from the DataModule when the module takes
    it and the config leaves it out or null; then the app keys: ``channels_last`` (``auto``: on a
    GPU trainer) converts the weights, ``compile`` (true or a mode) wraps it in ``torch.compile``."""
    import torch
    from hydra.utils import get_class

    spec = cast(dict, OmegaConf.to_container(cfg.model, resolve=True, throw_on_missing=True))
    args, compile_, channels_last = _model_options(spec)
    if args.get("num_classes") is None and _takes(get_class(args["_target_"]), "num_classes"):
        args["num_classes"] = datamodule.num_classes
    if "multi_label" in args:  # the one switch: the data's
        args["multi_label"] = _follow_the_data(args["multi_label"], datamodule, "model")
    model = instantiate(args, _convert_="all")
    if channels_last == "auto":
        channels_last = _on_gpu(cfg.get("trainer"))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_:
        model = torch.compile(model, mode=None if compile_ is True else compile_)
    return model


def _follow_the_data(given: Any, datamodule: AugDataModule, where: str) -> Any:
    """A ``multi_label`` of the model or a callback: the data's where it is null; refused where it
    says otherwise.

    Raises:
        ValueError: ``given`` contradicts the data's ``multi_label``.
    """
    if given is None:
        return datamodule.multi_label
    if isinstance(given, bool) and given != datamodule.multi_label:
        raise ValueError(
            f"{where}.multi_label={str(given).lower()}, but the data is "
            f"{'multi-label' if datamodule.multi_label else 'single-label'} "
            f"(data.multi_label={str(datamodule.multi_label).lower()}): leave {where}.multi_label out, it "
            "follows the data"
        )
    return given


def _takes(cls: Any, name: str) -> bool:
    import inspect

    params = inspect.signature(cls).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _on_gpu(trainer: Any) -> bool:
    import torch

    accelerator = str((trainer or {}).get("accelerator", "auto"))
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def check_resume(ckpt_path: Any, cfg: Any) -> None:
    """Refuse a checkpoint to resume from that names code (:mod:`lightning_aug.trust`) other than the
    trusted modules and the modules of the classes this config's model and DataModule name (the
    user's own), or that holds a pickle; before Lightning reads it.

    Raises:
        ValueError: naming the saved argument and the name it holds.
        FileNotFoundError: ``ckpt_path`` is not a file.
    """
    from lightning_aug.trust import config_trust, read_checkpoint

    config = cast(dict, OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg)
    own = {key: config.get(key) for key in ("model", "datamodule", "data")}
    advice = "A resumed run builds only these and the classes of the modules its own config names"
    read_checkpoint(ckpt_path, config_trust(own), f"ckpt_path {str(ckpt_path)!r}", advice=advice)


@contextmanager
def config_errors(app: str) -> Iterator[None]:
    """Turn a bad configuration found while building (a missing value, an unknown target or
    argument, a value our constructors reject) into one clear line on stderr and exit status 2,
    instead of a traceback. Errors during training are not caught."""
    from lightning_aug.errors import DownloadError

    try:
        yield
    except (
        InstantiationException,
        OmegaConfBaseException,
        ValueError,
        TypeError,
        FileNotFoundError,
        DownloadError,
    ) as err:
        message = str(err).strip()
        cause: BaseException = err
        if isinstance(err, InstantiationException):
            while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
                cause = cause.__cause__  # Hydra wraps each nested target's error again
            if cause is not err:  # ours name the argument and value: say only that
                message = str(cause).strip()
        kind = "download error" if isinstance(cause, DownloadError) else "config error"
        message = " ".join(message.split())  # one line
        print(f"{app}: {kind}: {clean(message)}", file=sys.stderr)
        raise SystemExit(2) from None


@contextmanager
def data_errors(app: str) -> Iterator[None]:
    """Turn what a user fixes that is found while running into one line on stderr, on a line of its
    own (after a progress bar), and exit status 2, like a configuration error: a
    :class:`~lightning_aug.errors.DataError` (a missing or corrupt shard, a label outside the classes;
    also one raised in a DataLoader worker) or a missing file (``data error:``), a
    :class:`~lightning_aug.errors.SettingError` (``config error:``)."""
    from lightning_aug.errors import DataError, DownloadError, SettingError, one_line

    try:
        yield
    except (DataError, FileNotFoundError, SettingError, DownloadError) as err:
        if sys.stdout.isatty():  # the progress bar's line ends first
            print(file=sys.stdout, flush=True)
        kinds = {SettingError: "config error", DownloadError: "download error"}
        kind = next((v for k, v in kinds.items() if isinstance(err, k)), "data error")
        print(f"{app}: {kind}: {clean(one_line(err))}", file=sys.stderr)
        raise SystemExit(2) from None


@contextmanager
def untrusted_errors(app: str) -> Iterator[None]:
    """Turn the refusal of a checkpoint (:class:`~lightning_aug.trust.Untrusted`) into one line on
    stderr and exit status 2, for the entries that do not run under :func:`config_errors` (the
    LightningCLI)."""
    from lightning_aug.trust import Untrusted

    try:
        yield
    except Untrusted as err:
        print(f"{app}: config error: {clean(' '.join(str(err).split()))}", file=sys.stderr)
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
        transforms = [c for c in build_callbacks(cfg, datamodule) if isinstance(c, BatchTransform)]
    for transform in transforms:
        if isinstance(transform, MixupCallback) and transform.num_classes is None:
            transform.num_classes = datamodule.num_classes
    with data_errors(app):
        datamodule.prepare_data()
        datamodule.setup("fit")
    return datamodule, transforms
