"""lightning_aug: fast, reproducible, Hydra-configurable image augmentation for PyTorch Lightning.

The public names are imported on first use (PEP 562), so ``import lightning_aug`` and the Hydra
apps' config handling do not pay for importing torch and Lightning until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lightning_aug._version import __version__ as __version__

if TYPE_CHECKING:
    from lightning_aug.data.loader import LoaderSettings
    from lightning_aug.data.pipeline import Pipeline
    from lightning_aug.data.progressive import ProgressiveResize
    from lightning_aug.datamodule import AugDataModule
    from lightning_aug.device.mixing import MixupCallback
    from lightning_aug.device.protocol import BatchTransform
    from lightning_aug.models import ImageClassifier
    from lightning_aug.monitor import DataStallMonitor

_EXPORTS = {
    "AugDataModule": "lightning_aug.datamodule",
    "BatchTransform": "lightning_aug.device.protocol",
    "DataStallMonitor": "lightning_aug.monitor",
    "ImageClassifier": "lightning_aug.models",
    "LoaderSettings": "lightning_aug.data.loader",
    "MixupCallback": "lightning_aug.device.mixing",
    "Pipeline": "lightning_aug.data.pipeline",
    "ProgressiveResize": "lightning_aug.data.progressive",
}
__all__ = [
    "AugDataModule",
    "BatchTransform",
    "DataStallMonitor",
    "ImageClassifier",
    "LoaderSettings",
    "MixupCallback",
    "Pipeline",
    "ProgressiveResize",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightning_aug' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
