"""lightning_aug: fast, reproducible, Hydra-configurable image augmentation for PyTorch Lightning."""

from lightning_aug.batch import BatchTransform
from lightning_aug.datamodule import AugDataModule
from lightning_aug.loader import LoaderSettings
from lightning_aug.mixing import MixupCallback
from lightning_aug.models import ImageClassifier
from lightning_aug.pipeline import Pipeline

__all__ = [
    "AugDataModule",
    "BatchTransform",
    "ImageClassifier",
    "LoaderSettings",
    "MixupCallback",
    "Pipeline",
]
__version__ = "0.1.0"
