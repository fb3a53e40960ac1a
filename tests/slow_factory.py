"""A dataset factory whose files take 20 ms each to read: a preparation long enough to be killed half
way (the kill test of test_streaming)."""

from __future__ import annotations

import time
from typing import Any

from lightning_aug.data.datasets import ImageFolder, ImageFolderDataset


class SlowFolderDataset(ImageFolderDataset):
    def read_sample(self, index: int) -> Any:
        time.sleep(0.02)
        return super().read_sample(index)


class Slow(ImageFolder):
    def build(self, split: Any) -> Any:
        dataset = super().build(split)
        if dataset is not None:
            dataset.__class__ = SlowFolderDataset
        return dataset
