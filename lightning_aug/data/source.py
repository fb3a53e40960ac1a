"""The written contract of a data source: what ``AugDataModule`` may ask of a dataset factory and of
the dataset it builds for a split, as declared methods with documented defaults.

A **factory** (:class:`DatasetFactory`) is called with a split name and returns that split's dataset,
or ``None`` where the data has no such split; it may say its ``num_classes``, its ``mean`` and
``std``, and ``prepare()`` its files once per node. A **source** (:class:`Source`) is a split's
map-style dataset of ``(image, label)`` samples; beyond its length and items it may say, without
reading images, its ``classes``, its labels (:meth:`Source.known_labels`), per-sample weights, image
sizes, an epoch order of its own, the files it reads, and the decoder it decodes with, and it may take
a crop to run while decoding. The DataModule calls these and nothing else; a default says "unknown".

Your own dataset needs none of it: :func:`as_source` adapts any map-style dataset (its ``classes`` and
``targets``, as torchvision names them, are read there, once), and :func:`as_factory` any callable of
a split name (its ``num_classes``, ``mean``, ``std`` and ``prepare``). A new built-in source is one
module that subclasses :class:`Source` (and :class:`DatasetFactory`) plus one config file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import numpy as np
from torch.utils.data import Dataset

from lightning_aug.hparams import RecordsArguments

__all__ = ["SPLITS", "DatasetFactory", "Source", "Split", "as_factory", "as_source", "check_split"]

Split = Literal["train", "val", "test", "predict"]
SPLITS: tuple[str, ...] = get_args(Split)

# a crop run while decoding: (bytes, decoder, path, parsed JPEG header) -> the cropped image
# (lightning_aug.data.transforms)
CropHead = Callable[..., Any]


def check_split(split: Any) -> Split:
    """``split``, checked.

    Raises:
        ValueError: not one of ``"train"``, ``"val"``, ``"test"``, ``"predict"``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    return split


class Source(Dataset):
    """A split's map-style dataset, as the DataModule uses it. Subclasses implement ``__len__`` and
    ``__getitem__`` (``(image, label)``, or ``(image, label, (skipped path,))`` for a sample that
    replaced an unreadable one) and override what they know.

    Attributes:
        classes: the class names in label order; ``None``: unknown (the factory's ``num_classes``).
        accepts_keys: ``__getitem__`` takes a :class:`~lightning_aug.data.sampling.SampleKey` (its
            epoch tells shards which chunks to fetch next); otherwise a plain index.
    """

    classes: list[str] | None = None
    accepts_keys: bool = False

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError

    def known_labels(self) -> np.ndarray | None:
        """Every sample's label without reading an image (class indices, or multi-hot rows); ``None``:
        not known without reading the images (then ``sampler="balanced"`` is refused)."""
        return None

    def weights(self) -> np.ndarray | None:
        """Per-sample weights of ``sampler="balanced"`` given with the data (a file list's weight
        column); ``None``: from the classes of :meth:`known_labels`."""
        return None

    def image_sizes(self, limit: int = 256, seed: int = 0) -> list[tuple[str, tuple[int, int]]] | None:
        """``(name, (height, width))`` of a seeded sample of up to ``limit`` samples, from headers;
        ``None``: not known without decoding (the sizes are then checked per batch)."""
        return None

    def epoch_order(self, seed: int) -> Callable[[int], np.ndarray] | None:
        """The source's own training order as a function of the epoch, for the run's ``seed`` (shards:
        chunk-local shuffles); ``None``: a permutation of all samples per epoch."""
        return None

    def sample_name(self, index: int) -> str:
        """How messages name sample ``index`` (its file, its row)."""
        return f"sample {index}"

    def arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The whole split as one NHWC uint8 image array and its labels, where the source holds it so
        (CIFAR): ``in_memory`` then takes it in one copy; ``None``: read sample by sample."""
        return None

    def read_sample(self, index: int) -> tuple[np.ndarray | None, Any, Any]:
        """``(encoded bytes, image, label)`` of sample ``index``, the bytes read once (``None`` where the
        source has no encoded form): what the shard writer stores.

        Raises:
            ValueError: the sample cannot be read or decoded (a DataError naming it).
        """
        image, label = self[index][:2]
        return None, image, label

    def fingerprint(self) -> dict[str, Any]:
        """What the samples are made from, as ``{"kind", "samples", "digest"}`` (prepared shards are
        stale when it changes); by default only their count (``kind`` "count")."""
        return {"kind": "count", "samples": len(self), "digest": ""}

    def files(self) -> list[str] | None:
        """The file of each sample, in order (predictions are written against them); ``None``: not files."""
        return None

    @property
    def decoder_name(self) -> str | None:
        """The decoder that turns the source's bytes into images; ``None``: it serves decoded images."""
        return None

    def set_crop_decoder(self, head: CropHead | None) -> bool:
        """Run ``head`` (a pipeline's leading crop) while decoding instead of decoding whole images;
        returns whether it was taken (``False``: the source cannot, the pipeline runs it after)."""
        return False


class ForeignSource(Source):
    """Any map-style dataset under the contract: ``classes`` and ``targets`` (torchvision's names) are
    read here, once; everything else is unknown."""

    def __init__(self, data: Any, split: str | None = None) -> None:
        if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
            said = f" for split {split!r}" if split is not None else ""
            raise TypeError(
                f"the dataset factory returned {type(data).__name__}{said}; expected a map-style dataset "
                "(with __getitem__ and __len__)"
            )
        self.data = data
        classes = getattr(data, "classes", None)
        self.classes = [str(c) for c in classes] if classes is not None else None
        targets = getattr(data, "targets", None)
        self._labels = np.asarray(targets) if targets is not None and len(targets) == len(data) else None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: Any) -> Any:
        return self.data[index]

    def known_labels(self) -> np.ndarray | None:
        return self._labels


def as_source(data: Any, split: str | None = None) -> Source:
    """``data`` (the factory's ``split``) under the contract: itself where it is a :class:`Source`,
    else a :class:`ForeignSource`.

    Raises:
        TypeError: ``data`` is not a map-style dataset.
    """
    return data if isinstance(data, Source) else ForeignSource(data, split)


class DatasetFactory(RecordsArguments, ABC):
    """Base of the dataset factories: called with a split name, returns a map-style dataset of
    ``(image, label)`` (a :class:`Source`), or ``None`` for a split the data does not have.

    ``image`` is a PIL image, an HWC uint8 ndarray or a CHW uint8 tensor; ``label`` an int class index
    (or a multi-hot row). Subclasses implement :meth:`build` for ``"train"``, ``"val"`` and ``"test"``;
    ``"predict"`` is the test split unless :meth:`build_predict` says otherwise.

    Being a class, a factory is given to LightningCLI/jsonargparse as ``class_path`` + ``init_args``
    and to Hydra as ``_target_``. ``AugDataModule`` also takes any plain callable with the same
    signature (:func:`as_factory`; ``"predict"`` then reads its ``"test"`` split)::

        def my_data(split: str, root: str) -> Dataset: ...

    Attributes:
        num_classes: the number of classes where the factory knows it without building a split.
        mean, std: the per-channel statistics of the data (0-1 scale) where the factory knows them
            (CIFAR); ``None``: ImageNet's.
        multi_label: the labels are multi-hot rows (a sample may have several classes): the one switch
            that the model and mixing follow (the apps set theirs from it; a contradiction is refused).
        class_order: how the train classes were put in order, a key of
            :data:`lightning_aug.data.labels.ORDERS` (``"sorted"``, ``"indices"``, ``"given"``, ...),
            logged and saved with the class list; ``None``: the dataset's own order.
    """

    num_classes: int | None = None
    class_order: str | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    multi_label: bool = False

    def prepare(self) -> None:
        """Make the files ready (download, generate); nothing by default."""

    def __call__(self, split: Split) -> Dataset | None:
        """The dataset of ``split``.

        Raises:
            ValueError: an unknown split name.
        """
        if check_split(split) == "predict":
            return self.build_predict()
        return self.build(split)

    @abstractmethod
    def build(self, split: Split) -> Dataset | None:
        """The dataset of ``"train"``, ``"val"`` or ``"test"``; ``None`` where the data has none."""

    def build_predict(self) -> Dataset | None:
        """The dataset to predict on: the test split unless a subclass knows better."""
        return self.build("test")

    def image_sizes(self, limit: int = 64, seed: int = 0) -> list[tuple[str, tuple[int, int]]] | None:
        """``(name, (height, width))`` of up to ``limit`` training images, from headers, as cheaply as
        the factory can see them (``augment=auto`` decides from them); ``None``: not known without
        decoding. By default the train split's own (:meth:`Source.image_sizes`); factories whose
        train split is costly to build (a folder to list, files to generate or download) say it
        otherwise."""
        data = self.build("train")
        return as_source(data).image_sizes(limit, seed) if data is not None else []


class CallableFactory(DatasetFactory):
    """A plain callable of a split name under the factory contract: its ``num_classes``, ``mean``,
    ``std``, ``multi_label``, ``class_order``, ``prepare`` and ``image_sizes`` are read here, once;
    ``"predict"`` builds its ``"test"`` split."""

    def __init__(self, function: Callable[[str], Any]) -> None:
        if not callable(function):
            raise TypeError(
                f"dataset must be a dataset factory called with a split name, got {type(function).__name__}"
            )
        self.function = function
        self.num_classes = getattr(function, "num_classes", None)
        self.mean = getattr(function, "mean", None)
        self.std = getattr(function, "std", None)
        self.multi_label = bool(getattr(function, "multi_label", False))
        self.class_order = getattr(function, "class_order", None)
        self._prepare = getattr(function, "prepare", None)
        self._image_sizes = getattr(function, "image_sizes", None)

    def prepare(self) -> None:
        if callable(self._prepare):
            self._prepare()

    def build(self, split: Split) -> Any:
        return self.function(split)

    def image_sizes(self, limit: int = 64, seed: int = 0) -> list[tuple[str, tuple[int, int]]] | None:
        """The callable's own ``image_sizes`` where it has one; else unknown (building a split of your
        own may cost anything)."""
        return self._image_sizes(limit, seed) if callable(self._image_sizes) else None


def as_factory(dataset: Any) -> DatasetFactory:
    """``dataset`` under the factory contract: itself where it is a :class:`DatasetFactory`, else a
    :class:`CallableFactory`.

    Raises:
        TypeError: ``dataset`` is not callable.
    """
    return dataset if isinstance(dataset, DatasetFactory) else CallableFactory(dataset)
