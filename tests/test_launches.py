"""Kernel launches of the device stage and mixing, counted on ``meta`` tensors (no GPU needed).

``meta`` tensors take the non-CPU paths, compute nothing, and fail on any read back to the host, so
these counts also show that the paths have no host-device synchronisation. A count, not a time.
"""

from __future__ import annotations

import pytest
import torch

from lightning_aug.bench.launches import count_ops, device_stage_launches, mixup_launches

SHAPES = [(1024, 3, 32, 32), (256, 3, 224, 224), (7, 3, 20, 24)]


@pytest.mark.parametrize("shape", SHAPES)
def test_mixup_launches_do_not_grow_with_the_batch(shape: tuple[int, int, int, int]) -> None:
    counts = mixup_launches(shape, num_classes=100)
    for name, count in counts.items():
        limit = 16 if name.endswith("batch") else 24  # timm's Mixup: 13 in batch mode
        assert count <= limit, (name, count)


@pytest.mark.parametrize("shape", SHAPES)
def test_device_stage_launches_do_not_grow_with_the_batch(shape: tuple[int, int, int, int]) -> None:
    counts = device_stage_launches(shape)
    assert counts["normalise only"] <= 3
    assert counts["crop + flip + normalise"] <= 12
    assert counts["crop + flip + jitter + erasing + normalise"] <= 30


def test_a_host_sync_fails_on_meta_so_the_counts_would_see_one() -> None:
    x = torch.empty(4, device="meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        count_ops(lambda: x.sum().item())
