"""The loader rows of ``lightning-aug-bench``: images a second through the training DataLoader, and the
resident memory of the process and its workers, for each number of worker processes
(``bench.workers_sweep``) and of decode threads per worker (``bench.decode_threads_sweep``: a batch's
crops decoded side by side, :mod:`lightning_aug.data.threads`; 1 is the per-sample path), and beside
them a thread-based loader (``bench.thread_loader_sweep``: SPDL's pipeline, ``spdl-core``)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "decode_threads",
    "loader_rate",
    "loader_sweep",
    "resident_mib",
    "sweep_setting",
    "thread_loader_rate",
]


def sweep_setting(settings: Any, key: str, minimum: int, *, required: bool) -> list[int]:
    """``bench.<key>`` of ``settings`` (the bench group), a list of ints >= ``minimum`` (at least one
    where ``required``), checked before anything is timed.

    Raises:
        SettingError: naming ``bench.<key>``, the value and what is expected.
    """
    from lightning_aug.errors import SettingError

    values = list(settings.get(key) or [])
    if all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values) and (
        values or not required
    ):
        return values
    wanted = f"a list of {'one or more ' if required else ''}ints >= {minimum}"
    raise SettingError(f"bench.{key} must be {wanted}, got {values}: e.g. bench.{key}=[{minimum + 1}]")


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
    return _rate(itertools.chain.from_iterable(itertools.repeat(loader, passes)), images), resident_mib()


def _rate(batches: Iterator[Any], images: int) -> float:
    """Images a second of ``batches`` (each ``(images, labels, ...)``) after the first (the loader's
    start-up), over ``images`` images or until they end."""
    next(batches)  # the first batch: the workers (or threads) have started
    seen, start = 0, time.perf_counter()
    for batch in batches:
        seen += len(batch[0])
        if seen >= images:
            break
    return seen / max(time.perf_counter() - start, 1e-9)


def thread_loader_rate(loader: Any, threads: int, images: int, passes: int = 1) -> tuple[float, float | None]:
    """``(img/s, MiB)`` as :func:`loader_rate` gives them, of a thread-based loader instead of
    ``loader``'s processes: SPDL's pipeline (``spdl.pipeline``) running ``threads`` threads in this
    process, each making whole batches of ``loader``'s batch sampler with its dataset's ``__getitems__``
    (one decode thread: the per-sample path) and its ``collate_fn``, as a DataLoader worker does, with
    no hand-over between processes. The samples' draws then race between the threads (the generators
    are the process's), so the crops are not the seeded ones: a rate, not a way to train.

    Raises:
        ImportError: ``spdl-core`` is not installed (``pip install lightning-aug[bench]``).
    """
    from spdl.pipeline import PipelineBuilder

    dataset, collate = loader.dataset, loader.collate_fn
    # what a DataLoader worker's fetcher calls: the dataset's __getitems__ where it has one
    fetch = getattr(dataset, "__getitems__", None) or (lambda batch: [dataset[key] for key in batch])
    keys = itertools.chain.from_iterable(itertools.repeat(loader.batch_sampler, passes))
    pipeline: Any = (
        PipelineBuilder()
        .add_source(keys)
        .pipe(lambda batch: collate(fetch(batch)), concurrency=threads)
        .add_sink(2 * threads)  # as a DataLoader's prefetch_factor of 2 for each of ``threads`` workers
        .build(num_threads=threads)
    )
    with decode_threads(dataset, 1), _quiet("spdl"), pipeline.auto_stop():
        rate = _rate(iter(pipeline), images)
    return rate, resident_mib()


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """The logger ``name`` says only warnings and errors meanwhile (SPDL logs each stage's statistics
    at the info level as its pipeline stops)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _thread_loader_missing() -> str | None:
    """Why the thread-based loader rows cannot run here, or ``None``."""
    try:
        import spdl.pipeline  # noqa: F401
    except ImportError as err:
        return f"spdl-core is not installed ({err}): pip install lightning-aug[bench]"
    return None


def loader_sweep(
    dm: Any,
    workers: Sequence[int],
    threads: Sequence[int],
    images: int,
    rounds: int = 3,
    passes: int = 3,
    thread_loader: Sequence[int] = (),
) -> dict[str, Any]:
    """Each ``(num_workers, decode_threads)`` pair through ``dm``'s training loader, ``images`` images
    or ``passes`` epochs (persistent workers: later epochs reuse them, as in training), the pairs
    taking turns for ``rounds`` rounds: ``rows`` (workers, decode_threads, the median img_s and each
    round's, rss_mib), the ``workers_sweep_img_s`` of one thread, and the recommended pair: the fewest
    workers, then threads, within 5% of the best median. Threads act only where the train crop runs
    while decoding (``fused``). Each count of ``thread_loader`` threads (:func:`thread_loader_rate`)
    takes its turn in the same rounds: ``thread_loader_rows`` (threads, img_s, rounds_img_s,
    rss_mib), or ``thread_loader_missing`` saying why they could not run."""
    import statistics

    from lightning_aug.data.datasets.base import TransformedDataset

    loader, train = dm.loader, dm.datasets["train"]
    fused = isinstance(train, TransformedDataset) and train.fused
    pairs = [(int(n), int(t)) for n in workers for t in (threads if fused else [1])]
    rates: dict[tuple[int, int], list[float]] = {pair: [] for pair in pairs}
    memory: dict[tuple[int, int], float | None] = {}
    missing = _thread_loader_missing() if thread_loader else None
    in_threads: dict[int, list[float]] = {} if missing else {int(k): [] for k in thread_loader}
    thread_memory: dict[int, float | None] = {}
    in_main = dataclasses.replace(loader, num_workers=0, persistent_workers=False, prefetch_factor=None)
    for _ in range(rounds):
        for n, t in pairs:
            dm.loader = dataclasses.replace(
                loader, num_workers=n, persistent_workers=n > 0, prefetch_factor=None
            )
            with decode_threads(train, t):
                rate, memory[n, t] = loader_rate(dm.train_dataloader(), images, passes)
            rates[n, t].append(rate)
        dm.loader = in_main  # the thread loader's batch sampler, dataset and collate
        for k, samples in in_threads.items():
            rate, thread_memory[k] = thread_loader_rate(dm.train_dataloader(), k, images, passes)
            samples.append(rate)
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
    thread_rows = [
        {"threads": k, "img_s": statistics.median(v), "rounds_img_s": v, "rss_mib": thread_memory[k]}
        for k, v in in_threads.items()
    ]
    return {
        "rows": rows,
        **({"thread_loader_missing": missing} if missing else {"thread_loader_rows": thread_rows}),
        "threads_swept": fused,  # threads act only where the train crop runs while decoding
        "workers_sweep_img_s": {row["workers"]: row["img_s"] for row in rows if row["decode_threads"] == 1},
        "recommended_num_workers": pick[0],
        "recommended_decode_threads": pick[1],
    }
