# Makes conf/ the package lightning_aug.conf in the wheel (see pyproject.toml), so the Hydra apps
# find their configs with pkg://lightning_aug.conf after a non-editable install.
"""The config tree of the Hydra apps, and the resolver it needs outside them."""

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


OmegaConf.register_new_resolver("lightning_aug.output_dir", _output_dir, replace=True)
