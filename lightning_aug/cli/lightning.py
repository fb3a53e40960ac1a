"""LightningCLI entry: ``ImageClassifier`` and ``AugDataModule`` configured by jsonargparse, beside the
Hydra apps (the ``cli`` extra: ``pip install 'lightning-aug[cli]'``).

Usage::

    python -m lightning_aug.cli.lightning fit --config examples/lightning_cli/config.yaml
    python -m lightning_aug.cli.lightning fit \\
        --data.dataset lightning_aug.data.datasets.SyntheticShapes --data.dataset.train_per_class 16 \\
        --data.train_transforms+=torchvision.transforms.v2.RandomHorizontalFlip \\
        --data.loader.batch_size 32 --trainer.max_epochs 2
    python -m lightning_aug.cli.lightning fit --print_config   # every option, as YAML

The model's ``num_classes`` comes from the DataModule (``data.num_classes``: the argument, or the
dataset factory's); ``BatchTransform`` callbacks such as ``lightning_aug.MixupCallback`` go under
``trainer.callbacks``.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_aug.datamodule import AugDataModule
from lightning_aug.models import ImageClassifier

__all__ = ["AugLightningCLI", "main"]


class AugLightningCLI(LightningCLI):
    """``LightningCLI(ImageClassifier, AugDataModule)`` with the model's ``num_classes`` linked to the
    DataModule's."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")


def main(args: Any = None, run: bool = True) -> AugLightningCLI:
    """Run the CLI on ``args`` (``None``: the command line)."""
    return AugLightningCLI(
        ImageClassifier, AugDataModule, args=args, run=run, save_config_kwargs={"overwrite": True}
    )


if __name__ == "__main__":
    main()
