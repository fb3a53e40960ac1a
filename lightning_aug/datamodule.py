"""AugDataModule: datasets, per-sample pipelines, loaders and the batched device stage."""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.parsing import AttributeDict
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from typing_extensions import override

from lightning_aug._checks import check_bool, check_int
from lightning_aug.data.datasets.base import TransformedDataset
from lightning_aug.data.datasets.memory import InMemoryDataset
from lightning_aug.data.labels import ORDERS
from lightning_aug.data.loader import LoaderSettings
from lightning_aug.data.pipeline import Backend, Pipeline
from lightning_aug.data.progressive import ProgressiveResize
from lightning_aug.data.sampling import (
    EpochSampler,
    balanced_draw,
    class_balance_weights,
    permutation,
    repeated,
)
from lightning_aug.data.skips import SkipReport
from lightning_aug.data.source import DatasetFactory, Source, Split, as_factory, as_source, check_split
from lightning_aug.device.augment import DeviceOp, check_ops
from lightning_aug.device.normalize import IMAGENET_MEAN, IMAGENET_STD
from lightning_aug.device.protocol import BatchTransform
from lightning_aug.device.stage import DeviceStage
from lightning_aug.errors import DataError
from lightning_aug.hparams import build, check_rebuildable, describe, is_spec
from lightning_aug.secrets import redact
from lightning_aug.seeding import Stream, batch_rng, resolve_run_seed, stream_seed

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

__all__ = ["AugDataModule", "Transform"]

# A per-sample transform: a torchvision v2 transform (an nn.Module), an albumentations transform, or
# any callable; typed so that LightningCLI takes ``class_path`` entries and appends them with ``+=``
Transform = torch.nn.Module | Callable[..., Any]


def _check_stats(name: str, values: Any, positive: bool) -> tuple[float, ...]:
    ok = isinstance(values, Sequence) and not isinstance(values, str) and len(values) in (1, 3)
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not ok or (positive and min(values) <= 0):
        need = "positive " if positive else ""
        raise ValueError(f"{name} must be a sequence of 1 or 3 {need}floats (0-1 scale), got {values!r}")
    return tuple(float(v) for v in values)


_PROGRESSIVE = "lightning_aug.data.progressive.ProgressiveResize"

# the dtype a model computes in under each of Lightning's "true" precisions (mixed ones: float32)
_TRUE_PRECISION = {"bf16-true": torch.bfloat16, "16-true": torch.float16, "64-true": torch.float64}


def compute_dtype(trainer: Trainer | None) -> torch.dtype:
    """The dtype of the batches the device stage gives the model: the parameters' dtype of the
    trainer's precision (``bf16-true``: bfloat16, ``16-true``: float16, ``64-true``: float64), else
    float32 (``32-true`` and the mixed precisions, whose autocast casts inside the model)."""
    return _TRUE_PRECISION.get(str(getattr(trainer, "precision", "32-true")), torch.float32)


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


def _name(obj: Any) -> str:
    """What a user calls ``obj`` (a function or partial by its function, else its class)."""
    func = getattr(obj, "func", obj)  # functools.partial
    return str(getattr(func, "__qualname__", None) or type(obj).__name__)


Sampling = Literal["random", "balanced"]
RepeatedEpoch = Literal["dataset", "repeats"]


class _Repeated:
    """An epoch order with each position ``repeats`` times (:func:`~lightning_aug.data.sampling.repeated`)."""

    def __init__(self, order: Callable[[int], Any], repeats: int) -> None:
        self.order, self.repeats = order, repeats

    def __call__(self, epoch: int) -> np.ndarray:
        return repeated(self.order(epoch), self.repeats)


def sample_weights(source: Source) -> np.ndarray:
    """The per-sample weights of ``sampler="balanced"``: the source's own
    (:meth:`~lightning_aug.data.source.Source.weights`: a file list's weight column), else
    :func:`~lightning_aug.data.sampling.class_balance_weights` of its
    :meth:`~lightning_aug.data.source.Source.known_labels`.

    Raises:
        ValueError: the source has neither (its labels cannot be known without reading every image).
    """
    given = source.weights()
    if given is not None:
        return np.asarray(given, dtype=np.float64)
    labels = source.known_labels()
    if labels is None:
        raise ValueError(
            f"sampler='balanced' needs the labels of the train split without reading its images, and "
            f"{type(source).__name__} does not give them (known_labels, weights); use "
            "sampler='random', or a dataset that lists its labels (image folders, file lists, Hugging Face)"
        )
    return class_balance_weights(np.asarray(labels))


def _loader_hook(split: Split) -> Callable[[AugDataModule], DataLoader]:
    """A ``*_dataloader`` hook serving ``split`` (shuffled, with the train loader settings, for "train")."""

    def hook(self: AugDataModule) -> DataLoader:
        return self._loader(split, train=split == "train")

    hook.__name__ = hook.__qualname__ = f"{split}_dataloader"
    return hook


class AugDataModule(LightningDataModule):
    """A ``LightningDataModule`` built from configuration that keeps per-pixel float work on the device.

    Data flow: the dataset factory's ``(image, label)`` samples pass through the train or eval
    :class:`~lightning_aug.data.pipeline.Pipeline` in the DataLoader workers (uint8 in, CHW uint8 out) and
    are stacked into uint8 batches; after the transfer to the device, :meth:`on_after_batch_transfer`
    converts them to float and normalises them with ``mean``/``std`` for every stage, then, during
    training only, hands ``(images, targets)`` to each :class:`~lightning_aug.device.protocol.BatchTransform`
    callback (mixup, cutmix) in ``trainer.callbacks`` order.

    If your LightningModule also overrides ``on_after_batch_transfer``, Lightning calls only the
    DataModule's hook (and warns): your module's hook is skipped. Subclass ``AugDataModule`` and call
    ``super().on_after_batch_transfer(...)`` first, or write a ``BatchTransform`` callback instead.

    Randomness: every draw is a function of ``seed`` and of where it happens: the order of an epoch
    (:class:`~lightning_aug.data.sampling.EpochSampler`: seed, epoch; ranks read contiguous parts),
    each sample's augmentation (:class:`~lightning_aug.data.datasets.TransformedDataset`: seed, epoch,
    sample, repeat) and each training batch's device ops and mixing (seed, rank, epoch, batch). The
    same seed gives the same batches whatever the number of workers; checkpoints hold the position
    in the epoch, so a run resumed mid-epoch trains on the uninterrupted run's batches.

    Args:
        dataset: a :class:`~lightning_aug.data.datasets.DatasetFactory` (or a ``{"_target_": ...}``
            mapping of one, or any callable of the same signature): called with ``"train"``, ``"val"``,
            ``"test"``; may have ``prepare()`` (called once per node) and ``num_classes``.
        train_transforms: per-sample training transforms of ``backend`` (objects, or mappings with
            ``_target_``), as a list or a mapping of named transforms (the config presets use names so
            that they inherit and drop one another's). Empty: tensor conversion only.
        eval_transforms: per-sample transforms of validation, test and predict.
        backend: ``"torchvision"`` (``torchvision.transforms.v2``) or ``"albumentations"`` (2.x).
        mean: per-channel mean on the 0-1 scale (1 or 3 values); ``None``: the dataset factory's
            ``mean`` attribute if it has one (CIFAR does), else ImageNet's.
        std: per-channel standard deviation on the 0-1 scale (1 or 3 positive values); ``None``: as
            ``mean``.
        loader: DataLoader worker settings; ``None``: ``LoaderSettings()``.
        num_classes: number of classes; ``None``: the dataset factory's ``num_classes`` or the train
            dataset's ``classes``.
        device_transforms: device-batched augmentation (:mod:`lightning_aug.device.augment`) run on each
            whole training batch on the device, between the float conversion and the normalisation;
            the workers then only decode.
        in_memory: hold every split as one uint8 tensor and serve whole batches by index
            (:class:`~lightning_aug.data.datasets.InMemoryDataset`): for small datasets (CIFAR-scale), with
            empty per-sample pipelines (augment with ``device_transforms``).
        seed: run seed; ``None``: Lightning's global seed (``seed_everything``), else a fresh seed that
            is logged; either is recorded as ``hparams["seed"]`` (so the logger and checkpoints have it).
        image_key, label_key: the entries of a dataset whose items are dicts (a Hugging Face row, your
            own ``{"image": ..., "label": ...}``); tuples ``(image, label)`` need none.
        sampler: the training order: ``"random"`` (a permutation per epoch) or ``"balanced"`` (each
            epoch as many draws, with replacement, in proportion to the samples' weights: a file
            list's weight column, else ``1 / count`` of their class, so every class comes alike; as
            ``WeightedRandomSampler``). Both functions of the run seed and the epoch, DDP-correct and
            resumable mid-epoch.
        num_aug_repeats: repeated augmentation (DeiT's ``RASampler``, timm's ``num_aug_repeats``): each
            sample read this many times in a row of the order, each time augmented differently (its
            repeat index is in its seed), the copies spread over the ranks; see ``repeated_epoch``.
        repeated_epoch: with ``num_aug_repeats`` > 1, how long an epoch is: ``"dataset"`` (default) the
            dataset's length, as timm's ``RepeatAugSampler`` (so schedules written for it keep their
            length: an epoch reads ``1 / num_aug_repeats`` of the samples, each that many times);
            ``"repeats"``: every sample ``num_aug_repeats`` times (an epoch that many times longer).
        progressive_resize: the training crop size by epoch
            (:class:`~lightning_aug.data.progressive.ProgressiveResize`, or a mapping of its fields): set
            on the train pipeline's leading ``RandomResizedCrop`` (and its crop while decoding) from
            each sample's epoch; ``in_memory``: the device stage resizes the training batches.
            Evaluation keeps its size. A function of the epoch, so resumed runs continue the ramp.

    The arguments are saved as plain data (:mod:`lightning_aug.hparams`: ``_target_`` mappings, never
    pickled objects) in ``hparams``, so checkpoints load with ``weights_only=True`` and
    ``AugDataModule.load_from_checkpoint(path)`` rebuilds the DataModule (pass what could not be
    saved, e.g. a lambda factory, as a keyword). Credentials among them (a ``storage_options`` secret,
    a URL's password) are saved as ``"<redacted>"`` (:mod:`lightning_aug.secrets`): a rebuilt
    DataModule reads them from the environment, or takes them as a keyword.

    Raises:
        TypeError: ``dataset`` not callable, ``loader`` not a ``LoaderSettings``, a transform of the
            wrong backend.
        ValueError: bad ``backend``, ``mean``, ``std``, ``num_classes`` or ``seed``, unknown transform
            target or argument.

    Example::

        >>> from lightning_aug.data.datasets import SyntheticShapes
        >>> from torchvision.transforms import v2
        >>> dm = AugDataModule(SyntheticShapes(), train_transforms=[v2.RandomHorizontalFlip()],
        ...                    loader=LoaderSettings(batch_size=32, num_workers=2), seed=0)
        >>> dm.train_pipeline
        Pipeline(backend='torchvision', transforms=[RandomHorizontalFlip])
    """

    def __init__(
        self,
        dataset: DatasetFactory | Callable[[str], Dataset | None],
        train_transforms: Sequence[Transform] | Mapping[str, Transform | None] = (),
        eval_transforms: Sequence[Transform] | Mapping[str, Transform | None] = (),
        backend: Backend = "torchvision",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        loader: LoaderSettings | None = None,
        num_classes: int | None = None,
        seed: int | None = None,
        device_transforms: Sequence[DeviceOp] = (),
        in_memory: bool = False,
        image_key: str = "image",
        label_key: str = "label",
        sampler: Sampling = "random",
        num_aug_repeats: int = 1,
        repeated_epoch: RepeatedEpoch = "dataset",
        progressive_resize: ProgressiveResize | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        arguments = {
            "dataset": dataset,
            "train_transforms": train_transforms,
            "eval_transforms": eval_transforms,
            "backend": backend,
            "mean": mean,
            "std": std,
            "loader": loader,
            "num_classes": num_classes,
            "seed": seed,
            "device_transforms": device_transforms,
            "in_memory": in_memory,
            "image_key": image_key,
            "label_key": label_key,
            "sampler": sampler,
            "num_aug_repeats": num_aug_repeats,
            "repeated_epoch": repeated_epoch,
            "progressive_resize": progressive_resize,
        }
        for name, value in arguments.items():  # a checkpoint's argument that could not be saved
            check_rebuildable(value, name)
        # plain data, credentials redacted (lightning_aug.secrets): they go into hparams.yaml and checkpoints
        hparams = {name: redact(describe(value)) for name, value in arguments.items()}
        if num_classes is None:  # merged with the model's for the logger: no clash over a None
            del hparams["num_classes"]
        self.save_hyperparameters(hparams)
        dataset = build(dataset, "dataset") if is_spec(dataset) else dataset
        loader = build(loader, "loader") if is_spec(loader) else loader
        self._factory = as_factory(dataset)  # the contract (lightning_aug.data.source)
        self.dataset = dataset
        self.train_pipeline = Pipeline(train_transforms, backend, name="train pipeline")
        self.eval_pipeline = Pipeline(eval_transforms, backend, name="eval pipeline")
        if mean is None:
            mean = self._factory.mean if self._factory.mean is not None else IMAGENET_MEAN
        if std is None:
            std = self._factory.std if self._factory.std is not None else IMAGENET_STD
        self.mean = _check_stats("mean", mean, positive=False)
        self.std = _check_stats("std", std, positive=True)
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean and std must have the same length, got {self.mean} and {self.std}")
        if loader is None:
            loader = LoaderSettings()
        if not isinstance(loader, LoaderSettings):
            raise TypeError(f"loader must be a LoaderSettings, got {type(loader).__name__}")
        self.loader = loader
        self._num_classes = check_int("num_classes", num_classes, 2, optional=True)
        self.seed = check_int("seed", seed, 0, optional=True)
        self.device_transforms = check_ops(device_transforms)
        self.stage = DeviceStage(self.mean, self.std, self.device_transforms)
        self.in_memory = check_bool("in_memory", in_memory)
        for name, key in (("image_key", image_key), ("label_key", label_key)):
            if not isinstance(key, str) or not key:
                raise ValueError(f"{name} must be a non-empty str (a key of dict items), got {key!r}")
        self.image_key, self.label_key = image_key, label_key
        if sampler not in ("random", "balanced"):
            raise ValueError(f"sampler must be 'random' or 'balanced', got {sampler!r}")
        self.sampler: Sampling = sampler
        self.num_aug_repeats: int = check_int("num_aug_repeats", num_aug_repeats, 1)  # type: ignore[assignment]
        if repeated_epoch not in ("dataset", "repeats"):
            raise ValueError(f"repeated_epoch must be 'dataset' or 'repeats', got {repeated_epoch!r}")
        self.repeated_epoch: RepeatedEpoch = repeated_epoch
        self._balance: np.ndarray | None = None  # per-sample weights of the train split (balanced)
        if isinstance(progressive_resize, Mapping):  # the fields (a checkpoint's: never another target)
            target = progressive_resize.get("_target_", _PROGRESSIVE)
            if target not in (_PROGRESSIVE, "lightning_aug.ProgressiveResize"):
                raise ValueError(
                    f"progressive_resize must describe a ProgressiveResize, got _target_ {target!r}"
                )
            progressive_resize = ProgressiveResize(
                **{k: v for k, v in progressive_resize.items() if k != "_target_"}
            )
        if progressive_resize is not None and not isinstance(progressive_resize, ProgressiveResize):
            raise TypeError(
                "progressive_resize must be a ProgressiveResize or a mapping of its fields, got "
                f"{progressive_resize!r}"
            )
        self.progressive_resize = progressive_resize
        if progressive_resize is not None and not in_memory:
            self.train_pipeline.set_crop_size(progressive_resize.size(0))  # refused without the crop
        evaluated = self.eval_pipeline.output_size
        end = progressive_resize.end_size if progressive_resize is not None else None
        if end is not None and evaluated is not None and evaluated != (end, end):
            warnings.warn(
                f"progressive_resize ends training at {end}x{end}, but the eval pipeline gives "
                f"{evaluated[1]}x{evaluated[0]} images: the model is evaluated at a size it was not "
                f"trained at last; set end_size={evaluated[0]} (datamodule.progressive_resize.end_size) "
                "or the eval crop to the same size",
                UserWarning,
                stacklevel=2,
            )
        self._said_size: int | None = None  # the training crop size last logged (progressive resizing)
        if in_memory and (self.train_pipeline.transforms or self.eval_pipeline.transforms):
            raise ValueError(
                "in_memory=True serves whole batches without per-sample transforms, but train_transforms or "
                "eval_transforms are set; move the augmentation to device_transforms"
            )
        self.skips = SkipReport()  # unreadable files replaced (on_bad_image="skip"), per epoch
        # training batches served in the current epoch: (epoch, batches), checkpointed; a resumed run's
        # sampler starts after them (applied when the loader is made: Lightning restores the loaders'
        # own state only after a one-cycle schedule's estimated_stepping_batches has made them)
        self._position: tuple[int, int] = (0, 0)
        self._pending_position: tuple[int, int] | None = None
        self._train_sampler: EpochSampler | None = None
        # (epoch, index in the epoch) of the training batch in the device stage: its parameters'
        # seed, read by BatchTransform callbacks too (lightning_aug.seeding.batch_rng)
        self.batch_coordinates: tuple[int, int] = (0, 0)
        self._untrained_batches = 0  # device-stage calls without a trainer (preview, bench)
        self._resumed_without_position = False
        self.datasets: dict[Split, Dataset | None] = {}  # what the loaders serve
        self.sources: dict[Split, Source | None] = {}  # each split's source (lightning_aug.data.source)
        self._own_order: Callable[[int], np.ndarray] | None = None  # the train source's own, if any
        self._run_seed: int | None = None
        self._generators: dict[bool, torch.Generator] = {}

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: Any,
        map_location: Any = None,
        hparams_file: Any = None,
        weights_only: bool | None = True,
        trusted_targets: Sequence[str] = (),
        **kwargs: Any,
    ) -> AugDataModule:
        """The DataModule a checkpoint was trained with, rebuilt from its saved arguments (Lightning's
        ``load_from_checkpoint``; ``kwargs`` replace saved arguments).

        A checkpoint from elsewhere is untrusted: it is read with ``weights_only=True`` (no pickle), and
        every class it names is resolved and checked before anything is built
        (:mod:`lightning_aug.trust`): only classes of ``lightning_aug``, ``torchvision.transforms`` and
        ``albumentations`` are built. Add modules (``"my_pkg"``) or callables
        (``"my_pkg.transforms.to_gray"``) you trust to ``trusted_targets``, or pass the argument yourself.

        Raises:
            ValueError: the checkpoint names anything else, or cannot be read without running code.
        """
        from lightning_aug.trust import load_checked

        return load_checked(
            cls, checkpoint_path, map_location, hparams_file, weights_only, trusted_targets, kwargs
        )

    # ---------------------------------------------------------------- properties
    @property
    def num_classes(self) -> int:
        """Classes of the data: the argument, the factory's ``num_classes`` or the train set's ``classes``."""
        if self._num_classes is not None:
            return self._num_classes
        found = self._factory.num_classes
        train = self.sources.get("train")
        if found is None and train is not None and train.classes is not None:
            found = len(train.classes)
        if found is None:
            raise ValueError(
                f"num_classes is unknown: the dataset factory {_name(self.dataset)} has no "
                "num_classes and the train set no classes; pass num_classes to AugDataModule "
                "(model.num_classes=... in the apps)"
            )
        return int(found)

    @property
    def run_seed(self) -> int:
        """The resolved seed of this run (see ``seed``); fixed on first use."""
        if self._run_seed is None:
            self._run_seed = resolve_run_seed(self.seed, "AugDataModule")
            if (
                self.seed is None
            ):  # drawn (or Lightning's global seed): recorded for the logger and checkpoints
                self.hparams["seed"] = self._run_seed
                initial = getattr(self, "_hparams_initial", None)  # what Lightning logs
                if initial is not None:
                    initial["seed"] = self._run_seed
        return self._run_seed

    @property
    @override
    def hparams_initial(self) -> AttributeDict:
        """What loggers record: the arguments under one key, ``datamodule``, so that they never clash
        with the model's own ``save_hyperparameters`` (Lightning refuses a name that both save with
        different values: a user module's ``mean``, ``std`` or ``seed``). Checkpoints keep ``hparams``
        as it is (``load_from_checkpoint``)."""
        return AttributeDict({"datamodule": dict(super().hparams_initial)})

    @property
    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    # ---------------------------------------------------------------- data hooks
    @override
    def prepare_data(self) -> None:
        self._factory.prepare()

    @override
    def setup(self, stage: str) -> None:
        wanted: dict[str, tuple[Split, ...]] = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("predict",),
        }
        if stage not in wanted:
            raise ValueError(f"stage must be one of {sorted(wanted)}, got {stage!r}")
        for split in wanted[stage]:
            if split in self.datasets:
                continue
            data = self._factory(check_split(split))
            if data is None:
                if split == "train":
                    raise ValueError(f"the dataset factory {_name(self.dataset)} returned no train split")
                self.datasets[split] = self.sources[split] = None
                continue
            try:  # the contract (lightning_aug.data.source): a dataset of your own is adapted
                source = self.sources[split] = as_source(data)
            except TypeError:
                raise TypeError(
                    f"the dataset factory returned {type(data).__name__} for split {split!r}; "
                    "expected a map-style dataset (with __getitem__ and __len__)"
                ) from None
            train = split == "train"
            if train and source.classes is not None:
                self._check_classes(source.classes)
            if train:
                self._check_multi_label()
            pipeline = self.train_pipeline if train else self.eval_pipeline
            self._check_sizes(split, source, None if self.in_memory else pipeline)
            if train and self.sampler == "balanced":
                self._balance = sample_weights(source)
            if self.in_memory:
                self.datasets[split] = InMemoryDataset.from_dataset(source, self.image_key, self.label_key)
                continue
            if train:  # a source's own order (shards), one for every rank, from the run seed
                self._own_order = source.epoch_order(stream_seed(self.run_seed, 0, Stream.TRAIN_LOADER))
            stream = Stream.TRAIN_PIPELINE if train else Stream.EVAL_PIPELINE
            # rank 0's stream on every rank: a sample's augmentation does not depend on the world size
            ramp = self.progressive_resize.size if train and self.progressive_resize is not None else None
            transformed = TransformedDataset(
                source, pipeline, stream_seed(self.run_seed, 0, stream), self.image_key, self.label_key, ramp
            )
            self.datasets[split] = transformed
            said = _decoding(source, pipeline, transformed.fused)
            if said is not None:
                rank_zero_info(f"AugDataModule: {split} {said}")

    @property
    def multi_label(self) -> bool:
        """Whether the data's labels are multi-hot rows (the factory's ``multi_label``): the one switch
        that ``ImageClassifier(multi_label=...)`` and ``MixupCallback(multi_label=...)`` must follow."""
        return bool(self._factory.multi_label)

    def _check_multi_label(self) -> None:
        """Refuse a model or mixing callback of the trainer set for the other kind of labels (it would
        train cross-entropy on multi-hot rows, or mix them without their smoothing).

        Raises:
            ValueError: naming the object, its setting and the data's.
        """
        if self.trainer is None:
            return
        from lightning_aug.device.mixing.callback import MixupCallback
        from lightning_aug.models import ImageClassifier

        kind = "multi-label (multi-hot rows)" if self.multi_label else "single-label (class indices)"
        trainer: Any = self.trainer
        users = [getattr(trainer, "lightning_module", None), *getattr(trainer, "callbacks", [])]
        for user in users:
            if (
                isinstance(user, (ImageClassifier, MixupCallback))
                and not user.follows_data
                and user.multi_label != self.multi_label
            ):
                name = type(user).__name__
                key = (
                    "model.multi_label"
                    if isinstance(user, ImageClassifier)
                    else "callbacks.mixup.multi_label"
                )
                raise ValueError(
                    f"the data is {kind}, but {name}(multi_label={user.multi_label}): give "
                    f"{name}(multi_label={self.multi_label}) (in the apps leave {key} out: it follows "
                    "the data)"
                )

    def _check_classes(self, classes: list[str]) -> None:
        """The train classes and how they were ordered, said in the log and saved in the loggers'
        hyperparameters (``hparams.yaml``) and in checkpoints; refused where ``num_classes`` was given
        and the data has another number of them (a mistyped label ``11`` among 0-9 makes 12).

        Raises:
            DataError: ``num_classes`` differs from the data's classes.
        """
        shown = ", ".join(map(str, classes[:20])) + (", ..." if len(classes) > 20 else "")
        order = ORDERS.get(self._factory.class_order or "", "the dataset's own order")
        rank_zero_info(f"AugDataModule: {len(classes)} classes ({order}): [{shown}]")
        if self._num_classes is not None and self._num_classes != len(classes):
            raise DataError(
                f"num_classes={self._num_classes} (datamodule.num_classes), but the train data has "
                f"{len(classes)} classes ([{shown}]): a mistyped label, or the wrong num_classes"
            )
        if self.trainer is not None:
            for logger in self.trainer.loggers:
                logger.log_hyperparams({"data_classes": [str(c) for c in classes], "data_class_order": order})

    def _check_sizes(self, split: Split, source: Source, pipeline: Pipeline | None) -> None:
        """Refuse, before any worker starts, data of several image sizes that ``pipeline`` (``None``:
        ``in_memory``, no pipeline) does not bring to one: read from the headers of a seeded sample
        of the files (the source's ``image_sizes``; sources that do not know are checked per batch).

        Raises:
            DataError: naming two files, their sizes, and what fits.
        """
        if pipeline is not None and pipeline.fixed_size:
            return
        sizes: dict[tuple[int, int], str] = {}
        for name, size in source.image_sizes(limit=256, seed=self.run_seed) or ():
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

    def _loader(self, split: Split, train: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"the {split!r} split is not set up: call setup() first")
        dataset: Dataset | None = self.datasets[split]
        if dataset is None:
            hint = ""
            if split == "predict":
                hint = (
                    ": give the images to predict, ImageFolder(root, predict_root=...) "
                    "(data.predict_root=... in the apps), or a factory whose build_predict returns them"
                )
            raise ValueError(
                f"the dataset factory {_name(self.dataset)} has no {split!r} split (it returned None){hint}"
            )
        trainer = self.trainer
        if train and trainer is not None and getattr(trainer, "overfit_batches", 0) > 0:
            # Lightning serves the first batches in order: make them a fixed draw of every class
            fixed = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.run_seed))  # type: ignore[arg-type]
            dataset = Subset(dataset, fixed.tolist())
        sampler = None
        if dataset is self.datasets[split]:  # (not the fixed draw of overfit_batches above)
            size = len(dataset)  # type: ignore[arg-type]
            seed = stream_seed(self.run_seed, 0, Stream.TRAIN_LOADER)  # one order for every rank
            # shards: their chunk-local shuffle; others: a permutation or a weighted draw; all functions
            # of (seed, epoch)
            own = self._own_order if train else None
            order: Callable[[int], Any] = own or functools.partial(permutation, size, seed)
            if self._balance is not None:
                order = functools.partial(balanced_draw, self._balance, seed)
            repeats = self.num_aug_repeats if train else 1
            if repeats > 1:
                order = _Repeated(order, repeats)
            sampler = EpochSampler(
                size * repeats,
                order=order if train else None,
                num_replicas=trainer.world_size if trainer is not None else 1,
                rank=self._rank,
                drop_last=train and self.loader.drop_last,
                strided=repeats > 1,
                limit=size if self.repeated_epoch == "dataset" else None,  # timm's epoch length
            )
        auto_pin = trainer is not None and self.loader.pin_memory == "auto"  # read the device only then
        made: Any = self.loader.make_loader(
            dataset,
            train=train,
            generator=self.loader_generator(train),
            device_type=trainer.strategy.root_device.type if auto_pin else None,  # type: ignore[union-attr]
            num_devices=trainer.num_devices if trainer is not None else 1,
            rank=self._rank,
            sampler=sampler,
        )
        if train and sampler is not None:
            made.position = self._train_position
            self._train_sampler = sampler
            if self._pending_position is not None:  # mid-epoch resume: at the next unseen sample
                sampler.set_start(*self._pending_position)
                self._pending_position = None
        return made

    # Lightning's four loader hooks; the factory's predict split is its test split unless it says
    train_dataloader = override(_loader_hook("train"))
    val_dataloader = override(_loader_hook("val"))
    test_dataloader = override(_loader_hook("test"))
    predict_dataloader = override(_loader_hook("predict"))

    @property
    def batch_size(self) -> int:
        """The training batch size (``loader.batch_size``); settable, so that Lightning's
        ``Tuner.scale_batch_size`` finds and changes it. Setting it replaces ``loader`` with a copy."""
        return self.loader.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.loader = dataclasses.replace(self.loader, batch_size=value)

    @property
    def predict_paths(self) -> list[str] | None:
        """The files of the predict split, in the order of its predictions (``None``: not files)."""
        source = self.sources.get("predict")
        return source.files() if source is not None else None

    # ---------------------------------------------------------------- randomness and state
    @property
    def skipped_files(self) -> dict[int, list[str]]:
        """The unreadable files skipped in each epoch (``on_bad_image="skip"``), by epoch; the samples
        read in each epoch's batches are ``skips.samples``."""
        return self.skips.files

    def loader_generator(self, train: bool) -> torch.Generator:
        """The generator of the train or eval loaders: shuffling and the workers' per-epoch base seeds."""
        if train not in self._generators:
            stream = Stream.TRAIN_LOADER if train else Stream.EVAL_LOADER
            seed = stream_seed(self.run_seed, self._rank, stream)
            self._generators[train] = torch.Generator().manual_seed(seed)
        return self._generators[train]

    def _train_position(self) -> dict[str, int]:
        """The samples of the current epoch that reached the training step (the next epoch's start
        once the epoch's batches are all done)."""
        epoch, batches = self._position
        sampler = self._train_sampler
        if sampler is not None:
            per_epoch = len(sampler) // self.loader.batch_size
            if not self.loader.drop_last:
                per_epoch = -(-len(sampler) // self.loader.batch_size)
            if batches >= per_epoch:
                return {"epoch": epoch + 1, "samples": 0}
        return {"epoch": epoch, "samples": batches * self.loader.batch_size}

    @override
    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs, saved in checkpoints: the position in the training epoch (the
        samples that reached the training step), the class names (``lightning-aug-predict``) and the
        loaders' generator (the workers' base seeds).

        Every random draw of the data path is a function of the run seed and where it happens (the
        order: the epoch; a sample's augmentation: epoch, sample, repeat; device ops and mixing:
        epoch, batch, rank), so the position is all the state there is: a run resumed from any
        checkpoint, mid-epoch included, trains on the batches of the uninterrupted run.
        """
        state: dict[str, Any] = {"train_loader_generator": self.loader_generator(True).get_state()}
        train = self.sources.get("train")
        classes = train.classes if train is not None else None
        if classes:  # the names predictions are written with (lightning-aug-predict)
            state["classes"] = [str(name) for name in classes]
            state["class_order"] = self._factory.class_order
        if self._train_sampler is not None:
            state["train_position"] = self._train_position()
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. A checkpoint of lightning_aug 0.2 (no position; generator
        streams instead) still resumes, from the start of its epoch, with Lightning's warning."""
        if "train_loader_generator" in state_dict:
            self.loader_generator(True).set_state(state_dict["train_loader_generator"])
        if "train_position" not in state_dict:
            self._resumed_without_position = True
            return
        position = (int(state_dict["train_position"]["epoch"]), int(state_dict["train_position"]["samples"]))
        self._position = (position[0], position[1] // self.loader.batch_size)
        if self._train_sampler is not None:
            self._train_sampler.set_start(*position)
        else:
            self._pending_position = position

    def device_stage(
        self,
        batch: Any,
        transforms: Sequence[BatchTransform] = (),
        trainer: Trainer | None = None,
        train: bool = False,
        dtype: torch.dtype | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The work after the transfer (:class:`~lightning_aug.device.stage.DeviceStage`): for training
        batches (``train``) the ``device_transforms`` and normalisation, then ``transforms`` in order;
        otherwise normalisation only. The images (and soft targets) come in ``dtype`` (``None``: the
        dtype the ``trainer``'s precision computes in, :func:`compute_dtype`).

        :meth:`on_after_batch_transfer` calls it with the trainer's ``BatchTransform`` callbacks
        during training; the preview and bench apps call it directly, so they show and time exactly
        what training does.
        """
        if not (isinstance(batch, (tuple, list)) and len(batch) in (2, 3)):
            got = type(batch).__name__
            raise TypeError(f"AugDataModule expects (images, labels) batches from its own loaders, got {got}")
        epoch = trainer.current_epoch if trainer is not None else 0
        # the paths of unreadable files replaced in this batch, if any (on_bad_image="skip")
        self.skips.record(batch[2] if len(batch) == 3 else (), epoch, self._rank, samples=len(batch[1]))
        if trainer is None:  # the preview and bench apps: batches 0, 1, ... of epoch 0
            self.batch_coordinates = (0, self._untrained_batches)
            self._untrained_batches += 1
        rng = (
            batch_rng(self.run_seed, self._rank, Stream.BATCH_OPS, *self.batch_coordinates) if train else None
        )
        dtype = compute_dtype(trainer) if dtype is None else dtype
        size = None
        if train and self.in_memory and self.progressive_resize is not None:  # no pipeline to set
            size = self.progressive_resize.size(self.batch_coordinates[0])
        return self.stage(batch[0], batch[1], transforms, trainer, train, rng, dtype, size)

    def report_skipped(self) -> None:
        """Warn about the unreadable files skipped in the current epoch (``skipped_files`` keeps all)."""
        self.skips.report(self._rank)

    @override
    def teardown(self, stage: str) -> None:
        self.report_skipped()

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> tuple[Tensor, Tensor]:
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return self.device_stage(batch, dtype=compute_dtype(trainer))
        epoch, batches = self._position
        index = batches if epoch == trainer.current_epoch else 0
        self._position = (trainer.current_epoch, index + 1)
        self.batch_coordinates = (trainer.current_epoch, index)
        if self.progressive_resize is not None:  # the size of each epoch, in the log
            size = self.progressive_resize.size(trainer.current_epoch)
            if size != self._said_size:
                epoch_now = trainer.current_epoch
                rank_zero_info(
                    f"AugDataModule: progressive_resize: epoch {epoch_now} trains at {size}x{size}"
                )
                self._said_size = size
        if self._resumed_without_position:
            self._warn_unresumable(trainer)
        transforms = [c for c in trainer.callbacks if isinstance(c, BatchTransform)]  # type: ignore[attr-defined]
        return self.device_stage(batch, transforms, trainer, train=True)

    def _warn_unresumable(self, trainer: Trainer) -> None:
        """Lightning's warning for a mid-epoch resume from a checkpoint without the loader's
        position (one of lightning_aug 0.2): the epoch starts again from its first batch."""
        self._resumed_without_position = False
        if trainer.fit_loop.epoch_loop.batch_progress.current.ready > 0:
            from lightning.pytorch.utilities import rank_zero_warn
            from lightning.pytorch.utilities.warnings import PossibleUserWarning

            rank_zero_warn(
                "You're resuming from a checkpoint that ended before the epoch ended and your dataloader is"
                " not resumable. This can cause unreliable results if further training is done."
                " Consider using an end-of-epoch checkpoint or make your dataloader resumable by implementing"
                " the `state_dict` / `load_state_dict` interface. (A checkpoint of lightning_aug 0.2: it"
                " holds no position in the epoch.)",
                category=PossibleUserWarning,
            )
