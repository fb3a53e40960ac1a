"""lightning-aug-bench: the structure of what it reports, on a tiny set (no timing is asserted)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import BIN, compose_config, run_command
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from lightning_aug.bench.data_path import (
    BASELINE,
    CONFIGURED,
    DECODE_OPENCV,
    EVAL_BASELINE,
    EVAL_CONFIGURED,
    FLOOR,
    FLOOR_TV,
    baseline_transform,
    bench,
)
from lightning_aug.bench.sweep import loader_sweep, sweep_setting, thread_loader_rate
from lightning_aug.cli.common import build_datamodule
from lightning_aug.data.decoders import nvimgcodec_available
from lightning_aug.data.loader import available_cpus
from lightning_aug.errors import SettingError

# the configured pipeline with loader.decode_threads=auto, 2 threads where this process may use 2 CPUs
THREADED = [f"{CONFIGURED[:-1]}, 2 decode threads)"] if available_cpus() >= 2 else []
TINY = [
    "data.train_per_class=6",
    "data.val_per_class=2",
    "data.test_per_class=0",
    "bench.images=24",
    "bench.repeats=1",
    "bench.workers_sweep=[0,1]",
    "bench.thread_loader_sweep=[2]",
    "bench.mixup_shape=[4,3,16,16]",
    "loader.batch_size=8",
    "loader.num_workers=0",
    "loader.persistent_workers=false",
]


def compose_bench(tmp_path: Path, *overrides: str) -> DictConfig:
    return compose_config("bench", [f"paths.output_dir={tmp_path}", *TINY, *overrides])


@pytest.mark.parametrize("experiment", ["bench_imagenet", "bench_cifar"])
def test_bench_reports_every_measurement(tmp_path: Path, experiment: str) -> None:
    overrides = (
        [f"experiment={experiment}", "data.image_size=96"]
        if experiment == "bench_imagenet"
        else [f"experiment={experiment}"]
    )
    results = bench(compose_bench(tmp_path, *overrides, "bench.fit_epochs=1"))
    rates = results["per_worker_img_s"]
    common = {f"decode only ({'nvimgcodec' if nvimgcodec_available() else 'cv2'})", BASELINE, CONFIGURED}
    if experiment == "bench_imagenet":  # photographs: both backends, train and eval, and OpenCV's decode
        assert set(rates) == common | {
            DECODE_OPENCV,
            FLOOR,
            FLOOR_TV,
            *THREADED,
            "pipeline (augment=imagenet_tv)",
            EVAL_BASELINE,
            EVAL_CONFIGURED,
            "eval pipeline (augment=imagenet_tv)",
        }
        assert results["crop_while_decoding"]
    else:  # in memory, device-batched crops: no eval crop to time
        assert set(rates) == common | {DECODE_OPENCV}
    assert all(v > 0 for v in rates.values())
    assert len(results["loader_img_s"]) == 2 and all(v > 0 for v in results["loader_img_s"].values())
    assert set(results["workers_sweep_img_s"]) == {0, 1}
    assert results["recommended_num_workers"] in (0, 1)
    threads = [1, 2] if experiment == "bench_imagenet" else [1]  # threads only where the crop is decoded
    assert [(r["workers"], r["decode_threads"]) for r in results["rows"]] == [
        (w, t) for w in (0, 1) for t in threads
    ]
    assert all(r["img_s"] > 0 and r["rss_mib"] > 100 for r in results["rows"])  # torch alone takes more
    assert results["recommended_decode_threads"] in threads
    (in_threads,) = results["thread_loader_rows"]  # SPDL's thread pipeline in the same rounds
    assert in_threads["threads"] == 2 and in_threads["img_s"] > 0 and in_threads["rss_mib"] > 100
    assert results["threads_swept"] == (experiment == "bench_imagenet")
    assert results["device_stage"]["ms"] > 0 and results["device_stage"]["clone_ms"] > 0
    assert results["device_stage"]["add_out_ms"] > 0
    launches = results["launches"]
    assert set(launches["mixup"]) == {
        "mixup batch",
        "cutmix batch",
        "mixup+cutmix batch",
        "mixup+cutmix pair",
        "mixup+cutmix elem",
    }
    assert 0 < launches["device_stage"]["crop + flip + normalise"] <= 12
    assert results["mixup_kernel"]["rows"][0]["case"] == "x.clone()"
    fit = results["fit"]
    assert {"configured_s", "baseline_s", "speedup", "speedup_limit"} <= set(fit)
    assert fit["model_step_ms_per_image"] > 0 and fit["baseline_ms_per_image"] > 0

    if experiment == "bench_imagenet":
        assert {"RandomResizedCrop", "HorizontalFlip"} <= set(results["per_transform_ms"])
        assert results["crop_while_decoding"] and "decode + crop (fused)" in results["per_transform_ms"]
    else:
        assert "per_transform_ms" not in results  # in memory: no per-sample pipeline
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["recommended_num_workers"] == results["recommended_num_workers"]
    chart = np.asarray(Image.open(tmp_path / "bench.png").convert("L"))
    assert chart.shape[1] == 760 and chart.std() > 5  # bars drawn
    rows = len(rates) + 2 + 3 + len(results["mixup_kernel"]["rows"])  # three panels under the title
    assert chart.shape[0] == 56 + 3 * 30 + 22 * rows


def test_baseline_mirrors_the_preset(tmp_path: Path) -> None:
    def baseline(augment: str) -> Any:
        dm = build_datamodule(compose_bench(tmp_path, f"augment={augment}"))
        return baseline_transform(dm, [0.5] * 3, [0.2] * 3, image_hw=(64, 64))

    imagenet, cifar, none = baseline("imagenet_tv"), baseline("cifar_device"), baseline("none")
    names = [[type(t).__name__ for t in c.transforms] for c in (imagenet, cifar, none)]
    assert names == [
        ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"],
        ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"],
        ["ToTensor", "Normalize"],
    ]
    assert cifar.transforms[0].size == (64, 64) and cifar.transforms[0].padding == 4


@pytest.mark.slow
def test_bench_console_script(tmp_path: Path) -> None:
    result = run_command([str(BIN / "lightning-aug-bench"), *TINY, f"hydra.run.dir={tmp_path}"], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for heading in ("per worker (one process)", "loader sweep", "device stage", "mixup kernel"):
        assert heading in result.stdout
    assert (tmp_path / "bench.json").is_file() and (tmp_path / "bench.png").is_file()


def test_worker_memory_bench_shows_packed_samples_are_not_copied() -> None:
    """Page counts, not times: forked workers reading a list of tuples copy the pages they read; reading
    a SampleList copies none of it."""
    from lightning_aug.bench.memory import fake_samples, memory_row
    from lightning_aug.data.datasets.samples import SampleList

    listed = fake_samples(100_000)
    rows = [
        memory_row("list", listed, workers=2, reads=3000),
        memory_row("packed", SampleList(listed), 2, 3000),
    ]
    grown = [row["USS growth (MiB)"] for row in rows]
    assert grown[0] > 8 and grown[1] < 2, rows


@pytest.mark.slow
def test_streaming_bench_writes_its_rows(tmp_path: Path) -> None:
    """``python -m lightning_aug.bench.streaming`` at a small size: every row, positive rates."""
    pytest.importorskip("litdata")
    pytest.importorskip("skimage")
    from lightning_aug.bench.streaming import main

    out = tmp_path / "rows.json"
    main(
        [
            "--prepare-images",
            "90",
            "--images",
            "20",
            "--size",
            "256",
            "--max-side",
            "128",
            "--root",
            str(tmp_path / "work"),
            "--json",
            str(out),
            "--chunk-sizes",
            "64KB",
        ]
    )
    rows = {row["row"]: row for row in json.loads(out.read_text())}
    mixing = {name: row for name, row in rows.items() if name.startswith("mixing, ")}
    assert len(mixing) == 2 * 3  # the folder and shards with two windows, 0 and 2 workers
    assert all(row["classes per batch"] >= 9.5 for row in mixing.values()), mixing
    assert set(rows) - set(mixing) == {
        "prepare, 1 worker(s)",
        "prepare, 2 worker(s)",
        "loader, image folder",
        "loader, shards (same files)",
        "loader, shards re-encoded at max side 128",
    }
    rates = [row["img/s"] for name, row in rows.items() if name not in mixing]
    assert rows["prepare, 1 worker(s)"]["images"] == 90 and all(rate > 0 for rate in rates)


def test_the_gpu_bench_says_its_plan_here_and_runs_its_parts_on_the_cpu(tmp_path: Path) -> None:
    """``python -m lightning_aug.bench.gpu`` on a machine without CUDA prints what it would run and exits
    0; ``--device cpu`` runs every part but the GPU tests (small sizes here) and writes JSON + PNG with
    ours and each baseline measured, and their launches."""
    import sys

    import torch

    plan = run_command([sys.executable, "-m", "lightning_aug.bench.gpu", "--output-dir", str(tmp_path)])
    assert plan.returncode == 0, plan.stderr[-3000:]
    if not torch.cuda.is_available():
        assert "pytest -m gpu" in plan.stdout and "no CUDA device here: nothing run" in plan.stdout
        assert not (tmp_path / "gpu_bench.json").exists()
    small = ["--batch", "8", "--size", "32", "--repeats", "2", "--images", "32", "--loader-batch", "16"]
    gpu_bench = [sys.executable, "-m", "lightning_aug.bench.gpu", "--device", "cpu", "--workers", "0"]
    result = run_command([*gpu_bench, *small, "--output-dir", str(tmp_path / "cpu")])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "cpu" / "gpu_bench.json").read_text())
    assert (tmp_path / "cpu" / "gpu_bench.png").stat().st_size > 0
    assert report["tests"] == {"ran": False, "why": "they need CUDA"}
    stage = {row["case"].split(":")[0].split(" on ")[0]: row for row in report["device_stage"]}
    assert {"ours", "torchvision v2"} <= set(stage) and all(
        r["ms"] > 0 and r["launches"] > 0 for r in stage.values()
    )
    mixup = {row["case"]: row for row in report["mixup"]}
    for case in ("ours batch mixup [chunked]", "timm-style batch mixup", "torchvision v2 MixUp"):
        assert mixup[case]["ms"] > 0 and mixup[case]["launches"] > 0
    assert report["photographs"]["images"] >= 32 and report["photographs"]["img_s"] > 0


def test_the_end_to_end_bench_trains_the_same_recipe_with_timms_pipeline_and_ours(tmp_path: Path) -> None:
    """``python -m lightning_aug.bench.e2e`` (tiny here: 4 photographs a class, one epoch, 32 px) fits
    the same model both ways and reports each fit's seconds and accuracy, and the ratio."""
    import sys

    pytest.importorskip("timm")
    pytest.importorskip("skimage")
    tiny = ["--per-class", "8", "--val-per-class", "2", "--size", "32", "--epochs", "1", "--workers", "0"]
    tiny += ["--decode-threads", "1"]
    command = [sys.executable, "-m", "lightning_aug.bench.e2e", *tiny, "--root", str(tmp_path / "photos")]
    result = run_command([*command, "--json", str(tmp_path / "e2e.json")])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "e2e.json").read_text())
    assert report["images"] == {"train": 72, "val": 18} and report["size"] == 32
    assert report["decode_threads"] == 1
    for name in ("timm", "lightning_aug"):
        assert report[name]["seconds"] > 0 and 0.0 <= report[name]["val_acc"] <= 1.0
    assert report["speedup"] == round(report["timm"]["seconds"] / report["lightning_aug"]["seconds"], 3)
    assert "x timm's pipeline" in result.stdout


def test_the_floor_draws_crops_as_random_resized_crop_does() -> None:
    from lightning_aug.bench.floor import resized_crop_box

    rng = np.random.default_rng(0)
    areas = []
    for _ in range(500):
        y0, x0, y1, x1 = resized_crop_box((375, 500), rng)
        assert 0 <= y0 < y1 <= 375 and 0 <= x0 < x1 <= 500
        areas.append((y1 - y0) * (x1 - x0) / (375 * 500))
        assert 3 / 4 * 0.97 <= (x1 - x0) / (y1 - y0) <= 4 / 3 * 1.03 or areas[-1] > 0.5
    assert min(areas) >= 0.08 * 0.97 and max(areas) <= 1.0 and 0.4 < float(np.mean(areas)) < 0.6


def test_the_decode_stage_bench_decodes_the_same_pixels_every_way(tmp_path: Path) -> None:
    """Batched, nvImageCodec's threads, Python threads, processes: each the per-image pixels."""
    if not nvimgcodec_available():
        pytest.skip("needs nvImageCodec (the fast extra)")
    out = tmp_path / "decode.json"
    args = ["--images", "24", "--batch", "8", "--repeats", "1", "--threads", "2", "--out", str(out)]
    result = run_command([sys.executable, "-m", "lightning_aug.bench.decode_stage", *args], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert {
        "per image, 1 process",
        "batched, 1 thread",
        "batched, nvImageCodec's 2 threads",
        "batched, 2 Python threads",
        "per image, 2 processes",
    } <= set(rows)
    assert all(row["same_pixels"] and row["img_s"] > 0 and row["added_rss_mib"] >= 0 for row in rows.values())


class _Recording(torch.utils.data.Dataset):
    """Eight numbers that note which thread fetched each batch (``__getitems__``, as a worker asks)."""

    def __init__(self) -> None:
        self.fetched: list[tuple[list[int], str]] = []

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        raise AssertionError("a thread loader asks for whole batches, as a DataLoader worker does")

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        self.fetched.append((list(indices), threading.current_thread().name))
        return [(torch.full((3,), i), i) for i in indices]


def test_the_thread_loader_makes_the_samplers_batches_in_its_threads() -> None:
    data = _Recording()
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    rate, memory = thread_loader_rate(loader, threads=2, images=100, passes=3)
    assert rate > 0 and (memory is None or memory > 0)
    # every batch of three passes over the sampler, fetched whole, none in the calling thread
    assert sorted(tuple(batch) for batch, _ in data.fetched) == sorted([(0, 1), (2, 3), (4, 5), (6, 7)] * 3)
    assert threading.current_thread().name not in {name for _, name in data.fetched}


def test_the_sweep_says_why_it_has_no_thread_loader_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "spdl.pipeline", None)  # as where spdl-core is not installed
    dm = build_datamodule(compose_bench(tmp_path, "experiment=bench_cifar"))
    dm.prepare_data()  # the digits written to this test's cache (not left there by another test)
    dm.setup("fit")
    results = loader_sweep(dm, [0], [1], images=16, rounds=1, passes=1, thread_loader=[2])
    assert "thread_loader_rows" not in results
    assert "spdl-core is not installed" in results["thread_loader_missing"]
    assert "pip install lightning-aug[bench]" in results["thread_loader_missing"]
    assert [row["workers"] for row in results["rows"]] == [0]  # the DataLoader rows are still there


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_the_end_to_end_bench_refuses_a_bad_thread_count_before_any_fit(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightning_aug.bench import e2e

    with pytest.raises(SystemExit):
        e2e.main(["--decode-threads", value])  # refused by argparse: no photographs written, no fit
    expected = f"argument --decode-threads: expected an int >= 1 or auto, got {value!r}"
    assert expected in capsys.readouterr().err
    assert [e2e._decode_threads(v) for v in ("1", "3", "auto")] == [1, 3, "auto"]  # its valid neighbours


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("workers_sweep", "[]"),
        ("workers_sweep", "[-1]"),
        ("decode_threads_sweep", "[0]"),
        ("decode_threads_sweep", "[1,x]"),
        ("thread_loader_sweep", "[0]"),
        ("thread_loader_sweep", "[true]"),
    ],
)
def test_a_bad_sweep_is_refused_naming_its_key_before_the_data_is_made(
    tmp_path: Path, key: str, value: str
) -> None:
    cfg = compose_bench(tmp_path, f"bench.{key}={value}", "data.root=/nonexistent")  # never reached
    with pytest.raises(SettingError, match=rf"^bench\.{key} must be a list of .*ints >= \d, got \["):
        bench(cfg)


def test_the_sweeps_valid_neighbours_are_taken() -> None:
    settings = OmegaConf.create(
        {"workers_sweep": [0, 2], "decode_threads_sweep": [], "thread_loader_sweep": None}
    )
    assert sweep_setting(settings, "workers_sweep", 0, required=True) == [0, 2]
    assert sweep_setting(settings, "decode_threads_sweep", 1, required=False) == []  # the bench times 1
    assert sweep_setting(settings, "thread_loader_sweep", 1, required=False) == []  # no thread-loader rows
    assert sweep_setting(OmegaConf.create({}), "thread_loader_sweep", 1, required=False) == []
