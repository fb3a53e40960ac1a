"""The wrapper that runs a pipeline over a split's source; the factory and source contracts live in
:mod:`lightning_aug.data.source` (re-exported here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

from lightning_aug._checks import check_int
from lightning_aug.data.decoders import UNPARSED, ImageDecoder
from lightning_aug.data.pipeline import Pipeline
from lightning_aug.data.sampling import SampleKey, sample_index
from lightning_aug.data.source import SPLITS, DatasetFactory, Source, Split, as_source, check_split
from lightning_aug.data.threads import DecodeThreads, Deferred
from lightning_aug.seeding import sample_seed

__all__ = [
    "SPLITS",
    "DatasetFactory",
    "Source",
    "Split",
    "TransformedDataset",
    "as_sample",
    "as_source",
    "check_split",
]


def as_sample(item: Any, image_key: str = "image", label_key: str = "label") -> tuple[Any, ...]:
    """A dataset item as ``(image, label, ...)``: tuples and lists as they are, mappings (a Hugging
    Face row, your own dict items) by ``image_key`` and ``label_key``.

    Raises:
        DataError: a mapping without those keys, naming the keys it has and how to name them.
    """
    if isinstance(item, Mapping):
        try:
            return item[image_key], item[label_key]
        except KeyError:
            from lightning_aug.errors import DataError

            raise DataError(
                f"the dataset's items are dicts with keys {sorted(map(str, item))}, without "
                f"{image_key!r} and {label_key!r}: name its image and label entries with "
                "AugDataModule(image_key=..., label_key=...) (datamodule.image_key=... in the apps)"
            ) from None
    return tuple(item)


def _ready(image: Any) -> Callable[[], Any]:
    """A job that gives ``image``: a sample the source decoded already (no JPEG)."""
    return lambda: image


def _hw(shape: tuple[int, ...]) -> str:
    """``"WxH"`` of a CHW shape."""
    return f"{shape[-1]}x{shape[-2]}" if len(shape) >= 2 else str(shape)


class TransformedDataset(Dataset):
    """Applies a :class:`~lightning_aug.data.pipeline.Pipeline` to each ``(image, label)`` of ``dataset``.

    Where the pipeline has a :attr:`~lightning_aug.data.pipeline.Pipeline.decode_head` and the source
    takes it (:meth:`~lightning_aug.data.source.Source.set_crop_decoder` of
    :meth:`~lightning_aug.data.pipeline.Pipeline.decode_first`), the source runs that crop while
    decoding (``fused``) and the rest of the pipeline runs here.

    **Each sample's augmentation is a function of (seed, epoch, sample, repeat)**: before a sample is
    read, the generators its pipeline draws from are seeded from :func:`~lightning_aug.seeding.sample_seed`
    of the ``seed``, the epoch, the sample's position and its repeat (a
    :class:`~lightning_aug.data.sampling.SampleKey`; a plain index is epoch 0, repeat 0): torch's default
    generator (torchvision, the fused crops), albumentations' shared pair (re-seeded in place,
    :meth:`~lightning_aug.data.pipeline.Pipeline.reseed_sample`), and, where the pipeline holds a
    transform of another library (a plain function, say), Python's and numpy's global ones. So the
    same sample gets the same augmentation whatever worker reads it, however many workers or ranks
    there are, and after a resume. In the main process (``num_workers=0``) torch's global state is
    put back after each sample: the model's own draws are not moved.

    Args:
        dataset: the split's source (any map-style dataset is adapted, :func:`as_source`): items
            ``(image, label)``, or dicts (:func:`as_sample`).
        pipeline: the per-sample pipeline.
        seed: the seed of the samples' augmentation (the same on every rank).
        image_key, label_key: the entries of dict items.
        crop_sizes: progressive resizing: the side of the pipeline's leading ``RandomResizedCrop`` as a
            function of the epoch (:meth:`~lightning_aug.data.progressive.ProgressiveResize.size`), set
            from each sample's epoch (so persistent workers follow it, and a resumed run).
        decode_threads: threads of each worker (or of the main process) that decode a batch's crops
            side by side, where the crop runs while decoding (``fused``); 1: each sample in turn. The
            batch's images are the same either way (:mod:`lightning_aug.data.threads`).

    Raises:
        ValueError: ``decode_threads`` not an int >= 1.
    """

    def __init__(
        self,
        dataset: Source | Dataset,
        pipeline: Pipeline,
        seed: int,
        image_key: str = "image",
        label_key: str = "label",
        crop_sizes: Callable[[int], int] | None = None,
        decode_threads: int = 1,
    ) -> None:
        self.dataset = source = as_source(dataset)
        self.pipeline = pipeline
        self.crop_sizes = crop_sizes
        self._crop_size: int | None = None
        if crop_sizes is not None:
            pipeline.set_crop_size(crop_sizes(0))  # refused here for a pipeline without the crop
        self.seed = seed
        self.image_key, self.label_key = image_key, label_key
        # the pipeline's leading crop run while decoding, where the source can
        check_int("decode_threads", decode_threads, 1)
        self._defer = False  # while a batch is read in threads: the source's crop hands back Deferred jobs
        self.fused = pipeline.decode_head is not None and source.set_crop_decoder(self._decode_first)
        self.threads = DecodeThreads(decode_threads if self.fused else 1)  # what decodes a batch
        self._globals = pipeline.draws_from_globals
        self._keys = source.accepts_keys  # e.g. shards: the epoch for prefetching
        pipeline.reseed(seed)

    def _decode_first(
        self, data: Any, decoder: ImageDecoder, path: str, header: Any = UNPARSED
    ) -> Any:  # the crop the source runs while decoding
        if self._defer:
            return Deferred(self.pipeline.plan_first(data, decoder, path, header))
        return self.pipeline.decode_first(data, decoder, path, header)

    def reseed(self, seed: int) -> None:
        """Seed the pipeline's own generators (a worker's start); each sample re-seeds them anyway."""
        self.pipeline.reseed(seed)

    def _seed_sample(self, key: Any) -> None:
        if isinstance(key, SampleKey):
            value = sample_seed(self.seed, key.epoch, key.sample, key.repeat)
        else:
            value = sample_seed(self.seed, 0, int(key), 0)
        if self.crop_sizes is not None:
            size = self.crop_sizes(key.epoch if isinstance(key, SampleKey) else 0)
            if size != self._crop_size:
                self.pipeline.set_crop_size(size)
                self._crop_size = size
        torch.default_generator.manual_seed(value)  # 1 us; torch.manual_seed seeds CUDA too: 73 us
        self.pipeline.reseed_sample(value)
        if self._globals:  # a transform of another library may draw from the global generators
            import random

            import numpy as np

            random.seed(value)
            np.random.seed(value & 0xFFFF_FFFF)

    @property
    def classes(self) -> list[str] | None:
        """The class names of the source, where it has them."""
        return self.dataset.classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> tuple[Any, ...]:
        """The sample of ``key`` (a :class:`~lightning_aug.data.sampling.SampleKey` or an index),
        augmented as a function of its key."""
        in_worker = torch.utils.data.get_worker_info() is not None
        outer = None if in_worker else torch.get_rng_state()
        try:
            self._seed_sample(key)
            return self._apply(self.dataset[key if self._keys else sample_index(key)])
        finally:
            if outer is not None:
                torch.set_rng_state(outer)

    def __getitems__(self, indices: list[Any]) -> list[tuple[Any, ...]]:
        """A batch's samples (the DataLoader asks for them together), checked to be of one size: a
        batch of two sizes names two of its files (or sample positions) and their sizes, instead of
        failing in ``torch.stack``.

        Raises:
            DataError: the pipeline gave images of different sizes.
        """
        if self.threads.threads > 1:
            samples = self._in_threads(indices)
        else:
            samples = [self[index] for index in indices]
        shapes = [tuple(getattr(s[0], "shape", ())) for s in samples]
        if len(set(shapes)) > 1:
            from lightning_aug.errors import DataError

            first = shapes[0]
            other = next(i for i, shape in enumerate(shapes) if shape != first)
            a, b = (self.dataset.sample_name(sample_index(indices[i])) for i in (0, other))
            raise DataError(
                f"one batch holds images of two sizes after the {self.pipeline.name} "
                f"({a}: {_hw(first)}, {b}: {_hw(shapes[other])}): start the pipeline with a crop or "
                "resize to one size (RandomResizedCrop / Resize + CenterCrop; augment=imagenet_alb or "
                "imagenet_tv in the apps)"
            )
        return samples

    def _in_threads(self, indices: list[Any]) -> list[tuple[Any, ...]]:
        """The samples of ``indices`` as ``self[index]`` gives them, their decoding in threads: each
        sample's draws are made in turn (the source reads it and the crop draws its box), the decodes
        and resizes run in :attr:`threads`, then the rest of the pipeline runs from each sample's
        saved generator state. A sample whose decoding failed is read again the per-sample way, where
        ``on_bad_image`` decides (the same sample, or the same error)."""
        in_worker = torch.utils.data.get_worker_info() is not None
        outer = None if in_worker else torch.get_rng_state()
        planned: list[tuple[tuple[Any, ...], Any]] = []
        try:
            self._defer = True
            for key in indices:
                self._seed_sample(key)
                sample = as_sample(
                    self.dataset[key if self._keys else sample_index(key)], self.image_key, self.label_key
                )
                planned.append((sample, self.pipeline.random_state()))
        finally:
            self._defer = False
        try:
            jobs = [s[0].job if isinstance(s[0], Deferred) else _ready(s[0]) for s, _ in planned]
            images = self.threads.run(jobs)
            out = []
            for key, (sample, state), image in zip(indices, planned, images, strict=True):
                if isinstance(image, Exception):
                    out.append(self[key])
                    continue
                self.pipeline.set_random_state(state)
                out.append((self.pipeline.after_decode(image), *sample[1:]))
            return out
        finally:
            if outer is not None:
                torch.set_rng_state(outer)

    def _apply(self, item: Any) -> tuple[Any, ...]:
        sample = as_sample(item, self.image_key, self.label_key)
        image, label, extra = sample[0], sample[1], tuple(sample[2:])  # extra: skipped bad files
        run = self.pipeline.after_decode if self.fused else self.pipeline
        return (run(image), label, *extra)
