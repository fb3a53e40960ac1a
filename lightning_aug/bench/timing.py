"""Timing helpers shared by the benchmarks: median of repeated calls with the device synchronised,
and per-worker rates of several cases taken in turns.

Not ``torch.utils.benchmark.Timer``: the cases here need an untimed step before each call (a
batch-sized allocation and free, as in training), and the per-worker cases must take turns a chunk at
a time so that a passing load on a shared machine slows them alike; ``Timer`` offers neither.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["median_ms", "per_worker_rates", "sync"]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing elsewhere."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def spread(values: list[float]) -> float:
    """How far repeats of one measurement disagree: (max - min) / median."""
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else 0.0


def median_ms(
    fn: Callable[[], Any],
    device: torch.device,
    repeats: int,
    warmup: int = 1,
    before: Callable[[], Any] | None = None,
    spreads: dict[str, float] | None = None,
    name: str = "",
) -> float:
    """Median milliseconds of ``fn`` over ``repeats`` calls in a row (after ``warmup`` calls), the
    device synchronised around each; ``before`` runs untimed before each call. With ``spreads``, the
    repeats' :func:`spread` is stored there under ``name``."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(max(1, repeats)):
        if before is not None:
            before()
            sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    if spreads is not None:
        spreads[name] = spread(times)
    return statistics.median(times) * 1e3


def per_worker_rates(
    cases: dict[str, Callable[[int, int], int]],
    count: int,
    repeats: int,
    chunk: int,
    spreads: dict[str, float] | None = None,
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
    if spreads is not None:
        spreads.update({name: spread(values) for name, values in samples.items()})
    return {name: statistics.median(values) for name, values in samples.items()}
