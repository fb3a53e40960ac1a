"""The loader rows of ``lightning-aug-bench``: images a second through the training DataLoader, and the
resident memory of the process and its workers, for each number of worker processes
(``bench.workers_sweep``) and of decode threads per worker (``bench.decode_threads_sweep``: a batch's
crops decoded side by side, :mod:`lightning_aug.data.threads`; 1 is the per-sample path)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["decode_threads", "loader_rate", "loader_sweep", "resident_mib"]


@contextlib.contextmanager
def decode_threads(dataset: Any, threads: int) -> Iterator[None]:
    """``dataset`` decodes a batch's crops with ``threads`` threads meanwhile (where it is a
    :class:`~lightning_aug.data.datasets.base.TransformedDataset` whose crop runs while decoding)."""
    from lightning_aug.data.datasets.base import TransformedDataset
    from lightning_aug.data.threads import DecodeThreads

    if not (isinstance(dataset, TransformedDataset) and dataset.fused):
        yield
        return
    configured, dataset.threads = dataset.threads, DecodeThreads(threads)
    try:
        yield
    finally:
        dataset.threads = configured


def resident_mib() -> float | None:
    """The memory of this process and its live child processes (the loader's workers), in MiB: the sum
    of their proportional set sizes (``Pss`` of ``/proc/<pid>/smaps_rollup``: a page shared by n of
    them counts 1/n in each, so the pages the workers share with this process after the fork count
    once); ``None`` without ``/proc``."""
    from lightning_aug.monitor.workers import live_children

    if not Path("/proc/self/smaps_rollup").exists():
        return None
    total = 0
    for pid in (os.getpid(), *live_children()):
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:  # ended meanwhile
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("Pss:"))  # kB
    return total / 1024


def loader_rate(loader: Any, images: int, passes: int = 1) -> tuple[float, float | None]:
    """``(img/s, MiB)``: the rate of a DataLoader after its first batch (worker start-up excluded),
    over ``images`` images or ``passes`` epochs, whichever ends first, then :func:`resident_mib`, read
    once the clock has stopped (with the workers alive: the iterator's, or persistent ones)."""
    batches = itertools.chain.from_iterable(itertools.repeat(loader, passes))
    next(batches)  # the first batch: the workers have started
    seen, start = 0, time.perf_counter()
    for batch in batches:
        seen += len(batch[0])
        if seen >= images:
            break
    return seen / max(time.perf_counter() - start, 1e-9), resident_mib()


def loader_sweep(
    dm: Any, workers: Sequence[int], threads: Sequence[int], images: int, rounds: int = 3, passes: int = 3
) -> dict[str, Any]:
    """Each ``(num_workers, decode_threads)`` pair through ``dm``'s training loader, ``images`` images
    or ``passes`` epochs (persistent workers: later epochs reuse them, as in training), the pairs
    taking turns for ``rounds`` rounds: ``rows`` (workers, decode_threads, the median img_s and each
    round's, rss_mib), the ``workers_sweep_img_s`` of one thread, and the recommended pair: the fewest
    workers, then threads, within 5% of the best median. Threads act only where the train crop runs
    while decoding (``fused``)."""
    import statistics

    from lightning_aug.data.datasets.base import TransformedDataset

    loader, train = dm.loader, dm.datasets["train"]
    fused = isinstance(train, TransformedDataset) and train.fused
    pairs = [(int(n), int(t)) for n in workers for t in (threads if fused else [1])]
    rates: dict[tuple[int, int], list[float]] = {pair: [] for pair in pairs}
    memory: dict[tuple[int, int], float | None] = {}
    for _ in range(rounds):
        for n, t in pairs:
            dm.loader = dataclasses.replace(
                loader, num_workers=n, persistent_workers=n > 0, prefetch_factor=None
            )
            with decode_threads(train, t):
                rate, memory[n, t] = loader_rate(dm.train_dataloader(), images, passes)
            rates[n, t].append(rate)
    dm.loader = loader
    rows: list[dict[str, Any]] = [
        {
            "workers": n,
            "decode_threads": t,
            "img_s": statistics.median(rates[n, t]),
            "rounds_img_s": rates[n, t],
            "rss_mib": memory[n, t],
        }
        for n, t in pairs
    ]
    medians = {pair: statistics.median(rates[pair]) for pair in pairs}
    best = max(medians.values())
    pick = min(pair for pair in pairs if medians[pair] >= 0.95 * best)
    return {
        "rows": rows,
        "threads_swept": fused,  # threads act only where the train crop runs while decoding
        "workers_sweep_img_s": {row["workers"]: row["img_s"] for row in rows if row["decode_threads"] == 1},
        "recommended_num_workers": pick[0],
        "recommended_decode_threads": pick[1],
    }
