"""The measurements of ``lightning-aug-bench``: how fast the configured data path is, beside the
classic one.

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
- a sweep of ``num_workers`` x ``decode_threads`` with the recommended pair, and beside it a
  thread-based loader (SPDL's pipeline, ``bench.thread_loader_sweep``);
- optionally (``bench.fit_epochs > 0``) ``trainer.fit`` wall time with the configured pipeline
  against the baseline pipeline, same model and loader settings (validation off for both).

It prints a table and writes ``bench.json`` and a bar chart ``bench.png`` into the run folder::

    lightning-aug-bench                                             # the photographs (defaults)
    lightning-aug-bench data=synthetic ~experiment                   # the built-in set, the train defaults
    lightning-aug-bench experiment=bench_cifar bench.fit_epochs=2    # CIFAR-size, device-batched
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from lightning_aug.bench.cases import (
    BASELINE,
    CONFIGURED,
    DECODE_OPENCV,
    EVAL_BASELINE,
    EVAL_CONFIGURED,
    FLOOR,
    FLOOR_TV,
)
from lightning_aug.bench.floor import floor_case, is_jpeg
from lightning_aug.bench.sweep import decode_threads, loader_rate, loader_sweep, sweep_setting
from lightning_aug.bench.timing import median_ms, per_worker_rates

__all__ = [
    "BASELINE",
    "CONFIGURED",
    "DECODE_OPENCV",
    "EVAL_BASELINE",
    "EVAL_CONFIGURED",
    "FLOOR",
    "FLOOR_TV",
    "baseline_transform",
    "bench",
]


def _hw(size: Any) -> tuple[int, int]:
    """A transform's size argument (int or (h, w)) as (h, w)."""
    return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[-1]))


def baseline_eval_transform(dm: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    """The classic torchvision v1 evaluation ``Compose`` doing what the configured eval pipeline does,
    where it starts with a resize of the shorter side and a centre crop (either backend): Resize +
    CenterCrop + ``ToTensor`` + ``Normalize``; ``None`` for other pipelines."""
    import torchvision.transforms as T

    head = dm.eval_pipeline.decode_head
    if head is None or len(head.transforms) != 2:
        return None
    resize, crop = head.transforms
    side = resize.max_size if hasattr(resize, "max_size") and resize.max_size else resize.size[0]
    size = (crop.height, crop.width) if hasattr(crop, "height") else _hw(crop.size)
    return T.Compose([T.Resize(side), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])


def _preset(name: str) -> Any:
    """The shipped augment preset ``name`` as composed by Hydra (what it inherits included), its
    interpolations left for the run's config to resolve."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException
    from omegaconf import OmegaConf

    try:
        if GlobalHydra.instance().is_initialized():  # inside the app
            composed = compose("bench", overrides=[f"augment={name}"])
        else:
            with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
                composed = compose("bench", overrides=[f"augment={name}"])
    except MissingConfigException:
        raise ValueError(
            f"bench.compare_augment: no augment preset {name!r} in the shipped config tree"
        ) from None
    return OmegaConf.to_container(composed.augment, resolve=False)


def _compare_pipelines(cfg: DictConfig, names: Sequence[str]) -> dict[str, Any]:
    """The train and eval :class:`~lightning_aug.data.pipeline.Pipeline` of each shipped augment preset
    in ``names``, its interpolations resolved against this run's config."""
    from omegaconf import OmegaConf

    from lightning_aug.data.pipeline import Pipeline

    pipelines = {}
    for name in names:
        run = cfg.copy()
        OmegaConf.set_struct(run, False)
        run.augment = _preset(name)
        spec: Any = OmegaConf.to_container(run.augment, resolve=True)
        pipelines[name] = (
            Pipeline(spec["train_transforms"], spec["backend"], name=f"{name} train pipeline"),
            Pipeline(spec["eval_transforms"], spec["backend"], name=f"{name} eval pipeline"),
        )
    return pipelines


def baseline_transform(
    dm: Any, mean: Sequence[float], std: Sequence[float], image_hw: tuple[int, int] = (32, 32)
) -> Any:
    """The classic torchvision v1 training ``Compose`` doing what the configured augmentation does:
    a random resized crop + flip where the train pipeline has one; a padded random crop + flip where the
    pipeline (either backend) or the device ops have one (``image_hw``: the size the device ops see);
    nothing else (``augment=none``); then ``ToTensor`` + ``Normalize`` (float in the worker)."""
    import torchvision.transforms as T

    ops: list[Any] = []
    padding = 0
    for t in [*dm.train_pipeline.transforms, *dm.device_transforms]:
        kind = type(t).__name__
        if t is dm.train_pipeline.leading_resized_crop:  # of either backend, subclasses included
            ops = [T.RandomResizedCrop(_hw(t.size)), T.RandomHorizontalFlip()]
            break
        if kind == "Pad":  # albumentations pads before its crop
            padding = int(t.padding if isinstance(t.padding, int) else t.padding[0])
        if kind == "RandomCrop":
            if hasattr(t, "height"):  # albumentations
                size = (t.height, t.width)
            else:  # torchvision v2 (padding as 4 sides) or the device op (size None: the image's)
                size = image_hw if t.size is None else _hw(t.size)
                padding = t.padding if isinstance(t.padding, int) else int((t.padding or [0])[0])
            ops = [T.RandomCrop(size, padding=padding), T.RandomHorizontalFlip()]
            break
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


def _seeding_cost(train: Any, configured_img_s: float, samples: int = 20000) -> dict[str, float]:
    """Microseconds per sample of seeding a sample's generators from its (seed, epoch, sample) key,
    and its share of the configured pipeline's per-worker time per image."""
    import torch

    from lightning_aug.data.sampling import SampleKey

    outer = torch.get_rng_state()
    start = time.perf_counter()
    for i in range(samples):
        train._seed_sample(SampleKey(i, 1))
    micros = (time.perf_counter() - start) * 1e6 / samples
    torch.set_rng_state(outer)
    return {"us_per_sample": round(micros, 2), "share": round(micros * 1e-6 * configured_img_s, 4)}


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
    outputs = [pipeline.to_output(x) for x in current]
    costs["to CHW uint8 tensor"] = (time.perf_counter() - start) * 1e3 / count
    costs.update(_collate_costs(outputs))
    return costs


def _collate_costs(outputs: list[Any], repeats: int = 31) -> dict[str, float]:
    """ms per image of stacking a batch of the pipeline's outputs (CHW views of HWC arrays): as
    ``torch.stack`` of the CHW views did before (a transposing copy) and as ``collate_uint8`` does
    now (the HWC arrays stacked, a plain copy; the batch is channels_last), medians of ``repeats``."""
    import statistics

    import torch

    from lightning_aug.data.collate import collate_uint8

    samples = [(image, 0) for image in outputs]

    def timed(run: Callable[[], Any]) -> float:
        run()  # warm: the allocator's first batch-sized block
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3 / len(outputs)

    return {
        "collate: stack of CHW views (before)": timed(lambda: torch.stack(outputs)),
        "collate: HWC arrays stacked, channels_last (now)": timed(lambda: collate_uint8(samples)),
    }


def bench(cfg: DictConfig) -> dict[str, Any]:
    """Run every measurement and return the results (also written to ``bench.json``)."""
    from functools import partial

    import torch
    from torch.utils.data import DataLoader

    from lightning_aug.bench.mixup import bench_mixup
    from lightning_aug.cli.common import build_batch_path
    from lightning_aug.data.datasets.base import TransformedDataset

    settings = cfg.bench  # the sweeps refused before the data is made
    workers_swept = sweep_setting(
        settings, "workers_sweep", 0, required=True
    )  # refused before the data is made
    swept = sweep_setting(settings, "decode_threads_sweep", 1, required=False) or [1]
    in_threads = sweep_setting(settings, "thread_loader_sweep", 1, required=False)
    dm, transforms = build_batch_path(cfg, "lightning-aug-bench")
    raw: Any = dm.dataset("train")
    train: Any = dm.datasets["train"]
    count = min(int(settings.images), len(raw))
    repeats = int(settings.repeats)
    first = raw[0][0]
    image_hw = (first.size[1], first.size[0]) if isinstance(first, Image.Image) else tuple(first.shape[:2])
    baseline = _BaselineDataset(raw, baseline_transform(dm, dm.mean, dm.std, image_hw))
    loader = dm.loader
    import os
    import platform

    spreads: dict[str, float] = {}
    results: dict[str, Any] = {
        "config": {
            "data": cfg.data._target_.rsplit(".", 1)[-1],
            "augment": {k: v for k, v in cfg.augment.items()},
            "images": count,
            "repeats": repeats,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
            f"{platform.python_version()}, torch {torch.__version__}",
        },
        "spreads": spreads,
        "max_spread": float(settings.get("max_spread", 0.2)),
    }

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
    size = dm.train_pipeline.output_size
    if files and getattr(raw, "image_decoder", None) is not None and size is not None and is_jpeg(files[0]):
        cases[FLOOR] = floor_case(files, raw.image_decoder, size)  # what per-sample work cannot go below
        cases[FLOOR_TV] = floor_case(files, raw.image_decoder, size, torchvision=True)  # v2's own resize
    cases[BASELINE] = each(baseline)
    if hasattr(train, "__getitems__"):  # a batch at a time, as the DataLoader asks
        from lightning_aug.data.collate import PreCollated

        bs = loader.batch_size

        def made(batch: Any) -> int:  # a PreCollated (images, labels) pair, or a list of samples
            return len(batch[0]) if isinstance(batch, PreCollated) else len(batch)

        from lightning_aug.data.sampling import SampleKey

        passes = [-1]  # each pass over the images is another epoch: other crops, as in training

        def configured(a: int, b: int, threads: int = 1) -> int:  # per worker: the per-sample path
            passes[0] += a == 0
            keys = [SampleKey(i, passes[0]) for i in range(a, b)]
            with decode_threads(train, threads):
                return sum(made(train.__getitems__(keys[s : s + bs])) for s in range(0, len(keys), bs))

        cases[CONFIGURED] = configured
        threads = train.threads.threads if isinstance(train, TransformedDataset) else 1
        if threads > 1:  # what one worker makes with its decode threads (loader.decode_threads)
            cases[f"{CONFIGURED[:-1]}, {threads} decode threads)"] = partial(configured, threads=threads)
    else:
        cases[CONFIGURED] = each(train)

    compare = _compare_pipelines(cfg, list(settings.get("compare_augment") or []))
    for name, (train_pipe, _) in compare.items():
        cases[f"pipeline (augment={name})"] = each(TransformedDataset(dm.dataset("train"), train_pipe, 0))  # type: ignore[arg-type]
    eval_baseline = baseline_eval_transform(dm, dm.mean, dm.std)
    if eval_baseline is not None and not dm.in_memory:  # the eval pipelines, on the same train files
        cases[EVAL_BASELINE] = each(_BaselineDataset(raw, eval_baseline))
        cases[EVAL_CONFIGURED] = each(TransformedDataset(dm.dataset("train"), dm.eval_pipeline, 0))  # type: ignore[arg-type]
        for name, (_, eval_pipe) in compare.items():
            cases[f"eval pipeline (augment={name})"] = each(
                TransformedDataset(dm.dataset("train"), eval_pipe, 0)  # type: ignore[arg-type]
            )
    rates = per_worker_rates(cases, count, repeats, chunk=max(32, loader.batch_size), spreads=spreads)
    results["per_worker_img_s"] = rates

    workers = loader.resolve_num_workers(1)
    kwargs = {"batch_size": loader.batch_size, "num_workers": workers, "shuffle": True}
    results["loader_img_s"] = {
        f"pipeline, {workers} workers": loader_rate(dm.train_dataloader(), count)[0],
        f"baseline, {workers} workers": loader_rate(DataLoader(baseline, **kwargs), count)[0],  # type: ignore[arg-type]
    }
    if not dm.in_memory:
        results["per_transform_ms"] = _per_transform(dm, raw, min(count, 64))
    if isinstance(train, TransformedDataset):  # each sample's generators seeded from its key
        results["per_sample_seeding"] = _seeding_cost(train, rates[CONFIGURED])
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

    results.update(loader_sweep(dm, workers_swept, swept, 2 * count, repeats, thread_loader=in_threads))

    device = torch.device("cuda" if torch.cuda.is_available() and settings.device == "auto" else "cpu")
    if settings.device not in ("auto", "cpu"):
        device = torch.device(settings.device)

    uint8_batch, labels = next(iter(dm.train_dataloader()))
    uint8_batch, labels = uint8_batch.to(device), labels.to(device)
    out, _ = dm.device_stage((uint8_batch, labels), transforms, train=True)
    stage_ms = median_ms(
        lambda: dm.device_stage((uint8_batch, labels), transforms, train=True),
        device,
        repeats,
        spreads=spreads,
        name="device stage",
    )
    clone_ms = median_ms(lambda: out.clone(), device, repeats, spreads=spreads, name="x.clone()")
    other, into = torch.empty_like(out), torch.empty_like(out)
    add_ms = median_ms(lambda: torch.add(out, other, out=into), device, repeats)  # the bandwidth floor
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
        "rows": bench_mixup(shape[0], shape[-1], str(device), repeats=repeats, spreads=spreads),
    }
    if int(settings.fit_epochs) > 0:
        from lightning_aug.bench.fit import fit_speedup

        results["fit"] = fit_speedup(cfg, dm, baseline, int(settings.fit_epochs), list(out.shape[1:]))
    from lightning_aug.bench.report import write

    write(results, Path(cfg.paths.output_dir))
    return results
