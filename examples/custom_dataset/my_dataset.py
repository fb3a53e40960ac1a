"""A dataset of your own, plugged in through ``_target_``: a factory called with the split name.

cd examples/custom_dataset
PYTHONPATH=. lightning-aug-train --config-dir . data=my_data trainer.max_epochs=2
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from lightning_aug.data.datasets import DatasetFactory


class Gradients(Dataset):
    """Two classes of 32x32 images: horizontal or vertical colour gradients, with noise."""

    def __init__(self, size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        ramp = np.linspace(0, 255, 32, dtype=np.float32)
        self.labels = rng.integers(0, 2, size)
        images = np.empty((size, 32, 32, 3), dtype=np.uint8)
        for i, label in enumerate(self.labels):
            grid = ramp[None, :] if label == 0 else ramp[:, None]
            colour = rng.uniform(0.3, 1.0, size=3)
            noisy = grid[..., None] * colour + rng.normal(0, 20, (32, 32, 3))
            images[i] = np.clip(np.broadcast_to(noisy, (32, 32, 3)), 0, 255)
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.images[index], int(self.labels[index])  # HWC uint8 ndarray: both backends take it


class GradientsData(DatasetFactory):
    """The dataset factory: AugDataModule calls it with "train", "val" or "test" (and "predict": the
    test split). A class, so it can say how many classes there are (a plain function works too, with
    ``model.num_classes`` given)."""

    num_classes = 2

    def __init__(self, train_size: int = 512, eval_size: int = 128, seed: int = 0) -> None:
        self.sizes = {"train": train_size, "val": eval_size, "test": eval_size}
        self.seed = seed

    def build(self, split: str) -> Gradients:
        return Gradients(self.sizes[split], self.seed + list(self.sizes).index(split))
