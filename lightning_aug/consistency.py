"""What the data says that the settings must agree with, checked when a DataModule sets up: the number
of classes (and their order, logged and saved), and whether labels are multi-hot rows, which the
model and the mixing callbacks follow."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from lightning_aug.data.labels import ORDERS
from lightning_aug.errors import DataError

__all__ = ["check_classes", "check_multi_label", "check_train_split"]


def check_classes(classes: list[str], order: str | None, num_classes: int | None, trainer: Any) -> None:
    """Say the train classes and how they were ordered (``order``, a key of
    :data:`~lightning_aug.data.labels.ORDERS`) in the log and the trainer's loggers' hyperparameters
    (``hparams.yaml``); refuse a ``num_classes`` given that differs (a mistyped label ``11`` among 0-9
    makes 12).

    Raises:
        DataError: ``num_classes`` differs from the data's classes.
    """
    shown = ", ".join(map(str, classes[:20])) + (", ..." if len(classes) > 20 else "")
    said = ORDERS.get(order or "", "the dataset's own order")
    rank_zero_info(f"AugDataModule: {len(classes)} classes ({said}): [{shown}]")
    if num_classes is not None and num_classes != len(classes):
        raise DataError(
            f"num_classes={num_classes} (datamodule.num_classes), but the train data has "
            f"{len(classes)} classes ([{shown}]): a mistyped label, or the wrong num_classes"
        )
    for logger in trainer.loggers if trainer is not None else ():
        logger.log_hyperparams({"data_classes": [str(c) for c in classes], "data_class_order": said})


def check_multi_label(multi_label: bool, trainer: Any) -> None:
    """Refuse a model or mixing callback of the trainer set for the other kind of labels than the
    data's (it would train cross-entropy on multi-hot rows, or mix them without their smoothing);
    those that follow the data (``multi_label=None``) are set from it when fitting starts.

    Raises:
        ValueError: naming the object, its setting and the data's.
    """
    from lightning_aug.device.mixing.callback import MixupCallback
    from lightning_aug.models import ImageClassifier

    if trainer is None:
        return
    kind = "multi-label (multi-hot rows)" if multi_label else "single-label (class indices)"
    for user in [getattr(trainer, "lightning_module", None), *getattr(trainer, "callbacks", [])]:
        if (
            isinstance(user, (ImageClassifier, MixupCallback))
            and not user.follows_data
            and user.multi_label != multi_label
        ):
            name = type(user).__name__
            key = "model.multi_label" if isinstance(user, ImageClassifier) else "callbacks.mixup.multi_label"
            raise ValueError(
                f"the data is {kind}, but {name}(multi_label={user.multi_label}): give "
                f"{name}(multi_label={multi_label}) (in the apps leave {key} out: it follows the data)"
            )


def check_train_split(source: Any, factory: Any, num_classes: int | None, trainer: Any) -> None:
    """The checks of a train split (a :class:`~lightning_aug.data.source.Source` of the ``factory``):
    its classes (:func:`check_classes`), then its kind of labels (:func:`check_multi_label`)."""
    if source.classes is not None:
        check_classes(source.classes, factory.class_order, num_classes, trainer)
    check_multi_label(bool(factory.multi_label), trainer)
