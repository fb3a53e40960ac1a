"""torchvision's CIFAR-10 and CIFAR-100 as dataset factories serving HWC uint8 arrays (no PIL)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torchvision

from lightning_aug._checks import check_bool, check_fraction
from lightning_aug.data.datasets.base import DatasetFactory, Split
from lightning_aug.data.source import Source

__all__ = ["CIFAR10", "CIFAR100", "ArrayDataset"]


class ArrayDataset(Source):
    """``(images[i], labels[i])`` over an NHWC uint8 array and its labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if len(images) != len(labels):
            raise ValueError(f"images and labels differ in length: {len(images)} and {len(labels)}")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.images[index], int(self.labels[index])

    def image_sizes(self, limit: int = 256, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        """One array, one size: ``[("sample 0", (height, width))]``."""
        return [("sample 0", tuple(self.images.shape[1:3]))] if len(self.images) else []

    def known_labels(self) -> np.ndarray:
        return np.asarray(self.labels)

    def arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.images.dtype == np.uint8 and self.images.ndim == 4:
            return self.images, np.asarray(self.labels)
        return None

    def fingerprint(self) -> dict[str, Any]:
        from lightning_aug.data.shards.fingerprint import array_fingerprint

        return array_fingerprint(self.images, self.labels)


class CIFAR10(DatasetFactory):
    """Dataset factory of CIFAR-10 through ``torchvision.datasets.CIFAR10``.

    Splits: ``train`` the 50,000 training images (less ``val_split``), ``val`` the held-out part of
    them, or the official test set when ``val_split`` is ``None``; ``test`` the official test set.

    Args:
        root: folder holding (or receiving) ``cifar-10-batches-py``.
        download: download and verify the archive in :meth:`prepare` when it is missing.
        val_split: fraction of the training set held out for validation (seeded); ``None``: validate on
            the test set.
        seed: seed of the ``val_split`` draw.
    """

    tv_class: ClassVar[type[torchvision.datasets.CIFAR10]] = torchvision.datasets.CIFAR10
    num_classes: int = 10
    mean: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)  # of the training images, 0-1 scale
    std: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)

    def __init__(
        self,
        root: str | os.PathLike[str],
        download: bool = False,
        val_split: float | None = None,
        seed: int = 0,
    ) -> None:
        check_bool("download", download)
        self.root = Path(root).expanduser()
        self.download = download
        self.val_split = check_fraction("val_split", val_split)
        self.seed = seed

    def prepare(self) -> None:
        """Download when asked; otherwise check that the files are there."""
        for train in (True, False):
            self._load(train, download=self.download)

    def _load(self, train: bool, download: bool = False) -> torchvision.datasets.CIFAR10:
        try:
            return self.tv_class(str(self.root), train=train, download=download)
        except Exception as err:
            from lightning_aug.errors import DownloadError, download_error

            if not download_error(err):
                if isinstance(err, RuntimeError):
                    raise FileNotFoundError(
                        f"{self.tv_class.__name__} not found or corrupted under root={str(self.root)!r} "
                        f"({err}); set download=True (data.download=true) to fetch it"
                    ) from None
                raise
            raise DownloadError(
                f"cannot download {self.tv_class.__name__} from {self.tv_class.url} ({type(err).__name__}: "
                f"{' '.join(str(err).split())}): no network here? Fetch {self.tv_class.filename} elsewhere "
                f"into data.root ({str(self.root)!r}); it is used from there without a download"
            ) from None

    def image_sizes(self, limit: int = 64, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        """32x32, without loading (or downloading) the data."""
        return [(type(self).__name__, (32, 32))]

    def build(self, split: Split) -> ArrayDataset:
        if split == "test" or (split == "val" and self.val_split is None):
            test = self._load(train=False)
            return ArrayDataset(test.data, np.asarray(test.targets))
        full = self._load(train=True)
        images, labels = full.data, np.asarray(full.targets)
        if self.val_split is None:
            return ArrayDataset(images, labels)
        order = np.random.default_rng(self.seed).permutation(len(images))
        n_val = round(len(images) * self.val_split)
        keep = np.sort(order[:n_val] if split == "val" else order[n_val:])
        return ArrayDataset(images[keep], labels[keep])


class CIFAR100(CIFAR10):
    """Dataset factory of CIFAR-100 (fine labels); the same splits and arguments as :class:`CIFAR10`."""

    tv_class: ClassVar[type[torchvision.datasets.CIFAR10]] = torchvision.datasets.CIFAR100
    num_classes: int = 100
    mean: tuple[float, float, float] = (0.5071, 0.4865, 0.4409)
    std: tuple[float, float, float] = (0.2673, 0.2564, 0.2762)
