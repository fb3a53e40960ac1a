"""One decoding contract for every decoder, over a corpus of odd and broken files (``odd_files.py``):
the pixels PIL's ``load_rgb`` gives, or a ``ValueError`` naming the file once; never another exception."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from odd_files import write_odd_folder

from lightning_aug.data.datasets.folder import ImageFolderDataset
from lightning_aug.data.decoders import (
    OpenCVDecoder,
    image_size,
    load_rgb,
    make_decoder,
    nvimgcodec_available,
)
from lightning_aug.data.jpeg import fast_format, png_plain, read_image_bytes

DECODERS = [
    "pil",
    "cv2",
    "auto",
    pytest.param(
        "nvimgcodec", marks=pytest.mark.skipif(not nvimgcodec_available(), reason="needs the fast extra")
    ),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("odd")
    return root, write_odd_folder(root)


def _reference(path: Path) -> np.ndarray | None:
    """PIL's pixels (its own bomb limit, which ``max_image_pixels``' default equals); ``None``: PIL
    cannot read the file either."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(load_rgb(path))
    except Exception:
        return None


def test_the_corpus_holds_what_the_issue_lists(corpus: tuple[Path, list[Path]]) -> None:
    """Files on which OpenCV alone disagrees with PIL are in it (so the contract is tested where it
    matters), and files PIL reads but OpenCV cannot."""
    _, paths = corpus
    names = {p.name for p in paths}
    for wanted in (
        "apng_default_image.png",
        "bmp_565.bmp",
        "bmp_rle4.bmp",
        "tiff_rgba16.tif",
        "tiff_grey2.tif",
        "tiff_lzma.tif",
        "png_xmp_orientation_6.png",
        "png_raw_profile_orientation_6.png",
        "webp_exif_prefixed_orientation_6.webp",
        "broken_empty.jpg",
        "broken_bomb.png",
    ):
        assert wanted in names
    disagree = []
    for path in paths:
        want = _reference(path)
        if want is None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import cv2

                raw = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR_RGB)
        except cv2.error:
            raw = None
        if raw is None or raw.shape != want.shape or np.abs(raw.astype(int) - want).max() > 2:
            disagree.append(path.name)
    for name in ("apng_default_image.png", "bmp_565.bmp", "tiff_rgba16.tif", "png_xmp_orientation_6.png"):
        assert name in disagree  # OpenCV alone gives other pixels
    assert len(disagree) >= 10


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_file_decodes_as_pil_sees_it_or_is_named(decoder: str, corpus: tuple[Path, list[Path]]) -> None:
    root, paths = corpus
    dataset = ImageFolderDataset(root, decoder=decoder)
    assert [Path(p) for p, _ in dataset.samples] == paths
    errors = []
    for index, path in enumerate(paths):
        want = _reference(path)
        try:
            got, _ = dataset[index]
        except ValueError as err:  # any other exception fails the test
            message = str(err)
            assert message.count(repr(str(path))) == 1, message  # named, once
            errors.append(path.name)
            assert want is None, f"{path.name}: PIL reads it, {decoder} raised {message}"
            continue
        assert want is not None, f"{path.name}: PIL cannot read it, {decoder} returned pixels"
        pixels = np.asarray(got).astype(int)
        assert pixels.shape == want.shape, path.name
        tolerance = 2 if fast_format(read_image_bytes(path)) == "jpeg" else 0  # libjpeg builds differ
        assert np.abs(pixels - want).max() <= tolerance, path.name
    assert sorted(errors) == sorted(p.name for p in paths if _reference(p) is None)
    assert "broken_empty.jpg" in errors and "broken_bomb.png" in errors and "broken_truncated.jpg" in errors


@pytest.mark.parametrize("name", ["cv2", "nvimgcodec"])
def test_decoders_raise_only_value_errors_naming_the_file(name: str, corpus: tuple[Path, list[Path]]) -> None:
    if name == "nvimgcodec" and not nvimgcodec_available():
        pytest.skip("needs the fast extra")
    _, paths = corpus
    decoder = make_decoder(name)
    assert decoder is not None
    for path in paths:
        if path.stat().st_size == 0 or path.name == "broken_bomb.png":
            continue  # refused before any decoder (read_image_bytes, max_image_pixels)
        data = np.fromfile(path, np.uint8)
        try:
            decoder.decode(data, str(path))
        except ValueError as err:
            assert str(path) in str(err)


def test_only_plain_jpegs_and_pngs_take_the_fast_path(corpus: tuple[Path, list[Path]]) -> None:
    _, paths = corpus
    fast = {p.name: fast_format(np.fromfile(p, np.uint8)) for p in paths}
    assert fast["jpeg_rgb.jpg"] == fast["jpeg_progressive.jpg"] == fast["jpeg_orientation_6.jpg"] == "jpeg"
    assert fast["png_mode_RGB.png"] == fast["png_mode_P.png"] == fast["wrong_extension_png.jpg"] == "png"
    for name in (
        "jpeg_cmyk.jpg",  # 4 components
        "jpeg_xmp_orientation_6.jpg",  # orientation PIL reads in XMP
        "png_mode_I16.png",  # 16 bits
        "png_palette_4bit.png",
        "png_exif_orientation_6.png",
        "png_xmp_orientation_6.png",
        "png_raw_profile_orientation_6.png",
        "apng_default_image.png",
        "broken_truncated.png",  # no IEND: PIL names what is missing
        "webp_lossy.webp",
        "bmp_mode_RGB.bmp",
        "tiff_raw.tif",
    ):
        assert fast[name] is None, name
    assert png_plain(b"\x89PNG\r\n\x1a\n") is False


def test_a_png_orientation_after_the_image_data_goes_to_pil() -> None:
    """PIL reads chunks after the image data too: the whole file is walked, not only its head."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 2)).save(buffer, format="PNG")
    plain = buffer.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6
    body = exif.tobytes()
    import struct
    import zlib

    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    late = plain[:-12] + chunk + plain[-12:]  # before IEND
    assert png_plain(plain) and not png_plain(late)
    assert np.asarray(load_rgb(io.BytesIO(late))).shape == (4, 2, 3)
    assert OpenCVDecoder().decode(np.frombuffer(late, np.uint8), "late.png").shape == (4, 2, 3)


def test_max_image_pixels_replaces_pils_limit_on_every_decoder(tmp_path: Path) -> None:
    """Raised above PIL's own bomb limit, an image PIL would refuse is read by every decoder; the
    header is read without PIL's limit too."""
    from PIL import Image

    folder = tmp_path / "a" / "c"
    folder.mkdir(parents=True)
    Image.new("L", (300, 200), 7).save(folder / "wide.png", optimize=False)
    Image.new("L", (300, 200), 7).save(folder / "wide.bmp")
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1000  # PIL: a bomb above 2000 pixels
    try:
        assert image_size(np.fromfile(folder / "wide.bmp", np.uint8)) == (200, 300)
        for decoder in ("pil", "cv2"):
            data = ImageFolderDataset(tmp_path / "a", decoder=decoder, max_image_pixels=100_000)
            assert all(np.asarray(data[i][0]).shape == (200, 300, 3) for i in range(2))
            strict = ImageFolderDataset(tmp_path / "a", decoder=decoder, max_image_pixels=50_000)
            with pytest.raises(ValueError, match=r"wide.bmp.*60000 pixels, above max_image_pixels=50000"):
                strict[0]
        assert Image.MAX_IMAGE_PIXELS == 1000  # restored
    finally:
        Image.MAX_IMAGE_PIXELS = saved
