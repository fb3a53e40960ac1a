"""``lightning-aug-prepare``: write a dataset's splits as shards for ``data=streaming``, or check shards.

Usage::

    lightning-aug-prepare data=imagefolder data.root=/data/imagenet prepare.output_dir=/data/shards
    lightning-aug-prepare data=imagefolder data.root=... prepare.output_dir=s3://bucket/imagenet \\
        prepare.max_side=512 prepare.quality=90
    lightning-aug-prepare prepare.output_dir=/data/shards prepare.verify=true     # check them

Then ``lightning-aug-train data=streaming data.input_dir=/data/shards``. A rerun keeps what matches,
continues what was interrupted, and refuses (one line naming what changed) to mix shards of other
data or options unless ``prepare.overwrite=true``.
"""

from __future__ import annotations

import time

import hydra
from omegaconf import DictConfig, OmegaConf

from lightning_aug.cli import CONFIG_PATH, precheck

__all__ = ["main", "prepare", "verify"]


def verify(cfg: DictConfig) -> dict:
    """Check the shards at ``cfg.prepare.output_dir`` end to end; prints a summary, exits 1 on
    problems."""
    from lightning_aug.cli.common import config_errors
    from lightning_aug.data.shards.verify import verify_shards

    options = cfg.prepare
    with config_errors("lightning-aug-prepare"):
        report = verify_shards(
            str(options.output_dir),
            storage_options=OmegaConf.to_container(options.storage_options, resolve=True),  # type: ignore[arg-type]
            decode=bool(options.verify_decode),
            timeout=float(options.timeout),
            retries=int(options.retries),
        )
    print("\n".join(report["lines"]))
    from lightning_aug.data.shards.storage import without_userinfo

    shown = without_userinfo(str(options.output_dir))
    print(f"verified {shown}: {'OK' if report['ok'] else 'PROBLEMS FOUND'}")
    if not report["ok"]:
        raise SystemExit(1)
    return report


def prepare(cfg: DictConfig) -> dict:
    """Prepare ``cfg.data`` into ``cfg.prepare.output_dir``; returns the metadata written."""
    from hydra.utils import instantiate

    from lightning_aug.cli.common import check_config, config_errors, log_through_hydra
    from lightning_aug.data.shards.prepare import prepare_shards
    from lightning_aug.data.shards.storage import without_userinfo

    log_through_hydra()
    if cfg.prepare.verify:
        return verify(cfg)
    with config_errors("lightning-aug-prepare"):
        check_config(cfg)
        factory = instantiate(cfg.data, _convert_="all")
        options = OmegaConf.to_container(cfg.prepare, resolve=True)
        assert isinstance(options, dict)
        for key in ("verify", "verify_decode"):
            options.pop(key)
        start = time.perf_counter()
        metadata = prepare_shards(factory, **options)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    counts = {split: entry["samples"] for split, entry in metadata["splits"].items()}
    total = sum(counts.values())
    skipped = sum(len(v) for v in metadata["unreadable"].values())
    print(
        f"prepared {total} images ({', '.join(f'{k} {v}' for k, v in counts.items())}) in "
        f"{seconds:.1f} s, {skipped} unreadable left out: {without_userinfo(str(cfg.prepare.output_dir))}"
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
