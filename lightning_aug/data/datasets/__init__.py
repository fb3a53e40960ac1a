"""Dataset factories: the built-in synthetic set, photographs, image folders and torchvision's CIFAR sets."""

from lightning_aug.data.datasets.base import DatasetFactory, Split, TransformedDataset
from lightning_aug.data.datasets.cifar import CIFAR10, CIFAR100, ArrayDataset
from lightning_aug.data.datasets.filelist import FileList
from lightning_aug.data.datasets.folder import ImageFiles, ImageFolder, ImageFolderDataset, load_rgb
from lightning_aug.data.datasets.huggingface import HuggingFace
from lightning_aug.data.datasets.memory import InMemoryDataset
from lightning_aug.data.datasets.photos import Photos
from lightning_aug.data.datasets.synthetic import SyntheticShapes

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "ArrayDataset",
    "DatasetFactory",
    "FileList",
    "HuggingFace",
    "ImageFiles",
    "ImageFolder",
    "ImageFolderDataset",
    "InMemoryDataset",
    "Photos",
    "Split",
    "SyntheticShapes",
    "TransformedDataset",
    "load_rgb",
]
