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
from lightning_aug.data.reader import file_cap, read_bytes, read_head
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


# torchvision's ImageFolder extensions, and the other files PIL reads that image folders often hold
IMAGE_EXTENSIONS: tuple[str, ...] = (
    *(".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"),
    *(".gif", ".jfif", ".pbm", ".pnm"),
)

Decoder = DecoderName
BadImagePolicy = Literal["raise", "skip"]


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


def check_decoding_options(
    decoder: Any, on_bad_image: Any, max_image_pixels: Any
) -> tuple[Decoder, BadImagePolicy, int | None]:
    """``(decoder, on_bad_image, max_image_pixels)`` of a dataset factory, checked.

    Raises:
        ValueError: an unknown ``decoder`` or policy, or ``max_image_pixels`` not an int >= 1 or None.
    """
    decoder, on_bad_image = check_decoding(decoder, on_bad_image)
    return decoder, on_bad_image, check_int("max_image_pixels", max_image_pixels, 1, optional=True)


class CropDecoding:
    """What the datasets that decode image bytes share (image folders, shards, Hugging Face tables):
    the decoder that runs and the crop applied while decoding (:meth:`set_crop_decoder`)."""

    image_decoder: ImageDecoder | None
    _head: Callable[[np.ndarray, ImageDecoder, str], Any] | None

    def _decode_with(self, decoder: Decoder) -> None:
        self.image_decoder = make_decoder(decoder)  # None: PIL
        self._head = None

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


def file_image_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(height, width)`` of an image file from its header (EXIF orientation applied), reading its
    first 256 KiB (all of it where the header lies further in) through the one reader; ``None`` where
    it is no image, or no regular file of a readable size."""
    try:
        head, size = read_head(path, 256 << 10, file_cap(DEFAULT_MAX_IMAGE_PIXELS))
        found = image_size(np.frombuffer(head, dtype=np.uint8))
        if found is None and size > len(head):
            found = image_size(read_bytes(path, file_cap(DEFAULT_MAX_IMAGE_PIXELS)))
        return found
    except (OSError, DataError):
        return None


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


_SKIP_DRAWS = 64  # seeded random draws for a replacement before falling back on the readable ones seen


class SkipMemory:
    """What ``on_bad_image="skip"`` has learnt in one process: the positions found unreadable (each is
    read once) and those read fine (the fallback for a replacement)."""

    def __init__(self) -> None:
        self.bad: set[int] = set()
        self.good: list[int] = []
        self._good: set[int] = set()

    def readable(self, position: int) -> None:
        if position not in self._good:
            self._good.add(position)
            self.good.append(position)


def read_or_skip(
    load: Callable[[int], tuple[Any, Any]],
    name: Callable[[int], str],
    count: int,
    index: int,
    policy: BadImagePolicy,
    where: str,
    memory: SkipMemory | None = None,
) -> tuple[Any, ...]:
    """Sample ``index`` as ``load`` reads it; with ``policy="skip"`` an unreadable one (``load``
    raised ``ValueError``, a :class:`~lightning_aug.errors.DataError` included) is replaced by a
    readable sample drawn at random (seeded by ``index``, so the same in every run), and the sample
    carries the name of the file skipped as a third element (``AugDataModule`` reports them per epoch).

    ``memory`` (the caller's, kept across calls) remembers what was found: each unreadable position is
    read once per process, so skipping costs time linear in the bad files, and a run of bad files is
    replaced by samples spread over the data (after 64 draws that all fail, by one of the readable
    samples seen so far), never by one file many times.

    Raises:
        DataError: ``policy="raise"`` and the sample is unreadable, or nothing in ``where`` is readable.
    """
    if policy == "raise":
        return load(index)
    memory = SkipMemory() if memory is None else memory

    def attempt(position: int) -> tuple[Any, Any] | None:
        if position in memory.bad:
            return None
        try:
            found = load(position)
        except ValueError:
            memory.bad.add(position)
            return None
        memory.readable(position)
        return found

    sample = attempt(index)
    if sample is not None:
        return sample
    import random

    draw = random.Random(index)
    for _ in range(_SKIP_DRAWS):
        sample = attempt(draw.randrange(count))
        if sample is not None:
            return (*sample, (name(index),))
    if memory.good:  # many unreadable: one of the readable ones seen, at random
        sample = attempt(memory.good[draw.randrange(len(memory.good))])
    start = draw.randrange(count)
    for step in range(count if sample is None else 0):  # none seen yet: each position once, at most
        sample = attempt((start + step) % count)
        if sample is not None:
            break
    if sample is None:
        raise DataError(f"on_bad_image='skip': no readable image in {where} ({len(memory.bad)} unreadable)")
    return (*sample, (name(index),))


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


class ImageFolderDataset(CropDecoding, Dataset):
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

    def build(self, split: Split) -> ImageFolderDataset:
        return unlabelled_folder(self.root, self.decoder, self.on_bad_image, self.max_image_pixels)
