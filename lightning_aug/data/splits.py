"""What a split's loader serves, built from its source: one object per data path.

- :class:`PipelinePath`: each sample decoded and run through the train or eval
  :class:`~lightning_aug.data.pipeline.Pipeline` in the loader's workers
  (:class:`~lightning_aug.data.datasets.TransformedDataset`), progressive resizing set on the train
  pipeline's crop.
- :class:`MemoryPath` (``in_memory=True``): the whole split held as one uint8 tensor
  (:class:`~lightning_aug.data.datasets.InMemoryDataset`), whole batches served by index, no
  per-sample work; progressive resizing is done by the device stage (:meth:`MemoryPath.device_size`).

Both refuse, before any worker starts, data of several image sizes that they cannot batch (read from
the headers of a seeded sample of the files).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any

from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import Dataset

from lightning_aug.data.datasets.base import TransformedDataset
from lightning_aug.data.datasets.memory import InMemoryDataset
from lightning_aug.data.loader import resolve_decode_threads
from lightning_aug.data.pipeline import Pipeline
from lightning_aug.data.progressive import ProgressiveResize
from lightning_aug.data.source import Source, Split
from lightning_aug.errors import DataError, SettingError
from lightning_aug.seeding import Stream, stream_seed

__all__ = ["DataPath", "MemoryPath", "PipelinePath", "data_path"]


class DataPath(ABC):
    """How a split's source becomes what its loader serves.

    Attributes:
        train_pipeline, eval_pipeline: the per-sample pipelines (empty for :class:`MemoryPath`).
        progressive_resize: the training crop size by epoch, or ``None``.
        uses_own_order: whether the train source's own order (shards' chunk-local shuffles) applies.
    """

    uses_own_order = True

    def __init__(
        self,
        train_pipeline: Pipeline,
        eval_pipeline: Pipeline,
        image_key: str,
        label_key: str,
        progressive_resize: ProgressiveResize | None,
    ) -> None:
        self.train_pipeline, self.eval_pipeline = train_pipeline, eval_pipeline
        self.image_key, self.label_key = image_key, label_key
        self.progressive_resize = progressive_resize
        self._said_size: int | None = None  # the training crop size last logged
        self._check()
        evaluated = eval_pipeline.output_size
        end = progressive_resize.end_size if progressive_resize is not None else None
        if end is not None and evaluated is not None and evaluated != (end, end):
            warnings.warn(
                f"progressive_resize ends training at {end}x{end}, but the eval pipeline gives "
                f"{evaluated[1]}x{evaluated[0]} images: the model is evaluated at a size it was not "
                f"trained at last; set end_size={evaluated[0]} (datamodule.progressive_resize.end_size) "
                "or the eval crop to the same size",
                UserWarning,
                stacklevel=3,
            )

    @abstractmethod
    def _check(self) -> None:
        """Refuse settings this path cannot run (before the progressive-resize warning)."""

    @abstractmethod
    def dataset(self, source: Source, split: Split, seed: int, decode_threads: int | str = 1) -> Dataset:
        """What the loader of ``split`` serves, for the run ``seed``; ``decode_threads``: the loader's
        setting (:class:`~lightning_aug.data.loader.LoaderSettings`).

        Raises:
            DataError: images of several sizes that this path cannot batch.
            SettingError: ``decode_threads`` > 1 given where it cannot act.
        """

    def device_size(self, epoch: int) -> int | None:
        """The side the device stage resizes training batches of ``epoch`` to; ``None``: none."""
        return None

    def say_size(self, epoch: int) -> None:
        """Log the training crop size of ``epoch`` where it changed (progressive resizing)."""
        size = self.progressive_resize.size(epoch) if self.progressive_resize is not None else None
        if size is not None and size != self._said_size:
            rank_zero_info(f"AugDataModule: progressive_resize: epoch {epoch} trains at {size}x{size}")
            self._said_size = size

    def _check_sizes(self, split: Split, source: Source, pipeline: Pipeline | None, seed: int) -> None:
        """Refuse data of several image sizes that ``pipeline`` (``None``: held in memory) does not
        bring to one, naming two files, their sizes and what fits."""
        if pipeline is not None and pipeline.fixed_size:
            return
        sizes: dict[tuple[int, int], str] = {}
        for name, size in source.image_sizes(limit=256, seed=seed) or ():
            sizes.setdefault((int(size[0]), int(size[1])), name)
            if len(sizes) > 1:
                break
        if len(sizes) < 2:
            return
        (size_a, a), (size_b, b) = list(sizes.items())[:2]
        seen = f"{a} is {size_a[1]}x{size_a[0]}, {b} is {size_b[1]}x{size_b[0]}"
        if pipeline is None:
            raise DataError(
                f"the {split} images come in several sizes ({seen}), but in_memory=True holds one array "
                "of one size: resize them first, or use in_memory=False with a crop in the pipelines"
            )
        fits = "RandomResizedCrop" if split == "train" else "Resize + CenterCrop"
        raise DataError(
            f"the {split} images come in several sizes ({seen}), but the {pipeline.name} "
            f"({pipeline.contents}) has no "
            f"crop or resize to one size, and a batch needs one: start it with one ({fits}); in the apps "
            "augment=imagenet_alb or imagenet_tv (or augment=auto, the default, which picks one)"
        )


class PipelinePath(DataPath):
    """Per-sample pipelines in the loader's workers; the train crop follows ``progressive_resize``.

    Raises:
        ValueError: ``progressive_resize`` with a train pipeline that has no crop to size.
    """

    def _check(self) -> None:
        if self.progressive_resize is not None:
            self.train_pipeline.set_crop_size(self.progressive_resize.size(0))  # refused without the crop

    def dataset(self, source: Source, split: Split, seed: int, decode_threads: int | str = 1) -> Dataset:
        train = split == "train"
        pipeline = self.train_pipeline if train else self.eval_pipeline
        self._check_sizes(split, source, pipeline, seed)
        _check_leading_crop(split, source, pipeline, seed)
        stream = Stream.TRAIN_PIPELINE if train else Stream.EVAL_PIPELINE
        ramp = self.progressive_resize.size if train and self.progressive_resize is not None else None
        # rank 0's stream on every rank: a sample's augmentation does not depend on the world size
        threads = resolve_decode_threads(decode_threads)
        made = TransformedDataset(
            source, pipeline, stream_seed(seed, 0, stream), self.image_key, self.label_key, ramp, threads
        )
        if train and threads > 1 and not made.fused and decode_threads != "auto":
            why = _decoding(source, pipeline, False) if pipeline.decode_head is not None else None
            why = why or f"the {pipeline.name} does not start with one: {pipeline.contents}"
            raise _threads_refused(decode_threads, f"no train crop runs while decoding ({why})")
        said = _decoding(source, pipeline, made.fused)
        if said is not None and made.fused and threads > 1:
            said += f", {threads} at a time in threads (loader.decode_threads)"
        if said is not None:
            rank_zero_info(f"AugDataModule: {split} {said}")
        return made


class MemoryPath(DataPath):
    """Every split held as one uint8 tensor, served a batch per index list.

    Raises:
        ValueError: per-sample transforms given (there are no workers to run them).
    """

    uses_own_order = False

    def _check(self) -> None:
        if self.train_pipeline.transforms or self.eval_pipeline.transforms:
            raise ValueError(
                "in_memory=True serves whole batches without per-sample transforms, but train_transforms or "
                "eval_transforms are set; move the augmentation to device_transforms"
            )

    def dataset(self, source: Source, split: Split, seed: int, decode_threads: int | str = 1) -> Dataset:
        if decode_threads not in (1, "auto"):
            raise _threads_refused(decode_threads, "in_memory=True holds decoded images")
        self._check_sizes(split, source, None, seed)
        return InMemoryDataset.from_dataset(source, self.image_key, self.label_key)

    def device_size(self, epoch: int) -> int | None:
        return self.progressive_resize.size(epoch) if self.progressive_resize is not None else None


def data_path(
    in_memory: bool,
    train_pipeline: Pipeline,
    eval_pipeline: Pipeline,
    image_key: str,
    label_key: str,
    progressive_resize: ProgressiveResize | None,
) -> DataPath:
    """The :class:`MemoryPath` (``in_memory``) or the :class:`PipelinePath`."""
    kind = MemoryPath if in_memory else PipelinePath
    return kind(train_pipeline, eval_pipeline, image_key, label_key, progressive_resize)


def _threads_refused(decode_threads: int | str, why: str) -> SettingError:
    """The one-line refusal of ``loader.decode_threads`` > 1 where it cannot act, saying ``why``."""
    return SettingError(
        f"loader.decode_threads={decode_threads} decodes a batch's crops in threads, but {why}: set "
        "loader.decode_threads=1 or auto (LoaderSettings(decode_threads=...))"
    )


def _crop_needs(crop: Any) -> tuple[int, int, int, int] | None:
    """``(height, width, vertical, horizontal padding)`` a leading crop needs of an image, for the crops
    that fail on a smaller one (random crops of either backend, albumentations' centre crop, without
    ``pad_if_needed``); ``None`` for anything else (torchvision's ``CenterCrop`` pads by itself)."""
    import albumentations as A
    from torchvision.transforms import v2

    if isinstance(crop, v2.RandomCrop) and not crop.pad_if_needed:
        padding = crop.padding or [0]  # v2 keeps it as [left, top, right, bottom] or shorter
        sides = list(padding) * (4 // len(padding)) if len(padding) in (1, 2) else list(padding)
        return int(crop.size[0]), int(crop.size[1]), int(sides[1] + sides[3]), int(sides[0] + sides[2])
    if isinstance(crop, (A.RandomCrop, A.CenterCrop)) and not crop.pad_if_needed:
        return int(crop.height), int(crop.width), 0, 0
    return None


def _check_leading_crop(split: Split, source: Source, pipeline: Pipeline, seed: int) -> None:
    """Refuse a leading crop larger than the images it crops (their padding counted), naming a file,
    its size and what fits, at setup: a worker's traceback otherwise (``augment=cifar_tv`` crops 32x32
    on a folder of 16x16 images)."""
    needs = _crop_needs(pipeline.transforms[0]) if pipeline.transforms else None
    if needs is None:
        return
    height, width, pad_y, pad_x = needs
    for name, (h, w) in source.image_sizes(limit=256, seed=seed) or ():
        if h + pad_y < height or w + pad_x < width:
            padded = f" (padded: {w + pad_x}x{h + pad_y})" if pad_y or pad_x else ""
            crop = type(pipeline.transforms[0]).__name__
            raise SettingError(
                f"the {split} pipeline's {crop} takes {width}x{height} crops, but {name} is {w}x{h}{padded}: "
                f"crop the images' size (in the apps e.g. augment.{split}_transforms.crop.size={min(h, w)}), "
                "pad_if_needed=True, or augment=auto, which picks a pipeline for the images' size"
            )


def _decoding(source: Source, pipeline: Pipeline, fused: bool) -> str | None:
    """What decodes a split's images and whether its pipeline's leading crop runs while decoding;
    ``None`` for a source of decoded samples whose pipeline has no crop to fuse."""
    name = source.decoder_name
    if name is None and pipeline.decode_head is None:
        return None
    said = f"images decoded by {name}" if name is not None else f"samples from {type(source).__name__}"
    if pipeline.decode_head is None:
        return said
    if fused:
        return f"{said}; {pipeline.decode_head.name} runs while decoding (only the crop's region is decoded)"
    why = "decoder 'pil' decodes whole images" if name == "pil" else "the dataset gives decoded images"
    return f"{said}; {pipeline.decode_head.name} runs after decoding ({why})"
