"""Progressive resizing: the training crop size as a function of the epoch (FFCV's resolution ramp,
fast.ai's progressive resizing): early epochs at a low resolution cost a fraction of the late ones,
and with the crop run while decoding (JPEGs at 1/2, 1/4, 1/8 size) the decode shrinks too.

The size is a function of the epoch alone, and the workers know the epoch of every sample they read
(:class:`~lightning_aug.data.sampling.SampleKey`): the schedule holds with persistent workers or with
Lightning's ``reload_dataloaders_every_n_epochs``, and a resumed run continues it where it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from lightning_aug._checks import check_int

__all__ = ["ProgressiveResize"]


@dataclasses.dataclass(frozen=True)
class ProgressiveResize:
    """The training crop size of each epoch: ``start_size`` up to ``start_epoch``, then a linear ramp
    to ``end_size`` at ``end_epoch``, rounded down to a multiple of ``multiple`` (and never below
    ``start_size``), ``end_size`` from ``end_epoch`` on. Evaluation keeps its own (final) size.

    Args:
        start_size: the side of the first epochs' crops (pixels).
        end_size: the side from ``end_epoch`` on (the eval pipeline's size, usually).
        end_epoch: the first epoch at ``end_size`` (0-based).
        start_epoch: the last epoch at ``start_size``.
        multiple: the sizes of the ramp are multiples of this (32: whole blocks of a ResNet's strides).

    Raises:
        ValueError: a size or epoch that is not a positive int, ``start_size > end_size``, or
            ``end_epoch <= start_epoch``.

    Example::

        >>> ramp = ProgressiveResize(start_size=128, end_size=224, start_epoch=2, end_epoch=6)
        >>> [ramp.size(epoch) for epoch in range(8)]
        [128, 128, 128, 128, 160, 192, 224, 224]
    """

    start_size: int
    end_size: int
    end_epoch: int
    start_epoch: int = 0
    multiple: int = 32

    def __post_init__(self) -> None:
        check_int("progressive_resize.start_size", self.start_size, 1)
        check_int("progressive_resize.end_size", self.end_size, 1)
        check_int("progressive_resize.start_epoch", self.start_epoch, 0)
        check_int("progressive_resize.end_epoch", self.end_epoch, 1)
        check_int("progressive_resize.multiple", self.multiple, 1)
        if self.start_size > self.end_size:
            raise ValueError(
                f"progressive_resize.start_size ({self.start_size}) must be at most end_size "
                f"({self.end_size})"
            )
        if self.end_epoch <= self.start_epoch:
            raise ValueError(
                f"progressive_resize.end_epoch ({self.end_epoch}) must come after start_epoch "
                f"({self.start_epoch})"
            )

    def size(self, epoch: int) -> int:
        """The crop side of ``epoch``."""
        if epoch >= self.end_epoch:
            return self.end_size
        if epoch <= self.start_epoch:
            return self.start_size
        done = (epoch - self.start_epoch) / (self.end_epoch - self.start_epoch)
        size = self.start_size + done * (self.end_size - self.start_size)
        return max(self.start_size, int(size) // self.multiple * self.multiple)

    @classmethod
    def of(cls, value: ProgressiveResize | Mapping[str, Any] | None) -> ProgressiveResize | None:
        """``value`` as a ``ProgressiveResize``: itself, or built from a mapping of its fields (a
        checkpoint's: never another target).

        Raises:
            ValueError: a mapping naming another ``_target_``, or bad fields.
            TypeError: anything else.
        """
        if isinstance(value, Mapping):
            target = value.get("_target_", _TARGETS[0])
            if target not in _TARGETS:
                raise ValueError(
                    f"progressive_resize must describe a ProgressiveResize, got _target_ {target!r}"
                )
            value = cls(**{k: v for k, v in value.items() if k != "_target_"})
        if value is not None and not isinstance(value, ProgressiveResize):
            raise TypeError(
                f"progressive_resize must be a ProgressiveResize or a mapping of its fields, got {value!r}"
            )
        return value


_TARGETS = ("lightning_aug.data.progressive.ProgressiveResize", "lightning_aug.ProgressiveResize")
