"""An image classifier: a small CNN, torchvision's ResNet-18 or any timm model (the ``timm`` extra).

Its loss takes both class indices ``(N,)`` and soft targets ``(N, C)`` (as produced by mixup/cutmix),
so it trains with or without mixing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
import torchvision
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MultilabelAccuracy, MultilabelAveragePrecision
from typing_extensions import override

from lightning_aug._checks import check_bool, check_int

__all__ = ["ImageClassifier", "one_cycle", "small_cnn", "timm_model"]

Arch = Literal["small_cnn", "resnet18", "timm"]


def small_cnn(num_classes: int, width: int = 32) -> nn.Sequential:
    """Four conv-BN-ReLU stages (strides 1, 2, 2, 2), global average pooling and a linear head."""
    widths = [width, width * 2, width * 4, width * 8]
    layers: list[nn.Module] = []
    channels = 3
    for i, w in enumerate(widths):
        layers += [
            nn.Conv2d(channels, w, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        ]
        channels = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def resnet18(num_classes: int, cifar_stem: bool, pretrained: bool = False) -> nn.Module:
    """torchvision's ResNet-18; ``pretrained``: ImageNet weights (downloaded once into the torch hub
    cache), with a new classification head; ``cifar_stem``: 3x3 stride-1 stem, no max-pool (32x32)."""
    if pretrained:
        weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
        with _downloading(f"the pretrained weights of resnet18 ({weights.url})", "TORCH_HOME"):
            net = torchvision.models.resnet18(weights=weights)
        net.fc = nn.Linear(net.fc.in_features, num_classes)
    else:
        net = torchvision.models.resnet18(num_classes=num_classes)
    if cifar_stem:
        net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    return net


def timm_model(name: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    """``timm.create_model(name, pretrained, num_classes)``: any of timm's architectures, its
    classification head sized for ``num_classes`` (pretrained weights keep the rest of the network).

    Raises:
        ImportError: timm is not installed (``pip install 'lightning-aug[timm]'``).
        ValueError: timm has no model of that name (the closest names are suggested).
    """
    try:
        import timm
    except ImportError as err:
        raise ImportError(
            "arch='timm' needs timm, which is not installed: pip install 'lightning-aug[timm]'"
        ) from err
    if not isinstance(name, str) or not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(str(name), timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else " (timm.list_models() lists them)"
        raise ValueError(f"name must be a timm model name with arch='timm', got {name!r}{hint}")
    if not pretrained:
        return cast(nn.Module, timm.create_model(name, num_classes=num_classes))
    with _downloading(f"timm's pretrained weights of {name}", "HF_HOME"):
        _check_hub_reachable(name)
        return cast(nn.Module, timm.create_model(name, pretrained=True, num_classes=num_classes))


def _check_hub_reachable(name: str) -> None:
    """Where timm would fetch ``name``'s weights from the Hugging Face Hub and they are not cached, one
    request to the Hub, no retries (huggingface_hub retries a refused connection for about a minute,
    logging each try).

    Raises:
        ConnectionError: the Hub cannot be reached (through the environment's proxies).
    """
    from huggingface_hub import constants, try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    config = get_pretrained_cfg(name)
    repo = getattr(config, "hf_hub_id", None) if config is not None else None
    if not repo or constants.HF_HUB_OFFLINE:  # weights by URL, or the user's offline mode: timm's way
        return
    files = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
    if any(isinstance(try_to_load_from_cache(repo, file), str) for file in files):
        return
    import httpx

    try:
        httpx.head(constants.ENDPOINT, timeout=10.0)
    except httpx.HTTPError as err:  # refused, timed out, a proxy's refusal
        raise ConnectionError(
            f"{constants.ENDPOINT} cannot be reached ({type(err).__name__}: {err})"
        ) from err


@contextmanager
def _downloading(what: str, cache: str) -> Iterator[None]:
    """A failed download of ``what`` (no network, a proxy, a server down) as one
    :class:`~lightning_aug.errors.DownloadError` naming it and how to do without; other errors pass."""
    from lightning_aug.errors import DownloadError, download_error

    try:
        yield
    except Exception as err:
        if not download_error(err):
            raise
        said = " ".join(str(err).split())[:300]
        raise DownloadError(
            f"cannot download {what} ({type(err).__name__}: {said}): no network here? Download them once "
            f"where there is one (they are cached under ${cache}, which you can copy), or "
            "model.pretrained=false"
        ) from None


class ImageClassifier(LightningModule):
    """Image classification with cross-entropy on class indices or soft targets.

    Logged: ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``. Under
    mixup/cutmix the targets are soft; ``train/acc`` then compares the prediction with the dominant
    class of the target (its argmax), a rough guide only. Validation and test batches are never mixed.

    With ``multi_label`` the targets are multi-hot rows (a sample may have several classes): the loss
    is binary cross-entropy on each class's logit (``BCEWithLogitsLoss``; soft mixed targets too),
    ``*/acc`` the per-label accuracy at a 0.5 threshold, ``val/map`` and ``test/map`` the mean
    average precision over the classes; :meth:`predict_step` gives per-class sigmoid probabilities.

    Args:
        num_classes: number of classes (at least 2).
        arch: ``"small_cnn"``, ``"resnet18"`` (torchvision's) or ``"timm"`` (the timm model ``name``).
        width: channels of the first small-CNN stage.
        cifar_stem: ResNet-18 stem for small (32x32) images (a new, randomly initialised stem).
        pretrained: start ResNet-18 from torchvision's ImageNet weights, or the timm model from timm's
            (fine-tuning; downloaded once into the cache); the head is new.
        name: the timm model with ``arch="timm"`` (any of ``timm.list_models()``, e.g.
            ``"resnet50"``, ``"convnext_tiny"``, ``"vit_small_patch16_224"``).
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        scheduler: ``"onecycle"`` or ``"none"``. One-cycle: the learning rate rises from ``lr / 25``
            to ``lr`` over the first 30% of the trainer's estimated steps, then falls to ``lr / 25e4``
            along a cosine (``OneCycleLR``'s shape, without its momentum cycling), as a function of
            the fraction of steps done: resuming with a larger ``max_epochs`` stretches the rest of
            the schedule over the new length, and steps beyond the estimate (tuning runs) stay at the
            final rate instead of failing.
        multi_label: multi-hot targets (binary cross-entropy, per-label accuracy, ``val/map``);
            ``None``: the trainer's DataModule's ``multi_label`` (the data's), set when fitting starts.

    Raises:
        ValueError: bad ``num_classes``, ``arch``, ``name``, ``width``, ``lr``, ``weight_decay`` or
            ``scheduler``.
    """

    def __init__(
        self,
        num_classes: int,
        arch: Arch = "small_cnn",
        width: int = 32,
        cifar_stem: bool = False,
        pretrained: bool = False,
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        scheduler: Literal["onecycle", "none"] = "onecycle",
        multi_label: bool | None = False,
        name: str | None = None,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)
        if arch not in ("small_cnn", "resnet18", "timm"):
            hint = f" (timm's {arch!r}: arch=timm name={arch})" if _is_timm_name(arch) else ""
            raise ValueError(f"arch must be 'small_cnn', 'resnet18' or 'timm', got {arch!r}{hint}")
        if (name is not None) != (arch == "timm"):
            raise ValueError(
                f"name (a timm model) goes with arch='timm' and only with it, got {name!r} for {arch!r}"
            )
        if cifar_stem and arch != "resnet18":
            raise ValueError(f"cifar_stem needs arch='resnet18', got arch={arch!r}")
        check_int("width", width, 1)
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a positive float, got {lr!r}")
        if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a float >= 0, got {weight_decay!r}")
        if not isinstance(pretrained, bool) or (pretrained and arch == "small_cnn"):
            raise ValueError(
                f"pretrained must be a bool and needs arch='resnet18' or 'timm', got {pretrained!r} "
                f"for {arch!r}"
            )
        if scheduler not in ("onecycle", "none"):
            raise ValueError(f"scheduler must be 'onecycle' or 'none', got {scheduler!r}")
        self.save_hyperparameters()
        self.lr, self.weight_decay, self.scheduler = float(lr), float(weight_decay), scheduler
        if arch == "timm":
            self.net = timm_model(cast(str, name), num_classes, pretrained)
        elif arch == "small_cnn":
            self.net = small_cnn(num_classes, width)
        else:
            self.net = resnet18(num_classes, cifar_stem, pretrained)
        self.follows_data = multi_label is None  # None: the data's, set when fitting starts (setup)
        self.num_classes = num_classes
        self._set_multi_label(False if multi_label is None else check_bool("multi_label", multi_label))

    def _set_multi_label(self, multi_label: bool) -> None:
        """The loss and metrics of single-label (cross-entropy, accuracy) or multi-label targets
        (binary cross-entropy, per-label accuracy, mAP)."""
        self.multi_label = multi_label
        num_classes = self.num_classes
        if multi_label:
            self.accuracy = nn.ModuleDict(
                {
                    f"{s}_acc": MultilabelAccuracy(num_classes, average="micro")
                    for s in ("train", "val", "test")
                }
            )
            self.average_precision = nn.ModuleDict(
                {
                    f"{s}_map": MultilabelAveragePrecision(num_classes, average="macro")
                    for s in ("val", "test")
                }
            )
        else:
            self.accuracy = nn.ModuleDict(
                {
                    f"{stage}_acc": MulticlassAccuracy(num_classes, average="micro")
                    for stage in ("train", "val", "test")
                }
            )

    @override
    def setup(self, stage: str) -> None:
        """``multi_label=None``: the trainer's DataModule's ``multi_label`` (AugDataModule's: the data's)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.follows_data and bool(getattr(datamodule, "multi_label", False)) != self.multi_label:
            self._set_multi_label(not self.multi_label)

    @override
    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)

    def _multi_label_step(self, logits: Tensor, targets: Tensor, stage: str) -> Tensor:
        if targets.ndim != 2 or targets.shape != logits.shape:
            raise ValueError(
                f"multi_label targets must be rows of one value per class, of shape {tuple(logits.shape)}, "
                f"got {targets.dtype} of shape {tuple(targets.shape)}"
            )
        loss = F.binary_cross_entropy_with_logits(logits, targets.float())
        hard = (targets > 0.5).long()
        accuracy = cast(MultilabelAccuracy, self.accuracy[f"{stage}_acc"])
        accuracy(logits.detach(), hard)
        self.log(
            f"{stage}/loss", loss, on_epoch=True, on_step=stage == "train", prog_bar=True, sync_dist=True
        )
        self.log(f"{stage}/acc", accuracy, on_epoch=True, on_step=False, prog_bar=True)
        if stage != "train":
            average_precision = cast(MultilabelAveragePrecision, self.average_precision[f"{stage}_map"])
            average_precision(logits.detach(), hard)
            self.log(f"{stage}/map", average_precision, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        images, targets = batch
        logits = self(images)
        if self.multi_label:
            return self._multi_label_step(logits, targets, stage)
        if targets.ndim == 2:  # soft targets (mixup/cutmix): cross-entropy against the distribution
            loss = F.cross_entropy(logits, targets)
            labels = targets.argmax(dim=1)
        elif targets.ndim == 1 and not targets.is_floating_point():
            loss = F.cross_entropy(logits, targets)
            labels = targets
        else:
            raise ValueError(
                "targets must be int64 class indices of shape (batch,) or soft targets of shape "
                f"(batch, num_classes), got {targets.dtype} of shape {tuple(targets.shape)}"
            )
        accuracy = cast(MulticlassAccuracy, self.accuracy[f"{stage}_acc"])
        accuracy(logits.detach(), labels)
        self.log(
            f"{stage}/loss", loss, on_epoch=True, on_step=stage == "train", prog_bar=True, sync_dist=True
        )
        self.log(f"{stage}/acc", accuracy, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    @override
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    @override
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    @override
    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    # test-time augmentation in predict_step: average with the horizontally flipped batch
    # (lightning-aug-predict predict.tta=true sets it)
    predict_tta: bool = False

    @override
    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Class probabilities, ``(batch, num_classes)`` (the files they belong to:
        ``AugDataModule.predict_paths``, in order): a softmax, or with ``multi_label`` each class's
        sigmoid. With :attr:`predict_tta`, the mean of the batch's and its horizontal flip's."""
        images = batch[0]
        if self.predict_tta:  # the two views in one forward pass
            images = torch.cat([images, images.flip(-1)])
        logits = self(images)
        probabilities = logits.sigmoid() if self.multi_label else logits.softmax(dim=1)
        if self.predict_tta:
            original, flipped = probabilities.chunk(2)
            return (original + flipped) / 2
        return probabilities

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: Any,
        map_location: Any = None,
        hparams_file: Any = None,
        strict: bool | None = None,
        weights_only: bool | None = True,
        trusted_targets: Sequence[str] = (),
        **kwargs: Any,
    ) -> ImageClassifier:
        """The model of a checkpoint (Lightning's ``load_from_checkpoint``; ``kwargs`` replace saved
        arguments), read with ``weights_only=True`` and refused, before anything is built, if any of
        its saved arguments names code outside the trusted modules and ``trusted_targets``
        (:mod:`lightning_aug.trust`, as ``AugDataModule.load_from_checkpoint``).

        Raises:
            ValueError: the checkpoint names untrusted code, or cannot be read without running code.
        """
        from lightning_aug.trust import load_checked

        return load_checked(
            cls, checkpoint_path, map_location, hparams_file, weights_only, trusted_targets, kwargs, strict
        )

    @override
    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.scheduler == "none":
            return optimizer
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, one_cycle(max(int(self.trainer.estimated_stepping_batches), 1))
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _is_timm_name(name: Any) -> bool:
    try:
        import timm
    except ImportError:
        return False
    return isinstance(name, str) and bool(timm.is_model(name))


def one_cycle(total_steps: int, warmup: float = 0.3, start: float = 1 / 25, end: float = 1 / 25e4) -> Any:
    """The one-cycle learning-rate factor of step ``t`` of ``total_steps``: a cosine rise from
    ``start`` to 1 over the ``warmup`` fraction, a cosine fall to ``end`` after, ``end`` past the end.

    A plain function (``LambdaLR`` saves no state of it), so a resumed run uses its own total.

    Example::

        >>> factor = one_cycle(10)
        >>> round(factor(0), 4), factor(3), round(factor(10), 6), round(factor(50), 6)
        (0.04, 1.0, 4e-06, 4e-06)
    """

    def factor(step: int) -> float:
        done = min(step / total_steps, 1.0)
        if done < warmup:
            return start + (1 - start) * (1 - math.cos(math.pi * done / warmup)) / 2
        return end + (1 - end) * (1 + math.cos(math.pi * (done - warmup) / (1 - warmup))) / 2

    return factor
