"""The one decode site: image bytes to the image a dataset serves, for every source (image folders,
file lists, Hugging Face tables, shards, the shard writer and verifier), and the policy for bytes that
are no image (``on_bad_image``).

Bytes come from the one reader (:mod:`lightning_aug.data.reader`); here the header's size is checked
against ``max_image_pixels`` before any decoder allocates, then the decoder runs (or the pipeline's
leading crop, while decoding). Whatever a library raises becomes a
:class:`~lightning_aug.errors.DataError` naming the file or sample; ``on_bad_image="skip"`` replaces
such a sample (:func:`read_or_skip`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from PIL import Image

from lightning_aug._checks import check_int
from lightning_aug.data import decoders
from lightning_aug.data.decoders import (
    DECODER_NAMES,
    UNPARSED,
    DecoderName,
    ImageDecoder,
    image_size,
    load_rgb,
    make_decoder,
)
from lightning_aug.data.reader import file_cap, read_bytes, read_head
from lightning_aug.errors import DataError

# a crop run while decoding: (bytes, decoder, path, parsed JPEG header) -> the cropped image
CropHead = Callable[..., Any]

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "BadImagePolicy",
    "CropDecoding",
    "Decoder",
    "SkipMemory",
    "check_decoding",
    "check_decoding_options",
    "check_image_pixels",
    "decode_image",
    "decode_sample",
    "file_image_size",
    "read_or_skip",
]

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
    _head: CropHead | None

    def _decode_with(self, decoder: Decoder) -> None:
        self.image_decoder = make_decoder(decoder)  # None: PIL
        self._head = None

    @property
    def decoder_name(self) -> str:
        """The decoder that runs: ``"pil"``, ``"cv2"`` or ``"nvimgcodec"`` (what ``"auto"`` chose)."""
        return "pil" if self.image_decoder is None else self.image_decoder.name

    def set_crop_decoder(self, head: CropHead | None) -> bool:
        """Decode files with ``head(bytes, decoder, path)`` (a crop applied while decoding:
        :meth:`lightning_aug.data.pipeline.Pipeline.decode_first`) instead of decoding them whole; ``None``:
        back to whole images. Not with ``decoder="pil"`` (its images stay PIL's); returns whether it was
        taken. Unreadable files are handled as ``on_bad_image`` says either way.
        """
        self._head = head if self.image_decoder is not None else None
        return head is not None and self._head is not None


def check_image_pixels(data: np.ndarray, path: str, limit: int | None, header: Any = UNPARSED) -> None:
    """Refuse an image whose header says it has more than ``limit`` pixels, before any decoder
    allocates for it (a 1 MB PNG can hold 20000x20000 pixels: 1.2 GB decoded). ``None``: no limit.
    This limit replaces PIL's ``Image.MAX_IMAGE_PIXELS`` for the files of a dataset, on every decoder.

    Raises:
        ValueError: the image is larger than ``limit``.
    """
    if limit is None:
        return
    shape = image_size(data, header)
    if shape is not None and shape[0] * shape[1] > limit:
        raise ValueError(
            f"{shape[1]}x{shape[0]} = {shape[0] * shape[1]} pixels, above max_image_pixels={limit} "
            "(a decompression bomb?); raise max_image_pixels to read it"
        )


def decode_image(
    data: np.ndarray,
    path: str,
    decoder: ImageDecoder | None,
    head: CropHead | None = None,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
) -> Any:
    """The image a dataset serves for a file's bytes: the header's size checked against
    ``max_image_pixels``, then a PIL image (``decoder`` None: ``decoder="pil"``), the crop ``head`` run
    while decoding, or the decoder's RGB array.

    The JPEG header is parsed once here and handed to the size check, the crop and the decoder.

    Raises:
        ValueError: the image is too large or cannot be decoded.
    """
    header = decoders.jpeg_header(data)
    check_image_pixels(data, path, max_image_pixels, header)
    if decoder is None:
        return load_rgb(io.BytesIO(data.tobytes()), pil_limit=False)  # max_image_pixels replaces it
    if head is not None:
        return head(data, decoder, path, header)
    return decoder.decode(data, path, header=header)


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


def decode_sample(
    data: np.ndarray,
    name: str,
    where: str,
    decoder: ImageDecoder | None,
    head: CropHead | None,
    max_image_pixels: int | None,
) -> Any:
    """A sample's image from bytes that are not a file (a shard's sample), decoded as a file's is.

    Raises:
        DataError: it cannot be decoded; the message starts with ``where``.
    """
    try:
        return decode_image(data, name, decoder, head, max_image_pixels)
    except Exception as err:
        raise DataError(f"{where} cannot be decoded: {err}") from None
