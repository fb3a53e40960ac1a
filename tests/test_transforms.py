"""JPEG headers and reduced decoding, and RandomResizedCrop applied while decoding."""

from __future__ import annotations

import io
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from lightning_aug import AugDataModule, LoaderSettings
from lightning_aug.datasets import ImageFolderDataset
from lightning_aug.datasets.base import TransformedDataset
from lightning_aug.jpeg import decode_rgb, jpeg_shape, read_image_bytes
from lightning_aug.pipeline import Pipeline
from lightning_aug.transforms import RandomResizedCrop, reduction_for


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth image with some texture: reduced decoding must keep what a downscale keeps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * xx + c) + np.cos(5 * yy - c) for c in (0.0, 1.0, 2.0)], axis=-1)
    image = 127 + 60 * base + rng.normal(0, 4, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _jpeg_bytes(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _folder(root: Path, sizes: list[tuple[int, int]], png: bool = False) -> Path:
    """``root/<class>/<i>.jpg`` with one image of each (height, width), two classes."""
    for i, (height, width) in enumerate(sizes):
        folder = root / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_photo(height, width, seed=i)).save(folder / f"{i}.jpg", quality=92)
    if png:
        Image.fromarray(_photo(80, 90, seed=99)).save(root / "c0" / "z.png")
    return root


# ------------------------------------------------------------------------------------------ jpeg


@pytest.mark.parametrize(
    ("save", "expected"),
    [
        ({}, (30, 40)),
        ({"progressive": True}, (30, 40)),
        ({"exif": _exif(6)}, (40, 30)),  # rotated 90 degrees to view: width and height swap
        ({"exif": _exif(8)}, (40, 30)),
        ({"exif": _exif(3)}, (30, 40)),  # 180 degrees: same size
    ],
)
def test_jpeg_shape_reads_the_header_as_opencv_decodes(save: dict, expected: tuple[int, int]) -> None:
    data = np.frombuffer(_jpeg_bytes(Image.fromarray(_photo(30, 40)), **save), dtype=np.uint8)
    assert jpeg_shape(data) == expected
    assert decode_rgb(data).shape[:2] == expected


def test_jpeg_shape_of_grey_and_cmyk_and_not_jpeg() -> None:
    assert jpeg_shape(_jpeg_bytes(Image.new("L", (7, 5)))) == (5, 7)
    assert jpeg_shape(_jpeg_bytes(Image.new("CMYK", (9, 4)))) == (4, 9)
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    assert jpeg_shape(png.getvalue()) is None
    assert jpeg_shape(b"\xff\xd8\xff\xd9") is None  # no frame header
    assert jpeg_shape(_jpeg_bytes(Image.new("RGB", (8, 8)))[:20]) is None  # cut before the frame


@pytest.mark.parametrize("reduction", [1, 2, 4, 8])
def test_decode_rgb_reduced_size_rounds_up_and_keeps_the_content(reduction: int) -> None:
    image = _photo(203, 150)
    data = np.frombuffer(_jpeg_bytes(Image.fromarray(image), quality=95), dtype=np.uint8)
    got = decode_rgb(data, reduction)
    assert got.shape == (-(-203 // reduction), -(-150 // reduction), 3) and got.dtype == np.uint8
    full = decode_rgb(data, 1)
    import cv2

    shrunk = cv2.resize(full, got.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - got.astype(int)).mean() < 4  # the same picture, smaller


def test_decode_rgb_errors(tmp_path: Path) -> None:
    data = np.frombuffer(_jpeg_bytes(Image.new("RGB", (8, 8))), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"reduction must be one of \[1, 2, 4, 8\], got 3"):
        decode_rgb(data, 3)
    with pytest.raises(ValueError, match="cannot decode image file 'x.jpg'"):
        decode_rgb(np.frombuffer(b"not an image", dtype=np.uint8), 1, "x.jpg")
    (tmp_path / "cut.jpg").write_bytes(data.tobytes()[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated JPEG file .*cut.jpg"):
        read_image_bytes(tmp_path / "cut.jpg")


# ----------------------------------------------------------------------------- RandomResizedCrop


def test_reduction_for_never_enlarges_the_crop() -> None:
    assert reduction_for((224, 224), (224, 224)) == 1
    assert reduction_for((447, 900), (224, 224)) == 1
    assert reduction_for((448, 448), (224, 224)) == 2
    assert reduction_for((1000, 950), (224, 224)) == 4
    assert reduction_for((2000, 1800), (224, 224)) == 8
    assert reduction_for((4000, 4000), (224, 224)) == 8  # 8 is the smallest OpenCV decodes at
    assert reduction_for((100, 900), (50, 100)) == 2  # each side against its own output side


def _seeded(transform: A.BasicTransform, seed: int) -> A.BasicTransform:
    transform.set_random_state(np.random.default_rng(seed), __import__("random").Random(seed))
    return transform


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_decode_crop_without_reduction_equals_albumentations(tmp_path: Path, p: float) -> None:
    """Same draws, same output: the crop comes from the header's size, exactly as from the image's."""
    root = _folder(tmp_path, [(120, 90), (64, 200), (300, 260)], png=True)
    exif_path = root / "c1" / "rotated.jpg"
    Image.fromarray(_photo(50, 70)).save(exif_path, exif=_exif(6), quality=92)
    paths = [s[0] for s in ImageFolderDataset(root).samples]
    fused = _seeded(RandomResizedCrop(size=(40, 48), p=p, reduced_decoding=False), 3)
    plain = _seeded(A.RandomResizedCrop(size=(40, 48), p=p), 3)
    for _ in range(3):
        for path in paths:
            expected = plain(image=decode_rgb(read_image_bytes(path)))["image"]
            np.testing.assert_array_equal(fused.decode_crop(path), expected, err_msg=str(path))


@pytest.mark.parametrize("orientation", [None, 6])
def test_decode_crop_reduces_only_where_the_crop_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, orientation: int | None
) -> None:
    import lightning_aug.transforms as transforms

    path = _folder(tmp_path, [(1200, 1000)]) / "c0" / "0.jpg"
    if orientation is not None:  # stored turned, shown upright: the header's size must be swapped
        stored = Image.fromarray(_photo(1000, 1200)).rotate(90, expand=True)
        stored.save(path, exif=_exif(orientation), quality=92)
    used: list[int] = []

    def spy(data: np.ndarray, reduction: int = 1, path: object = "") -> np.ndarray:
        used.append(reduction)
        return decode_rgb(data, reduction)

    monkeypatch.setattr(transforms, "decode_rgb", spy)
    full = decode_rgb(read_image_bytes(path))
    crop = _seeded(RandomResizedCrop(size=(64, 64), scale=(0.02, 1.0)), 0)
    reference = _seeded(A.RandomResizedCrop(size=(64, 64), scale=(0.02, 1.0)), 0)
    for _ in range(40):
        x0, y0, x1, y1 = reference.get_params_dependent_on_data({"shape": full.shape}, {})["crop_coords"]
        got = crop.decode_crop(path)
        assert got.shape == (64, 64, 3)
        assert used[-1] == reduction_for((y1 - y0, x1 - x0), (64, 64))  # the same draw, and the rule
        # against the full decode shrunk with area averaging, the same crop looks the same
        import cv2

        expected = cv2.resize(full[y0:y1, x0:x1], (64, 64), interpolation=cv2.INTER_AREA)
        assert np.abs(got.astype(int) - expected.astype(int)).mean() < 6
    assert {2, 4, 8} <= set(used)  # all the reductions happened


def test_random_resized_crop_is_albumentations_elsewhere() -> None:
    image = _photo(70, 50)
    ours = _seeded(RandomResizedCrop(size=(20, 30)), 1)(image=image)["image"]
    theirs = _seeded(A.RandomResizedCrop(size=(20, 30)), 1)(image=image)["image"]
    np.testing.assert_array_equal(ours, theirs)
    assert RandomResizedCrop(size=(8, 8)).to_dict()["transform"]["reduced_decoding"] is True
    with pytest.raises(TypeError, match="reduced_decoding must be a bool, got 'yes'"):
        RandomResizedCrop(size=(8, 8), reduced_decoding="yes")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- in the pipeline

TRANSFORMS = [
    {"_target_": "lightning_aug.transforms.RandomResizedCrop", "size": [32, 32], "reduced_decoding": False},
    {"_target_": "albumentations.HorizontalFlip", "p": 0.5},
    {"_target_": "albumentations.RandomBrightnessContrast", "p": 0.5},
]


def test_fused_pipeline_gives_the_samples_of_the_unfused_one(tmp_path: Path) -> None:
    """Decoding with the crop, then the rest of the pipeline, draws as the whole pipeline does."""
    root = _folder(tmp_path, [(100 + 7 * i, 90 + 5 * i) for i in range(8)])
    fused = TransformedDataset(
        ImageFolderDataset(root, decoder="cv2"), Pipeline(TRANSFORMS, "albumentations"), seed=5
    )
    plain_transforms = [{**TRANSFORMS[0], "_target_": "albumentations.RandomResizedCrop"}, *TRANSFORMS[1:]]
    del plain_transforms[0]["reduced_decoding"]
    plain = TransformedDataset(
        ImageFolderDataset(root, decoder="cv2"), Pipeline(plain_transforms, "albumentations"), seed=5
    )
    assert fused.fused and not plain.fused
    for _ in range(2):
        for i in range(len(fused)):
            a, b = fused[i], plain[i]
            assert a[0].shape == (3, 32, 32) and a[1] == b[1]
            assert torch.equal(a[0], b[0]), i


def test_crop_decoder_only_with_the_opencv_decoder(tmp_path: Path) -> None:
    root = _folder(tmp_path, [(60, 60), (70, 50)])
    pipeline = Pipeline(TRANSFORMS, "albumentations")
    assert pipeline.crop_decoder is pipeline.transforms[0]
    pil = TransformedDataset(ImageFolderDataset(root, decoder="pil"), pipeline, seed=0)
    assert not pil.fused and pil[0][0].shape == (3, 32, 32)  # runs after decoding instead
    assert Pipeline(TRANSFORMS[1:], "albumentations").crop_decoder is None
    with pytest.raises(RuntimeError, match="has no crop decoder"):
        Pipeline(TRANSFORMS[1:], "albumentations").after_decode(np.zeros((4, 4, 3), np.uint8))
    dataset = ImageFolderDataset(root, decoder="cv2")
    assert dataset.set_crop_decoder(pipeline.decode_first)
    assert not dataset.set_crop_decoder(None)
    assert dataset[0][0].shape == (60, 60, 3)  # back to plain decoding


def test_fused_skips_bad_files_and_reaches_workers(tmp_path: Path, caplog) -> None:
    """A DataModule over a folder with an unreadable file: the fused decode reports and skips it, in
    worker processes too, and the DataModule says that the crop runs while decoding."""
    import logging

    from lightning_aug.datasets import ImageFolder

    for split in ("train", "val"):
        _folder(tmp_path / split, [(90, 80)] * 6)
    (tmp_path / "train" / "c0" / "bad.jpg").write_text("not an image")
    dm = AugDataModule(
        ImageFolder(tmp_path, decoder="cv2", on_bad_image="skip"),
        train_transforms=TRANSFORMS,
        eval_transforms=[{"_target_": "albumentations.Resize", "height": 32, "width": 32}],
        backend="albumentations",
        loader=LoaderSettings(batch_size=7, num_workers=2, drop_last=False),
        seed=0,
    )
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    assert dm.datasets["train"].fused  # type: ignore[union-attr]
    assert "RandomResizedCrop runs while decoding" in caplog.text
    batches = list(dm.train_dataloader())
    images = torch.cat([b[0] for b in batches])
    assert images.shape == (7, 3, 32, 32) and images.dtype == torch.uint8
    skipped = [p for b in batches if len(b) == 3 for p in b[2]]
    assert [Path(p).name for p in skipped] == ["bad.jpg"]
