"""scikit-learn's handwritten digits written as an image folder: a real, small, class-sorted dataset
(1797 images, 10 classes) shaped the way users' folders come, for the tests and benches that check
what a data path gives a model. Needs scikit-learn (the ``bench`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

__all__ = ["write_digits"]


def write_digits(
    root: str | Path,
    size: int = 32,
    layout: Literal["split", "flat"] = "split",
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Path:
    """Write the digits as ``size`` x ``size`` RGB PNGs into ``root`` (once; later calls return it):
    ``root/train/<digit>/`` and ``root/val/<digit>/`` with a seeded ``val_fraction`` held out
    (``layout="split"``), or ``root/<digit>/`` (``layout="flat"``). Files are named by their index
    in scikit-learn's order (``0042.png``), so a folder lists class by class.

    Example::

        >>> import tempfile
        >>> root = write_digits(tempfile.mkdtemp(), size=16, layout="flat")
        >>> sorted(p.name for p in root.iterdir() if p.is_dir())[:3], len(list(root.rglob("*.png")))
        (['0', '1', '2'], 1797)
    """
    from sklearn.datasets import load_digits

    root = Path(root)
    if (root / ".complete").exists():
        return root
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        grey = Image.fromarray((pixels / 16 * 255).astype(np.uint8)).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        if layout == "flat":
            folder = root / str(label)
        else:
            folder = root / ("val" if rng.random() < val_fraction else "train") / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        grey.convert("RGB").save(folder / f"{i:04d}.png")
    (root / ".complete").touch()
    return root
