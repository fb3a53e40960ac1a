"""``lightning-aug-bench``: the Hydra entry of the data-path benchmark (:mod:`lightning_aug.bench`).

Same config tree and overrides as ``lightning-aug-train``::

    lightning-aug-bench                                             # the photographs (defaults)
    lightning-aug-bench data=synthetic ~experiment                   # the built-in set, the train defaults
    lightning-aug-bench experiment=bench_cifar bench.fit_epochs=2    # CIFAR-size, device-batched
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lightning_aug.cli import CONFIG_PATH, precheck

__all__ = ["main"]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="bench")
def _hydra_main(cfg: DictConfig) -> None:
    from lightning_aug.bench.data_path import bench
    from lightning_aug.cli.common import data_errors, log_through_hydra

    log_through_hydra()
    with data_errors("lightning-aug-bench"):  # a setting that cannot run here: one line, exit 2
        bench(cfg)


def main() -> None:
    """The console script: the command line checked (:func:`~lightning_aug.cli.precheck`), then Hydra."""
    precheck("bench", "lightning-aug-bench")
    _hydra_main()


if __name__ == "__main__":
    main()
