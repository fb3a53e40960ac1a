"""Micro-benchmark of the MixupCallback kernels against ``x.clone()`` of the same batch.

Run::

    python -m lightning_aug.bench.mixup                  # (256, 3, 224, 224) float32 on CUDA if present
    python -m lightning_aug.bench.mixup --batch 1024 --size 32 --device cpu

For each case it prints the median time per batch, its ratio to ``x.clone()``, and the extra memory
the kernel allocates at its peak, as a fraction of the batch (CUDA: the allocator's peak; CPU on
Linux: the peak resident size, see :func:`_extra_memory`). Baselines for comparison: timm-style
mixup (flip copy + two in-place passes; ``elem`` mode as timm's Python loop over samples) and
torchvision v2 ``MixUp``; ``torch.add(x, y, out=z)`` shows the memory-bandwidth floor. Each case
runs ``repeats`` times in a row (its steady state); ``ours batch mixup, after alloc+free`` times the
batch kernel right after a batch-sized tensor was allocated, written and freed, as in training, where
the device stage has just made the float batch: on some machines (virtual ones seen) a memory-bound
kernel is several times slower then.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lightning_aug.bench.timing import median_ms, sync
from lightning_aug.device.mixing.callback import MixupCallback

__all__ = ["bench_mixup", "main"]


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"{key}:\s+(\d+) kB", f.read())
    if match is None:
        raise RuntimeError(f"no {key} in /proc/self/status")
    return int(match.group(1)) * 1024


_MALLOC_TUNED = False


def _extra_memory(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Peak bytes allocated by one call beyond what exists before it.

    CUDA: the caching allocator's peak. CPU (Linux only, else ``None``): glibc is told to serve every
    allocation of 64 KiB or more by mmap (so freed memory leaves the process), the peak resident size
    is reset through ``/proc/self/clear_refs`` and read back from ``VmHWM``.
    """
    global _MALLOC_TUNED
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not _MALLOC_TUNED:
            ctypes.CDLL("libc.so.6").mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
            _MALLOC_TUNED = True
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
        before = _proc_status_bytes("VmRSS")
        fn()
        return max(_proc_status_bytes("VmHWM") - before, 0)
    except OSError:
        return None


def _timm_batch(x: Tensor, lam: float) -> None:
    x_flipped = x.flip(0).mul_(1.0 - lam)
    x.mul_(lam).add_(x_flipped)


def _timm_elem(x: Tensor, lams: list[float]) -> None:
    x_orig = x.clone()
    n = x.shape[0]
    for i in range(n):
        j = n - i - 1
        if lams[i] != 1.0:
            x[i] = x[i] * lams[i] + x_orig[j] * (1 - lams[i])


def _pair_blend(x: Tensor, w: Tensor) -> Tensor:
    """Batch-mode mixup of the images written so that a compiler can fuse it into one pass that reads
    each pair (i, B-1-i) once: what the eager kernels cannot express."""
    half = x.shape[0] // 2
    low, high = x[:half], x[x.shape[0] - half :].flip(0)
    new_low, new_high = torch.lerp(low, high, w), torch.lerp(high, low, w)
    x[:half] = new_low
    x[x.shape[0] - half :] = new_high.flip(0)
    return x


def bench_mixup(
    batch: int = 256,
    size: int = 224,
    device: str = "auto",
    repeats: int = 10,
    num_classes: int = 1000,
    kernels: tuple[str, ...] = ("chunked", "batched"),
    compiled: bool = False,
    spreads: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Time each mixing kernel (``MixupCallback(kernel=...)`` for each of ``kernels``) and its baselines
    on one ``(batch, 3, size, size)`` float32 batch.

    Returns:
        One row per case: ``case``, ``ms``, ``x_clone`` (time ratio to ``x.clone()``) and
        ``extra_memory`` (fraction of the batch's bytes). With ``spreads``, each case's spread of its
        repeats is stored there.
    """
    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device
    )
    x = torch.rand(batch, 3, size, size, device=dev)
    labels = torch.randint(0, num_classes, (batch,), device=dev)
    nbytes = x.numel() * x.element_size()

    kept: dict[str, MixupCallback] = {}

    def callback(name: str, kernel: str, mode: str, **kw: Any) -> Callable[[], Any]:
        cb = MixupCallback(mode=mode, num_classes=num_classes, seed=0, kernel=kernel, **kw)  # type: ignore[arg-type]
        kept[name] = cb
        return lambda: cb.transform_batch(x, labels, None)

    from torchvision.transforms import v2

    tv_mixup = v2.MixUp(alpha=1.0, num_classes=num_classes)
    other = torch.empty_like(x)
    out = torch.empty_like(x)
    lams = torch.distributions.Beta(1.0, 1.0).sample((batch,)).tolist()
    cases: dict[str, Callable[[], Any]] = {
        "x.clone()": lambda: x.clone(),
        "add(x, y, out=z) (bandwidth floor)": lambda: torch.add(x, other, out=out),
    }
    ours = {
        "batch mixup": ("batch", {"mixup_alpha": 1.0}),
        "batch cutmix": ("batch", {"mixup_alpha": 0.0, "cutmix_alpha": 1.0}),
        "pair mixup+cutmix": ("pair", {"mixup_alpha": 1.0, "cutmix_alpha": 1.0}),
        "elem mixup": ("elem", {"mixup_alpha": 1.0}),
        "elem mixup+cutmix": ("elem", {"mixup_alpha": 1.0, "cutmix_alpha": 1.0}),
    }
    for kernel in kernels:
        for what, (mode, kw) in ours.items():
            name = f"ours {what} [{kernel}]"
            cases[name] = callback(name, kernel, mode, **kw)
    cases["timm-style batch mixup"] = lambda: _timm_batch(x, 0.7)
    cases["torchvision v2 MixUp"] = lambda: tv_mixup(x, labels)
    if compiled:  # the batch-mode blend as one generated kernel (torch.compile), images only
        blend = torch.compile(_pair_blend, dynamic=False)
        weight = torch.tensor(0.3, device=dev)
        cases["torch.compile pair blend (batch mixup, images only)"] = lambda: blend(x, weight)
    if batch * size * size <= 1024 * 64 * 64:  # the per-sample loop is too slow for large batches
        cases["timm-style elem mixup (loop)"] = lambda: _timm_elem(x, lams)
    # in training the kernel runs right after the batch's float copy was made (and an old one freed):
    # on some machines a memory-bound kernel is slower then, so time it that way too
    after_alloc = f"ours batch mixup [{kernels[0]}], after alloc+free"
    cases[after_alloc] = cases[f"ours batch mixup [{kernels[0]}]"]
    befores: dict[str, Callable[[], Any]] = {after_alloc: lambda: torch.empty_like(x).fill_(0.5)}
    # all timings first: the CPU memory probe changes how glibc allocates for the rest of the process
    found: dict[str, float] = {}
    timings = {
        name: median_ms(fn, dev, repeats, warmup=2, before=befores.get(name), spreads=found, name=name)
        for name, fn in cases.items()
    }
    if spreads is not None:
        spreads.update({f"mixup: {name}": value for name, value in found.items()})
    clone_ms = timings["x.clone()"]
    rows = []
    for name, fn in cases.items():
        extra = _extra_memory(fn, dev)
        if extra is not None and name in kept:  # the buffers it keeps between batches count too
            cb = kept[name]
            held = cb.kernels.held_buffers()
            extra += sum(b.numel() * b.element_size() for b in held)
        rows.append(
            {
                "case": name,
                "ms": round(timings[name], 3),
                "x_clone": round(timings[name] / clone_ms, 3),
                "extra_memory": None if extra is None else round(extra / nbytes, 3),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    header = f"{'case':<42} {'ms/batch':>10} {'x clone':>8} {'extra mem':>10}"
    lines = [header, "-" * len(header)]
    lines += [
        f"{r['case']:<42} {r['ms']:>10.2f} {r['x_clone']:>8.2f} {r['extra_memory']:>10.2f}" for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--compile", action="store_true", help="also time a torch.compile'd blend (slow to build)"
    )
    args = parser.parse_args(argv)
    rows = bench_mixup(args.batch, args.size, args.device, args.repeats, args.classes, compiled=args.compile)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"mixup kernels on ({args.batch}, 3, {args.size}, {args.size}) float32, device={device}, "
        f"torch threads={torch.get_num_threads()}"
    )
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": args.batch, "size": args.size, "device": device, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
