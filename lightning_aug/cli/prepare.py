"""``lightning-aug-prepare``: write a dataset's splits as LitData shards, for ``data=streaming``.

Usage::

    lightning-aug-prepare data=imagefolder data.root=/data/imagenet prepare.output_dir=/data/shards
    lightning-aug-prepare data=imagefolder data.root=... prepare.output_dir=s3://bucket/imagenet \\
        prepare.max_side=512 prepare.quality=90

Then ``lightning-aug-train data=streaming data.input_dir=/data/shards``.
"""

from __future__ import annotations

import time

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_aug.cli import CONFIG_PATH, precheck

__all__ = ["main", "prepare"]


def prepare(cfg: DictConfig) -> dict:
    """Prepare ``cfg.data`` into ``cfg.prepare.output_dir``; returns the metadata written."""
    from hydra.utils import instantiate

    from lightning_aug.cli.common import check_config, config_errors, log_through_hydra
    from lightning_aug.data.datasets.streaming import prepare_shards

    log_through_hydra()
    with config_errors("lightning-aug-prepare"):
        check_config(cfg)
        factory = instantiate(cfg.data, _convert_="all")
        options = OmegaConf.to_container(cfg.prepare, resolve=True)
        assert isinstance(options, dict)
        start = time.perf_counter()
        metadata = prepare_shards(factory, **options)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    total = sum(metadata["splits"].values())
    skipped = sum(len(v) for v in metadata["unreadable"].values())
    print(
        f"prepared {total} images ({', '.join(f'{k} {v}' for k, v in metadata['splits'].items())}) in "
        f"{seconds:.1f} s ({total / max(seconds, 1e-9):.0f} img/s), {skipped} unreadable left out: "
        f"{cfg.prepare.output_dir}"
    )
    return metadata


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="prepare")
def _hydra_main(cfg: DictConfig) -> None:
    prepare(cfg)


def main() -> None:
    """The console script: the command line checked (:func:`~lightning_aug.cli.precheck`), then Hydra."""
    precheck("prepare", "lightning-aug-prepare")
    _hydra_main()


if __name__ == "__main__":
    main()
