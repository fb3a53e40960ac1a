"""What a checkpoint from elsewhere may build: decided on what each name resolves to, not on its spelling.

A checkpoint's saved arguments (``hyper_parameters``, ``datamodule_hyper_parameters``, an
``hparams_file``) are plain data, but some of it names code: ``_target_`` (Hydra), ``class_path``
(jsonargparse) and ``_instantiator`` (LightningCLI). Building what they name runs it. Before anything
is built, :func:`check_hparams` walks every mapping and list of those arguments and resolves each name
to the object it stands for (importing only modules inside the trusted ones, stopping at the first
step that leaves them), then allows it only if it is

- a class defined in a trusted module (its ``__module__``): :data:`TRUSTED_MODULES` and the modules a
  caller adds in ``trusted`` (``"my_pkg"``, ``"my_pkg.transforms"``), or
- a callable listed in ``trusted`` by its full path (``"my_pkg.transforms.to_gray"``).

A function, or a class of another module reached through a trusted module's attribute
(``lightning_aug.data.datasets.folder.np.load`` is ``numpy.load``), is refused, and so is an
OmegaConf interpolation (``${oc.env:...}`` would read the environment). ``_instantiator`` may only be
LightningCLI's own ``instantiate_module``, and it is not used: our classes rebuild from their own
saved arguments (jsonargparse would import plain strings given for callables). The first refusal
raises a ``ValueError`` naming the argument, the name and what it resolves to.

Every loading path goes through :func:`read_checkpoint`: ``AugDataModule.load_from_checkpoint``,
``ImageClassifier.load_from_checkpoint``, ``lightning-aug-predict``, a resumed ``lightning-aug-train``
(``ckpt_path``) and the LightningCLI's ``--ckpt_path``.

Example::

    >>> resolve("lightning_aug.data.datasets.ImageFolder", Trust()).__name__
    'ImageFolder'
    >>> resolve("lightning_aug.data.datasets.folder.np.load", Trust())
    Traceback (most recent call last):
    ...
    lightning_aug.trust.Untrusted: 'lightning_aug.data.datasets.folder.np.load', which walks into module numpy
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "HPARAM_KEYS",
    "TRUSTED_MODULES",
    "Trust",
    "Untrusted",
    "arguments",
    "check_checkpoint",
    "check_hparams",
    "check_in_context",
    "config_trust",
    "load_checked",
    "read_checkpoint",
    "resolve",
    "trusted_context",
]

# the modules whose classes a checkpoint may name: ours, and the transform libraries' transforms
TRUSTED_MODULES: tuple[str, ...] = ("lightning_aug", "torchvision.transforms", "albumentations")
# the keys whose string value names code, in any mapping of saved arguments
TARGET_KEYS = ("_target_", "class_path", "_class_path")
INSTANTIATOR = "_instantiator"
# LightningCLI's rebuild function: the only ``_instantiator`` a checkpoint may hold
_INSTANTIATORS = ("lightning.pytorch.cli.instantiate_module", "pytorch_lightning.cli.instantiate_module")
# the saved arguments of a Lightning checkpoint: the module's and the DataModule's
HPARAM_KEYS = ("hyper_parameters", "datamodule_hyper_parameters")


class Untrusted(ValueError):
    """A name that resolves to something a checkpoint may not build."""


def _within(module: str, modules: Iterable[str]) -> bool:
    return any(module == m or module.startswith(m + ".") for m in modules)


@dataclass(frozen=True)
class Trust:
    """Which modules' classes (``modules``) and which exact callables (``factories``, full paths) may
    be built from a checkpoint, beside :data:`TRUSTED_MODULES`."""

    modules: tuple[str, ...] = ()
    factories: tuple[str, ...] = ()

    @classmethod
    def of(cls, trusted: Sequence[str] = ()) -> Trust:
        """A trust from the caller's list: each entry a module (``"my_pkg"``, ``"my_pkg."``: its classes)
        or the full path of one class or function.

        Raises:
            TypeError: ``trusted`` is a string or holds a non-string.
        """
        if isinstance(trusted, str) or not all(isinstance(t, str) and t.strip(".") for t in trusted):
            raise TypeError(f"trusted_targets must be a list of module or callable paths, got {trusted!r}")
        modules, factories = [], []
        for entry in trusted:
            name = entry.rstrip(".")
            if entry.endswith("."):
                modules.append(name)
                continue
            try:
                importlib.import_module(name)
                modules.append(name)
            except ImportError:  # not a module: the path of one callable
                factories.append(name)
        return cls(tuple(modules), tuple(factories))

    def __or__(self, other: Trust) -> Trust:
        return Trust(
            tuple(dict.fromkeys(self.modules + other.modules)),
            tuple(dict.fromkeys(self.factories + other.factories)),
        )

    @property
    def all_modules(self) -> tuple[str, ...]:
        return (*TRUSTED_MODULES, *self.modules)

    def may_import(self, name: str) -> bool:
        """Whether resolving may import module ``name``: inside a trusted module, a parent package of
        one (``torchvision`` for ``torchvision.transforms``), or the module of a listed callable."""
        return _within(name, self.all_modules) or any(
            m == name or m.startswith(name + ".") for m in (*self.all_modules, *self.factories)
        )

    def allows(self, obj: Any, path: str) -> bool:
        """Whether a resolved object may be built: a class of a trusted module, or a listed callable."""
        listed = (resolve(f, Trust(factories=(f,)), check=False) for f in self.factories)
        if any(obj is f for f in listed):
            return True
        return inspect.isclass(obj) and _within(str(getattr(obj, "__module__", "")), self.all_modules)


def _what(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return f"module {obj.__name__}"
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else type(obj).__name__
    return f"{module}.{name} (a {kind} of module {module})"


def resolve(path: Any, trust: Trust, check: bool = True) -> Any:
    """The object a dotted ``path`` names, imported and walked attribute by attribute as Hydra and
    jsonargparse would, but importing only modules that ``trust`` allows and stopping where the walk
    reaches a module outside them; with ``check``, the object must be one ``trust`` allows.

    Raises:
        Untrusted: what ``path`` resolves to (or would import) is not trusted, or it does not resolve.
    """
    if not isinstance(path, str) or not path or not all(p.isidentifier() for p in path.split(".")):
        raise Untrusted(f"{path!r}, which is not a dotted path of a class")
    parts = path.split(".")
    obj: Any = None
    for i, part in enumerate(parts):
        name = ".".join(parts[: i + 1])
        if obj is None or (isinstance(obj, types.ModuleType) and not hasattr(obj, part)):
            if not trust.may_import(name):
                raise Untrusted(f"{path!r}, which would import module {name}, outside the trusted modules")
            try:
                obj = importlib.import_module(name)
            except ImportError as err:
                raise Untrusted(f"{path!r}, which does not resolve ({err})") from None
            continue
        try:  # a trusted module's own __getattr__ may run; a class's attributes are read statically
            obj = (
                getattr(obj, part) if isinstance(obj, types.ModuleType) else inspect.getattr_static(obj, part)
            )
        except AttributeError:
            raise Untrusted(f"{path!r}, which does not resolve (no {part!r} in {_what(obj)})") from None
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, types.ModuleType) and not _within(obj.__name__, trust.all_modules):
            raise Untrusted(f"{path!r}, which walks into module {obj.__name__}")
    if check and not trust.allows(obj, path):
        raise Untrusted(f"{path!r}, which is {_what(obj)}")
    return obj


def _instantiator_ok(value: Any) -> bool:
    if value not in _INSTANTIATORS:
        return False
    module, _, name = str(value).rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return False
    from lightning.pytorch.cli import instantiate_module

    return found is instantiate_module


def _refuse(where: str, source: str, what: str, trust: Trust, advice: str | None) -> Untrusted:
    argument = where.split(".")[0].split("[")[0]
    yours = [*trust.modules, *trust.factories]
    advice = advice or (
        f"Pass {argument} yourself (load_from_checkpoint(path, {argument}=...)), or, if you trust the "
        "checkpoint, add the module or callable to trusted_targets"
    )
    return Untrusted(
        f"{where}: {source} names {what}: building it could run code the checkpoint's author chose, and "
        f"only classes of the modules {[*TRUSTED_MODULES, *yours]} are built from a checkpoint. {advice}"
    )


def check_hparams(hparams: Any, where: str, source: str, trust: Trust, advice: str | None = None) -> None:
    """Refuse saved arguments that name anything ``trust`` does not allow (see the module), before
    anything is built.

    Raises:
        Untrusted: naming the argument (``where``), the name, what it resolves to, and what to do.
    """
    if isinstance(hparams, Mapping):
        for key, value in hparams.items():
            here = f"{where}.{key}" if where else str(key)
            if key == INSTANTIATOR:
                if not _instantiator_ok(value):
                    raise _refuse(here, source, f"the instantiator {value!r}", trust, advice)
            elif key in TARGET_KEYS:
                try:
                    resolve(value, trust)
                except Untrusted as err:
                    raise _refuse(here, source, str(err), trust, advice) from None
            else:
                check_hparams(value, here, source, trust, advice)
    elif isinstance(hparams, (list, tuple)):
        for i, value in enumerate(hparams):
            check_hparams(value, f"{where}[{i}]", source, trust, advice)
    elif isinstance(hparams, str) and "${" in hparams:
        raise _refuse(where, source, f"{hparams!r}, an interpolation that would be resolved", trust, advice)


def read_checkpoint(
    path: Any,
    trust: Trust,
    source: str | None = None,
    map_location: Any = "cpu",
    weights_only: bool | None = True,
    replaced: Mapping[str, Iterable[str]] | None = None,
    advice: str | None = None,
) -> dict[str, Any]:
    """A checkpoint read without running code (``weights_only=True``: no pickle) and checked by
    :func:`check_hparams`; ``replaced`` names, per key of :data:`HPARAM_KEYS`, the arguments the
    caller passes itself (not checked: they are not built from the file); ``advice`` ends a refusal
    (default: how to do so from Python).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        Untrusted: the checkpoint names code it may not (see the module).
        ValueError: the file is not a checkpoint (a pickle needing code, say).
    """
    from lightning.fabric.utilities.cloud_io import _load, get_filesystem

    source = source or f"checkpoint {str(path)!r}"
    if isinstance(path, (str, Path)) and not str(path).startswith(("http://", "https://")):
        filesystem = get_filesystem(path)
        if not filesystem.isfile(str(path)):
            raise FileNotFoundError(f"{source} is not a file")
    try:
        checkpoint = _load(path, map_location=map_location, weights_only=weights_only)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch's UnpicklingError for a pickle that needs code, a truncated zip, ...
        what = " ".join(str(err).split())[:300]
        raise ValueError(f"{source} cannot be read as a checkpoint without running code: {what}") from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{source} is not a checkpoint (a {type(checkpoint).__name__}, not a dict)")
    check_checkpoint(checkpoint, trust, source, replaced, advice)
    return checkpoint


def check_checkpoint(
    checkpoint: Mapping[str, Any],
    trust: Trust,
    source: str,
    replaced: Mapping[str, Iterable[str]] | None = None,
    advice: str | None = None,
) -> None:
    """:func:`check_hparams` on every saved argument of ``checkpoint`` but those in ``replaced``."""
    for key in HPARAM_KEYS:
        hparams = checkpoint.get(key) or {}
        if not isinstance(hparams, Mapping):
            raise Untrusted(f"{source}: {key} is a {type(hparams).__name__}, expected a mapping")
        skip = set((replaced or {}).get(key, ()))
        check_hparams({k: v for k, v in hparams.items() if k not in skip}, "", source, trust, advice)


# the trust and source of the checkpoint being built, for the second check inside the build
_CONTEXT: ContextVar[tuple[Trust, str] | None] = ContextVar("lightning_aug_trust", default=None)


@contextlib.contextmanager
def trusted_context(trust: Trust, source: str) -> Iterator[None]:
    """Within this block, :func:`check_in_context` (called by :func:`lightning_aug.hparams.build` and
    :func:`lightning_aug.targets.check_target_args`) refuses what ``trust`` does not allow: the second
    line of defence while a checked checkpoint's arguments are built."""
    token = _CONTEXT.set((trust, source))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def check_in_context(spec: Any, where: str) -> None:
    """:func:`check_hparams` of ``spec`` inside :func:`trusted_context`; nothing outside one (a config
    the user runs may name any class)."""
    context = _CONTEXT.get()
    if context is not None:
        check_hparams(spec, where, context[1], context[0])


def load_checked(
    cls: Any,
    checkpoint_path: Any,
    map_location: Any,
    hparams_file: Any,
    weights_only: bool | None,
    trusted: Sequence[str],
    kwargs: dict[str, Any],
    strict: bool | None = None,
) -> Any:
    """Lightning's ``load_from_checkpoint`` for ``cls`` (a LightningModule or LightningDataModule), with
    the checkpoint read by :func:`read_checkpoint` and checked before anything is built; ``kwargs``
    replace saved arguments (and are not checked: they are the caller's). An ``_instantiator`` entry
    (checked) is not used: ``cls`` is built from its saved arguments.

    Raises:
        Untrusted: the checkpoint (or ``hparams_file``) names code it may not.
    """
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.core.saving import _default_map_location, _load_state

    trust = Trust.of(trusted)
    source = f"checkpoint {str(checkpoint_path)!r}"
    key = cls.CHECKPOINT_HYPER_PARAMS_KEY
    checkpoint = read_checkpoint(
        checkpoint_path, trust, source, map_location or _default_map_location, weights_only, {key: kwargs}
    )
    if hparams_file is not None:
        hparams = _read_hparams_file(hparams_file)
        check_hparams(
            {k: v for k, v in hparams.items() if k not in kwargs},
            "",
            f"hparams_file {str(hparams_file)!r}",
            trust,
        )
        checkpoint[key] = hparams
    checkpoint[key] = {**arguments(checkpoint.get(key) or {}), **kwargs}  # cls itself is built
    with trusted_context(trust, source):
        obj = _load_state(cls, checkpoint, strict=strict, **kwargs)
    if isinstance(obj, pl.LightningModule) and checkpoint.get(
        "state_dict"
    ):  # as Lightning: to the weights' device
        first = next((t for t in checkpoint["state_dict"].values() if isinstance(t, torch.Tensor)), None)
        if first is not None:
            obj = obj.to(first.device)
    return obj


def arguments(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Saved arguments without the entries LightningCLI adds to say how it built the object
    (``_instantiator``, ``_class_path``: checked by :func:`check_hparams`, never used)."""
    return {k: v for k, v in hparams.items() if k not in (INSTANTIATOR, "_class_path")}


def _read_hparams_file(path: Any) -> dict[str, Any]:
    """An ``hparams_file`` as plain data: YAML read safely (no Python tags), or Lightning's CSV."""
    from lightning.pytorch.core.saving import load_hparams_from_tags_csv

    suffix = str(path).rsplit(".", 1)[-1].lower()
    if suffix == "csv":
        return dict(load_hparams_from_tags_csv(path))
    if suffix not in ("yaml", "yml"):
        raise ValueError(f"hparams_file must be a .yaml, .yml or .csv file, got {str(path)!r}")
    import yaml

    with open(path) as handle:
        loaded = yaml.safe_load(handle) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"hparams_file {str(path)!r} holds a {type(loaded).__name__}, expected a mapping")
    return loaded


def config_trust(config: Any, trusted: Sequence[str] = ()) -> Trust:
    """The modules of the classes a config the user runs names (its ``_target_`` and ``class_path``
    values under any key), with ``trusted``: what a resumed run may find in its checkpoint. A name the
    config gives that does not import is left out (the config's own checks say so)."""
    from hydra.utils import get_object

    modules: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in TARGET_KEYS and isinstance(value, str):
                    try:
                        obj = get_object(value)
                    except Exception:  # reported by the config checks, not here
                        continue
                    module = getattr(obj, "__module__", None)
                    if inspect.isclass(obj) and module:
                        modules.append(module)
                else:
                    walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(config)
    return Trust.of(trusted) | Trust(tuple(dict.fromkeys(modules)))


class TrustedLoading:
    """``load_from_checkpoint`` for a ``LightningDataModule`` whose checkpoints come from elsewhere:
    read with ``weights_only=True``, every class it names resolved and checked before anything is
    built (:func:`load_checked`)."""

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: Any,
        map_location: Any = None,
        hparams_file: Any = None,
        weights_only: bool | None = True,
        trusted_targets: Sequence[str] = (),
        **kwargs: Any,
    ) -> Any:
        """The object a checkpoint was trained with, rebuilt from its saved arguments (``kwargs``
        replace saved ones). Only classes of ``lightning_aug``, ``torchvision.transforms``,
        ``albumentations`` and ``trusted_targets`` (modules ``"my_pkg"`` or callables by path) are built.

        Raises:
            ValueError: the checkpoint names anything else, or cannot be read without running code.
        """
        return load_checked(
            cls, checkpoint_path, map_location, hparams_file, weights_only, trusted_targets, kwargs
        )
