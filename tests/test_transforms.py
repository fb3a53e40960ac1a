"""JPEG headers and reduced decoding, and RandomResizedCrop applied while decoding."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from lightning_aug import AugDataModule, LoaderSettings
from lightning_aug.data.datasets import ImageFolderDataset
from lightning_aug.data.datasets.base import TransformedDataset
from lightning_aug.data.decoders import ImageDecoder, OpenCVDecoder, make_decoder
from lightning_aug.data.jpeg import decode_rgb, jpeg_shape, read_image_bytes
from lightning_aug.data.pipeline import Pipeline
from lightning_aug.data.transforms import (
    RandomResizedCrop,
    TorchvisionRandomResizedCrop,
    decode_head,
    reduction_for,
)

DECODERS = ["cv2", "nvimgcodec"]


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


def _decoder(name: str) -> ImageDecoder:
    if name == "nvimgcodec":
        pytest.importorskip("nvidia.nvimgcodec", reason="nvImageCodec (the [fast] extra) is not installed")
    decoder = make_decoder(name)
    assert decoder is not None
    return decoder


def _head_output(head, path: Path, decoder: ImageDecoder):  # type: ignore[no-untyped-def]
    return head(read_image_bytes(path), decoder, path)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(("p", "area"), [(1.0, None), (0.5, None), (1.0, "image")])
def test_decode_crop_without_reduction_equals_albumentations(
    tmp_path: Path, p: float, area: str | None, decoder: str
) -> None:
    """Same draws, same output: the crop comes from the header's size, exactly as from the image's,
    the region decoded alone has the pixels of the whole decode's crop, and the resize is
    albumentations' (its interpolation, INTER_AREA for downscaling where ``area_for_downscale`` says)."""
    root = _folder(tmp_path, [(120, 90), (64, 200), (300, 260)], png=True)
    exif_path = root / "c1" / "rotated.jpg"
    Image.fromarray(_photo(50, 70)).save(exif_path, exif=_exif(6), quality=92)
    Image.fromarray(_photo(90, 110)).save(root / "c1" / "progressive.jpg", progressive=True, quality=90)
    paths = [s[0] for s in ImageFolderDataset(root).samples]
    crop = _seeded(RandomResizedCrop(size=(40, 48), p=p, area_for_downscale=area, reduced_decoding=False), 3)
    head = decode_head([crop], "albumentations")
    plain = _seeded(A.RandomResizedCrop(size=(40, 48), p=p, area_for_downscale=area), 3)
    impl = _decoder(decoder)
    for _ in range(3):
        for path in paths:
            expected = plain(image=decode_rgb(read_image_bytes(path)))["image"]
            np.testing.assert_array_equal(_head_output(head, path, impl), expected, err_msg=str(path))


class _Spy(OpenCVDecoder):
    """OpenCV, recording the reduction each decode was asked for."""

    def __init__(self) -> None:
        self.used: list[int] = []

    def decode(self, data, path, region=None, reduction=1, **kwargs):  # type: ignore[no-untyped-def]
        self.used.append(reduction)
        return super().decode(data, path, region, reduction, **kwargs)


@pytest.mark.parametrize("orientation", [None, 6])
def test_decode_crop_reduces_only_where_the_crop_allows(tmp_path: Path, orientation: int | None) -> None:
    path = _folder(tmp_path, [(1200, 1000)]) / "c0" / "0.jpg"
    if orientation is not None:  # stored turned, shown upright: the header's size must be swapped
        stored = Image.fromarray(_photo(1000, 1200)).rotate(90, expand=True)
        stored.save(path, exif=_exif(orientation), quality=92)
    spy = _Spy()
    full = decode_rgb(read_image_bytes(path))
    head = decode_head([_seeded(RandomResizedCrop(size=(64, 64), scale=(0.02, 1.0)), 0)], "albumentations")
    reference = _seeded(A.RandomResizedCrop(size=(64, 64), scale=(0.02, 1.0)), 0)
    for _ in range(40):
        x0, y0, x1, y1 = reference.get_params_dependent_on_data({"shape": full.shape}, {})["crop_coords"]
        got = _head_output(head, path, spy)
        assert got.shape == (64, 64, 3)
        assert spy.used[-1] == reduction_for((y1 - y0, x1 - x0), (64, 64))  # the same draw, and the rule
        # against the full decode shrunk with area averaging, the same crop looks the same
        import cv2

        expected = cv2.resize(full[y0:y1, x0:x1], (64, 64), interpolation=cv2.INTER_AREA)
        assert np.abs(got.astype(int) - expected.astype(int)).mean() < 6
    assert {2, 4, 8} <= set(spy.used)  # all the reductions happened


@pytest.mark.parametrize("orientation", [None, 6])
def test_torchvision_crop_reduces_only_where_the_crop_allows_and_looks_the_same(
    tmp_path: Path, orientation: int | None
) -> None:
    """``TorchvisionRandomResizedCrop``: v2's draws from the header (the same boxes as v2's own class
    seeded alike), a reduced decode exactly where the crop is 2, 4 or 8 times the output, and the look
    of v2's crop of the full decode (within the resize's own error: the DCT scaling low-pass filters
    as the antialiased resize does); with ``reduced_decoding=False``, v2's pixels bit for bit."""
    from torchvision.transforms import v2

    path = _folder(tmp_path, [(1200, 1000)]) / "c0" / "0.jpg"
    if orientation is not None:  # stored turned, shown upright: the header's size must be swapped
        stored = Image.fromarray(_photo(1000, 1200)).rotate(90, expand=True)
        stored.save(path, exif=_exif(orientation), quality=92)
    spy = _Spy()
    full = torch.from_numpy(decode_rgb(read_image_bytes(path))).permute(2, 0, 1)
    head = decode_head([TorchvisionRandomResizedCrop(64, scale=(0.02, 1.0))], "torchvision")
    exact = decode_head(
        [TorchvisionRandomResizedCrop(64, scale=(0.02, 1.0), reduced_decoding=False)], "torchvision"
    )
    reference = v2.RandomResizedCrop(64, scale=(0.02, 1.0), antialias=True)
    for i in range(40):
        torch.manual_seed(i)
        got = _head_output(head, path, spy)
        torch.manual_seed(i)
        expected = reference(full)
        torch.manual_seed(i)
        box = reference.make_params([full])
        height, width = box["height"], box["width"]
        assert got.shape == expected.shape == (3, 64, 64)
        assert spy.used[-1] == reduction_for((height, width), (64, 64))  # the same draw, and the rule
        assert (got.int() - expected.int()).abs().float().mean() < 6
        torch.manual_seed(i)
        assert torch.equal(_head_output(exact, path, spy), expected) and spy.used[-1] == 1
    assert {2, 4, 8} <= set(spy.used)  # all the reductions happened
    assert TorchvisionRandomResizedCrop(8)(torch.zeros(3, 20, 30, dtype=torch.uint8)).shape == (3, 8, 8)
    with pytest.raises(TypeError, match="reduced_decoding must be a bool, got 'yes'"):
        TorchvisionRandomResizedCrop(8, reduced_decoding="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("save", [{}, {"progressive": True}, {"subsampling": 0}, {"subsampling": 2}])
def test_region_decode_is_the_crop_of_the_full_decode(save: dict) -> None:
    """nvImageCodec decodes a region alone with exactly the pixels of cropping OpenCV's full decode."""
    nv, cv = _decoder("nvimgcodec"), OpenCVDecoder()
    data = np.frombuffer(_jpeg_bytes(Image.fromarray(_photo(375, 500)), quality=90, **save), np.uint8)
    full = cv.decode(data, "x.jpg")
    rng = np.random.default_rng(0)
    for _ in range(20):
        y0, x0 = rng.integers(0, 300), rng.integers(0, 400)
        y1, x1 = rng.integers(y0 + 1, 376), rng.integers(x0 + 1, 501)
        np.testing.assert_array_equal(nv.decode(data, "x.jpg", (y0, x0, y1, x1)), full[y0:y1, x0:x1])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_region_decode_follows_exif_orientation_as_pil(orientation: int) -> None:
    from PIL import ImageOps

    nv = _decoder("nvimgcodec")
    data = np.frombuffer(_jpeg_bytes(Image.fromarray(_photo(60, 90)), exif=_exif(orientation)), np.uint8)
    with Image.open(io.BytesIO(data.tobytes())) as image:
        shown = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert nv.shape(data) == shown.shape[:2]
    np.testing.assert_array_equal(nv.decode(data, "x.jpg"), shown)
    y1, x1 = shown.shape[0] - 7, shown.shape[1] - 3
    np.testing.assert_array_equal(nv.decode(data, "x.jpg", (5, 2, y1, x1)), shown[5:y1, 2:x1])


def test_nvimgcodec_rejects_bad_files_by_name_and_hands_other_formats_on(tmp_path: Path) -> None:
    nv = _decoder("nvimgcodec")
    png = tmp_path / "a.png"
    Image.fromarray(_photo(20, 30)).save(png)
    assert nv.shape(read_image_bytes(png)) is None
    np.testing.assert_array_equal(nv.decode(read_image_bytes(png), png), np.asarray(Image.open(png)))
    jpeg = _jpeg_bytes(Image.fromarray(_photo(64, 64)))
    broken = np.frombuffer(jpeg[:300] + bytes(len(jpeg) - 302) + b"\xff\xd9", np.uint8)  # header kept
    with pytest.raises(ValueError, match="cannot decode image file 'broken.jpg'"):
        nv.decode(broken, "broken.jpg", (0, 0, 8, 8))


def test_auto_without_nvimgcodec_is_opencv_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import lightning_aug.data.decoders as decoders
    from lightning_aug.data.datasets import ImageFolder

    monkeypatch.setattr(decoders, "nvimgcodec_available", lambda: False)
    assert isinstance(make_decoder("auto"), OpenCVDecoder)
    with pytest.raises(ImportError, match=r"pip install 'lightning-aug\[fast\]'"):
        make_decoder("nvimgcodec")
    for split in ("train", "val"):
        _folder(tmp_path / split, [(90, 80)] * 4)
    dm = AugDataModule(
        ImageFolder(tmp_path),
        train_transforms=TRANSFORMS,
        backend="albumentations",
        seed=0,
        eval_transforms=[{"_target_": "albumentations.Resize", "height": 32, "width": 32}],
    )
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
    assert "train images decoded by cv2; RandomResizedCrop runs while decoding" in caplog.text
    assert dm.datasets["train"][0][0].shape == (3, 32, 32)


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
    {
        "_target_": "lightning_aug.data.transforms.RandomResizedCrop",
        "size": [32, 32],
        "reduced_decoding": False,
    },
    {"_target_": "albumentations.HorizontalFlip", "p": 0.5},
    {"_target_": "albumentations.RandomBrightnessContrast", "p": 0.5},
]


def test_fused_pipeline_gives_the_samples_of_the_unfused_one(tmp_path: Path) -> None:
    """Decoding with the crop, then the rest of the pipeline, draws as the whole pipeline does."""
    root = _folder(tmp_path, [(100 + 7 * i, 90 + 5 * i) for i in range(8)])
    fused = TransformedDataset(
        ImageFolderDataset(root, decoder="cv2"), Pipeline(TRANSFORMS, "albumentations"), seed=5
    )
    plain_transforms = [{"_target_": "albumentations.NoOp", "p": 1.0}, *TRANSFORMS]  # unfused, no draw
    plain = TransformedDataset(
        ImageFolderDataset(root, decoder="cv2"), Pipeline(plain_transforms, "albumentations"), seed=5
    )
    assert fused.fused and not plain.fused
    for _ in range(2):
        for i in range(len(fused)):
            a, b = fused[i], plain[i]
            assert a[0].shape == (3, 32, 32) and a[1] == b[1]
            assert torch.equal(a[0], b[0]), i


def test_crop_runs_while_decoding_with_every_decoder_but_pil(tmp_path: Path) -> None:
    root = _folder(tmp_path, [(60, 60), (70, 50)])
    pipeline = Pipeline(TRANSFORMS, "albumentations")
    assert pipeline.decode_head is not None and pipeline.decode_head.transforms == (pipeline.transforms[0],)
    pil = TransformedDataset(ImageFolderDataset(root, decoder="pil"), pipeline, seed=0)
    assert not pil.fused and pil[0][0].shape == (3, 32, 32)  # runs after decoding instead
    assert TransformedDataset(ImageFolderDataset(root, decoder="cv2"), pipeline, seed=0).fused
    assert Pipeline(TRANSFORMS[1:], "albumentations").decode_head is None
    with pytest.raises(RuntimeError, match="cannot run while decoding"):
        Pipeline(TRANSFORMS[1:], "albumentations").after_decode(np.zeros((4, 4, 3), np.uint8))
    dataset = ImageFolderDataset(root, decoder="cv2")
    assert dataset.set_crop_decoder(pipeline.decode_first)
    assert not dataset.set_crop_decoder(None)
    assert dataset[0][0].shape == (60, 60, 3)  # back to plain decoding


@pytest.mark.parametrize("decoder", ["cv2", "nvimgcodec"])
def test_torchvision_crop_while_decoding_gives_the_unfused_samples(tmp_path: Path, decoder: str) -> None:
    """torchvision v2 RandomResizedCrop drawn from the header and run on the region: the samples of
    the same pipeline on the decoded image, bit for bit, for the same torch seed."""
    from torchvision.transforms import v2

    _decoder(decoder)
    root = _folder(tmp_path, [(100 + 9 * i, 140 - 7 * i) for i in range(6)])
    Image.fromarray(_photo(80, 120)).save(root / "c1" / "rotated.jpg", exif=_exif(8), quality=90)

    def pipeline() -> Pipeline:
        return Pipeline([v2.RandomResizedCrop(40, antialias=True), v2.RandomHorizontalFlip()], "torchvision")

    fused = TransformedDataset(ImageFolderDataset(root, decoder=decoder), pipeline(), seed=1)
    plain_data = ImageFolderDataset(root, decoder=decoder)
    plain_pipeline = pipeline()
    assert fused.fused
    torch.manual_seed(0)
    got = [fused._apply(fused.dataset[i])[0] for i in range(len(fused))]  # the global torch RNG
    torch.manual_seed(0)
    expected = [plain_pipeline(plain_data[i][0]) for i in range(len(plain_data))]
    for a, b in zip(got, expected, strict=True):
        assert a.shape == (3, 40, 40) and torch.equal(a, b)


EVAL = {
    "albumentations": [
        {"_target_": "albumentations.SmallestMaxSize", "max_size": 64},
        {"_target_": "albumentations.CenterCrop", "height": 56, "width": 56},
    ],
    "torchvision": [
        {"_target_": "torchvision.transforms.v2.Resize", "size": 64, "antialias": True},
        {"_target_": "torchvision.transforms.v2.CenterCrop", "size": 56},
    ],
}


@pytest.mark.parametrize("backend", ["albumentations", "torchvision"])
@pytest.mark.parametrize("decoder", ["cv2", "nvimgcodec"])
def test_eval_resize_center_crop_while_decoding_gives_the_unfused_pixels(
    tmp_path: Path, backend: str, decoder: str
) -> None:
    _decoder(decoder)
    sizes = [(150, 200), (200, 150), (97, 301), (64, 64), (60, 80)]  # the last is enlarged: unfused
    root = _folder(tmp_path, sizes)
    fused = TransformedDataset(ImageFolderDataset(root, decoder=decoder), Pipeline(EVAL[backend], backend), 0)
    first = {"_target_": "albumentations.NoOp", "p": 1.0} if backend == "albumentations" else v2_identity()
    plain = TransformedDataset(
        ImageFolderDataset(root, decoder=decoder), Pipeline([first, *EVAL[backend]], backend), 0
    )
    assert fused.fused and not plain.fused
    for i in range(len(fused)):
        a, b = fused[i][0].int(), plain[i][0].int()
        assert a.shape == b.shape == (3, 56, 56)
        assert torch.equal(a, b), (i, (a - b).abs().max())


def v2_identity():  # type: ignore[no-untyped-def]
    from torchvision.transforms import v2

    return v2.Identity()


def test_fused_skips_bad_files_and_reaches_workers(tmp_path: Path, caplog) -> None:
    """A DataModule over a folder with an unreadable file: the fused decode reports and skips it, in
    worker processes too, and the DataModule says that the crop runs while decoding."""
    import logging

    from lightning_aug.data.datasets import ImageFolder

    for split in ("train", "val"):
        _folder(tmp_path / split, [(90, 80)] * 6)
    (tmp_path / "train" / "c0" / "bad.jpg").write_text("not an image")
    dm = AugDataModule(
        ImageFolder(tmp_path, on_bad_image="skip"),
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


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(
    ("mode", "save"),
    [
        ("RGB", {}),
        ("RGB", {"progressive": True}),
        ("RGB", {"subsampling": 2}),  # 4:2:0
        ("L", {}),
        ("CMYK", {}),
        ("RGB", {"exif": _exif(6)}),
    ],
)
def test_jpeg_decoders_give_the_image_pil_gives(tmp_path: Path, decoder: str, mode: str, save: dict) -> None:
    """Every fast decoder returns, for a JPEG and for a region of it, the pixels of the ``pil``
    decoder (within JPEG decoder tolerance: all of them are libjpeg-turbo). A CMYK JPEG is PIL's to
    decode (its header gives no shape for crops while decoding), regions are slices of that."""
    from lightning_aug.data.datasets.folder import load_rgb

    impl = _decoder(decoder)
    path = tmp_path / "x.jpg"
    Image.fromarray(_photo(75, 100)).convert(mode).save(path, quality=90, **save)
    want = np.asarray(load_rgb(path)).astype(int)
    data = read_image_bytes(path)
    assert impl.shape(data) == (want.shape[:2] if mode != "CMYK" else None)
    got = impl.decode(data, path).astype(int)
    assert got.shape == want.shape and np.abs(got - want).max() <= 2, np.abs(got - want).max()
    y1, x1 = want.shape[0] - 5, want.shape[1] - 9
    region = impl.decode(data, path, (3, 4, y1, x1)).astype(int)
    assert np.abs(region - want[3:y1, 4:x1]).max() <= 2


@pytest.mark.parametrize("backend", ["albumentations", "torchvision"])
def test_a_lone_flip_after_the_crop_runs_without_the_framework_and_gives_its_samples(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crop while decoding, then one flip: the flip's own draw and kernel, no ``Compose`` call per
    sample, and the samples of the whole pipeline run unfused, bit for bit."""
    from torchvision.transforms import v2

    root = _folder(tmp_path, [(100 + 7 * i, 90 + 5 * i) for i in range(8)])

    def transforms() -> list:  # new objects for each pipeline (a Compose sets its transforms' generators)
        if backend == "albumentations":
            return [A.RandomResizedCrop(size=(32, 32)), A.HorizontalFlip(p=0.5)]
        return [v2.RandomResizedCrop(32, antialias=True), v2.RandomHorizontalFlip(p=0.5)]

    # first: no draw, and the pipeline no longer starts with the crop (the whole Compose runs)
    first: Any = A.NoOp(p=1.0) if backend == "albumentations" else v2.Identity()
    fused = TransformedDataset(
        ImageFolderDataset(root, decoder="cv2"), Pipeline(transforms(), backend), seed=5
    )
    plain = TransformedDataset(
        ImageFolderDataset(root, decoder="cv2"), Pipeline([first, *transforms()], backend), seed=5
    )
    calls = {"n": 0}
    compose = A.Compose if backend == "albumentations" else v2.Compose
    method = "__call__" if backend == "albumentations" else "forward"
    original = getattr(compose, method)

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(compose, method, counted)
    assert fused.fused and not plain.fused
    got = [fused[i][0] for i in range(len(fused))]
    assert calls["n"] == 0  # no framework dispatch per sample
    expected = [plain[i][0] for i in range(len(plain))]
    assert calls["n"] == len(plain)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == (3, 32, 32) and torch.equal(a, b)
