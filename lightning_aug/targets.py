"""Objects from ``{"_target_": "module.Class", **arguments}`` mappings, checked before they are built.

Hydra's ``instantiate`` builds whatever a mapping names; albumentations only warns about unknown
arguments. Here a typo in a target, an argument the class does not take, or a value of the wrong
simple type (per the class's annotations) is an error naming the config path, raised before building.

Configs the user runs are trusted: they may name any class. A checkpoint from elsewhere is not: what
may be built from it is decided in :mod:`lightning_aug.trust`, and checked here again while one is built.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["build_transform", "check_target_args", "nearest"]


def check_target_args(spec: Mapping[str, Any], where: str) -> None:
    """Check a ``{"_target_": ..., **kwargs}`` spec against the target's signature before building it.

    albumentations only warns about unknown arguments; this turns a typo into an error that names it.

    Raises:
        ValueError: if the target cannot be imported or an argument is not in its signature.
    """
    from hydra.utils import get_object

    from lightning_aug.trust import check_in_context

    check_in_context(spec, where)  # a checkpoint's: before the target's module is imported
    target = spec.get("_target_")
    if not isinstance(target, str):
        raise ValueError(f"{where}: expected a mapping with a '_target_' class path, got {dict(spec)!r}")
    import logging

    quiet = logging.getLogger("hydra.utils")  # it logs the failure too: the error below says it once
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # (setLevel: it clears the loggers' cached levels too)
    try:
        obj = get_object(target)
    except Exception as err:  # hydra raises ImportError or others depending on the path
        hint = ""
        if "No module named" in str(err):
            hint = (
                "; a module of your own is imported from the current folder (run the app from the "
                "folder that holds it) or from PYTHONPATH"
            )
        said = " ".join(str(err).split())
        raise ValueError(f"{where}: unknown transform target {target!r} ({said}){hint}") from None
    finally:
        quiet.setLevel(level)
    params = inspect.signature(obj).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in spec if not k.startswith("_") and k not in params)
        if unknown:
            raise ValueError(
                f"{where}: unknown argument(s) {unknown} for {target}{nearest(unknown, params)}; "
                f"accepted: {sorted(params)}"
            )
    hints = _type_hints(obj)
    for key, value in spec.items():
        if key in hints and not _matches(value, hints[key]):
            got = f"{value!r} ({type(value).__name__})"
            raise ValueError(f"{where}.{key}: {target} expects {_describe(hints[key])}, got {got}")


def nearest(names: Sequence[str], known: Any) -> str:
    """``" (did you mean max_epochs?)"`` for the first of ``names`` that is close to one of ``known``;
    empty where none is."""
    import difflib

    for name in names:
        match = difflib.get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.6)
        if match:
            return f" (did you mean {match[0]}?)"
    return ""


_SCALARS = (int, float, bool, str, type(None))


def _type_hints(obj: Any) -> dict[str, Any]:
    """The parameter annotations of a class or function, resolved; empty when they cannot be."""
    try:
        return typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # unresolvable forward references: no type check, the constructor still validates
        return {}


def _options(hint: Any) -> list[Any] | None:
    """The simple alternatives of ``hint`` (scalars and Literals), or ``None`` if it has others."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options: list[Any] = []
        for arg in typing.get_args(hint):
            part = _options(arg)
            if part is None:
                return None
            options += part
        return options
    if origin is Literal or hint in _SCALARS:
        return [hint]
    return None


def _matches(value: Any, hint: Any) -> bool:
    """Whether a config value fits a simple annotation; annotations with other types always match."""
    options = _options(hint)
    if options is None or value is None or isinstance(value, (Mapping, list)):
        return True  # None is left to the constructor: the apps fill some (num_classes) themselves
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    for option in options:
        literal = typing.get_origin(option) is Literal
        if (
            (literal and value in typing.get_args(option))
            or (option is float and number)
            or (option is int and number and isinstance(value, int))
            or (not literal and option in (bool, str) and type(value) is option)
        ):
            return True
    return False


def _describe(hint: Any) -> str:
    names = [
        repr(list(typing.get_args(o))) if typing.get_origin(o) is Literal else getattr(o, "__name__", str(o))
        for o in _options(hint) or [hint]
    ]
    return " or ".join(names)


def build_transform(transform: Any, where: str) -> Any:
    """``transform`` itself, or the object a ``{"_target_": ...}`` mapping describes (checked first)."""
    if isinstance(transform, Mapping):
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate

        check_target_args(transform, where)
        try:
            return instantiate(dict(transform), _convert_="all")
        except InstantiationException as err:  # the constructor's own message, with where it came from
            cause = err.__cause__ if err.__cause__ is not None else err
            raise ValueError(f"{where}: {transform['_target_']}: {cause}") from cause
    return transform
