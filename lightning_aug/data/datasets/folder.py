"""Image folders in ImageFolder layout (``root/<class>/<image>``), decoded by nvImageCodec, OpenCV or PIL."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightning_aug._checks import check_fraction
from lightning_aug.data.datasets.base import DatasetFactory, Split
from lightning_aug.data.datasets.samples import SampleList
from lightning_aug.data.datasets.scan import (
    IMAGE_EXTENSIONS,
    image_files,
    probe_folder_sizes,
    sample_positions,
    split_per_class,
)
from lightning_aug.data.datasets.scan import (
    scan_classes as _scan,
)
from lightning_aug.data.decode import (
    DEFAULT_MAX_IMAGE_PIXELS,
    BadImagePolicy,
    CropDecoding,
    Decoder,
    SkipMemory,
    check_decoding_options,
    decode_image,
    file_image_size,
    read_or_skip,
)
from lightning_aug.data.decoders import (
    load_rgb,
)
from lightning_aug.data.jpeg import read_image_bytes
from lightning_aug.data.reader import file_cap
from lightning_aug.data.source import Source
from lightning_aug.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFiles",
    "ImageFolder",
    "ImageFolderDataset",
    "file_image_size",
    "load_rgb",
    "probe_folder_sizes",
    "unlabelled_folder",
]


class ImageFolderDataset(CropDecoding, Source):
    """``(PIL RGB image, class index)`` for each image under ``root/<class>/``; classes sorted by name.

    Args:
        root: the folder holding one subfolder per class.
        classes: expected class names (e.g. from the train folder, so val labels match); ``None``: found.
        indices: keep only these sample positions (a split of the folder).
        decoder: ``"auto"`` (nvImageCodec where installed, else OpenCV), ``"nvimgcodec"``, ``"cv2"``
            (OpenCV): RGB HWC uint8 arrays, and a pipeline that starts with a crop runs it while
            decoding (:mod:`lightning_aug.data.transforms`); ``"pil"``: PIL RGB images, decoded whole.
        max_image_pixels: images whose header says more pixels are refused before decoding, as
            unreadable (``on_bad_image``); default: where PIL refuses a decompression bomb; ``None``: no
            limit at all (nor PIL's).
        scanned: ``(classes, samples)`` of ``root`` where the caller has already scanned it (a factory
            scans a folder once for all its splits: 1.28M files on network storage take minutes).
        weights: per-sample weights of ``sampler="balanced"`` (a file list's weight column).
        on_bad_image: what a corrupt, truncated or non-image file (or a path that is no regular file)
            does. ``"raise"``: a :class:`~lightning_aug.errors.DataError` naming the file. ``"skip"``:
            the sample is replaced by a readable one drawn at random (:func:`read_or_skip`; the batch
            keeps its shape) and becomes ``(image, label, (skipped path,))``; ``AugDataModule`` takes
            the paths out of the batch and reports them at each epoch's end.

    Raises:
        FileNotFoundError: a missing folder, no class subfolders, or no images.
        ValueError: class subfolders other than ``classes``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        classes: Sequence[str] | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
        decoder: Decoder = "auto",
        on_bad_image: BadImagePolicy = "raise",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        *,
        scanned: tuple[list[str], SampleList] | None = None,
        weights: np.ndarray | None = None,
    ) -> None:
        self.decoder, self.on_bad_image, self.max_image_pixels = check_decoding_options(
            decoder, on_bad_image, max_image_pixels
        )
        self._decode_with(self.decoder)
        self.root = Path(root)
        self.classes, samples = scanned if scanned is not None else _scan(self.root, classes)
        self.samples: SampleList = samples if indices is None else samples.subset(indices)
        self.targets: np.ndarray = self.samples.labels
        self._skips = SkipMemory()  # what on_bad_image="skip" found, per process
        self._weights = weights

    def __len__(self) -> int:
        return len(self.samples)

    def image_sizes(self, limit: int = 256, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        """``(path, (height, width))`` of a seeded sample of up to ``limit`` files, from their
        headers (unreadable files left out)."""
        found = []
        for i in sample_positions(len(self.samples), limit, seed):
            path = self.samples.path(i)
            size = file_image_size(path)
            if size is not None:
                found.append((path, size))
        return found

    def sample_name(self, index: int) -> str:
        """The file of sample ``index``."""
        return self.samples.path(index)

    def known_labels(self) -> np.ndarray:
        return self.targets

    def weights(self) -> np.ndarray | None:
        return self._weights

    def files(self) -> list[str]:
        return [path for path, _ in self.samples]

    def fingerprint(self) -> dict[str, Any]:
        from lightning_aug.data.shards.fingerprint import file_fingerprint

        return file_fingerprint(self.samples, str(self.root))

    def read_sample(self, index: int) -> tuple[np.ndarray, Any, int]:
        """``(file bytes, image, label)`` of sample ``index`` (the image as ``__getitem__`` gives it).

        Raises:
            ValueError: the file cannot be read or decoded, whatever the library raised; names it once.
        """
        path, label = self.samples[index]
        try:
            data = read_image_bytes(path, file_cap(self.max_image_pixels))
            return (
                data,
                decode_image(data, path, self.image_decoder, self._head, self.max_image_pixels),
                label,
            )
        except Exception as err:  # whatever the decoding library raises: on_bad_image handles it
            reason = str(err).replace(f" {path!r}", "").replace(repr(path), "the file")  # named once
            raise DataError(f"cannot decode image file {path!r}: {reason}") from err

    def _load(self, index: int) -> tuple[Any, int]:
        _, image, label = self.read_sample(index)
        return image, label

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return read_or_skip(
            self._load,
            self.samples.path,
            len(self.samples),
            index,
            self.on_bad_image,
            repr(str(self.root)),
            self._skips,
        )


DEFAULT_VAL_SPLIT = 0.1  # held out where a folder has no val/ and no val_split is given


class ImageFolder(DatasetFactory):
    """Dataset factory of an image folder, in any of the layouts users' folders come in:

    - ``root/train/<class>/*`` and ``root/val/<class>/*`` (and optionally ``root/test/<class>/*``);
    - ``root/train/<class>/*`` without ``val/``: ``val_split`` of each class of ``train/`` held out;
    - ``root/<class>/*``: ``val_split`` of each class held out.

    Held-out images are a seeded, per-class random draw; where no ``val_split`` is given it is 10%,
    said in the log.

    Args:
        root: the data folder.
        val_split: fraction of each class held out for validation where there is no ``val/`` folder;
            ``None``: 0.1 there. Not with ``train/`` and ``val/`` folders.
        seed: seed of the held-out draw (the same seed gives the same split on every rank).
        decoder: ``"auto"`` (default: nvImageCodec where installed, else OpenCV), ``"nvimgcodec"``,
            ``"cv2"`` or ``"pil"``, see :class:`ImageFolderDataset`.
        on_bad_image, max_image_pixels: see :class:`ImageFolderDataset`.
        predict_root: a folder of images without classes (any layout, read recursively) for the
            ``"predict"`` split (labels ``-1``, :func:`unlabelled_folder`); ``None``: predict on the
            test split.

    Raises:
        ValueError: ``val_split`` outside (0, 1); ``val_split`` with ``train/`` and ``val/`` folders.
        FileNotFoundError: ``root`` missing, not a folder or empty (raised when the splits are built,
            before anything else is said of the folder).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        val_split: float | None = None,
        seed: int = 0,
        decoder: Decoder = "auto",
        on_bad_image: BadImagePolicy = "raise",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        predict_root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.decoder, self.on_bad_image, self.max_image_pixels = check_decoding_options(
            decoder, on_bad_image, max_image_pixels
        )
        self.val_split = check_fraction("val_split", val_split)
        self.predict_root = None if predict_root is None else Path(predict_root).expanduser()
        self.root = Path(root).expanduser()
        self.seed = seed
        self._scans: dict[Path, tuple[list[str], SampleList]] = {}
        self._layout: tuple[Path, float | None] | None = None

    class_order = "folders"

    @property
    def num_classes(self) -> int:  # type: ignore[override]  # a property of the contract's attribute
        return len(self._train_classes())

    def image_sizes(self, limit: int = 64, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        """The header sizes of a seeded sample of files, without listing the whole folder
        (:func:`probe_folder_sizes`).

        Raises:
            FileNotFoundError: the folder is missing or empty (:meth:`layout`).
        """
        self.layout()
        return probe_folder_sizes(self.root, limit, seed)

    def _train_classes(self) -> list[str]:
        return self._scan(self._train_root())[0]

    def _scan(self, folder: Path) -> tuple[list[str], SampleList]:
        """The scan of ``folder``, made once (its classes must be the train folder's)."""
        if folder not in self._scans:
            classes = None if folder == self._train_root() else self._train_classes()
            self._scans[folder] = _scan(folder, classes)  # (the module global: tests count the walks)
        return self._scans[folder]

    def layout(self) -> tuple[Path, float | None]:
        """``(the folder of the training classes, the fraction held out of it for validation)``; the
        fraction is ``None`` where a ``val/`` folder holds the validation images.

        Raises:
            FileNotFoundError: ``root`` missing, not a folder, or empty.
            ValueError: ``val_split`` given for a folder with ``train/`` and ``val/``.
        """
        if self._layout is not None:
            return self._layout
        if not self.root.is_dir():
            what = "is not a directory" if self.root.exists() else "does not exist"
            raise FileNotFoundError(f"image folder root {str(self.root)!r} {what} (data.root)")
        if not any(self.root.iterdir()):
            raise FileNotFoundError(
                f"image folder root {str(self.root)!r} is empty: expected <class>/<image>, or "
                "train/<class>/<image> (and val/<class>/<image>)"
            )
        train, val = self.root / "train", self.root / "val"
        if train.is_dir() and val.is_dir():
            if self.val_split is not None:
                raise ValueError(
                    f"val_split={self.val_split} (data.val_split) holds images out of a folder of classes, "
                    f"but {str(self.root)!r} has train/ and val/ folders already: drop val_split"
                )
            self._layout = (train, None)
            return self._layout
        top = train if train.is_dir() else self.root
        fraction = self.val_split
        if fraction is None:
            fraction = DEFAULT_VAL_SPLIT
            from lightning.pytorch.utilities import rank_zero_info

            rank_zero_info(
                f"ImageFolder: {str(self.root)!r} has no val/ folder: {fraction:.0%} of each class of "
                f"{str(top)!r} is held out for validation (seed {self.seed}; val_split, data.val_split in "
                "the apps, sets it)"
            )
        self._layout = (top, fraction)
        return self._layout

    def _train_root(self) -> Path:
        return self.layout()[0]

    def build_predict(self) -> ImageFolderDataset | None:
        if self.predict_root is None:
            return self.build("test")
        return unlabelled_folder(
            self.predict_root,
            decoder=self.decoder,
            on_bad_image=self.on_bad_image,
            max_image_pixels=self.max_image_pixels,
        )

    def _dataset(self, folder: Path, indices: np.ndarray | None = None) -> ImageFolderDataset:
        return ImageFolderDataset(
            folder,
            classes=self._train_classes(),
            indices=indices,
            decoder=self.decoder,
            on_bad_image=self.on_bad_image,
            max_image_pixels=self.max_image_pixels,
            scanned=self._scan(folder),
        )

    def build(self, split: Split) -> ImageFolderDataset | None:
        top, fraction = self.layout()
        if split == "test":
            folder = self.root / "test"
            return self._dataset(folder) if folder.is_dir() and top != self.root else None
        if fraction is None:
            return self._dataset(self.root / split)
        train, val = split_per_class(self._scan(top)[1].labels, fraction, self.seed)
        return self._dataset(top, train if split == "train" else val)


def unlabelled_folder(
    root: str | os.PathLike[str],
    decoder: Decoder = "auto",
    on_bad_image: BadImagePolicy = "raise",
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> ImageFolderDataset:
    """Every image under ``root`` (any layout, read recursively, sorted by path) with label ``-1``:
    what is predicted on. ``dataset.samples.paths()`` lists the files in order.

    Raises:
        FileNotFoundError: ``root`` missing or without images.
    """
    top = Path(root).expanduser()
    if not top.is_dir():
        raise FileNotFoundError(f"image folder {str(top)!r} does not exist or is not a directory")
    files = sorted(image_files(top))
    if not files:
        raise FileNotFoundError(f"image folder {str(top)!r} has no images with extensions {IMAGE_EXTENSIONS}")
    return ImageFolderDataset(
        top,
        decoder=decoder,
        on_bad_image=on_bad_image,
        max_image_pixels=max_image_pixels,
        scanned=([], SampleList((path, -1) for path in files)),
    )


class ImageFiles(DatasetFactory):
    """Dataset factory of one folder of images without classes (any layout, read recursively), the
    same dataset for every split, labels ``-1`` (:func:`unlabelled_folder`): for prediction.

    Args:
        root: the folder.
        decoder, on_bad_image, max_image_pixels: see :class:`ImageFolderDataset`.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        decoder: Decoder = "auto",
        on_bad_image: BadImagePolicy = "raise",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self.decoder, self.on_bad_image, self.max_image_pixels = check_decoding_options(
            decoder, on_bad_image, max_image_pixels
        )
        self.root = Path(root).expanduser()

    def image_sizes(self, limit: int = 64, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"predict folder {str(self.root)!r} is not a directory")
        return probe_folder_sizes(self.root, limit, seed)

    def build(self, split: Split) -> ImageFolderDataset:
        return unlabelled_folder(self.root, self.decoder, self.on_bad_image, self.max_image_pixels)
