"""How image folders are listed: class folders and their images (following directory links, never
into a loop), the header sizes of a seeded sample of files, and per-class held-out splits."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightning_aug.data.datasets.samples import SampleList
from lightning_aug.data.decode import file_image_size

__all__ = [
    "IMAGE_EXTENSIONS",
    "image_files",
    "probe_folder_sizes",
    "sample_positions",
    "scan_classes",
    "split_per_class",
]


# torchvision's ImageFolder extensions, and the other files PIL reads that image folders often hold
IMAGE_EXTENSIONS: tuple[str, ...] = (
    *(".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"),
    *(".gif", ".jfif", ".pbm", ".pnm"),
)


def split_per_class(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, val)`` indices: ``fraction`` of each class's samples (at least one of a class
    with two or more) held out for validation, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def sample_positions(count: int, limit: int, seed: int = 0) -> list[int]:
    """Up to ``limit`` positions of ``range(count)``, a seeded sample (all of them when ``count`` is
    at most ``limit``), in order."""
    if count <= limit:
        return list(range(count))
    return sorted(np.random.default_rng(seed).choice(count, size=limit, replace=False).tolist())


def probe_folder_sizes(
    root: str | os.PathLike[str], limit: int = 64, seed: int = 0
) -> list[tuple[str, tuple[int, int]]]:
    """The header sizes of up to ``limit`` files of an image folder, without listing all of it: a
    seeded sample of up to 8 class folders (of ``root/train`` where there is one), up to ``limit / 8``
    files each; files directly in ``root`` when it has no class folders. Empty where ``root`` is no
    readable folder (its errors come when the dataset is built)."""
    top = Path(root).expanduser()
    if (top / "train").is_dir():
        top = top / "train"
    try:
        folders = sorted(e.path for e in os.scandir(top) if e.is_dir())
    except OSError:
        return []
    rng = np.random.default_rng(seed)
    picked = [folders[i] for i in sorted(rng.permutation(len(folders))[:8])] if folders else [str(top)]
    per_folder = max(1, limit // len(picked))
    found: list[tuple[str, tuple[int, int]]] = []
    for folder in picked:
        try:
            names = sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith(IMAGE_EXTENSIONS))
        except OSError:
            continue
        for i in sample_positions(len(names), per_folder, seed):
            path = os.path.join(folder, names[i])
            size = file_image_size(path)
            if size is not None:
                found.append((path, size))
    return found


def image_files(top: Path) -> list[str]:
    """Image files under ``top``, following directory links, but never a link back into a folder
    already read (itself or an ancestor: a loop would list every image again and again); such a link is
    skipped with a warning naming it."""
    seen: set[str] = set()
    found: list[tuple[str, list[str]]] = []
    for dirpath, dirnames, files in os.walk(top, followlinks=True):
        seen.add(os.path.realpath(dirpath))
        keep = []
        for name in sorted(dirnames):
            link = os.path.join(dirpath, name)
            target = os.path.realpath(link)
            if os.path.islink(link) and (
                target in seen or os.path.realpath(dirpath).startswith(target + os.sep)
            ):
                warnings.warn(
                    f"image folder: skipped the directory link {link!r} -> {target!r}: it leads back into a "
                    "folder already read (a loop)",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            keep.append(name)
        dirnames[:] = keep
        found.append((dirpath, sorted(f for f in files if f.lower().endswith(IMAGE_EXTENSIONS))))
    return [os.path.join(dirpath, f) for dirpath, files in sorted(found) for f in files]


def scan_classes(directory: Path, classes: Sequence[str] | None) -> tuple[list[str], SampleList]:
    """The class folders of ``directory`` (sorted) and its ``(path, label)`` samples (packed: workers
    share them, :mod:`~lightning_aug.data.datasets.samples`).

    Raises:
        FileNotFoundError: a missing folder, no class subfolders, or no images.
        ValueError: class folders other than ``classes``, or (``classes`` None: the folder that
            defines them) class folders without images, named.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder {str(directory)!r} does not exist or is not a directory")
    found = sorted(e.name for e in os.scandir(directory) if e.is_dir())
    if not found:
        raise FileNotFoundError(
            f"image folder {str(directory)!r} has no class subfolders (<root>/<class>/<image>)"
        )
    if classes is not None and found != list(classes):
        raise ValueError(f"class folders of {str(directory)!r} are {found}, expected {list(classes)}")
    per_class = [image_files(directory / name) for name in found]
    samples = [(path, label) for label, files in enumerate(per_class) for path in files]
    if not samples:
        raise FileNotFoundError(
            f"image folder {str(directory)!r} has no images with extensions {IMAGE_EXTENSIONS}"
        )
    empty = [name for name, files in zip(found, per_class, strict=True) if not files]
    if empty and classes is None:  # a class no sample can teach: the model would output it in vain
        raise ValueError(
            f"image folder {str(directory)!r} has class folders without images: {empty}; "
            "remove them or add images"
        )
    return found, SampleList(samples)
