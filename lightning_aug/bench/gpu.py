"""One command that checks and measures lightning_aug on a GPU: the ``gpu`` tests, the device stage and
mixup against timm's and torchvision v2's, and the photographs through the loaders to the device.

Run it on a machine with CUDA, from a checkout (the tests are not in the wheel)::

    bash .ci/install && source .venv/bin/activate   # or: pip install '.[dev,bench,fast,timm]'
    python -m lightning_aug.bench.gpu                  # about 2-4 minutes
    python -m lightning_aug.bench.gpu --output-dir gpu_bench --skip-tests

It writes ``gpu_bench.json`` (every number, the machine, torch's and CUDA's versions) and
``gpu_bench.png`` (one panel per part) into ``--output-dir`` and prints a table. Its parts:

- ``tests``: ``pytest -m gpu`` on the checkout's tests (counts of passed, failed, skipped).
- ``device stage``: one uint8 training batch (``--batch`` x 3 x ``--size``\\ :sup:`2`) through crop,
  flip, colour jitter, erasing and normalisation: :class:`~lightning_aug.device.stage.DeviceStage`
  against torchvision v2's ops on the batch tensor and timm's GPU part (its prefetcher's convert and
  normalise, and its ``RandomErasing`` on the device); median milliseconds per batch and kernel
  launches per batch (CUDA kernels in the profiler; on the CPU, the top-level ``aten::`` ops).
- ``mixup``: :func:`lightning_aug.bench.mixup.bench_mixup` (ours against timm's and torchvision v2's)
  with the launches of each.
- ``photographs``: the bench photographs (``data=photos``) decoded on the CPU by the loaders
  (``--workers``), transferred and through the device stage: images per second end to end. Decoding on
  the GPU is listed as not run: the batched decode stage is not built yet.

On a machine without CUDA it prints this plan and exits 0. ``--device cpu`` runs every part but the
tests on the CPU at the sizes given (the tests of this module do, at small sizes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["device_stage_rows", "main", "photographs_row", "plan", "run"]

PARTS = ("tests", "device stage", "mixup", "photographs")


def plan(args: argparse.Namespace) -> str:
    """What a run with ``args`` would do, in words."""
    shape = f"({args.batch}, 3, {args.size}, {args.size})"
    lines = [
        f"lightning_aug.bench.gpu would run on {args.device}:",
        f"  tests        pytest -m gpu {_tests_folder() or '(no tests folder: run from a checkout)'}",
        f"  device stage DeviceStage vs torchvision v2 vs timm's GPU part, uint8 {shape}: ms + launches",
        f"  mixup        ours vs timm vs torchvision v2 MixUp on a float batch {shape}: ms + launches",
        f"  photographs  the bench photographs, {args.images} images, {args.workers} workers, CPU decoding, "
        "to the device: img/s (GPU decoding: not built yet)",
        f"  writes       {Path(args.output_dir) / 'gpu_bench.json'} and gpu_bench.png",
    ]
    return "\n".join(lines)


def _tests_folder() -> Path | None:
    """The checkout's ``tests`` folder, where this module runs from a checkout."""
    folder = Path(__file__).resolve().parents[2] / "tests"
    return folder if (folder / "test_gpu.py").is_file() else None


def _gpu_tests(timeout: float) -> dict[str, Any]:
    folder = _tests_folder()
    if folder is None:
        return {"ran": False, "why": "no tests folder next to the package (run from a checkout)"}
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(folder)]
    if importlib.util.find_spec("xdist") is not None:  # the checkout's -n auto: in one process here
        command[3:3] = ["-n", "0"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"ran": True, "timed_out": True, "seconds": round(timeout, 1)}
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", done.stdout)}
    return {
        "ran": True,
        "returncode": done.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        **counts,
        "tail": done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else [],
    }


def _launches(fn: Callable[[], Any], device: Any) -> int:
    """Kernel launches of one call of ``fn``: CUDA kernels the profiler saw; on the CPU, top-level
    ``aten::`` ops (:func:`lightning_aug.bench.launches.count_ops`, each at most a launch or two)."""
    from lightning_aug.bench.launches import count_ops

    if device.type != "cuda":
        return count_ops(fn)
    import torch
    from torch.profiler import ProfilerActivity, profile

    from lightning_aug._stdio import quiet_stderr

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize(device)
    return sum(1 for event in prof.events() if event.device_type.name == "CUDA")


def device_stage_rows(batch: int, size: int, device: Any, repeats: int) -> list[dict[str, Any]]:
    """The device stage and its two baselines on one uint8 batch: ``case``, ``ms``, ``launches``."""
    import torch
    from torchvision.transforms import v2

    from lightning_aug.bench.timing import median_ms
    from lightning_aug.device.augment import ColorJitter, HorizontalFlip, RandomCrop, RandomErasing
    from lightning_aug.device.stage import DeviceStage

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    generator = torch.Generator(device="cpu").manual_seed(0)
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=generator)
    images = images.to(device).permute(0, 3, 1, 2)  # channels_last, as the loaders stack batches
    labels = torch.zeros(batch, dtype=torch.int64, device=device)
    ops = [RandomCrop(padding=4), HorizontalFlip(), ColorJitter(0.4, 0.4, 0.4), RandomErasing(p=0.25)]
    stage = DeviceStage(mean, std, ops)
    import numpy as np

    rng = np.random.default_rng(0)
    tv = v2.Compose(
        [
            v2.RandomCrop(size, padding=4),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.4, 0.4, 0.4),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
            v2.RandomErasing(p=0.25),
        ]
    )
    cases: dict[str, Callable[[], Any]] = {
        "ours: DeviceStage (per-sample params)": lambda: stage(images, labels, (), None, True, rng),
        "torchvision v2 on the batch (one param set)": lambda: tv(images),
    }
    try:
        from timm.data.random_erasing import RandomErasing as TimmErasing

        erasing = TimmErasing(probability=0.25, mode="pixel", device=str(device))
        scale = torch.tensor([255 * s for s in std], device=device).view(1, 3, 1, 1)
        shift = torch.tensor([255 * m for m in mean], device=device).view(1, 3, 1, 1)

        def timm_part() -> Any:  # timm's PrefetchLoader: float, normalise, erase (no crop/flip/jitter)
            return erasing(images.float().sub_(shift).div_(scale))

        cases["timm: prefetcher normalise + RandomErasing (no crop/flip/jitter)"] = timm_part
    except ImportError:
        pass
    return [
        {
            "case": name,
            "ms": round(median_ms(fn, device, repeats, warmup=2), 3),
            "launches": _launches(fn, device),
        }
        for name, fn in cases.items()
    ]


def _mixup_rows(batch: int, size: int, device: Any, repeats: int) -> list[dict[str, Any]]:
    import torch
    from torchvision.transforms import v2

    from lightning_aug.bench.mixup import _timm_batch, bench_mixup
    from lightning_aug.device.mixing.callback import MixupCallback

    rows = bench_mixup(batch, size, str(device), repeats, kernels=("chunked",))
    x = torch.rand(batch, 3, size, size, device=device)
    labels = torch.zeros(batch, dtype=torch.int64, device=device)
    ours = MixupCallback(mixup_alpha=1.0, num_classes=1000, seed=0)
    ours.transform_batch(x, labels, None)  # its buffers, made once per shape
    tv = v2.MixUp(alpha=1.0, num_classes=1000)
    launches = {
        "ours batch mixup [chunked]": _launches(lambda: ours.transform_batch(x, labels, None), device),
        "timm-style batch mixup": _launches(lambda: _timm_batch(x, 0.7), device),
        "torchvision v2 MixUp": _launches(lambda: tv(x, labels), device),
    }
    for row in rows:
        row["launches"] = launches.get(row["case"])
    return rows


def photographs_row(images: int, workers: int, batch: int, device: Any) -> dict[str, Any]:
    """The bench photographs through ``AugDataModule``'s training loader (``imagenet_alb``, decoding on
    the CPU in ``workers`` workers), each batch moved to ``device`` and through the device stage."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from lightning_aug.bench.timing import sync

    overrides = [
        "data=photos",
        "augment=imagenet_alb",
        f"loader.batch_size={batch}",
        f"loader.num_workers={workers}",
        "loader.persistent_workers=false",
    ]
    with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    dm = instantiate(cfg.datamodule, _convert_="all")
    dm.prepare_data()  # the photographs are written once into the cache
    dm.setup("fit")
    seen, start = 0, None
    for host, labels in dm.train_dataloader():
        if start is None:  # the workers' start-up is not the loader's rate
            start = time.perf_counter()
            continue
        out, _ = dm.device_stage((host.to(device, non_blocking=True), labels.to(device)), train=True)
        seen += out.shape[0]
        if seen >= images:
            break
    sync(device)
    seconds = time.perf_counter() - (start or time.perf_counter())
    return {
        "case": f"photographs, CPU decoding ({workers} workers) -> {device}",
        "img_s": round(seen / seconds, 1) if seconds else None,
        "images": seen,
        "gpu_decoding": "not run: the batched decode stage is not built yet",
    }


def _chart(results: dict[str, Any], path: Path) -> None:
    """One bar panel per measured part (PIL, no plotting dependency)."""
    from PIL import Image, ImageDraw

    panels = [
        (
            f"device stage, ms per batch on {results['device']}",
            {r["case"]: r["ms"] for r in results["device_stage"]},
        ),
        (f"mixup, ms per batch on {results['device']}", {r["case"]: r["ms"] for r in results["mixup"]}),
        (
            "photographs end to end, img/s",
            {results["photographs"]["case"]: results["photographs"]["img_s"] or 0},
        ),
    ]
    width, row = 860, 22
    height = 40 + sum(30 + row * len(bars) for _, bars in panels)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 10), f"lightning_aug.bench.gpu: {results['machine']}", fill="black")
    y = 40
    for heading, bars in panels:
        draw.text((10, y + 6), heading, fill="black")
        y += 30
        top = max(bars.values(), default=1.0) or 1.0
        for name, value in bars.items():
            length = int((width - 470) * value / top)
            ours = name.startswith("ours") or name.startswith("photographs")
            draw.text((10, y + 4), name[:60], fill="black")
            draw.rectangle(
                (420, y + 2, 420 + length, y + row - 4), fill=(70, 110, 190) if ours else (190, 110, 70)
            )
            draw.text((425 + length, y + 4), f"{value:.3g}", fill="black")
            y += row
    image.save(path)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every part on ``args.device``; the results, also written as JSON and PNG to ``args.output_dir``."""
    import torch

    device = torch.device(args.device)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "device": str(device),
        "machine": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "batch": args.batch,
        "size": args.size,
    }
    results["tests"] = (
        _gpu_tests(args.tests_timeout)
        if device.type == "cuda" and not args.skip_tests
        else {"ran": False, "why": "--skip-tests" if args.skip_tests else "they need CUDA"}
    )
    results["device_stage"] = device_stage_rows(args.batch, args.size, device, args.repeats)
    results["mixup"] = _mixup_rows(args.batch, args.size, device, args.repeats)
    results["photographs"] = photographs_row(args.images, args.workers, args.loader_batch, device)
    results["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    _chart(results, out / "gpu_bench.png")
    return results


def _table(results: dict[str, Any]) -> str:
    lines = [f"lightning_aug.bench.gpu on {results['device']} ({results['machine']}), {results['seconds']} s"]
    tests = results["tests"]
    lines.append(
        f"tests: {tests if not tests.get('ran') else {k: v for k, v in tests.items() if k != 'tail'}}"
    )
    for part in ("device_stage", "mixup"):
        lines.append(f"{part.replace('_', ' ')}:{'ms/batch':>58} {'launches':>9}")
        for row in results[part]:
            launches = "" if row.get("launches") is None else row["launches"]
            lines.append(f"  {row['case'][:62]:<64}{row['ms']:>9.2f} {launches!s:>9}")
    photographs = results["photographs"]
    lines.append(f"{photographs['case']}: {photographs['img_s']} img/s ({photographs['gpu_decoding']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_aug.bench.gpu",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA if present, else the plan only), cuda:N, cpu"
    )
    parser.add_argument("--output-dir", default=".", help="where gpu_bench.json and gpu_bench.png go")
    parser.add_argument("--batch", type=int, default=256, help="the device stage's and mixup's batch")
    parser.add_argument("--size", type=int, default=224, help="their image side")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--images", type=int, default=1024, help="photographs timed end to end")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--loader-batch", type=int, default=128)
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--tests-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    import torch

    if args.device == "auto":
        if not torch.cuda.is_available():
            args.device = "cuda"
            print(plan(args))
            print("no CUDA device here: nothing run (--device cpu runs the parts on the CPU)")
            return
        args.device = "cuda"
    print(plan(args), flush=True)
    print(_table(run(args)))
    print(f"bench.gpu: {Path(args.output_dir) / 'gpu_bench.json'} {Path(args.output_dir) / 'gpu_bench.png'}")


if __name__ == "__main__":
    main()
