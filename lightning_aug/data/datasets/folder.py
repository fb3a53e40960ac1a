"""Image folders in ImageFolder layout (``root/<class>/<image>``), decoded by nvImageCodec, OpenCV or PIL."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from lightning_aug._checks import check_fraction, check_int
from lightning_aug.data.datasets.base import DatasetFactory, Split
from lightning_aug.data.datasets.samples import SampleList
from lightning_aug.data.decoders import (
    DECODER_NAMES,
    DecoderName,
    ImageDecoder,
    image_size,
    load_rgb,
    make_decoder,
)
from lightning_aug.data.jpeg import read_image_bytes

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFiles",
    "ImageFolder",
    "ImageFolderDataset",
    "load_rgb",
    "unlabelled_folder",
]


# torchvision's ImageFolder extensions, and the other files PIL reads that image folders often hold
IMAGE_EXTENSIONS: tuple[str, ...] = (
    *(".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"),
    *(".gif", ".jfif", ".pbm", ".pnm"),
)

Decoder = DecoderName
BadImagePolicy = Literal["raise", "skip"]


def check_decoding(decoder: Any, on_bad_image: Any) -> tuple[Decoder, BadImagePolicy]:
    """``(decoder, on_bad_image)``, checked.

    Raises:
        ValueError: an unknown ``decoder`` or ``on_bad_image`` policy.
    """
    if decoder not in DECODER_NAMES:
        raise ValueError(f"decoder must be one of {sorted(DECODER_NAMES)}, got {decoder!r}")
    if on_bad_image not in ("raise", "skip"):
        raise ValueError(f"on_bad_image must be 'raise' or 'skip', got {on_bad_image!r}")
    return decoder, on_bad_image


DEFAULT_MAX_IMAGE_PIXELS = 2 * int(Image.MAX_IMAGE_PIXELS or 89_478_485)  # where PIL refuses a bomb


def check_image_pixels(data: np.ndarray, path: str, limit: int | None) -> None:
    """Refuse an image whose header says it has more than ``limit`` pixels, before any decoder
    allocates for it (a 1 MB PNG can hold 20000x20000 pixels: 1.2 GB decoded). ``None``: no limit.
    This limit replaces PIL's ``Image.MAX_IMAGE_PIXELS`` for the files of a dataset, on every decoder.

    Raises:
        ValueError: the image is larger than ``limit``.
    """
    if limit is None:
        return
    shape = image_size(data)
    if shape is not None and shape[0] * shape[1] > limit:
        raise ValueError(
            f"{shape[1]}x{shape[0]} = {shape[0] * shape[1]} pixels, above max_image_pixels={limit} "
            "(a decompression bomb?); raise max_image_pixels to read it"
        )


def decode_image(
    data: np.ndarray,
    path: str,
    decoder: ImageDecoder | None,
    head: Callable[[np.ndarray, ImageDecoder, str], Any] | None = None,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> Any:
    """The image a dataset serves for a file's bytes: the header's size checked against
    ``max_image_pixels``, then a PIL image (``decoder`` None: ``decoder="pil"``), the crop ``head`` run
    while decoding, or the decoder's RGB array.

    Raises:
        ValueError: the image is too large or cannot be decoded.
    """
    check_image_pixels(data, path, max_image_pixels)
    if decoder is None:
        return load_rgb(io.BytesIO(data.tobytes()), pil_limit=False)  # max_image_pixels replaces it
    if head is not None:
        return head(data, decoder, path)
    return decoder.decode(data, path)


def _image_files(top: Path) -> list[str]:
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


def _scan(directory: Path, classes: Sequence[str] | None) -> tuple[list[str], SampleList]:
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
    per_class = [_image_files(directory / name) for name in found]
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


class ImageFolderDataset(Dataset):
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
        on_bad_image: what a corrupt, truncated or non-image file does. ``"raise"``: a ``ValueError``
            naming the file. ``"skip"``: the sample is replaced by the next readable one (the batch keeps
            its shape) and the sample becomes ``(image, label, skipped_paths)``; ``AugDataModule`` takes
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
    ) -> None:
        self.decoder, self.on_bad_image = check_decoding(decoder, on_bad_image)
        self.max_image_pixels = check_int("max_image_pixels", max_image_pixels, 1, optional=True)
        self.image_decoder: ImageDecoder | None = make_decoder(decoder)  # None: PIL
        self._head: Callable[[np.ndarray, ImageDecoder, str], Any] | None = None
        self.root = Path(root)
        self.classes, samples = scanned if scanned is not None else _scan(self.root, classes)
        self.samples: SampleList = samples if indices is None else samples.subset(indices)
        self.targets: np.ndarray = self.samples.labels

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def decoder_name(self) -> str:
        """The decoder that runs: ``"pil"``, ``"cv2"`` or ``"nvimgcodec"`` (what ``"auto"`` chose)."""
        return "pil" if self.image_decoder is None else self.image_decoder.name

    def set_crop_decoder(self, head: Callable[[np.ndarray, ImageDecoder, str], Any] | None) -> bool:
        """Decode files with ``head(bytes, decoder, path)`` (a crop applied while decoding:
        :meth:`lightning_aug.data.pipeline.Pipeline.decode_first`) instead of decoding them whole; ``None``:
        back to whole images. Not with ``decoder="pil"`` (its images stay PIL's); returns whether it was
        taken. Unreadable files are handled as ``on_bad_image`` says either way.
        """
        self._head = head if self.image_decoder is not None else None
        return head is not None and self._head is not None

    def read_sample(self, index: int) -> tuple[np.ndarray, Any, int]:
        """``(file bytes, image, label)`` of sample ``index`` (the image as ``__getitem__`` gives it).

        Raises:
            ValueError: the file cannot be read or decoded, whatever the library raised; names it once.
        """
        path, label = self.samples[index]
        try:
            data = read_image_bytes(path)
            return (
                data,
                decode_image(data, path, self.image_decoder, self._head, self.max_image_pixels),
                label,
            )
        except Exception as err:  # whatever the decoding library raises: on_bad_image handles it
            reason = str(err).replace(f" {path!r}", "").replace(repr(path), "the file")  # named once
            raise ValueError(f"cannot decode image file {path!r}: {reason}") from err

    def _load(self, index: int) -> tuple[Any, int]:
        _, image, label = self.read_sample(index)
        return image, label

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if self.on_bad_image == "raise":
            return self._load(index)
        skipped: list[str] = []
        for step in range(len(self.samples)):
            position = (index + step) % len(self.samples)
            try:
                image, label = self._load(position)
            except ValueError:
                skipped.append(self.samples.path(position))
                continue
            return (image, label, tuple(skipped)) if skipped else (image, label)
        raise ValueError(f"on_bad_image='skip': no readable image in {str(self.root)!r}")


class ImageFolder(DatasetFactory):
    """Dataset factory for a folder with ``train/`` and ``val/`` (and optionally ``test/``) subfolders,
    or, with ``val_split``, one folder of classes split by a seeded, per-class random draw.

    Args:
        root: the data folder.
        val_split: fraction of each class held out for validation when ``root`` is one folder of
            classes (``root/<class>/*``); ``None``: ``root/train`` and ``root/val`` must exist.
        seed: seed of the ``val_split`` draw (the same seed gives the same split on every rank).
        decoder: ``"auto"`` (default: nvImageCodec where installed, else OpenCV), ``"nvimgcodec"``,
            ``"cv2"`` or ``"pil"``, see :class:`ImageFolderDataset`.
        on_bad_image, max_image_pixels: see :class:`ImageFolderDataset`.
        predict_root: a folder of images without classes (any layout, read recursively) for the
            ``"predict"`` split (labels ``-1``, :func:`unlabelled_folder`); ``None``: predict on the
            test split.

    Raises:
        ValueError: ``val_split`` outside (0, 1).
        FileNotFoundError: ``root`` missing, or no ``train/`` and ``val/`` without ``val_split``
            (raised when the splits are built).
    """

    varied_sizes = True  # images of every size: the apps require a fixed-size crop or resize

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
        self.decoder, self.on_bad_image = check_decoding(decoder, on_bad_image)
        self.max_image_pixels = check_int("max_image_pixels", max_image_pixels, 1, optional=True)
        self.val_split = check_fraction("val_split", val_split)
        self.predict_root = None if predict_root is None else Path(predict_root).expanduser()
        self.root = Path(root).expanduser()
        self.seed = seed
        self._scans: dict[Path, tuple[list[str], SampleList]] = {}

    @property
    def num_classes(self) -> int:
        return len(self._train_classes())

    def _train_classes(self) -> list[str]:
        return self._scan(self._train_root())[0]

    def _scan(self, folder: Path) -> tuple[list[str], SampleList]:
        """The scan of ``folder``, made once (its classes must be the train folder's)."""
        if folder not in self._scans:
            classes = None if folder == self._train_root() else self._train_classes()
            self._scans[folder] = _scan(folder, classes)
        return self._scans[folder]

    def _train_root(self) -> Path:
        if not self.root.is_dir():
            what = "is not a directory" if self.root.exists() else "does not exist"
            raise FileNotFoundError(f"image folder root {str(self.root)!r} {what} (data.root)")
        if not any(self.root.iterdir()):
            raise FileNotFoundError(
                f"image folder root {str(self.root)!r} is empty: expected train/<class>/<image> and "
                "val/<class>/<image>, or <class>/<image> with val_split"
            )
        if self.val_split is not None:
            return self.root
        if not (self.root / "train").is_dir() or not (self.root / "val").is_dir():
            raise FileNotFoundError(
                f"image folder root {str(self.root)!r} needs 'train/' and 'val/' subfolders; "
                "for one folder of classes set val_split (e.g. val_split=0.1)"
            )
        return self.root / "train"

    def _split_indices(self, labels: np.ndarray, val_split: float) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        train, val = [], []
        for label in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == label))
            n_val = max(1, round(len(idx) * val_split)) if len(idx) > 1 else 0
            val.append(idx[:n_val])
            train.append(idx[n_val:])
        return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))

    def build_predict(self) -> ImageFolderDataset | None:
        if self.predict_root is None:
            return self.build("test")
        return unlabelled_folder(
            self.predict_root,
            decoder=self.decoder,
            on_bad_image=self.on_bad_image,
            max_image_pixels=self.max_image_pixels,
        )

    def build(self, split: Split) -> ImageFolderDataset | None:
        classes = self._train_classes()
        if self.val_split is None:
            folder = self.root / split
            if split == "test" and not folder.exists():
                return None
            return ImageFolderDataset(
                folder,
                classes=classes,
                decoder=self.decoder,
                on_bad_image=self.on_bad_image,
                max_image_pixels=self.max_image_pixels,
                scanned=self._scan(folder),
            )
        if split == "test":
            return None
        scanned = self._scan(self.root)
        train, val = self._split_indices(scanned[1].labels, self.val_split)
        return ImageFolderDataset(
            self.root,
            classes=classes,
            indices=train if split == "train" else val,
            decoder=self.decoder,
            on_bad_image=self.on_bad_image,
            max_image_pixels=self.max_image_pixels,
            scanned=scanned,
        )


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
    files = sorted(_image_files(top))
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

    varied_sizes = True  # images of every size: the apps require a fixed-size crop or resize

    def __init__(
        self,
        root: str | os.PathLike[str],
        decoder: Decoder = "auto",
        on_bad_image: BadImagePolicy = "raise",
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self.decoder, self.on_bad_image = check_decoding(decoder, on_bad_image)
        self.max_image_pixels = check_int("max_image_pixels", max_image_pixels, 1, optional=True)
        self.root = Path(root).expanduser()

    def build(self, split: Split) -> ImageFolderDataset:
        return unlabelled_folder(self.root, self.decoder, self.on_bad_image, self.max_image_pixels)
