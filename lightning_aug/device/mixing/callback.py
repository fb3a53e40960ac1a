"""MixupCallback: batched mixup/cutmix on the device, as a Lightning callback."""

from __future__ import annotations

from collections.abc import MutableMapping, MutableSequence, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor
from typing_extensions import override

from lightning_aug._checks import check_bool, check_int, check_prob, describe
from lightning_aug.device.context import BatchContext, BatchTransformHost
from lightning_aug.device.mixing.functional import mix_targets, smooth_one_hot
from lightning_aug.device.mixing.kernels import MixKernels
from lightning_aug.device.mixing.sampling import MixParams, Mode, sample_mix_params
from lightning_aug.device.protocol import BatchTransform
from lightning_aug.seeding import Stream, batch_rng, resolve_run_seed

if TYPE_CHECKING:
    from lightning.pytorch import LightningModule, Trainer

__all__ = ["MixupCallback"]

Kernel = Literal["auto", "batched", "chunked"]
KERNELS: tuple[str, ...] = ("auto", "batched", "chunked")
# measured (python -m lightning_aug.bench.mixup, 2-core CPU): the chunked kernel wins on the CPU from
# about this batch size on (cache-resident chunks); below it the batched kernel's fewer ops win
CPU_CHUNKED_FROM_BYTES = 64 << 20


def _check_alpha(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a float >= 0 (0 disables it), got {value!r}")
    return float(value)


class MixupCallback(BatchTransform):
    """Mixup and CutMix for whole training batches on the device, vectorised, with soft targets.

    Parameters are named as in timm's ``Mixup``. With :class:`~lightning_aug.AugDataModule` it runs
    in the device stage after normalisation, for training batches only. With any other DataModule or
    plain dataloaders it replaces the images and targets of list or dict batches in
    ``on_train_batch_start`` (the images must already be float); other batch types raise at the
    first batch. It is never silently inactive.

    Semantics:

    - Sample ``i`` is mixed with sample ``B - 1 - i`` (the batch reversed, as timm; the loader has
      shuffled it). With an odd batch size the middle sample is paired with itself (unchanged).
    - ``lambda ~ Beta(alpha, alpha)``: mixup blends ``lam * x + (1 - lam) * x_partner``; cutmix
      pastes the partner's box, boxes as in the CutMix paper (side ``sqrt(1 - lam)``, uniform centre,
      clipped), with ``lam`` corrected to the clipped box area when ``correct_lam``.
      ``cutmix_minmax`` draws the box sides uniformly in that fraction of the image instead.
    - ``mode="batch"``: one lambda and one mixup/cutmix choice per batch; ``"pair"``: one per pair
      ``(i, B-1-i)``; ``"elem"``: one per sample. Each draw is applied with probability ``prob``;
      with both alphas positive, cutmix is chosen with probability ``switch_prob``.
    - Targets become smoothed one-hot rows (off = s / C, on = 1 - s + off) mixed with the same lambda,
      ``lam * y + (1 - lam) * y_partner``; each row sums to 1. A batch in which nothing is mixed
      (``prob`` missed, ``off_epoch`` reached) gets smoothed one-hot targets too, or keeps its class
      indices with ``keep_int_targets`` (no smoothing then).
    - From epoch ``off_epoch`` on (timm's ``mixup_off_epoch``) batches are no longer mixed.

    Speed: no Python loop over samples and no host-device sync. The parameters are drawn on the host
    from a ``numpy.random.Generator`` of the batch (:meth:`generator_of`: seeded from the run seed,
    the global rank, the epoch and the batch's index, so DDP ranks differ and a resumed run mixes as
    the uninterrupted one) and reach the device in one copy (pinned, non-blocking on CUDA). Two
    kernels apply them (``kernel``):

    - ``"batched"``: a handful of whole-batch ops (at most 16 top-level ops per batch in ``batch``
      mode, 24 in ``pair`` and ``elem``, at any batch size; ``python -m lightning_aug.bench.launches``
      counts them), on persistent buffers made once per shape: one batch-sized partner buffer, and
      for ``pair``/``elem`` batches with cutmix a ``(B, 1, H, W)`` weight buffer (a third of an RGB
      batch). What GPUs want: they pay per launch.
    - ``"chunked"``: pairs in place a chunk of ``chunk_fraction`` of the batch at a time, through two
      chunk buffers (about ``2 * chunk_fraction`` of the batch, never a batch copy): fastest on CPUs
      for large batches (cache-resident chunks), but ops in proportion to the batch.
    - ``"auto"`` (default): batched on any device but the CPU; on the CPU chunked for batches of at
      least 64 MiB, batched below (measured, see docs/performance.md).

    Out-of-range class indices raise a clear error on the CPU; on a GPU no check is made before the
    targets are built (that would cost ops), and the one-hot scatter's own bounds check fails instead.

    Args:
        mixup_alpha: Beta alpha of mixup; 0 disables mixup.
        cutmix_alpha: Beta alpha of cutmix; 0 disables cutmix (unless ``cutmix_minmax``).
        cutmix_minmax: ``(min, max)`` box side as fractions of the image, ``0 <= min < max <= 1``;
            enables cutmix and sets its lambda from the box.
        prob: probability that a draw (batch, pair or sample) is mixed.
        switch_prob: probability of cutmix rather than mixup when both are enabled.
        mode: ``"batch"``, ``"pair"`` or ``"elem"``.
        correct_lam: correct the cutmix lambda to the clipped box area.
        label_smoothing: smoothing ``s`` in [0, 1) of the one-hot targets; ``None``: 0.1, or 0 with
            ``keep_int_targets`` (class indices carry no smoothing).
        num_classes: classes of the targets; ``None``: ``trainer.datamodule.num_classes``.
        off_epoch: first epoch without mixing; ``None``: mix in every epoch.
        image_key, target_key: keys of dict batches (list/tuple batches are ``(images, targets, ...)``).
        seed: seed of the parameters; ``None``: the AugDataModule's run seed, else Lightning's
            global seed, else a fresh logged one. The global rank, epoch and batch are mixed in.
        log_lambda: log the batch's mean lambda as ``mixup/lam``.
        chunk_fraction: pairs per in-place step, as a fraction of the batch, in (0, 0.5].
        multi_label: the targets are multi-hot rows ``(batch, num_classes)`` (timm's
            ``Mixup(multi_label=True)``): smoothed towards 0.5 (``y * (1 - s) + 0.5 * s``) and mixed
            with the partner's with the same lambda; train with ``BCEWithLogitsLoss``. ``None``: the
            trainer's DataModule's ``multi_label`` (the data's), set when fitting starts.
        keep_int_targets: a batch left unmixed (``prob`` missed, ``off_epoch`` reached) keeps its
            int64 class indices (with a ``label_smoothing`` above 0: refused). Off by default: every
            training batch's targets are then soft ``(batch, num_classes)`` float rows, one dtype and
            shape for every batch (as timm's ``Mixup`` gives: its ``SoftTargetCrossEntropy`` and a
            compiled model see one signature).

    Raises:
        ValueError: any argument outside its range, or nothing to mix (both alphas 0, no minmax).

    Example::

        >>> import torch
        >>> mix = MixupCallback(mixup_alpha=0.4, label_smoothing=0.0, num_classes=3, seed=0)
        >>> images, targets = mix.transform_batch(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]), None)
        >>> targets.shape, torch.allclose(targets.sum(1), torch.ones(4))
        (torch.Size([4, 3]), True)
    """

    def __init__(
        self,
        mixup_alpha: float = 1.0,
        cutmix_alpha: float = 0.0,
        cutmix_minmax: Sequence[float] | None = None,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        mode: Mode = "batch",
        correct_lam: bool = True,
        label_smoothing: float | None = None,
        num_classes: int | None = None,
        off_epoch: int | None = None,
        image_key: str = "image",
        target_key: str = "label",
        seed: int | None = None,
        log_lambda: bool = False,
        chunk_fraction: float = 0.05,
        kernel: Kernel = "auto",
        multi_label: bool | None = False,
        keep_int_targets: bool = False,
    ) -> None:
        self.follows_data = multi_label is None  # None: the data's, set when fitting starts (setup)
        self.multi_label = False if multi_label is None else check_bool("multi_label", multi_label)
        self.keep_int_targets = check_bool("keep_int_targets", keep_int_targets)
        self.mixup_alpha = _check_alpha("mixup_alpha", mixup_alpha)
        self.cutmix_alpha = _check_alpha("cutmix_alpha", cutmix_alpha)
        if cutmix_minmax is not None:
            ok = isinstance(cutmix_minmax, Sequence) and not isinstance(cutmix_minmax, str)
            ok = ok and len(cutmix_minmax) == 2 and all(isinstance(v, (int, float)) for v in cutmix_minmax)
            if not ok or not 0.0 <= cutmix_minmax[0] < cutmix_minmax[1] <= 1.0:
                need = "None or (min, max) with 0 <= min < max <= 1"
                raise ValueError(f"cutmix_minmax must be {need}, got {cutmix_minmax!r}")
            cutmix_minmax = (float(cutmix_minmax[0]), float(cutmix_minmax[1]))
        self.cutmix_minmax: tuple[float, float] | None = cutmix_minmax
        if self.mixup_alpha == 0 and self.cutmix_alpha == 0 and cutmix_minmax is None:
            raise ValueError(
                "mixup_alpha and cutmix_alpha are both 0 and cutmix_minmax is None: nothing to mix; "
                "remove the callback or set an alpha > 0"
            )
        self.prob = check_prob("prob", prob)
        self.switch_prob = check_prob("switch_prob", switch_prob)
        if mode not in ("batch", "pair", "elem"):
            raise ValueError(f"mode must be 'batch', 'pair' or 'elem', got {mode!r}")
        self.mode: Mode = mode
        self.correct_lam = check_bool("correct_lam", correct_lam)
        if label_smoothing is None:  # class indices carry no smoothing
            label_smoothing = 0.0 if self.keep_int_targets else 0.1
        if (
            isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, (int, float))
            or not 0.0 <= label_smoothing < 1.0
        ):
            raise ValueError(f"label_smoothing must be a float in [0, 1), got {label_smoothing!r}")
        if self.keep_int_targets and label_smoothing > 0:
            raise ValueError(
                f"keep_int_targets=True keeps class indices on unmixed batches, which cannot carry "
                f"label_smoothing={label_smoothing}: set label_smoothing=0 "
                "(callbacks.mixup.label_smoothing=0 in the apps), or keep_int_targets=False"
            )
        self.label_smoothing = float(label_smoothing)
        self.num_classes = check_int("num_classes", num_classes, 2, optional=True)
        self.off_epoch = check_int("off_epoch", off_epoch, 0, optional=True)
        for name, key in (("image_key", image_key), ("target_key", target_key)):
            if not isinstance(key, str) or not key:
                raise ValueError(f"{name} must be a non-empty string, got {key!r}")
        if image_key == target_key:
            raise ValueError(f"image_key and target_key must differ, both are {image_key!r}")
        self.image_key, self.target_key = image_key, target_key
        self.seed = check_int("seed", seed, 0, optional=True)
        self.log_lambda = check_bool("log_lambda", log_lambda)
        if (
            isinstance(chunk_fraction, bool)
            or not isinstance(chunk_fraction, (int, float))
            or not 0 < chunk_fraction <= 0.5
        ):
            raise ValueError(f"chunk_fraction must be a float in (0, 0.5], got {chunk_fraction!r}")
        self.chunk_fraction = float(chunk_fraction)
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {list(KERNELS)}, got {kernel!r}")
        self.kernel: Kernel = kernel
        self._resolved_seed: int | None = None
        self._batch_index: int | None = None  # Lightning's batch_idx, without AugDataModule
        self._untrained_batches = 0
        self.kernels = MixKernels()
        self._device_buffers = self.kernels.buffers  # (the batched kernel's, kept between batches)
        self.last_params: MixParams | None = None

    # ---------------------------------------------------------------- state and seeding
    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            mode=self.mode, mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha, prob=self.prob
        )

    @override
    def state_dict(self) -> dict[str, Any]:
        """Nothing to carry over: every batch's parameters are a function of the batch
        (:meth:`generator_of`). Kept for Lightning's callback state."""
        return {"per_batch_seeding": True}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Accepts the state of any version: the generator stream of 0.1 and 0.2 checkpoints is no
        longer needed (each batch draws from its own generator)."""

    def _run_seed(self, trainer: Trainer | None) -> int:
        """``seed``, else the trainer's DataModule's ``run_seed`` where it says one, else Lightning's
        global seed, else a drawn one (logged)."""
        if self._resolved_seed is None:
            datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
            if self.seed is None and datamodule is not None and hasattr(datamodule, "run_seed"):
                self._resolved_seed = int(datamodule.run_seed)  # the DataModule's (also a drawn one)
            else:
                self._resolved_seed = resolve_run_seed(self.seed, "MixupCallback")
        return self._resolved_seed

    def context_of(self, trainer: Trainer | None) -> BatchContext:
        """The current batch's context where no DataModule hands one to :meth:`transform_in_context`:
        the trainer's DataModule's ``batch_coordinates`` (epoch, index) where it says them, else the
        ``batch_idx`` Lightning gave :meth:`on_train_batch_start` in the trainer's epoch; otherwise
        (preview, bench, direct calls) batches 0, 1, ... of epoch 0."""
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        coordinates = getattr(datamodule, "batch_coordinates", None)
        if coordinates is None and trainer is not None and self._batch_index is not None:
            coordinates = (trainer.current_epoch, self._batch_index)
        if coordinates is None:
            coordinates = (0, self._untrained_batches)
            self._untrained_batches += 1
        rank = trainer.global_rank if trainer is not None else 0
        epoch, batch = coordinates
        return BatchContext(self._run_seed(trainer), epoch, batch, rank, self.num_classes, trainer=trainer)

    def generator_of(self, context: BatchContext) -> np.random.Generator:
        """The generator of a batch's parameters: a function of the run seed (``seed`` where given,
        else the context's), the global rank, the epoch and the batch's index in the epoch
        (:func:`lightning_aug.seeding.batch_rng`), so a resumed run mixes as the uninterrupted one."""
        seed = self.seed if self.seed is not None else context.seed
        return batch_rng(seed, context.rank, Stream.MIXUP, context.epoch, context.batch)

    def batch_generator(self, trainer: Trainer | None) -> np.random.Generator:
        """The generator of the current batch without ``AugDataModule`` (:meth:`context_of`)."""
        return self.generator_of(self.context_of(trainer))

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self.follows_data:  # the trainer's DataModule's (AugDataModule's: the data's)
            self.multi_label = bool(getattr(getattr(trainer, "datamodule", None), "multi_label", False))
        if self.num_classes is None:
            found = getattr(getattr(trainer, "datamodule", None), "num_classes", None)
            if found is None:
                raise ValueError(
                    "MixupCallback: num_classes is None and the trainer's datamodule has no num_classes; "
                    "pass num_classes=..."
                )
            self.num_classes = int(found)
        if not isinstance(getattr(trainer, "datamodule", None), BatchTransformHost):
            self._run_seed(trainer)  # (a host hands its own run seed with each batch)

    # ---------------------------------------------------------------- the transform
    def _check_batch(self, images: Tensor, targets: Tensor) -> int:
        if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
            raise TypeError(
                f"MixupCallback mixes float image batches of shape (batch, channels, height, width), "
                f"got {describe(images)}; with your own DataModule, convert and normalise before "
                "training_step (AugDataModule does)"
            )
        batch = images.shape[0]
        if batch < 2:
            raise ValueError(
                f"MixupCallback needs at least 2 samples per batch to mix, got a batch of {batch}; "
                "use batch_size >= 2 and drop_last=True"
            )
        num_classes = self.num_classes
        if self.multi_label and not (
            isinstance(targets, Tensor) and targets.ndim == 2 and targets.shape == (batch, num_classes)
        ):
            raise ValueError(
                f"MixupCallback(multi_label=True) mixes multi-hot targets of shape ({batch}, {num_classes}), "
                f"got {describe(targets)}"
            )
        if num_classes is None:
            raise ValueError(
                "MixupCallback: num_classes is unknown; pass num_classes=... or use AugDataModule"
            )
        if isinstance(targets, Tensor) and targets.shape == (batch,) and not targets.is_floating_point():
            if targets.device.type == "cpu":
                low, high = int(targets.min()), int(targets.max())
                if low < 0 or high >= num_classes:
                    bad = high if high >= num_classes else low
                    raise ValueError(f"labels must be in [0, num_classes={num_classes}), got a label {bad}")
            return batch  # on other devices the one-hot scatter checks the bounds (no host sync)
        if (
            isinstance(targets, Tensor)
            and targets.shape == (batch, num_classes)
            and targets.is_floating_point()
        ):
            return batch
        raise ValueError(
            f"labels must be int64 class indices of shape ({batch},) or soft targets of shape "
            f"({batch}, {num_classes}), got {describe(targets)}"
        )

    def active(self, trainer: Trainer | None) -> bool:
        """Whether batches of the current epoch are mixed (``off_epoch`` not reached)."""
        epoch = trainer.current_epoch if trainer is not None else 0
        return self.off_epoch is None or epoch < self.off_epoch

    @override
    def transform_batch(
        self, images: Tensor, targets: Tensor, trainer: Trainer | None
    ) -> tuple[Tensor, Tensor]:
        """Mix ``images`` in place and return them with soft targets (see the class docstring), the
        batch's context built from the trainer (:meth:`context_of`)."""
        return self.transform_in_context(images, targets, self.context_of(trainer))

    @override
    def transform_in_context(
        self, images: Tensor, targets: Tensor, context: BatchContext
    ) -> tuple[Tensor, Tensor]:
        """Mix ``images`` in place with the parameters of the batch's generator (:meth:`generator_of`)."""
        trainer = context.trainer
        batch = self._check_batch(images, targets)
        if self.multi_label:  # timm's multi-label smoothing (towards 0.5), then mixed as soft targets
            targets = targets.float() * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        if not self.active(trainer):
            self.last_params = None
            return images, self._unmixed_targets(targets)
        height, width = images.shape[-2:]
        params = sample_mix_params(
            batch,
            height,
            width,
            mode=self.mode,
            mixup_alpha=self.mixup_alpha,
            cutmix_alpha=self.cutmix_alpha,
            cutmix_minmax=self.cutmix_minmax,
            prob=self.prob,
            switch_prob=self.switch_prob,
            correct_lam=self.correct_lam,
            rng=self.generator_of(context),
        )
        self.last_params = params
        if not params.any_applied:
            return images, self._unmixed_targets(targets)
        if self._kernel_for(images) == "batched":
            return self.kernels.batched(
                images, targets, params, self.label_smoothing, int(self.num_classes or 0)
            )
        lam = torch.from_numpy(params.lam).to(images.device, torch.float32, non_blocking=True)
        self.kernels.chunked(images, params, lam, self.chunk_fraction)
        return images, mix_targets(self._soft(targets), lam)

    def _kernel_for(self, images: Tensor) -> str:
        if self.kernel != "auto":
            return self.kernel
        if images.device.type != "cpu":
            return "batched"
        return "chunked" if images.numel() * images.element_size() >= CPU_CHUNKED_FROM_BYTES else "batched"

    def _soft(self, targets: Tensor) -> Tensor:
        if targets.ndim == 2:
            return targets
        return smooth_one_hot(targets, int(self.num_classes or 0), self.label_smoothing)

    def _unmixed_targets(self, targets: Tensor) -> Tensor:
        if self.keep_int_targets and self.label_smoothing == 0 and targets.ndim == 1:
            return targets
        return self._soft(targets)

    # ---------------------------------------------------------------- Lightning glue
    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if isinstance(getattr(trainer, "datamodule", None), BatchTransformHost):
            return  # mixed in the DataModule's device stage (AugDataModule.on_after_batch_transfer)
        self._batch_index = batch_idx
        if isinstance(batch, MutableMapping):
            missing = [k for k in (self.image_key, self.target_key) if k not in batch]
            if missing:
                raise KeyError(
                    f"MixupCallback: dict batch has no key(s) {missing} (keys: {sorted(batch)}); "
                    "set image_key/target_key"
                )
            batch[self.image_key], batch[self.target_key] = self.transform_batch(
                batch[self.image_key], batch[self.target_key], trainer
            )
        elif isinstance(batch, MutableSequence) and len(batch) >= 2:
            batch[0], batch[1] = self.transform_batch(batch[0], batch[1], trainer)
        else:
            kind = "tuple" if isinstance(batch, tuple) else type(batch).__name__
            raise TypeError(
                f"MixupCallback cannot change a {kind} batch in place: return lists [images, targets] or "
                f"dicts with keys {self.image_key!r}/{self.target_key!r} from your DataLoader, "
                "or use AugDataModule"
            )

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.log_lambda and self.last_params is not None:
            pl_module.log("mixup/lam", float(self.last_params.lam.mean()), on_step=True, on_epoch=False)

    def __repr__(self) -> str:
        fields = (
            "mixup_alpha",
            "cutmix_alpha",
            "cutmix_minmax",
            "prob",
            "switch_prob",
            "mode",
            "label_smoothing",
        )
        return f"MixupCallback({', '.join(f'{f}={getattr(self, f)!r}' for f in fields)})"
