"""The ``Example::`` blocks of the public docstrings run and pass (against the installed package)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import lightning_aug

MODULES = sorted(m.name for m in pkgutil.walk_packages(lightning_aug.__path__, "lightning_aug."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"
