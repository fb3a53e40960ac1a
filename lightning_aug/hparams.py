"""Constructor arguments as plain data (what a config says), and objects rebuilt from it.

``AugDataModule`` saves its arguments with :func:`describe`: numbers, strings, lists and
``{"_target_": "module.Class", **arguments}`` mappings, never pickled objects. A checkpoint then loads
with ``torch.load(weights_only=True)`` and ``AugDataModule.load_from_checkpoint`` rebuilds the
DataModule (:func:`build`). Objects are described by what makes them:

- classes deriving from :class:`RecordsArguments` (the dataset factories, the device ops): the
  arguments their constructor was called with, recorded at construction;
- dataclasses (``LoaderSettings``): their fields;
- albumentations transforms: their own serialisation (``to_dict``);
- torchvision transforms: the constructor parameters read back from attributes of the same name,
  kept only where a rebuild from them has the same public state (other classes are not built twice:
  their constructors may download or load data);
- importable functions and ``functools.partial`` of them: ``_partial_`` targets; enums: their value.

What none of these describes (a lambda, a local class) is kept as ``{"_unrebuildable_": "..."}``: the
checkpoint still loads, and :func:`build` names the argument to pass instead.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import os
from collections.abc import Mapping
from typing import Any

__all__ = [
    "UNREBUILDABLE",
    "RecordsArguments",
    "build",
    "check_rebuildable",
    "describe",
    "is_spec",
    "saved_arguments",
]

UNREBUILDABLE = "_unrebuildable_"
ROWS_RECORDED = 64  # a longer list of rows (a list of samples) is data: recorded by length and hash


class RecordsArguments:
    """Records the arguments of the outermost ``__init__`` call as ``_init_arguments`` (defaults
    applied), so that :func:`describe` can say how the object was made."""

    _init_arguments: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kw: Any) -> None:
            if "_init_arguments" not in self.__dict__:  # the most derived class's call
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                recorded: dict[str, Any] = {}
                for name, value in list(bound.arguments.items())[1:]:
                    kind = signature.parameters[name].kind
                    if kind is inspect.Parameter.VAR_KEYWORD:
                        recorded.update(value)
                    elif kind is inspect.Parameter.VAR_POSITIONAL:
                        recorded["_args_"] = list(value)
                    else:
                        recorded[name] = value
                self.__dict__["_init_arguments"] = recorded
            init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[method-assign]


def _path(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _importable(obj: Any) -> bool:
    qualname = getattr(obj, "__qualname__", "")
    return bool(getattr(obj, "__module__", None)) and "<" not in qualname and obj.__module__ != "__main__"


def _unrebuildable(obj: Any, why: str) -> dict[str, str]:
    return {UNREBUILDABLE: f"{type(obj).__name__} {obj!r:.200}: {why}"}


def _public_state(obj: Any) -> dict[str, str]:
    state = getattr(obj, "__dict__", {})
    return {k: repr(v) for k, v in state.items() if not k.startswith("_") and k != "training"}


def _from_attributes(obj: Any) -> dict[str, Any] | None:
    """The constructor arguments of ``obj`` read back from its attributes, if a rebuild from them has
    the same public state; ``None`` otherwise."""
    cls = type(obj)
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    arguments: dict[str, Any] = {}
    for name, parameter in parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if hasattr(obj, name):
            arguments[name] = getattr(obj, name)
        elif parameter.default is inspect.Parameter.empty:
            return None
    try:
        rebuilt = cls(**arguments)
    except Exception:  # the attributes are not what the constructor takes
        return None
    if _public_state(rebuilt) != _public_state(obj) or repr(rebuilt) != repr(obj):
        return None
    return arguments


def _is_transform(obj: Any) -> bool:
    """A torchvision (v2 or v1) transform: the objects read back by building them again. Other classes
    may download or load data in their constructor, so they are not built twice."""
    module = type(obj).__module__
    return module.startswith("torchvision.transforms")


def describe(obj: Any) -> Any:
    """``obj`` as plain data that :func:`build` turns back into an equal object (see the module)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return {"_target_": _path(type(obj)), "_args_": [obj.value]}
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return {str(key): describe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        if len(obj) > ROWS_RECORDED and all(isinstance(v, (list, tuple)) for v in obj[:8]):
            import hashlib

            digest = hashlib.sha256(repr(obj).encode()).hexdigest()[:16]
            said = f"a list of {len(obj)} rows (SHA-256 {digest}): data, not recorded; pass it again"
            return {UNREBUILDABLE: said}
        return [describe(value) for value in obj]
    if isinstance(obj, RecordsArguments) and "_init_arguments" in obj.__dict__:
        if not _importable(type(obj)):
            return _unrebuildable(obj, "its class cannot be imported")
        arguments = obj.describe_arguments() if hasattr(obj, "describe_arguments") else obj._init_arguments
        return {"_target_": _path(type(obj)), **describe(arguments)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: describe(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
        return {"_target_": _path(type(obj)), **fields}
    if isinstance(obj, functools.partial):
        if obj.args or not _importable(obj.func):
            return _unrebuildable(obj, "a partial with positional arguments or of a local function")
        return {"_target_": _path(obj.func), "_partial_": True, **describe(obj.keywords)}
    if inspect.isfunction(obj) or inspect.isclass(obj):
        if not _importable(obj):
            return _unrebuildable(obj, "a lambda or local definition cannot be imported")
        return {"_target_": _path(obj), "_partial_": True}
    if hasattr(obj, "to_dict") and type(obj).__module__.startswith(("albumentations", "lightning_aug")):
        try:
            spec = dict(obj.to_dict()["transform"])
        except Exception:  # a transform albumentations cannot serialise
            return _unrebuildable(obj, "albumentations cannot serialise it")
        spec.pop("__class_fullname__", None)
        return {"_target_": _path(type(obj)), **describe(spec)}
    if _importable(type(obj)) and _is_transform(obj):  # cheap to build again, no side effects
        arguments = _from_attributes(obj)
        if arguments is not None:
            return {"_target_": _path(type(obj)), **describe(arguments)}
    return _unrebuildable(obj, "its constructor arguments cannot be read back")


def _find_unrebuildable(spec: Any, where: str) -> str | None:
    if isinstance(spec, Mapping):
        if UNREBUILDABLE in spec:
            return f"{where}: {spec[UNREBUILDABLE]}"
        for key, value in spec.items():
            found = _find_unrebuildable(value, f"{where}.{key}")
            if found:
                return found
    elif isinstance(spec, list):
        for i, value in enumerate(spec):
            found = _find_unrebuildable(value, f"{where}[{i}]")
            if found:
                return found
    return None


def check_rebuildable(spec: Any, where: str) -> None:
    """Raise where ``spec`` holds an object :func:`describe` could not describe.

    Raises:
        ValueError: naming the argument (``where``) and what it was.
    """
    missing = _find_unrebuildable(spec, where)
    if missing is not None:
        argument = where.split(".")[0].split("[")[0]
        raise ValueError(
            f"cannot rebuild {missing}; pass this argument yourself "
            f"(e.g. AugDataModule.load_from_checkpoint(path, {argument}=...))"
        )


def build(spec: Any, where: str) -> Any:
    """The object a :func:`describe` result (or any ``_target_`` config) stands for; anything else is
    returned as it is.

    Raises:
        ValueError: the spec holds an object that was not describable, named by ``where``.
        DataError: building it found bad data (a missing folder, missing credentials).
    """
    if not isinstance(spec, (Mapping, list)):
        return spec
    check_rebuildable(spec, where)
    from lightning_aug.trust import check_in_context

    check_in_context(spec, where)  # a checkpoint's spec: only what it may build (lightning_aug.trust)
    if isinstance(spec, Mapping) and "_target_" in spec:
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate

        from lightning_aug.errors import DataError

        try:
            return instantiate(dict(spec), _convert_="all")
        except InstantiationException as err:
            cause: BaseException | None = err
            while isinstance(cause, InstantiationException):
                cause = cause.__cause__
            if isinstance(cause, DataError):  # bad data named by us: said as it is, not wrapped
                raise cause from None
            raise
    return spec


def is_spec(value: Any) -> bool:
    """Whether ``value`` is a ``_target_`` (or unrebuildable) mapping."""
    return isinstance(value, Mapping) and ("_target_" in value or UNREBUILDABLE in value)


def saved_arguments(arguments: Mapping[str, Any], left_out_when_none: tuple[str, ...] = ()) -> dict[str, Any]:
    """A constructor's ``arguments`` as what ``save_hyperparameters`` keeps: each checked to be
    rebuildable (:func:`check_rebuildable`), described as plain data (:func:`describe`), credentials
    redacted (:func:`lightning_aug.secrets.redact`); the names of ``left_out_when_none`` left out where
    ``None`` (merged with a model's for the logger: no clash over a ``None``).

    Raises:
        ValueError: an argument that could not be saved (a checkpoint's, naming it).
    """
    from lightning_aug.secrets import redact

    for name, value in arguments.items():
        check_rebuildable(value, name)
    return {
        name: redact(describe(value))
        for name, value in arguments.items()
        if not (value is None and name in left_out_when_none)
    }
