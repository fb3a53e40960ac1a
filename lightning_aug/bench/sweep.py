"""The loader rows of ``lightning-aug-bench``: images a second through the training DataLoader, and the
resident memory of the process and its workers, for each number of worker processes
(``bench.workers_sweep``) and of decode threads per worker (``bench.decode_threads_sweep``: a batch's
crops decoded side by side, :mod:`lightning_aug.data.threads`; 1 is the per-sample path)."""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["loader_rate", "loader_sweep", "resident_mib"]


def resident_mib() -> float | None:
    """The resident memory of this process and its live child processes (the loader's workers), in
    MiB; ``None`` without ``/proc``. Pages the workers share with this process after the fork count
    in each: an upper bound."""
    from lightning_aug.monitor.workers import live_children

    if not Path("/proc/self/statm").exists():
        return None
    total = 0
    for pid in (os.getpid(), *live_children()):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:  # ended meanwhile
            continue
    return total * resource.getpagesize() / 2**20


def loader_rate(loader: Any, images: int) -> tuple[float, float | None]:
    """``(img/s, MiB)``: the rate of a DataLoader after its first batch (worker start-up excluded) over
    ``images`` images, and :func:`resident_mib` at the end, its workers and their batches alive."""
    iterator = iter(loader)
    next(iterator)
    seen, start = 0, time.perf_counter()
    for batch in iterator:
        seen += len(batch[0])
        if seen >= images:
            break
    rate = seen / max(time.perf_counter() - start, 1e-9)
    return rate, resident_mib()


def loader_sweep(dm: Any, workers: Sequence[int], threads: Sequence[int], images: int) -> dict[str, Any]:
    """Each ``(num_workers, decode_threads)`` pair through ``dm``'s training loader (non-persistent
    workers): ``rows`` (workers, decode_threads, img_s, rss_mib), the ``workers_sweep_img_s`` of one
    thread, and the recommended pair: the fewest workers, then threads, within 5% of the best rate.
    Threads act only where the train crop runs while decoding (``decode_threads`` of the dataset)."""
    from lightning_aug.data.datasets.base import TransformedDataset
    from lightning_aug.data.threads import DecodeThreads

    loader, train = dm.loader, dm.datasets["train"]
    configured = train.threads if isinstance(train, TransformedDataset) else None
    tried = [int(t) for t in threads] if configured is not None and train.fused else [1]
    rows: list[dict[str, Any]] = []
    for n in workers:
        for t in tried:
            if configured is not None:
                train.threads = DecodeThreads(t)
            dm.loader = dataclasses.replace(
                loader, num_workers=int(n), persistent_workers=False, prefetch_factor=None
            )
            rate, rss = loader_rate(dm.train_dataloader(), images)
            rows.append({"workers": int(n), "decode_threads": t, "img_s": rate, "rss_mib": rss})
    dm.loader = loader
    if configured is not None:
        train.threads = configured
    best = max(row["img_s"] for row in rows)
    pick = min((row["workers"], row["decode_threads"]) for row in rows if row["img_s"] >= 0.95 * best)
    return {
        "rows": rows,
        "workers_sweep_img_s": {row["workers"]: row["img_s"] for row in rows if row["decode_threads"] == 1},
        "recommended_num_workers": pick[0],
        "recommended_decode_threads": pick[1],
    }
