# Makes conf/ the package lightning_aug.conf in the wheel (see pyproject.toml), so the Hydra apps
# find their configs with pkg://lightning_aug.conf after a non-editable install.
"""The config tree of the Hydra apps, and the resolvers it needs outside them."""

import os

from omegaconf import OmegaConf


def _output_dir() -> str:
    """The run folder: Hydra's output dir inside an app; outside (the compose API), the current
    directory, so that configs that write files (checkpoints) still instantiate."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        output_dir = HydraConfig.get().runtime.output_dir
        if output_dir:
            return str(output_dir)
    return os.getcwd()


def _auto_augment(key: str, *, _root_: object) -> object:
    """``augment=auto``: a key of the preset that fits the data (:mod:`lightning_aug.presets`)."""
    from lightning_aug.presets import auto_augment

    return auto_augment(key, _root_=_root_)


OmegaConf.register_new_resolver("lightning_aug.output_dir", _output_dir, replace=True)
OmegaConf.register_new_resolver("lightning_aug.auto_augment", _auto_augment, replace=True)
