"""``lightning-aug-bench``: how fast the configured data path is, side by side with the classic one.

For the configured data and pipeline (the same config tree and overrides as ``lightning-aug-train``)
it measures in one run, on the same files:

- ``decode``: decoding only (the dataset factory's samples): the limit of any pipeline;
- ``pipeline``: the configured per-sample pipeline (decode included) in one process (per worker);
- ``baseline``: the classic torchvision v1 PIL ``Compose`` (PIL decode, same crop/flip, ``ToTensor``
  + ``Normalize`` float work in the worker) in one process;
- ``loader`` / ``baseline loader``: both through a DataLoader with the configured workers;
- the cost of each transform of the configured pipeline;
- the device stage (float conversion, batch transforms, normalisation, mixup) and the mixup kernel
  in ms per batch against ``x.clone()`` of the same batch;
- a ``num_workers`` sweep with the recommended setting;
- optionally (``bench.fit_epochs > 0``) ``trainer.fit`` wall time with the configured pipeline
  against the baseline pipeline, same model and loader settings (validation off for both).

It prints a table and writes ``bench.json`` and a bar chart ``bench.png`` into the run folder::

    lightning-aug-bench                                             # built-in dataset, defaults
    lightning-aug-bench experiment=bench_imagenet                    # ImageNet-size JPEGs
    lightning-aug-bench experiment=bench_cifar bench.fit_epochs=2    # CIFAR-size, device-batched
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig
from PIL import Image

from lightning_aug.cli import CONFIG_PATH

__all__ = ["bench", "main"]


BASELINE = "classic (v1 PIL Compose, float)"
CONFIGURED = "pipeline (configured)"
DECODE_OPENCV = "decode only (OpenCV, whole image)"
EVAL_BASELINE = "eval classic (v1 PIL Resize+CenterCrop, float)"
EVAL_CONFIGURED = "eval pipeline (configured)"


def _per_worker_rates(
    cases: dict[str, Callable[[int, int], int]], count: int, repeats: int, chunk: int
) -> dict[str, float]:
    """img/s of each case (a function of an index range returning how many images it made) in this
    process, set up as a DataLoader worker is (one torch thread, OpenCV single-threaded). The cases take
    turns ``chunk`` images at a time, so that a passing load on the machine slows each of them alike;
    the median of ``repeats`` passes over ``count`` images."""
    import cv2
    import torch

    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for _ in range(max(1, repeats)):
            seconds = dict.fromkeys(cases, 0.0)
            made = dict.fromkeys(cases, 0)
            for start in range(0, count, chunk):
                for name, fn in cases.items():
                    begin = time.perf_counter()
                    made[name] += fn(start, min(start + chunk, count))
                    seconds[name] += time.perf_counter() - begin
            for name in cases:
                samples[name].append(made[name] / max(seconds[name], 1e-9))
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)
    return {name: statistics.median(values) for name, values in samples.items()}


def _ms(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def baseline_eval_transform(cfg: DictConfig, mean: Sequence[float], std: Sequence[float]) -> Any:
    """The classic torchvision v1 evaluation ``Compose`` of ImageNet-style presets (with
    ``resize_size``): Resize + CenterCrop + ``ToTensor`` + ``Normalize``; ``None`` for other presets."""
    import torchvision.transforms as T

    augment = cfg.augment
    if "resize_size" not in augment:
        return None
    return T.Compose(
        [T.Resize(augment.resize_size), T.CenterCrop(augment.crop_size), T.ToTensor(), T.Normalize(mean, std)]
    )


def _compare_pipelines(cfg: DictConfig, names: Sequence[str]) -> dict[str, Any]:
    """The train and eval :class:`~lightning_aug.data.pipeline.Pipeline` of each shipped augment preset in
    ``names`` (``conf/augment/NAME.yaml``), its interpolations resolved against this run's config."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    from lightning_aug.data.pipeline import Pipeline

    pipelines = {}
    for name in names:
        preset = files("lightning_aug.conf") / "augment" / f"{name}.yaml"
        if not preset.is_file():
            raise ValueError(f"bench.compare_augment: no augment preset {name!r} in the shipped config tree")
        run = cfg.copy()
        OmegaConf.set_struct(run, False)
        run.augment = OmegaConf.create(preset.read_text())
        spec: Any = OmegaConf.to_container(run.augment, resolve=True)
        pipelines[name] = (
            Pipeline(spec["train_transforms"], spec["backend"], name=f"{name} train pipeline"),
            Pipeline(spec["eval_transforms"], spec["backend"], name=f"{name} eval pipeline"),
        )
    return pipelines


def baseline_transform(cfg: DictConfig, mean: Sequence[float], std: Sequence[float]) -> Any:
    """The classic torchvision v1 training ``Compose`` doing what the configured preset does:
    ImageNet-style presets (with ``resize_size``): RandomResizedCrop + flip; others: RandomCrop with
    padding + flip (``augment=none``: no augmentation); then ``ToTensor`` + ``Normalize`` (float)."""
    import torchvision.transforms as T

    augment = cfg.augment
    ops: list[Any] = []
    if "resize_size" in augment:
        ops += [T.RandomResizedCrop(augment.crop_size), T.RandomHorizontalFlip()]
    elif "crop_size" in augment or augment.get("device_transforms"):
        size = augment.get("crop_size") or cfg.data.get("image_size") or 32
        ops += [T.RandomCrop(size, padding=augment.get("padding", 4)), T.RandomHorizontalFlip()]
    return T.Compose([*ops, T.ToTensor(), T.Normalize(mean, std)])


class _BaselineDataset:
    """PIL-decoded samples of the same files (or arrays) through the v1 ``Compose``."""

    def __init__(self, raw: Any, transform: Any) -> None:
        from lightning_aug.data.datasets.folder import load_rgb

        self.raw, self.transform, self._load = raw, transform, load_rgb

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        samples = getattr(self.raw, "samples", None)
        if samples is not None:  # an image folder: decode the file with PIL, as torchvision's ImageFolder
            path, label = samples[index]
            return self.transform(self._load(path)), label
        image, label = self.raw[index]
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        return self.transform(image), label


def _per_transform(dm: Any, raw: Any, count: int) -> dict[str, float]:
    """ms per image of decoding and of each transform of the configured train pipeline (on decoded
    images)."""
    from lightning_aug.data.pipeline import to_rgb_array, to_rgb_tensor

    pipeline = dm.train_pipeline
    start = time.perf_counter()
    images = [raw[i][0] for i in range(count)]
    costs: dict[str, float] = {"decode (the dataset's decoder)": (time.perf_counter() - start) * 1e3 / count}
    current: list[Any]
    if pipeline.backend == "albumentations":
        current = [np.ascontiguousarray(to_rgb_array(im)) for im in images]
        calls = [(type(t).__name__, lambda x, t=t: t(image=x)["image"]) for t in pipeline.transforms]
    else:
        current = [to_rgb_tensor(im) if isinstance(im, np.ndarray) else im for im in images]
        calls = [(type(t).__name__, t) for t in pipeline.transforms]
    for name, call in calls:
        start = time.perf_counter()
        current = [call(x) for x in current]
        costs[name] = (time.perf_counter() - start) * 1e3 / count
    start = time.perf_counter()
    for x in current:
        pipeline.to_output(x)
    costs["to CHW uint8 tensor"] = (time.perf_counter() - start) * 1e3 / count
    return costs


def _loader_rate(loader: Any, images: int) -> float:
    """img/s of a DataLoader after its first batch (worker start-up excluded)."""
    iterator = iter(loader)
    next(iterator)
    seen, start = 0, time.perf_counter()
    for batch in iterator:
        seen += len(batch[0])
        if seen >= images:
            break
    return seen / max(time.perf_counter() - start, 1e-9)


def bench(cfg: DictConfig) -> dict[str, Any]:
    """Run every measurement and return the results (also written to ``bench.json``)."""
    import dataclasses

    import torch
    from torch.utils.data import DataLoader

    from lightning_aug.bench.mixup import bench_mixup
    from lightning_aug.cli.common import build_batch_path

    dm, transforms = build_batch_path(cfg, "lightning-aug-bench")
    settings = cfg.bench
    raw: Any = dm.dataset("train")
    train: Any = dm.datasets["train"]
    count = min(int(settings.images), len(raw))
    repeats = int(settings.repeats)
    baseline = _BaselineDataset(raw, baseline_transform(cfg, dm.mean, dm.std))
    loader = dm.loader
    results: dict[str, Any] = {"config": {"data": cfg.data._target_, "augment": dict(cfg.augment)}}

    def each(dataset: Any) -> Callable[[int, int], int]:
        return lambda a, b: sum(dataset[i] is not None for i in range(a, b))

    cases: dict[str, Callable[[int, int], int]] = {}
    files = [path for path, _ in getattr(raw, "samples", [])]
    if files:  # an image folder: the whole-image OpenCV decode is the reference of the speed targets
        from lightning_aug.data.decoders import OpenCVDecoder
        from lightning_aug.data.jpeg import read_image_bytes

        opencv = OpenCVDecoder()
        cases[DECODE_OPENCV] = lambda a, b: sum(
            opencv.decode(read_image_bytes(files[i]), files[i]) is not None for i in range(a, b)
        )
    cases[f"decode only ({getattr(raw, 'decoder_name', 'dataset')})"] = each(raw)
    cases[BASELINE] = each(baseline)
    if hasattr(train, "__getitems__"):
        bs = loader.batch_size
        cases[CONFIGURED] = lambda a, b: sum(
            len(train.__getitems__(list(range(s, min(s + bs, b))))[0]) for s in range(a, b, bs)
        )
    else:
        cases[CONFIGURED] = each(train)
    from lightning_aug.data.datasets.base import TransformedDataset

    compare = _compare_pipelines(cfg, list(settings.get("compare_augment") or []))
    for name, (train_pipe, _) in compare.items():
        cases[f"pipeline (augment={name})"] = each(TransformedDataset(dm.dataset("train"), train_pipe, 0))  # type: ignore[arg-type]
    eval_baseline = baseline_eval_transform(cfg, dm.mean, dm.std)
    if eval_baseline is not None and not dm.in_memory:  # the eval pipelines, on the same train files
        cases[EVAL_BASELINE] = each(_BaselineDataset(raw, eval_baseline))
        cases[EVAL_CONFIGURED] = each(TransformedDataset(dm.dataset("train"), dm.eval_pipeline, 0))  # type: ignore[arg-type]
        for name, (_, eval_pipe) in compare.items():
            cases[f"eval pipeline (augment={name})"] = each(
                TransformedDataset(dm.dataset("train"), eval_pipe, 0)  # type: ignore[arg-type]
            )
    rates = _per_worker_rates(cases, count, repeats, chunk=max(32, loader.batch_size))
    results["per_worker_img_s"] = rates

    workers = loader.resolve_num_workers(1)
    kwargs = {"batch_size": loader.batch_size, "num_workers": workers, "shuffle": True}
    results["loader_img_s"] = {
        f"pipeline, {workers} workers": _loader_rate(dm.train_dataloader(), count),
        f"baseline, {workers} workers": _loader_rate(DataLoader(baseline, **kwargs), count),  # type: ignore[arg-type]
    }
    if not dm.in_memory:
        results["per_transform_ms"] = _per_transform(dm, raw, min(count, 64))
    results["crop_while_decoding"] = bool(getattr(train, "fused", False))
    if results["crop_while_decoding"]:  # what the fused decode + crop costs, against decoding alone
        from lightning_aug.data.jpeg import read_image_bytes

        paths = [path for path, _ in raw.samples[: min(count, 64)]]
        start = time.perf_counter()
        for path in paths:
            dm.train_pipeline.decode_first(read_image_bytes(path), raw.image_decoder, path)
        results["per_transform_ms"]["decode + crop (fused)"] = (
            (time.perf_counter() - start) * 1e3 / len(paths)
        )
        # the floor of region decoding: a JPEG's rows are entropy-coded one after the other, so even
        # the last 8 rows alone cost the Huffman decoding of every row above them
        decoder, shapes = raw.image_decoder, [raw.image_decoder.shape(read_image_bytes(p)) for p in paths]
        start = time.perf_counter()
        for path, shape in zip(paths, shapes, strict=True):
            if shape is not None:
                decoder.decode(read_image_bytes(path), path, (shape[0] - 8, 0, shape[0], shape[1]))
        results["per_transform_ms"][f"{decoder.name}: last 8 rows only (floor)"] = (
            (time.perf_counter() - start) * 1e3 / len(paths)
        )

    sweep = {}
    for n in settings.workers_sweep:
        dm.loader = dataclasses.replace(
            loader, num_workers=int(n), persistent_workers=False, prefetch_factor=None
        )
        sweep[int(n)] = _loader_rate(dm.train_dataloader(), count)
    dm.loader = loader
    best = max(sweep.values())
    results["workers_sweep_img_s"] = sweep
    results["recommended_num_workers"] = min(n for n, r in sweep.items() if r >= 0.95 * best)

    device = torch.device("cuda" if torch.cuda.is_available() and settings.device == "auto" else "cpu")
    if settings.device not in ("auto", "cpu"):
        device = torch.device(settings.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    uint8_batch, labels = next(iter(dm.train_dataloader()))
    uint8_batch, labels = uint8_batch.to(device), labels.to(device)
    out, _ = dm.device_stage((uint8_batch, labels), transforms, train=True)
    stage_ms = _ms(lambda: dm.device_stage((uint8_batch, labels), transforms, train=True), repeats, sync)
    clone_ms = _ms(lambda: out.clone(), repeats, sync)
    other, into = torch.empty_like(out), torch.empty_like(out)
    add_ms = _ms(lambda: torch.add(out, other, out=into), repeats, sync)  # the bandwidth floor
    results["device_stage"] = {
        "batch": list(out.shape),
        "device": str(device),
        "ms": round(stage_ms, 3),
        "clone_ms": round(clone_ms, 3),
        "add_out_ms": round(add_ms, 3),
        "x_clone": round(stage_ms / clone_ms, 3),
    }
    # kernel launches per batch, counted on meta tensors (the non-CPU path; no GPU needed)
    from lightning_aug.bench.launches import device_stage_launches, mixup_launches

    results["launches"] = {
        "device_stage": device_stage_launches(tuple(uint8_batch.shape)),
        "mixup": mixup_launches(tuple(settings.mixup_shape), dm.num_classes),
    }
    # what the training step receives per second: the configured loader plus the device stage
    # (on this device), against the baseline loader, whose workers already normalised
    pipeline_loader = results["loader_img_s"][f"pipeline, {workers} workers"]
    per_image_s = 1 / pipeline_loader + stage_ms / 1e3 / out.shape[0]
    results["to_training_step_img_s"] = {
        "configured (loader + device stage)": 1 / per_image_s,
        "baseline (loader)": results["loader_img_s"][f"baseline, {workers} workers"],
    }
    shape = list(settings.mixup_shape)
    results["mixup_kernel"] = {
        "shape": shape,
        "rows": bench_mixup(shape[0], shape[-1], str(device), repeats=repeats),
    }
    if int(settings.fit_epochs) > 0:
        results["fit"] = _fit(cfg, dm, baseline, int(settings.fit_epochs), list(out.shape[1:]))
    _write(results, Path(cfg.paths.output_dir))
    return results


def _model_step_ms_per_image(
    cfg: DictConfig, dm: Any, batch_shape: list[int], device: Any, steps: int = 3
) -> float:
    """Wall time per image of the model's training step alone (forward, loss, backward, optimiser
    step) on a random float batch of ``batch_shape`` on ``device``: no data loading at all."""
    import torch

    from lightning_aug.cli.common import build_model

    model = build_model(cfg, dm).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    images = torch.randn(batch_shape, device=device)
    labels = torch.randint(0, dm.num_classes, (batch_shape[0],), device=device)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) * 1e3 / (steps * batch_shape[0])


def _fit(cfg: DictConfig, dm: Any, baseline: Any, epochs: int, image_shape: list[int]) -> dict[str, Any]:
    """Wall time of ``trainer.fit`` with the configured DataModule and with the baseline pipeline, and
    the bound on the speed-up: the fit cannot be faster than the model's training steps alone."""
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch import LightningDataModule, Trainer, seed_everything
    from torch.utils.data import DataLoader

    from lightning_aug.cli.common import build_callbacks, build_model

    workers = dm.loader.resolve_num_workers(1)

    class Baseline(LightningDataModule):
        def train_dataloader(self) -> DataLoader:
            return DataLoader(
                baseline,
                batch_size=dm.loader.batch_size,
                shuffle=True,
                num_workers=workers,
                drop_last=True,
                persistent_workers=workers > 0,
            )

    walls, images = {}, {}
    for name, datamodule in (("configured", dm), ("baseline", Baseline())):
        seed_everything(cfg.seed, workers=False)
        model = build_model(cfg, dm)
        callbacks = [c for c in build_callbacks(cfg) if "ModelCheckpoint" not in type(c).__name__]
        trainer: Trainer = instantiate(
            cfg.trainer,
            max_epochs=epochs,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=callbacks,
        )
        start = time.perf_counter()
        trainer.fit(model, datamodule)
        walls[name] = time.perf_counter() - start
        images[name] = trainer.global_step * dm.loader.batch_size
        root_device = trainer.strategy.root_device
        del model, trainer
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    model_ms = _model_step_ms_per_image(cfg, dm, [dm.loader.batch_size, *image_shape], root_device)
    baseline_ms = walls["baseline"] * 1e3 / max(images["baseline"], 1)
    return {
        "configured_s": round(walls["configured"], 2),
        "baseline_s": round(walls["baseline"], 2),
        "speedup": round(walls["baseline"] / walls["configured"], 3),
        "baseline_ms_per_image": round(baseline_ms, 3),
        "model_step_ms_per_image": round(model_ms, 3),
        "speedup_limit": round(baseline_ms / model_ms, 3),
    }


def _table(results: dict[str, Any]) -> str:
    lines = ["per worker (one process)                   img/s  x classic  x OpenCV decode"]
    rates = results["per_worker_img_s"]
    decode = rates.get(DECODE_OPENCV)
    for k, v in rates.items():
        base = rates[EVAL_BASELINE] if k.startswith("eval") else rates[BASELINE]
        versus = f"{v / decode:>15.2f}" if decode else ""
        lines.append(f"  {k:<40} {v:>6.0f} {v / base:>9.2f}{versus}")
    if results.get("crop_while_decoding"):
        lines.append("  (the configured pipeline crops while decoding: only the crop's region is decoded)")
    lines.append("DataLoader (configured workers)            img/s")
    lines += [f"  {k:<38} {v:>8.0f}" for k, v in results["loader_img_s"].items()]
    to_step = results["to_training_step_img_s"]
    ratio = to_step["configured (loader + device stage)"] / to_step["baseline (loader)"]
    lines.append(f"to training_step (loader + device stage)   img/s   ({ratio:.1f}x baseline)")
    lines += [f"  {k:<38} {v:>8.0f}" for k, v in to_step.items()]
    if "per_transform_ms" in results:
        lines.append("per-transform cost                         ms/img")
        lines += [f"  {k:<38} {v:>8.3f}" for k, v in results["per_transform_ms"].items()]
    lines.append("num_workers sweep                          img/s")
    lines += [f"  {k:<38} {v:>8.0f}" for k, v in results["workers_sweep_img_s"].items()]
    lines.append(f"  recommended num_workers: {results['recommended_num_workers']}")
    stage = results["device_stage"]
    lines.append(
        f"device stage {stage['batch']} on {stage['device']}: {stage['ms']:.2f} ms/batch, "
        f"x.clone() {stage['clone_ms']:.2f} ms ({stage['x_clone']:.2f}x), "
        f"add(x, y, out=z) {stage['add_out_ms']:.2f} ms"
    )
    lines.append("kernel launches per batch (top-level aten ops on meta tensors)")
    for group, counts in results["launches"].items():
        lines += [f"  {group:<13} {name:<44} {count:>4}" for name, count in counts.items()]
    mix = results["mixup_kernel"]
    lines.append(f"mixup kernel {mix['shape']}            ms/batch  x clone  extra mem")
    for row in mix["rows"]:
        extra = "n/a" if row["extra_memory"] is None else f"{row['extra_memory']:.2f}"
        lines.append(f"  {row['case']:<38} {row['ms']:>8.2f} {row['x_clone']:>8.2f} {extra:>9}")
    if "fit" in results:
        fit = results["fit"]
        lines.append(
            f"trainer.fit: configured {fit['configured_s']:.1f} s, baseline {fit['baseline_s']:.1f} s, "
            f"speed-up {fit['speedup']:.2f}x"
        )
        if "speedup_limit" in fit:
            lines.append(
                f"  the model's step alone: {fit['model_step_ms_per_image']:.2f} ms/img, the baseline fit "
                f"{fit['baseline_ms_per_image']:.2f} ms/img: no data path can make it more than "
                f"{fit['speedup_limit']:.2f}x faster"
            )
    return "\n".join(lines)


def _chart(results: dict[str, Any], path: Path) -> None:
    """A horizontal bar chart of the img/s measurements (PIL, no plotting dependency)."""
    from PIL import Image, ImageDraw

    bars = {**results["per_worker_img_s"], **results["loader_img_s"]}
    width, row = 720, 26
    image = Image.new("RGB", (width, row * len(bars) + 40), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), "img/s (higher is better)", fill="black")
    top = max(bars.values())
    for i, (name, value) in enumerate(bars.items()):
        y = 32 + i * row
        length = int((width - 330) * value / top)
        colour = (70, 110, 190) if "baseline" not in name else (190, 110, 70)
        draw.text((10, y + 4), name[:42], fill="black")
        draw.rectangle((300, y + 2, 300 + length, y + row - 6), fill=colour)
        draw.text((305 + length, y + 4), f"{value:.0f}", fill="black")
    image.save(path)


def _write(results: dict[str, Any], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    _chart(results, output_dir / "bench.png")
    print(_table(results))
    print(f"bench: {output_dir / 'bench.json'} {output_dir / 'bench.png'}")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="bench")
def main(cfg: DictConfig) -> None:
    bench(cfg)


if __name__ == "__main__":
    main()
