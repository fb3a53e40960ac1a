"""Kernel launches counted without a GPU: top-level ``aten::`` ops of a call, on ``meta`` tensors.

A GPU pays 5-20 us per kernel launch plus Python dispatch, so a per-batch path should be a handful of
whole-batch ops. ``meta`` tensors take the non-CPU code paths, compute nothing, and raise on anything
that reads a value back to the host (``.item()``, ``bool(tensor)``, ``.tolist()``): a count taken on
them also shows that the path has no host-device synchronisation. Each top-level ``aten::`` op (one
the caller dispatched, not one an op calls inside itself) is at most a launch or two on a GPU.

Run::

    python -m lightning_aug.bench.launches        # mixup modes and device-stage pipelines, two shapes
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch

from lightning_aug._stdio import quiet_stderr

__all__ = ["count_ops", "launch_table", "main", "top_level_ops"]


def top_level_ops(fn: Callable[[], Any]) -> Counter[str]:
    """The top-level ``aten::`` ops one call of ``fn`` dispatches, by name (with their counts)."""
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:  # it logs every start
        fn()
    ops: Counter[str] = Counter()
    for event in prof.events():
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if event.name.startswith("aten::") and parent is None:
            ops[event.name] += 1
    return ops


def count_ops(fn: Callable[[], Any]) -> int:
    """How many top-level ``aten::`` ops one call of ``fn`` dispatches."""
    return sum(top_level_ops(fn).values())


def _mixup_cases() -> dict[str, dict[str, Any]]:
    both = {"mixup_alpha": 0.8, "cutmix_alpha": 1.0}
    return {
        "mixup batch": {"mixup_alpha": 0.8, "mode": "batch"},
        "cutmix batch": {"mixup_alpha": 0.0, "cutmix_alpha": 1.0, "mode": "batch"},
        "mixup+cutmix batch": {**both, "mode": "batch"},
        "mixup+cutmix pair": {**both, "mode": "pair"},
        "mixup+cutmix elem": {**both, "mode": "elem"},
    }


def mixup_launches(
    shape: tuple[int, int, int, int], num_classes: int, device: str = "meta"
) -> dict[str, int]:
    """Top-level ops of one ``MixupCallback.transform_batch`` per mode (the most over a few draws, so
    a batch that happened to draw mixup and one that drew cutmix are both seen)."""
    from lightning_aug.device.mixing.callback import MixupCallback

    counts = {}
    for name, kwargs in _mixup_cases().items():
        callback = MixupCallback(num_classes=num_classes, seed=0, **kwargs)
        images = torch.empty(shape, device=device)
        targets = torch.zeros(shape[0], dtype=torch.int64, device=device)
        callback.transform_batch(images, targets, None)  # warm-up: buffers made once per shape

        def call(c: MixupCallback = callback, x: torch.Tensor = images, y: torch.Tensor = targets) -> None:
            c.transform_batch(x, y, None)

        counts[name] = max(count_ops(call) for _ in range(6))
    return counts


def device_stage_launches(shape: tuple[int, int, int, int], device: str = "meta") -> dict[str, int]:
    """Top-level ops of ``AugDataModule.device_stage`` on a uint8 training batch, per batch-op set."""
    from lightning_aug.datamodule import AugDataModule
    from lightning_aug.device.augment import ColorJitter, HorizontalFlip, RandomCrop, RandomErasing

    cases = {
        "normalise only": [],
        "crop + flip + normalise": [RandomCrop(padding=4), HorizontalFlip()],
        "crop + flip + jitter + erasing + normalise": [
            RandomCrop(padding=4),
            HorizontalFlip(),
            ColorJitter(0.4, 0.4, 0.4),
            RandomErasing(p=0.5),
        ],
    }
    counts = {}
    for name, ops in cases.items():
        dm = AugDataModule(lambda split: None, device_transforms=ops, num_classes=10, seed=0)
        images = torch.empty(shape, dtype=torch.uint8, device=device)
        targets = torch.zeros(shape[0], dtype=torch.int64, device=device)
        dm.device_stage((images, targets), [], train=True)  # warm-up

        def call(d: AugDataModule = dm, x: torch.Tensor = images, y: torch.Tensor = targets) -> None:
            d.device_stage((x, y), [], train=True)

        counts[name] = count_ops(call)
    return counts


def launch_table(shapes: list[tuple[int, int, int, int]], num_classes: int = 100) -> dict[str, Any]:
    """Launch counts of the mixup modes and the device stage for each batch shape, on ``meta``."""
    return {
        str(list(shape)): {
            "mixup": mixup_launches(shape, num_classes),
            "device_stage": device_stage_launches(shape),
        }
        for shape in shapes
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    table = launch_table([(1024, 3, 32, 32), (256, 3, 224, 224)], args.classes)
    if args.json:
        print(json.dumps(table, indent=2))
        return
    for shape, rows in table.items():
        print(f"top-level aten ops per call on meta tensors, batch {shape}, {args.classes} classes")
        for group, counts in rows.items():
            for name, count in counts.items():
                print(f"  {group:<13} {name:<44} {count:>5}")


if __name__ == "__main__":
    main()
