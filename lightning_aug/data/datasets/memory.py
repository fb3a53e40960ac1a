"""Small datasets held as one uint8 tensor, served a whole batch per index list (no per-sample Python)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_aug.data.collate import PreCollated, collate_labels
from lightning_aug.data.pipeline import to_rgb_tensor

__all__ = ["InMemoryDataset", "PreCollated"]


class InMemoryDataset(Dataset):
    """All images of a split as one ``(N, C, H, W)`` uint8 tensor (held channels_last, like the
    loaders' batches) and ``(N,)`` int64 labels.

    ``DataLoader`` calls :meth:`__getitems__` with a whole batch of indices (from any sampler, so
    shuffling, ``DistributedSampler`` sharding and epochs work as usual) and receives the batch as
    two tensor index operations. For CIFAR-scale data (50,000 x 3 x 32 x 32 = 150 MiB) together with
    device-batched augmentation, this removes the per-sample work from the loader entirely.

    Example::

        >>> data = InMemoryDataset(torch.zeros(4, 3, 2, 2, dtype=torch.uint8), torch.arange(4))
        >>> images, labels = data.__getitems__([3, 1])
        >>> tuple(images.shape), labels.tolist()
        ((2, 3, 2, 2), [3, 1])
    """

    def __init__(self, images: Tensor, labels: Tensor, classes: Sequence[str] | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError(
                f"images must be uint8 (N, C, H, W), got {images.dtype} of shape {tuple(images.shape)}"
            )
        if labels.shape[:1] != (images.shape[0],) or labels.ndim > 2:
            raise ValueError(
                f"labels must have shape ({images.shape[0]},) or ({images.shape[0]}, classes), got "
                f"{tuple(labels.shape)}"
            )
        self.images = images.contiguous(memory_format=torch.channels_last)  # no copy when already
        self.labels = labels.to(torch.int64) if labels.ndim == 1 else labels.to(torch.float32)
        self.classes = list(classes) if classes is not None else None

    @classmethod
    def from_dataset(
        cls, dataset: Any, image_key: str = "image", label_key: str = "label"
    ) -> InMemoryDataset:
        """Materialise a split's source of ``(image, label)`` (any image type the pipelines take; any
        map-style dataset is adapted, :func:`~lightning_aug.data.source.as_source`).

        A source that holds its split as one NHWC uint8 array
        (:meth:`~lightning_aug.data.source.Source.arrays`, CIFAR) is taken in one copy; otherwise every
        sample is converted once.

        Raises:
            ValueError: the images differ in size.
        """
        from lightning_aug.data.source import as_source

        dataset = as_source(dataset)
        classes = dataset.classes
        held = dataset.arrays()
        if held is not None:
            images, labels = held
            tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # channels_last
            return cls(tensor, torch.as_tensor(labels), classes)
        from lightning_aug.data.datasets.base import as_sample

        samples = [as_sample(dataset[i], image_key, label_key) for i in range(len(dataset))]
        skipped = sorted({path for s in samples if len(s) > 2 for path in s[2]})
        if skipped:  # on_bad_image="skip": the replacements are in; say which files were left out
            warnings.warn(
                f"in_memory: skipped {len(skipped)} unreadable image file(s), each replaced by a readable "
                f"sample drawn at random: {skipped[:5]}{' ...' if len(skipped) > 5 else ''}",
                UserWarning,
                stacklevel=2,
            )
        shapes = {tuple(to_rgb_tensor(s[0]).shape) for s in samples[:1]}
        tensors = []
        for sample in samples:  # (image, label) or, with on_bad_image="skip", (image, label, skipped)
            tensor = to_rgb_tensor(sample[0])
            if tuple(tensor.shape) not in shapes:
                raise ValueError(
                    f"in_memory needs images of one size, got {sorted(shapes)[0]} and {tuple(tensor.shape)}"
                )
            tensors.append(tensor)

        labels = collate_labels([s[1] for s in samples])  # class indices or multi-hot rows
        return cls(torch.stack([t.permute(1, 2, 0) for t in tensors]).permute(0, 3, 1, 2), labels, classes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        label = self.labels[index]
        return self.images[index], (label if self.labels.ndim == 2 else int(label))

    def __getitems__(self, indices: Sequence[Any]) -> PreCollated:
        """The batch of ``indices`` (positions, or :class:`~lightning_aug.data.sampling.SampleKey` s)."""
        from lightning_aug.data.sampling import sample_index

        index = torch.as_tensor([sample_index(i) for i in indices], dtype=torch.int64)
        # indexing keeps the channels_last layout (index_select would not)
        return PreCollated((self.images[index], self.labels.index_select(0, index)))
