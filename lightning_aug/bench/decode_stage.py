"""Batched region decoding, in threads or in processes: ``python -m lightning_aug.bench.decode_stage``.

The decode of the crop regions of the bench photographs (``data=photos``; a RandomResizedCrop box
drawn per image, as :mod:`lightning_aug.bench.floor` draws it) with nvImageCodec's CPU backend, done
each of these ways on the same regions:

- ``per image, 1 process``: one decode call per image (today's per-sample path, in one worker);
- ``batched, 1 thread``: one decode call per batch of ``--batch`` images;
- ``batched, nvImageCodec's N threads``: the same with the decoder's own thread pool
  (``max_num_cpu_threads=N``);
- ``batched, N Python threads``: N threads, one decoder each, each decoding its share of every batch
  (nvImageCodec releases the GIL while it decodes);
- ``per image, N processes``: N forked processes, each decoding its share per image (DataLoader
  workers' way);
- ``batched, GPU`` where CUDA is present: nvImageCodec's default backends on the GPU.

Printed and written (``--out``, JSON): images per second of each (the best of ``--repeats`` after a
warm-up call), the resident memory it added, read while its decoded images are held (each way runs
in a forked process of its own; the processes way adds its workers'), and whether every way gave the
pixels of the per-image decode (digests compared). The processes are started once and kept, as
persistent DataLoader workers. ``N``: ``--threads`` (default: the CPUs this process may use).

    python -m lightning_aug.bench.decode_stage --images 512 --batch 64 --repeats 3 [--out decode.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "measure"]


def _photo_regions(images: int) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """The bytes of the first ``images`` bench photographs and a crop box for each."""
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from lightning_aug.bench.floor import resized_crop_box
    from lightning_aug.data.decoders import image_size
    from lightning_aug.data.jpeg import read_image_bytes

    with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
        cfg = compose("bench", overrides=["experiment=bench_imagenet"])
    factory = instantiate(cfg.data)
    factory.prepare() if hasattr(factory, "prepare") else None
    files = [path for path, _ in factory("train").samples][:images]
    data = [read_image_bytes(path) for path in files]
    rng = np.random.default_rng(0)
    boxes = []
    for item in data:
        size = image_size(item)
        assert size is not None, "the bench photographs are JPEGs"
        boxes.append(resized_crop_box(size, rng))
    return data, boxes


def _decoder(threads: int, gpu: bool = False) -> tuple[Any, Any, Any]:
    """``(nvimgcodec, decoder, params)``: the package's CPU decoder with ``threads`` threads, or
    nvImageCodec's default (GPU) backends with the same params."""
    from lightning_aug.data.decoders import _nvimgcodec, nvimgcodec_cpu_decoder

    nv = _nvimgcodec()
    cpu, params = nvimgcodec_cpu_decoder(threads)
    return nv, nv.Decoder() if gpu else cpu, params


def _streams(nv: Any, data: list[np.ndarray], boxes: list[tuple[int, int, int, int]]) -> list[Any]:
    return [
        nv.CodeStream(d).get_sub_code_stream(region=nv.Region(*b)) for d, b in zip(data, boxes, strict=True)
    ]


def _per_image(data: list[np.ndarray], boxes: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
    nv, decoder, params = _decoder(1)
    return [np.asarray(decoder.decode(s, params=params).cpu()) for s in _streams(nv, data, boxes)]


def _batched(data: list[np.ndarray], boxes: list, batch: int, threads: int = 1) -> list[np.ndarray]:
    nv, decoder, params = _decoder(threads)
    streams, out = _streams(nv, data, boxes), []
    for start in range(0, len(streams), batch):
        out += [
            np.asarray(image.cpu()) for image in decoder.decode(streams[start : start + batch], params=params)
        ]
    return out


def _in_threads(data: list[np.ndarray], boxes: list, batch: int, threads: int) -> list[np.ndarray]:
    decoders = [_decoder(1) for _ in range(threads)]
    nv = decoders[0][0]
    streams = _streams(nv, data, boxes)
    out: list[Any] = [None] * len(streams)

    def share(
        k: int, start: int
    ) -> None:  # thread k's images of the batch at start: start + k, + threads, ...
        _, decoder, params = decoders[k]
        indices = list(range(start + k, min(start + batch, len(streams)), threads))
        for i, image in zip(
            indices, decoder.decode([streams[i] for i in indices], params=params), strict=True
        ):
            out[i] = np.asarray(image.cpu())

    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, len(streams), batch):
            list(pool.map(share, range(threads), [start] * threads))
    return out


def _rss_mib() -> float:
    """This process's resident memory now, in MiB (``/proc/self/statm``)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


_WORKER_START = [0.0]  # a pool worker's resident memory when it started
_SHARES: list[tuple[list[np.ndarray], list]] = []  # the workers' shares, inherited through the fork


def _worker_started() -> None:
    _WORKER_START[0] = _rss_mib()


def _process_share(k: int) -> tuple[list[str], float]:
    """Worker ``k``'s share, decoded per image (its bytes inherited, as a DataLoader worker reads its
    own files): the digests (not the images: DataLoader workers hand batches over in shared memory,
    not through this pool's pipe) and the memory it added."""
    images = _per_image(*_SHARES[k])
    return _digests(images), _rss_mib() - _WORKER_START[0]  # measured while the images are held


class _Processes:
    """``processes`` forked workers, started on the first call and kept (as persistent DataLoader
    workers), each decoding its share per image."""

    def __init__(self, data: list[np.ndarray], boxes: list, processes: int) -> None:
        self.shares = [(data[k::processes], boxes[k::processes]) for k in range(processes)]
        self.pool: Any = None

    def __call__(self) -> tuple[list[str], float]:
        if self.pool is None:
            _SHARES[:] = self.shares
            context = multiprocessing.get_context("fork")
            self.pool = context.Pool(len(self.shares), initializer=_worker_started)
        results = self.pool.map(_process_share, range(len(self.shares)))
        out: list[Any] = [None] * sum(len(d) for d, _ in self.shares)
        for k, (digests, _) in enumerate(results):
            out[k :: len(self.shares)] = digests
        return out, sum(added for _, added in results)


def _digests(images: list[np.ndarray]) -> list[str]:
    return [hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() for image in images]


def _isolated(way: Callable[[], Any], repeats: int, connection: Any) -> None:
    """In a forked child: the best time of ``way`` over ``repeats``, the resident memory it added at its
    peak (the child's, plus its workers' for the processes way) and the digests of its images."""
    start_rss = _rss_mib()
    best, got = float("inf"), way()  # a first call warms up (decoders made, workers started)
    for _ in range(repeats):
        start = time.perf_counter()
        got = None  # the last call's images go before the next call's come
        got = way()
        best = min(best, time.perf_counter() - start)
    added = _rss_mib() - start_rss  # measured while its images are held
    if isinstance(got, tuple):  # processes: their digests and the memory they added
        digests, workers_added = got
        added += workers_added
    else:
        digests = _digests(got)
    connection.send((best, added, digests))
    connection.close()


def measure(
    images: int = 512, batch: int = 64, repeats: int = 3, threads: int | None = None
) -> dict[str, Any]:
    """The rows of the module docstring, each the best of ``repeats``, each way in a process of its own
    (forked, so that its peak memory is its own)."""
    import torch

    from lightning_aug.data.loader import available_cpus

    n = threads or available_cpus()
    data, boxes = _photo_regions(images)
    reference = _digests(_per_image(data, boxes))
    ways: dict[str, Callable[[], Any]] = {
        "per image, 1 process": lambda: _per_image(data, boxes),
        "batched, 1 thread": lambda: _batched(data, boxes, batch),
        f"batched, nvImageCodec's {n} threads": lambda: _batched(data, boxes, batch, n),
        f"batched, {n} Python threads": lambda: _in_threads(data, boxes, batch, n),
        f"per image, {n} processes": _Processes(data, boxes, n),
    }
    rows = {}
    context = multiprocessing.get_context("fork")
    for name, way in ways.items():
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_isolated, args=(way, repeats, send))
        child.start()
        best, added, digests = receive.recv()
        child.join()
        rows[name] = {"img_s": len(data) / best, "added_rss_mib": added, "same_pixels": digests == reference}
    if torch.cuda.is_available():  # in this process: CUDA does not survive a fork
        nv, decoder, params = _decoder(0, gpu=True)
        streams, best = _streams(nv, data, boxes), float("inf")
        for _ in range(repeats):
            start, out = time.perf_counter(), []
            for first in range(0, len(streams), batch):
                decoded = decoder.decode(streams[first : first + batch], params=params)
                out += [torch.as_tensor(image, device="cuda") for image in decoded]
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        same = _digests([t.cpu().numpy() for t in out]) == reference
        rows["batched, GPU"] = {"img_s": len(data) / best, "added_rss_mib": None, "same_pixels": same}
    return {"images": len(data), "batch": batch, "repeats": repeats, "threads": n, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    from lightning_aug.data.decoders import nvimgcodec_available

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not nvimgcodec_available():
        raise SystemExit("decode_stage: needs nvImageCodec (pip install '.[fast]')")
    result = measure(args.images, args.batch, args.repeats, args.threads)
    first = next(iter(result["rows"].values()))["img_s"]
    print(f"region decode of {result['images']} photographs, batches of {result['batch']}")
    print(f"  {'':<34} {'img/s':>7} {'x per image':>11} {'added MiB':>12}  same pixels")
    for name, row in result["rows"].items():
        print(
            f"  {name:<34} {row['img_s']:>7.0f} {row['img_s'] / first:>11.2f} "
            f"{row['added_rss_mib'] or 0:>12.0f}  {row['same_pixels']}"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
