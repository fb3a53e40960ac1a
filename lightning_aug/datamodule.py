"""AugDataModule: the composer of the data path. It builds the parts from its arguments and wires
them to Lightning's hooks:

- the dataset factory (:mod:`lightning_aug.data.source`) and each split's source;
- the data path that turns a source into what a loader serves (:mod:`lightning_aug.data.splits`:
  per-sample pipelines in the workers, or the split held in memory);
- the training order and its resume state (:mod:`lightning_aug.data.order`);
- the device stage after the transfer (:mod:`lightning_aug.device.stage`), which hands every batch op
  the batch's context (:mod:`lightning_aug.device.context`);
- the checks of the settings against the data (:mod:`lightning_aug.consistency`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities.parsing import AttributeDict
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from lightning_aug._checks import check_bool, check_int, check_key
from lightning_aug.consistency import check_train_split
from lightning_aug.data.loader import LoaderSettings
from lightning_aug.data.order import RepeatedEpoch, Sampling, TrainingOrder
from lightning_aug.data.pipeline import Backend, Pipeline
from lightning_aug.data.progressive import ProgressiveResize
from lightning_aug.data.skips import SkipReport
from lightning_aug.data.source import DatasetFactory, Source, Split, as_factory, as_source, check_split
from lightning_aug.data.splits import data_path
from lightning_aug.device.augment import DeviceOp, check_ops
from lightning_aug.device.context import BatchContext, BatchTransformHost
from lightning_aug.device.normalize import model_memory_format, statistics
from lightning_aug.device.protocol import BatchTransform
from lightning_aug.device.stage import DeviceStage, StageHost
from lightning_aug.hparams import build, is_spec, saved_arguments
from lightning_aug.seeding import Stream, resolve_run_seed
from lightning_aug.trust import TrustedLoading

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

__all__ = ["AugDataModule", "Transform"]

# A per-sample transform: a torchvision v2 transform (an nn.Module), an albumentations transform, or
# any callable; typed so that LightningCLI takes ``class_path`` entries and appends them with ``+=``
Transform = torch.nn.Module | Callable[..., Any]

# the dtype a model computes in under each of Lightning's "true" precisions (mixed ones: float32)
_TRUE_PRECISION = {"bf16-true": torch.bfloat16, "16-true": torch.float16, "64-true": torch.float64}


def compute_dtype(trainer: Trainer | None) -> torch.dtype:
    """The dtype of the batches the device stage gives the model: the parameters' dtype of the
    trainer's precision (``bf16-true``: bfloat16, ``16-true``: float16, ``64-true``: float64), else
    float32 (``32-true`` and the mixed precisions, whose autocast casts inside the model)."""
    return _TRUE_PRECISION.get(str(getattr(trainer, "precision", "32-true")), torch.float32)


def _name(obj: Any) -> str:
    """What a user calls ``obj`` (a function or partial by its function, else its class)."""
    func = getattr(obj, "func", obj)  # functools.partial
    return str(getattr(func, "__qualname__", None) or type(obj).__name__)


def _loader_hook(split: Split) -> Callable[[AugDataModule], DataLoader]:
    """A ``*_dataloader`` hook serving ``split`` (in the training order, with the train settings, for
    "train")."""

    def hook(self: AugDataModule) -> DataLoader:
        return self._loader(split, train=split == "train")

    hook.__name__ = hook.__qualname__ = f"{split}_dataloader"
    return hook


_SPLITS: dict[str, tuple[Split, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("predict",),
}
_NO_CLASSES = (
    "has no num_classes and the train set no classes; pass num_classes to AugDataModule "
    "(model.num_classes=... in the apps)"
)
_NO_PREDICT = (
    ": give the images to predict, ImageFolder(root, predict_root=...) (data.predict_root=... in the "
    "apps), or a factory whose build_predict returns them"
)


class AugDataModule(TrustedLoading, LightningDataModule, BatchTransformHost, StageHost):
    """A ``LightningDataModule`` built from configuration that keeps per-pixel float work on the device.

    Data flow: the dataset factory's ``(image, label)`` samples pass through the train or eval
    :class:`~lightning_aug.data.pipeline.Pipeline` in the DataLoader workers (uint8 in, CHW uint8 out)
    and are stacked into uint8 batches; after the transfer, :meth:`on_after_batch_transfer` converts
    them to float and normalises them for every stage; during training it runs ``device_transforms``
    first and then each :class:`~lightning_aug.device.protocol.BatchTransform` callback (mixup, cutmix)
    in ``trainer.callbacks`` order. (A LightningModule's own ``on_after_batch_transfer`` is then
    skipped by Lightning: subclass this one, or write a ``BatchTransform``.)

    Every random draw is a function of ``seed`` and of where it happens (the epoch's order; a sample's
    augmentation: epoch, sample, repeat; a batch's ops and mixing: rank, epoch, batch), so the same
    seed gives the same batches for any number of workers, and a run resumed from any checkpoint,
    mid-epoch included, trains on the uninterrupted run's batches (:mod:`lightning_aug.data.order`).
    The arguments are saved as plain data (``_target_`` mappings, credentials ``"<redacted>"``), so
    checkpoints load with ``weights_only=True`` and :meth:`load_from_checkpoint` rebuilds it.

    Args:
        dataset: a :class:`~lightning_aug.data.source.DatasetFactory`, a ``{"_target_": ...}`` mapping
            of one, or any callable of a split name (:func:`~lightning_aug.data.source.as_factory`).
        train_transforms, eval_transforms: per-sample transforms of ``backend`` (objects or
            ``_target_`` mappings), a list or a mapping of named ones (``None`` drops one).
        backend: ``"torchvision"`` (``transforms.v2``) or ``"albumentations"`` (2.x).
        mean, std: per-channel statistics on the 0-1 scale; ``None``: the factory's, else ImageNet's.
        loader: DataLoader settings; ``None``: ``LoaderSettings()``.
        num_classes: ``None``: the factory's, or the train split's ``classes``; given, a train split
            of another number of classes is refused.
        seed: run seed; ``None``: Lightning's global seed, else a drawn one, in ``hparams["seed"]``.
        device_transforms: device ops (:mod:`lightning_aug.device.augment`) on whole training batches
            in [0, 1], before the normalisation.
        in_memory: hold every split as one uint8 tensor (small data, no per-sample transforms).
        image_key, label_key: the entries of dict items (Hugging Face rows, your own dicts).
        sampler: ``"random"`` (a permutation per epoch) or ``"balanced"`` (draws in proportion to a
            file list's weight column, else ``1 / count`` of the class).
        num_aug_repeats: repeated augmentation: each sample read this many times, augmented anew.
        repeated_epoch: ``"dataset"`` (timm's epoch length) or ``"repeats"`` (that many times longer).
        progressive_resize: the training crop size by epoch (a
            :class:`~lightning_aug.data.progressive.ProgressiveResize` or a mapping of its fields).

    Raises:
        TypeError: ``dataset`` not callable, ``loader`` not a ``LoaderSettings``, a transform of the
            wrong backend.
        ValueError: an argument outside its values, an unknown transform target or argument.

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
        arguments = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.save_hyperparameters(saved_arguments(arguments, left_out_when_none=("num_classes",)))
        self.dataset = build(dataset, "dataset") if is_spec(dataset) else dataset
        self._factory = as_factory(self.dataset)  # the contract (lightning_aug.data.source)
        self.loader = LoaderSettings.of(build(loader, "loader") if is_spec(loader) else loader)
        self.train_pipeline = Pipeline(train_transforms, backend, name="train pipeline")
        self.eval_pipeline = Pipeline(eval_transforms, backend, name="eval pipeline")
        self.mean, self.std = statistics(mean, std, self._factory.mean, self._factory.std)
        self._num_classes = check_int("num_classes", num_classes, 2, optional=True)
        self.seed = check_int("seed", seed, 0, optional=True)
        self.device_transforms = check_ops(device_transforms)
        self.stage = DeviceStage(self.mean, self.std, self.device_transforms)
        self.in_memory = check_bool("in_memory", in_memory)
        self.image_key, self.label_key = check_key("image_key", image_key), check_key("label_key", label_key)
        self.order = TrainingOrder(
            sampler, num_aug_repeats, repeated_epoch, partial(getattr, self, "run_seed")
        )
        self.sampler, self.num_aug_repeats = self.order.sampler, self.order.num_aug_repeats  # (its checked)
        self.repeated_epoch = self.order.repeated_epoch
        self.progressive_resize = ProgressiveResize.of(progressive_resize)
        self.path = data_path(
            self.in_memory,
            self.train_pipeline,
            self.eval_pipeline,
            image_key,
            label_key,
            self.progressive_resize,
        )
        self.skips = SkipReport()  # unreadable files replaced (on_bad_image="skip"), per epoch
        self.batch_coordinates: tuple[int, int] = (0, 0)  # (epoch, index) of the batch in the stage
        self._untrained_batches = 0  # device-stage calls without a trainer (preview, bench)
        self.datasets: dict[Split, Dataset | None] = {}  # what the loaders serve
        self.sources: dict[Split, Source | None] = {}  # each split's source (lightning_aug.data.source)
        self._run_seed: int | None = None

    @property
    def num_classes(self) -> int:
        """Classes of the data: the argument, the factory's ``num_classes`` or the train set's ``classes``."""
        train = self.sources.get("train")
        found = self._num_classes or self._factory.num_classes
        if found is None and train is not None and train.classes is not None:
            found = len(train.classes)
        if found is None:
            raise ValueError(
                f"num_classes is unknown: the dataset factory {_name(self.dataset)} {_NO_CLASSES}"
            )
        return int(found)

    @property
    def multi_label(self) -> bool:
        """Whether the data's labels are multi-hot rows: the switch the model and mixing follow."""
        return bool(self._factory.multi_label)

    @property
    def run_seed(self) -> int:
        """The run's seed (see ``seed``), fixed on first use and recorded in ``hparams``."""
        if self._run_seed is None:
            self._run_seed = resolve_run_seed(self.seed, "AugDataModule")
            if self.seed is None:
                self.hparams["seed"] = self._run_seed
                initial = getattr(self, "_hparams_initial", None)  # what Lightning logs
                if initial is not None:
                    initial["seed"] = self._run_seed
        return self._run_seed

    @property
    @override
    def hparams_initial(self) -> AttributeDict:
        """The arguments under one key, ``datamodule``: no clash with a model's ``mean`` or ``seed``."""
        return AttributeDict({"datamodule": dict(super().hparams_initial)})

    @property
    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    @override
    def prepare_data(self) -> None:
        self._factory.prepare()

    @override
    def setup(self, stage: str) -> None:
        if stage not in _SPLITS:
            raise ValueError(f"stage must be one of {sorted(_SPLITS)}, got {stage!r}")
        for split in (s for s in _SPLITS[stage] if s not in self.datasets):
            data = self._factory(check_split(split))
            if data is None and split == "train":
                raise ValueError(f"the dataset factory {_name(self.dataset)} returned no train split")
            if data is None:
                self.datasets[split] = self.sources[split] = None
                continue
            source = self.sources[split] = as_source(data, split)  # the contract (data.source)
            if split == "train":  # the settings against the data, then the training order
                check_train_split(source, self._factory, self._num_classes, self.trainer)
                self.order.bind(source, own_order=self.path.uses_own_order)
            self.datasets[split] = self.path.dataset(source, split, self.run_seed, self.loader.decode_threads)

    def _loader(self, split: Split, train: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"the {split!r} split is not set up: call setup() first")
        dataset = self.datasets[split]
        if dataset is None:
            hint = f" (it returned None){_NO_PREDICT if split == 'predict' else ''}"
            raise ValueError(f"the dataset factory {_name(self.dataset)} has no {split!r} split{hint}")
        trainer, sampler = self.trainer, None
        if train and trainer is not None and getattr(trainer, "overfit_batches", 0) > 0:
            dataset = self.order.overfit_subset(dataset)  # Lightning serves the first batches in order
        else:
            world = trainer.world_size if trainer is not None else 1
            sampler = self.order.sampler_for(len(dataset), train, world, self._rank, self.loader.drop_last)  # type: ignore[arg-type]
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
        if train and sampler is not None:  # the stage's clock, if any, times the waits for batches
            made.position, made.fetch_clock = self._train_position, self.stage.clock
        return made

    def _train_position(self) -> dict[str, int]:
        return self.order.position(self.loader.batch_size, self.loader.drop_last)

    train_dataloader = override(_loader_hook("train"))
    val_dataloader = override(_loader_hook("val"))
    test_dataloader = override(_loader_hook("test"))
    predict_dataloader = override(_loader_hook("predict"))

    @property
    def batch_size(self) -> int:
        """``loader.batch_size``; settable (``Tuner.scale_batch_size``): ``loader`` is then replaced."""
        return self.loader.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.loader = dataclasses.replace(self.loader, batch_size=value)

    @property
    def predict_paths(self) -> list[str] | None:
        """The files of the predict split, in the order of its predictions (``None``: not files)."""
        source = self.sources.get("predict")
        return source.files() if source is not None else None

    @property
    def skipped_files(self) -> dict[int, list[str]]:
        """The unreadable files skipped (``on_bad_image="skip"``), by epoch (``skips`` has more)."""
        return self.skips.files

    def loader_generator(self, train: bool) -> torch.Generator:
        """The generator of the train or eval loaders: shuffling and the workers' per-epoch base seeds."""
        return self.order.generator(train, self._rank)

    @override
    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs (:meth:`TrainingOrder.state_dict
        <lightning_aug.data.order.TrainingOrder.state_dict>`: the position in the training epoch and
        the loaders' generator) and the class names and their order (``lightning-aug-predict``)."""
        state = self.order.state_dict(self.loader.batch_size, self.loader.drop_last, self._rank)
        train = self.sources.get("train")
        if train is not None and train.classes:
            state["classes"] = [str(name) for name in train.classes]
            state["class_order"] = self._factory.class_order
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a checkpoint of lightning_aug 0.2 (no position) resumes from the
        start of its epoch, with Lightning's warning."""
        self.order.load_state_dict(state_dict, self.loader.batch_size, self._rank)

    def device_stage(
        self,
        batch: Any,
        transforms: Sequence[BatchTransform] = (),
        trainer: Trainer | None = None,
        train: bool = False,
        dtype: torch.dtype | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The work after the transfer (:class:`~lightning_aug.device.stage.DeviceStage`) with the batch's
        :class:`~lightning_aug.device.context.BatchContext`, in ``dtype`` (``None``: :func:`compute_dtype`)
        and the model's layout; preview and bench call it: they show and time what training does."""
        if not (isinstance(batch, (tuple, list)) and len(batch) in (2, 3)):
            got = type(batch).__name__
            raise TypeError(f"AugDataModule expects (images, labels) batches from its own loaders, got {got}")
        epoch = trainer.current_epoch if trainer is not None else 0
        # the paths of unreadable files replaced in this batch, if any (on_bad_image="skip")
        self.skips.record(batch[2] if len(batch) == 3 else (), epoch, self._rank, samples=len(batch[1]))
        if trainer is None:  # the preview and bench apps: batches 0, 1, ... of epoch 0
            self.batch_coordinates = (0, self._untrained_batches)
            self._untrained_batches += 1
        dtype = compute_dtype(trainer) if dtype is None else dtype
        layout = model_memory_format(self.trainer.lightning_module) if self.trainer is not None else None
        if not (train or transforms):
            return self.stage(batch[0], batch[1], dtype=dtype, memory_format=layout)
        classes = self._num_classes or self._factory.num_classes
        epoch, index = self.batch_coordinates
        context = BatchContext(
            self.run_seed, epoch, index, self._rank, classes, dtype, self.mean, self.std, trainer
        )
        size = self.path.device_size(epoch) if train else None  # in memory: progressive resizing
        rng = context.generator(Stream.BATCH_OPS) if train else None
        return self.stage(batch[0], batch[1], transforms, trainer, train, rng, dtype, size, context, layout)

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
        self.batch_coordinates = (trainer.current_epoch, self.order.next_batch(trainer.current_epoch))
        self.path.say_size(trainer.current_epoch)
        self.order.warn_if_unresumable(trainer)
        transforms = [c for c in trainer.callbacks if isinstance(c, BatchTransform)]  # type: ignore[attr-defined]
        return self.device_stage(batch, transforms, trainer, train=True)
