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

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from lightning_aug.datamodule import AugDataModule
from lightning_aug.models import ImageClassifier

__all__ = ["AugLightningCLI", "RedactedConfigCallback", "main"]


class RedactedConfigCallback(SaveConfigCallback):
    """Lightning's ``SaveConfigCallback`` whose saved ``config.yaml`` has every credential of the
    config (a ``storage_options`` secret, a URL's password) replaced by ``<redacted>``
    (:mod:`lightning_aug.secrets`)."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        import os

        from lightning_aug.secrets import redact_files, secret_values

        if self.save_to_log_dir and trainer.log_dir is not None:
            values = secret_values(self.config.as_dict())
            redact_files([os.path.join(trainer.log_dir, self.config_filename)], values)


class AugLightningCLI(LightningCLI):
    """``LightningCLI(ImageClassifier, AugDataModule)`` with the model's ``num_classes`` linked to the
    DataModule's."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    def _before_run(self) -> None:
        """Before the subcommand runs: ``--ckpt_path`` refused if it holds a pickle or names code other
        than the trusted modules and the classes this command line names (:mod:`lightning_aug.trust`),
        and the loggers started with the config's credentials redacted from the command line they may
        record (:func:`lightning_aug.secrets.start_loggers`)."""
        from lightning_aug.cli.common import check_resume
        from lightning_aug.secrets import secret_values, start_loggers

        config = self.config[self.subcommand].as_dict()
        ckpt_path = config.get("ckpt_path")
        if ckpt_path is not None:
            check_resume(ckpt_path, config)
        start_loggers(self.trainer.loggers, secret_values(config))

    before_fit = before_validate = before_test = before_predict = _before_run


def main(args: Any = None, run: bool = True) -> AugLightningCLI:
    """Run the CLI on ``args`` (``None``: the command line); ``class_path`` may name modules of the
    current folder, as with ``python -m``."""
    from lightning_aug.cli import import_from_cwd

    import_from_cwd()
    return AugLightningCLI(
        ImageClassifier,
        AugDataModule,
        args=args,
        run=run,
        save_config_callback=RedactedConfigCallback,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    from lightning_aug.cli.common import data_errors, untrusted_errors

    app = "python -m lightning_aug.cli.lightning"
    with data_errors(app), untrusted_errors(app):  # bad data, an untrusted checkpoint: one line each
        main()
