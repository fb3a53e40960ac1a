"""Dataset factories: the built-in synthetic set, photographs, image folders and torchvision's CIFAR sets."""

from lightning_aug.datasets.base import DatasetFactory, Split, TransformedDataset
from lightning_aug.datasets.cifar import CIFAR10, CIFAR100, ArrayDataset
from lightning_aug.datasets.folder import ImageFolder, ImageFolderDataset, load_rgb
from lightning_aug.datasets.memory import InMemoryDataset
from lightning_aug.datasets.photos import Photos
from lightning_aug.datasets.synthetic import SyntheticShapes

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "ArrayDataset",
    "DatasetFactory",
    "ImageFolder",
    "ImageFolderDataset",
    "InMemoryDataset",
    "Photos",
    "Split",
    "SyntheticShapes",
    "TransformedDataset",
    "load_rgb",
]
