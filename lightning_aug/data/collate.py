"""How samples become a batch: uint8 images stacked channels_last, labels as int64 class indices or
float32 multi-hot rows; a batch the dataset made whole (:class:`PreCollated`) passes through."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lightning_aug.errors import DataError

__all__ = ["PreCollated", "collate_labels", "collate_uint8"]


class PreCollated(tuple):
    """A ``(images, labels)`` batch that :func:`collate_uint8` passes through."""


def collate_labels(labels: Sequence[Any]) -> torch.Tensor:
    """A batch's labels: class indices as int64 ``(N,)``; multi-hot (or any per-class) rows, as
    arrays, lists or tensors, as float32 ``(N, C)``.

    Raises:
        DataError: labels of both kinds, or rows of different lengths, in one batch.
    """
    first = labels[0]
    if isinstance(first, (int, np.integer)) or (hasattr(first, "ndim") and first.ndim == 0):
        try:
            return torch.as_tensor([int(label) for label in labels], dtype=torch.int64)
        except TypeError:
            pass
    else:
        rows = [torch.as_tensor(np.asarray(label), dtype=torch.float32).reshape(-1) for label in labels]
        lengths = {row.numel() for row in rows}
        if len(lengths) == 1:
            return torch.stack(rows)
    kinds = sorted({f"{type(label).__name__} of {np.asarray(label).size} value(s)" for label in labels})
    raise DataError(
        f"the labels of one batch are not of one kind ({', '.join(kinds)}): a label is a class index, or "
        "a row of one value per class (multi-hot) for every sample"
    )


def collate_uint8(samples: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Stack ``(uint8 CHW image, label)`` samples into ``(uint8 NCHW batch, labels)``: int64 class
    indices ``(N,)``, or float32 multi-hot rows ``(N, C)`` (:func:`collate_labels`). The batch is laid
    out channels_last (``(N, H, W, C)`` in memory, ``torch.channels_last``).

    Samples that replaced unreadable files (``on_bad_image="skip"``) carry the skipped paths as a third
    element; the batch then has a third element too, the list of those paths, which
    ``AugDataModule``'s device stage takes out and reports.

    Raises:
        ValueError: if the images differ in shape (the pipeline needs a crop or resize).
    """
    if isinstance(samples, PreCollated):  # a whole batch from InMemoryDataset.__getitems__
        return samples[0], samples[1]
    images = [s[0] for s in samples]
    first = images[0].shape
    for image in images:
        if image.shape != first:
            raise ValueError(
                f"the pipeline produced images of different shapes in one batch ({tuple(first)} and "
                f"{tuple(image.shape)}); add a crop or resize so every image has the same size"
            )
    # the pipelines give CHW views of HWC arrays: stacking the HWC arrays is a plain copy (a stack of
    # the CHW views transposes every pixel: 137-300 us against 25-67 us per 224x224 image, measured),
    # and their NCHW view is channels_last, the layout convolutions run fastest in on GPUs
    hwc = torch.stack([image.permute(1, 2, 0) for image in images])
    batch = hwc.permute(0, 3, 1, 2), collate_labels([s[1] for s in samples])
    skipped = [path for s in samples if len(s) > 2 for path in s[2]]
    return (*batch, skipped) if skipped else batch
