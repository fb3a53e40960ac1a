"""Argument checks shared by the constructors: one wording for every error of the same kind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

__all__ = ["check_bool", "check_fraction", "check_int", "check_key", "check_prob", "check_stats", "describe"]


def check_bool(name: str, value: Any) -> bool:
    """Raises:
    TypeError: ``value`` is not a bool (``1`` and ``"yes"`` are not)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


@overload
def check_int(name: str, value: Any, minimum: int, *, optional: Literal[False] = False) -> int: ...


@overload
def check_int(name: str, value: Any, minimum: int, *, optional: bool) -> int | None: ...


def check_int(name: str, value: Any, minimum: int, *, optional: bool = False) -> int | None:
    """Raises:
    ValueError: ``value`` is not an int ``>= minimum`` (bools are not ints here), or ``None`` when
    not ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{' or None' if optional else ''}, got {value!r}")
    return value


def check_prob(name: str, value: Any) -> float:
    """Raises:
    ValueError: ``value`` is not a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_fraction(name: str, value: Any) -> float | None:
    """Raises:
    ValueError: ``value`` is neither ``None`` nor a number strictly between 0 and 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a float in (0, 1) or None, got {value!r}")
    return float(value)


def describe(value: Any) -> str:
    """``"float32 of shape (4, 3)"`` for a tensor or array, the type name otherwise (for messages)."""
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return f"{value.dtype} of shape {tuple(value.shape)}"
    return type(value).__name__


def check_stats(name: str, values: Any, positive: bool) -> tuple[float, ...]:
    """Per-channel statistics on the 0-1 scale: 1 or 3 floats (``positive``: above 0)."""
    ok = isinstance(values, Sequence) and not isinstance(values, str) and len(values) in (1, 3)
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not ok or (positive and min(values) <= 0):
        need = "positive " if positive else ""
        raise ValueError(f"{name} must be a sequence of 1 or 3 {need}floats (0-1 scale), got {values!r}")
    return tuple(float(v) for v in values)


def check_key(name: str, value: Any) -> str:
    """A key of dict items or batches: a non-empty str."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str (a key of dict items), got {value!r}")
    return value
