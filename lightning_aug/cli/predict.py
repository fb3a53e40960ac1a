"""``lightning-aug-predict``: class probabilities for every image of a folder, from a checkpoint.

Usage::

    lightning-aug-predict ckpt_path=runs/x/checkpoints/last.ckpt data.predict_root=/path/to/images
    lightning-aug-predict ckpt_path=... data.predict_root=... top_k=3 trainer=gpu
    lightning-aug-predict ckpt_path=... data.predict_root=... predict.tta=true   # + horizontal flip

Writes ``predictions.csv`` into the run folder: one row per image file under ``data.predict_root``
(recursive, sorted by path): ``file`` (relative to the folder), ``class_1, prob_1, ...`` for the
``top_k`` most likely classes, and ``error`` (empty, or why the file could not be read); a cell that a
spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``, a tab or carriage return first) is
written with a leading ``'``. The model and the DataModule (eval pipeline, normalisation, class names)
are rebuilt from the checkpoint, which is read with ``weights_only=True`` and refused whole if it names
code outside the trusted modules (:mod:`lightning_aug.trust`; ``predict.trusted_targets`` adds your own).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from lightning_aug.cli import CONFIG_PATH, precheck

__all__ = ["main", "predict"]

HPARAMS = "datamodule_hyper_parameters"

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> Path:
    """Predict every image of ``cfg.data.predict_root``; returns the path of ``predictions.csv``."""
    import dataclasses

    from hydra.utils import instantiate

    from lightning_aug.cli.common import config_errors, data_errors, log_through_hydra
    from lightning_aug.data.datasets import ImageFiles
    from lightning_aug.datamodule import AugDataModule
    from lightning_aug.hparams import build
    from lightning_aug.models import ImageClassifier
    from lightning_aug.trust import Trust, arguments, read_checkpoint, trusted_context

    log_through_hydra()
    with config_errors("lightning-aug-predict"):
        if not isinstance(cfg.top_k, int) or cfg.top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got {cfg.top_k!r}")
        # read once, with no pickle; refused whole if it names code we would not build (the dataset
        # is replaced by the folder to predict: not built from the checkpoint, not checked)
        trust = Trust.of(list(cfg.predict.trusted_targets or []))
        source = f"ckpt_path {str(cfg.ckpt_path)!r}"
        advice = "If you trust the checkpoint: predict.trusted_targets=[<module or callable>]"
        checkpoint = read_checkpoint(
            cfg.ckpt_path, trust, source, replaced={HPARAMS: ["dataset"]}, advice=advice
        )
        if HPARAMS not in checkpoint:
            raise ValueError(
                f"ckpt_path {cfg.ckpt_path!r} holds no AugDataModule arguments "
                "(datamodule_hyper_parameters): it was not written by lightning_aug 0.2 or later"
            )
        dataset = ImageFiles(
            cfg.data.predict_root, cfg.data.decoder, cfg.data.on_bad_image, cfg.data.max_image_pixels
        )
        with trusted_context(trust, source):  # both rebuilt from the checkpoint read above
            saved = arguments(checkpoint[HPARAMS])
            loader = build(saved.get("loader"), "loader")
            overrides = {k: v for k, v in cfg.loader.items() if v is not None}
            loader = dataclasses.replace(
                loader, **overrides, eval_batch_size=None, persistent_workers=False, prefetch_factor=None
            )
            if loader.num_workers == 0:
                loader = dataclasses.replace(loader, multiprocessing_context=None)
            datamodule = AugDataModule(**{**saved, "dataset": dataset, "loader": loader})
            side = _resize_side(cfg.predict.get("resize", "auto"), datamodule, dataset)
            if side is not None:  # images of any size: resized as the eval transforms would
                saved["eval_transforms"] = _resized(saved.get("eval_transforms") or [], side, datamodule)
                datamodule = AugDataModule(**{**saved, "dataset": dataset, "loader": loader})
            model = ImageClassifier(**arguments(checkpoint["hyper_parameters"]))
        model.load_state_dict(checkpoint["state_dict"])
        model.predict_tta = bool(cfg.predict.tta)
        trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    with data_errors("lightning-aug-predict"):  # bad data (on_bad_image=raise): one line, exit 2
        probabilities = trainer.predict(model, datamodule=datamodule)
    classes = checkpoint.get(type(datamodule).__qualname__, {}).get("classes")
    return _write(cfg, datamodule, probabilities, classes)


def _resize_side(given: Any, datamodule: Any, dataset: Any) -> int | None:
    """The side new images are resized and centre-cropped to before the checkpoint's eval transforms:
    none where those already give one size; else ``predict.resize`` (``auto``: the size the model was
    trained at, where its train pipeline says it).

    Raises:
        ValueError: a bad ``predict.resize``, or images of several sizes and no side to bring them to.
    """
    if given is not None and given != "auto" and not (isinstance(given, int) and given > 0):
        raise ValueError(f"predict.resize must be auto, null or a positive int, got {given!r}")
    if datamodule.eval_pipeline.fixed_size or given is None:
        return None
    if isinstance(given, int):
        return given
    trained = datamodule.train_pipeline.output_size
    if trained is not None and trained[0] == trained[1]:
        return trained[0]
    sizes = {tuple(size): name for name, size in dataset.image_sizes(limit=64)}
    if len(sizes) > 1:
        (a, name_a), (b, name_b) = list(sizes.items())[:2]
        raise ValueError(
            f"the images of data.predict_root come in several sizes ({name_a}: {a[1]}x{a[0]}, {name_b}: "
            f"{b[1]}x{b[0]}), and the checkpoint's eval pipeline has no resize to one: give "
            "predict.resize=<side the model was trained at> (resize the shorter side, then a centre crop)"
        )
    return None


def _resized(eval_transforms: Any, side: int, datamodule: Any) -> Any:
    """The checkpoint's eval transforms (specs) after a resize of the shorter side to ``side`` and a
    centre crop, of the pipeline's backend."""
    if datamodule.eval_pipeline.backend == "albumentations":
        head = [
            {"_target_": "albumentations.SmallestMaxSize", "max_size": side},
            {"_target_": "albumentations.CenterCrop", "height": side, "width": side},
        ]
    else:
        head = [
            {"_target_": "torchvision.transforms.v2.Resize", "size": side},
            {"_target_": "torchvision.transforms.v2.CenterCrop", "size": side},
        ]
    if isinstance(eval_transforms, dict):
        return {"predict_resize": head[0], "predict_crop": head[1], **eval_transforms}
    return [*head, *eval_transforms]


def _write(cfg: DictConfig, datamodule: Any, batches: list[Any], classes: list[str] | None) -> Path:
    import torch

    paths = datamodule.predict_paths or []
    probabilities = torch.cat(batches) if batches else torch.empty(0, 0)
    if len(paths) != len(probabilities):
        raise RuntimeError(f"{len(probabilities)} predictions for {len(paths)} files")
    unreadable = {path for files in datamodule.skipped_files.values() for path in files}
    k = min(int(cfg.top_k), probabilities.shape[1])
    top = probabilities.topk(k, dim=1)
    root = Path(cfg.data.predict_root).expanduser()
    out = Path(cfg.paths.output_dir) / "predictions.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["file", *[f"{kind}_{i + 1}" for i in range(k) for kind in ("class", "prob")], "error"]
        )
        for row, path in enumerate(paths):
            name = str(Path(path).relative_to(root)) if Path(path).is_relative_to(root) else path
            if path in unreadable:  # its slot holds another readable file's prediction
                writer.writerow([_cell(name), *[""] * (2 * k), "unreadable (see the warning)"])
                continue
            cells: list[Any] = []
            for index, prob in zip(top.indices[row].tolist(), top.values[row].tolist(), strict=True):
                cells += [classes[index] if classes and index < len(classes) else str(index), f"{prob:.6f}"]
            writer.writerow([_cell(name), *map(_cell, cells), ""])
    print(f"predictions: {out} ({len(paths)} files, {len(unreadable)} unreadable)")
    return out


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet would read as a formula (a class name or file name from elsewhere
    starting with ``=``, ``+``, ``-``, ``@``, a tab or carriage return) with a leading ``'``, which
    spreadsheets show as text (OWASP's CSV injection advice); probabilities and other text as they are."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA) else value


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    predict(cfg)


def main() -> None:
    """The console script: the command line checked (:func:`~lightning_aug.cli.precheck`), then Hydra."""
    precheck("predict", "lightning-aug-predict")
    _hydra_main()


if __name__ == "__main__":
    main()
