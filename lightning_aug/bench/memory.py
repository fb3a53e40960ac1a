"""DataLoader workers' memory over a large sample list: a Python list of ``(path, label)`` tuples against
:class:`~lightning_aug.data.datasets.samples.SampleList` (one path blob, offsets, labels).

A forked worker shares its parent's pages until it writes them. Reading a sample from a list of tuples
writes the reference counts of the tuple, its string and its label, so each worker copies the pages it
reads; a ``SampleList`` read writes nothing shared. Each row: a 1,000,000-entry sample list (ImageNet-like
paths), ``--workers`` forked DataLoader workers each doing ``--reads`` random reads; each worker's USS
(its private pages) and PSS (its share of all its pages) from ``/proc/<pid>/smaps_rollup``, before and
after the reads (Linux only).

Run::

    python -m lightning_aug.bench.memory                 # 1,000,000 samples, 2 workers, 5000 reads each
    python -m lightning_aug.bench.memory --samples 100000 --reads 2000
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from lightning_aug.data.datasets.samples import SampleList

__all__ = ["fake_samples", "main", "memory_row", "process_memory"]

_PROBE = -1  # an index that reports the worker's memory instead of reading a sample


def process_memory(pid: int | str = "self") -> tuple[int, int]:
    """``(USS, PSS)`` of a process in bytes, from ``/proc/<pid>/smaps_rollup``."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) * 1024
    return fields["Private_Clean"] + fields["Private_Dirty"], fields["Pss"]


def fake_samples(count: int, classes: int = 1000, seed: int = 0) -> list[tuple[str, int]]:
    """``count`` ImageNet-like ``(path, label)`` samples (no files behind them), sorted by class."""
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, classes, count))
    ids = rng.integers(0, 10**6, count)
    return [
        (f"/datasets/imagenet/train/n{label:08d}/n{label:08d}_{i}.JPEG", int(label))
        for label, i in zip(labels.tolist(), ids.tolist(), strict=True)
    ]


class _Reads(Dataset):
    def __init__(self, samples: Sequence[tuple[str, int]]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Any:
        if index == _PROBE:
            info = get_worker_info()
            return ("memory", info.id if info is not None else -1, *process_memory())
        path, label = self.samples[index]
        return len(path) + label


class _ProbeReadsProbe(Sampler[list[int]]):
    """Batches dealt to workers in turn: one probe each, ``reads`` random reads each, one probe each."""

    def __init__(self, size: int, workers: int, reads: int, batch: int, seed: int) -> None:
        self.size, self.workers, self.reads, self.batch, self.seed = size, workers, reads, batch, seed

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(self.seed)
        yield from ([_PROBE] for _ in range(self.workers))
        for _ in range(self.reads // self.batch * self.workers):
            yield rng.integers(0, self.size, self.batch).tolist()
        yield from ([_PROBE] for _ in range(self.workers))

    def __len__(self) -> int:
        return 2 * self.workers + self.reads // self.batch * self.workers


def memory_row(
    layout: str, samples: Sequence[tuple[str, int]], workers: int = 2, reads: int = 5000, seed: int = 0
) -> dict[str, Any]:
    """Workers' memory before and after ``reads`` random reads each of ``samples``, in MiB."""
    gc.collect()
    loader = DataLoader(
        _Reads(samples),
        batch_sampler=_ProbeReadsProbe(len(samples), workers, reads, 50, seed),
        num_workers=workers,
        multiprocessing_context="fork",  # what DataLoader workers use on Linux (Python < 3.14)
        collate_fn=lambda batch: batch,
    )
    start = time.perf_counter()
    probes = [item for batch in loader for item in batch if isinstance(item, tuple)]
    mib = 2**20
    before, after = probes[:workers], probes[workers:]
    return {
        "layout": layout,
        "samples": len(samples),
        "workers": workers,
        "reads per worker": reads,
        "USS before (MiB)": round(float(np.mean([p[2] for p in before])) / mib, 1),
        "USS after (MiB)": round(float(np.mean([p[2] for p in after])) / mib, 1),
        "USS growth (MiB)": round(
            float(np.mean([a[2] - b[2] for a, b in zip(after, before, strict=True)])) / mib, 1
        ),
        "PSS after (MiB)": round(float(np.mean([p[3] for p in after])) / mib, 1),
        "seconds": round(time.perf_counter() - start, 2),
    }


def _markdown(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reads", type=int, default=5000, help="random reads per worker")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    listed = fake_samples(args.samples)
    rows.append(memory_row("list of tuples", listed, args.workers, args.reads))
    packed = SampleList(listed)
    del listed
    gc.collect()
    rows.append(memory_row("SampleList", packed, args.workers, args.reads))
    print(_markdown(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
