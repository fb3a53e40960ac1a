"""Mixup and CutMix: pure kernels (:mod:`.functional`), parameter sampling (:mod:`.sampling`) and the
Lightning callback (:mod:`.callback`)."""

from lightning_aug.device.mixing.callback import MixupCallback
from lightning_aug.device.mixing.sampling import MixParams, sample_mix_params

__all__ = ["MixParams", "MixupCallback", "sample_mix_params"]
