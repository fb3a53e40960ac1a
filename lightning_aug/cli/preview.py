"""``lightning-aug-preview``: training samples exactly as the model receives them, as a PNG grid.

The first training batch goes through the same loader, device stage and batch transforms (mixup,
cutmix) as in training, is denormalised for display and drawn with its (soft) labels: the top two
classes and their weights. Takes every override of ``lightning-aug-train``::

    lightning-aug-preview augment=cifar_alb mixup=cutmix preview.rows=2
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig
from PIL import Image, ImageDraw

from lightning_aug.cli import CONFIG_PATH, precheck

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["label_text", "main", "preview", "render_grid"]

log = logging.getLogger(__name__)


def label_text(target: Tensor, names: list[str] | None) -> str:
    """``"disk"`` for a class index, ``"disk .62 / ring .38"`` for a soft target (top two classes)."""

    def name(index: int) -> str:
        return names[index] if names is not None and index < len(names) else str(index)

    if target.ndim == 0:
        return name(int(target))
    weights, classes = target.float().topk(min(2, target.numel()))
    parts = [
        f"{name(int(c))} {float(w):.2f}" for w, c in zip(weights, classes, strict=True) if float(w) >= 0.005
    ]
    return " / ".join(parts)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int) -> str:
    """``text``, shortened from the left end of its class name (``"…ss 0.62"``) until it is at most
    ``width`` pixels wide: the weight stays readable."""
    if draw.textlength(text) <= width:
        return text
    name, _, weight = text.rpartition(" ")
    name = name or text
    while name and draw.textlength(f"…{name} {weight}".strip()) > width:
        name = name[1:]
    return f"…{name} {weight}".strip()


def render_grid(images: Tensor, labels: list[str], cols: int, scale: int = 1) -> Image.Image:
    """Tiles of 0-1 float images ``(N, 3, H, W)`` in ``cols`` columns, each with its label below: one
    line per class of a soft target (``"disk 0.62"``, ``"ring 0.38"``), shortened to the tile's width."""
    import torch

    n, _, h, w = images.shape
    tile_w, tile_h = w * scale, h * scale
    lines = [label.split(" / ") for label in labels]
    text_h = 12 * max((len(parts) for parts in lines), default=1) + 2
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (tile_w + 4) + 4, rows * (tile_h + text_h + 6) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        x, y = 4 + (i % cols) * (tile_w + 4), 4 + (i // cols) * (tile_h + text_h + 6)
        tile = Image.fromarray(pixels[i]).resize((tile_w, tile_h), Image.Resampling.NEAREST)
        sheet.paste(tile, (x, y))
        for j, part in enumerate(lines[i]):
            draw.text((x, y + tile_h + 2 + 12 * j), _fit(draw, part, tile_w), fill="black")
    return sheet


def preview(cfg: DictConfig) -> Path:
    """Write the preview PNG into the run folder and return its path."""
    import torch

    from lightning_aug.cli.common import build_batch_path

    datamodule, transforms = build_batch_path(cfg, "lightning-aug-preview")
    count = cfg.preview.rows * cfg.preview.cols
    images, targets = next(iter(datamodule.train_dataloader()))
    batch = (images[:count], targets[:count]) if len(images) >= 2 * count else (images, targets)
    images, targets = datamodule.device_stage(batch, transforms, train=True)
    images, targets = images[:count], targets[:count]
    mean = torch.tensor(datamodule.mean).view(1, -1, 1, 1)
    std = torch.tensor(datamodule.std).view(1, -1, 1, 1)
    shown = images.cpu() * std + mean
    train_set = datamodule.datasets.get("train")
    names = getattr(train_set, "classes", None)
    labels = [label_text(t, names) for t in targets.cpu()]
    sheet = render_grid(shown, labels, cols=cfg.preview.cols, scale=cfg.preview.scale)
    path = Path(cfg.paths.output_dir) / cfg.preview.file
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"preview: {path}")
    return path


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="preview")
def _hydra_main(cfg: DictConfig) -> None:
    from lightning_aug.cli.common import log_through_hydra

    log_through_hydra()
    preview(cfg)


def main() -> None:
    """The console script: the command line checked (:func:`~lightning_aug.cli.precheck`), then Hydra."""
    precheck("preview", "lightning-aug-preview")
    _hydra_main()


if __name__ == "__main__":
    main()
