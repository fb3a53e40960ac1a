from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torchvision
from helpers import bad_image_folder, fake_cifar, write_image_folder
from PIL import Image

from lightning_aug.data.datasets import CIFAR10, CIFAR100, ImageFolder, ImageFolderDataset, SyntheticShapes
from lightning_aug.data.datasets.synthetic import CLASS_NAMES
from lightning_aug.errors import DataError

# ---------------------------------------------------------------- synthetic

DECODERS = ["pil", "cv2", "nvimgcodec"]


def _loader(decoder: str):  # type: ignore[no-untyped-def]
    """The whole-image decode of ``decoder`` (a PIL image for "pil", an RGB array otherwise)."""
    from lightning_aug.data.datasets.folder import load_rgb
    from lightning_aug.data.decoders import make_decoder
    from lightning_aug.data.jpeg import read_image_bytes

    if decoder == "pil":
        return load_rgb
    if decoder == "nvimgcodec":
        pytest.importorskip("nvidia.nvimgcodec", reason="nvImageCodec (the [fast] extra) is not installed")
    impl = make_decoder(decoder)
    return lambda path: impl.decode(read_image_bytes(path), path)


def test_synthetic_is_deterministic_and_reused(tmp_path: Path) -> None:
    kwargs = {"num_classes": 3, "train_per_class": 3, "val_per_class": 2, "test_per_class": 1, "seed": 7}
    a, b = SyntheticShapes(root=tmp_path / "a", **kwargs), SyntheticShapes(root=tmp_path / "b", **kwargs)
    a.prepare()
    b.prepare()
    files_a = sorted(p.relative_to(a.path) for p in a.path.rglob("*.jpg"))
    assert len(files_a) == 3 * (3 + 2 + 1)
    assert files_a == sorted(p.relative_to(b.path) for p in b.path.rglob("*.jpg"))
    assert all((a.path / f).read_bytes() == (b.path / f).read_bytes() for f in files_a)
    mtime = (a.path / files_a[0]).stat().st_mtime_ns
    a.prepare()  # reused, not rewritten
    assert (a.path / files_a[0]).stat().st_mtime_ns == mtime
    other = SyntheticShapes(root=tmp_path / "a", **{**kwargs, "seed": 8})
    assert other.path != a.path


def test_synthetic_splits_labels_and_images(small_shapes: SyntheticShapes) -> None:
    train, val, test = small_shapes("train"), small_shapes("val"), small_shapes("test")
    assert (len(train), len(val), len(test)) == (64, 16, 16)
    assert sorted(set(train.targets)) == [0, 1, 2, 3]
    assert train.classes == [f"{i:02d}_{n}" for i, n in enumerate(CLASS_NAMES[:4])]
    image, label = train[0]
    assert label == 0
    assert isinstance(image, np.ndarray) and image.shape == (64, 64, 3)  # decoder "auto": arrays
    assert np.asarray(image).std() > 20  # not blank
    pil = SyntheticShapes(
        root=small_shapes.root,
        num_classes=4,
        train_per_class=16,
        val_per_class=4,
        test_per_class=4,
        decoder="pil",
    )("train")[0][0]
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and pil.size == (64, 64)


def test_synthetic_test_split_can_be_absent(tmp_path: Path) -> None:
    data = SyntheticShapes(root=tmp_path, num_classes=2, train_per_class=1, val_per_class=1, test_per_class=0)
    data.prepare()
    assert data("test") is None


def test_synthetic_before_prepare(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="call prepare\\(\\) first"):
        SyntheticShapes(root=tmp_path)("train")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 11}, r"num_classes must be an int in \[2, 10\], got 11"),
        ({"num_classes": 1}, r"num_classes must be an int in \[2, 10\], got 1"),
        ({"image_size": 8}, r"image_size must be an int in \[16, 4096\], got 8"),
        ({"train_per_class": 0}, "train_per_class must be an int >= 1, got 0"),
        ({"val_per_class": 0}, "val_per_class must be an int >= 1, got 0"),
        ({"test_per_class": -1}, "test_per_class must be an int >= 0, got -1"),
        ({"seed": -3}, "seed must be an int >= 0, got -3"),
        ({"seed": 1.5}, "seed must be an int >= 0, got 1.5"),
    ],
)
def test_synthetic_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticShapes(**kwargs)


def test_synthetic_unknown_split(small_shapes: SyntheticShapes) -> None:
    with pytest.raises(
        ValueError, match=r"split must be one of \['train', 'val', 'test', 'predict'\], got 'valid'"
    ):
        small_shapes("valid")  # type: ignore[arg-type]


# ---------------------------------------------------------------- image folders
def test_image_folder_with_train_and_val(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", {"cat": 3, "dog": 2})
    write_image_folder(tmp_path / "val", {"cat": 1, "dog": 1})
    data = ImageFolder(tmp_path)
    train, val = data("train"), data("val")
    assert (len(train), len(val), data("test")) == (5, 2, None)
    assert train.classes == ["cat", "dog"] and data.num_classes == 2
    assert train.targets.tolist() == [0, 0, 0, 1, 1]


def test_image_folder_val_split_is_seeded_stratified_and_disjoint(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": 10, "b": 10})
    train, val = (
        ImageFolder(tmp_path, val_split=0.2, seed=1)("train"),
        ImageFolder(tmp_path, val_split=0.2, seed=1)("val"),
    )
    assert (len(train), len(val)) == (16, 4)
    assert sorted(val.targets) == [0, 0, 1, 1]
    assert not {p for p, _ in train.samples} & {p for p, _ in val.samples}
    again = ImageFolder(tmp_path, val_split=0.2, seed=1)("val")
    other = ImageFolder(tmp_path, val_split=0.2, seed=2)("val")
    assert again.samples == val.samples and other.samples != val.samples


def test_image_folder_val_classes_must_match_train(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", {"cat": 1, "dog": 1})
    write_image_folder(tmp_path / "val", {"cat": 1, "cow": 1})
    with pytest.raises(
        ValueError, match=r"class folders of .*val' are \['cat', 'cow'\], expected \['cat', 'dog'\]"
    ):
        ImageFolder(tmp_path)("val")


def test_image_folder_of_classes_alone_holds_out_ten_percent(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": 10, "b": 2})
    factory = ImageFolder(tmp_path)
    assert len(factory("train")) == 9 + 1 and len(factory("val")) == 1 + 1  # at least one of each class


def test_image_folder_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist or is not a directory"):
        ImageFolderDataset(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="has no class subfolders"):
        ImageFolderDataset(tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("no image")
    with pytest.raises(FileNotFoundError, match="has no images with extensions"):
        ImageFolderDataset(tmp_path)


@pytest.mark.parametrize("val_split", [0.0, 1.0, -0.1, "0.1"])
def test_image_folder_bad_val_split(tmp_path: Path, val_split: object) -> None:
    with pytest.raises(
        ValueError, match=f"val_split must be a float in \\(0, 1\\) or None, got {val_split!r}"
    ):
        ImageFolder(tmp_path, val_split=val_split)  # type: ignore[arg-type]


# ---------------------------------------------------------------- CIFAR (local fakes, never the network)
@pytest.mark.parametrize("factory", [CIFAR10, CIFAR100])
def test_cifar_splits_from_local_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factory: type[CIFAR10]
) -> None:
    fake_cifar(tmp_path, factory.tv_class, monkeypatch)
    data = factory(tmp_path)
    data.prepare()
    train, val, test = data("train"), data("val"), data("test")
    assert (len(train), len(val), len(test)) == (20, 10, 10)
    image, label = train[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and isinstance(label, int)
    held = factory(tmp_path, val_split=0.25)
    assert (len(held("train")), len(held("val"))) == (15, 5)
    assert data.num_classes == (10 if factory is CIFAR10 else 100)


def test_cifar_downloads_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tv = torchvision.datasets.CIFAR10
    archive = fake_cifar(tmp_path / "mirror", tv, monkeypatch)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the loopback server, whatever proxy a machine sets
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(tv, "url", f"http://127.0.0.1:{server.server_port}/{archive.name}")
        monkeypatch.setattr(tv, "tgz_md5", hashlib.md5(archive.read_bytes()).hexdigest())
        data = CIFAR10(tmp_path / "data", download=True)
        data.prepare()  # torchvision's real download + checksum + extract, from a loopback server
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert (tmp_path / "data" / tv.filename).is_file()
    assert len(data("train")) == 20


def test_cifar_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"CIFAR10 not found or corrupted under root=.*set download=True"
    ):
        CIFAR10(tmp_path).prepare()


def test_cifar_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="download must be a bool, got 'yes'"):
        CIFAR10(tmp_path, download="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="val_split must be a float in \\(0, 1\\) or None, got 2"):
        CIFAR10(tmp_path, val_split=2)
    with pytest.raises(
        ValueError, match=r"split must be one of \['train', 'val', 'test', 'predict'\], got 'dev'"
    ):
        CIFAR10(tmp_path)("dev")  # type: ignore[arg-type]


def test_cv2_decoder_matches_pil(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "train", {"a": 2, "b": 1})
    write_image_folder(tmp_path / "val", {"a": 1, "b": 1})
    pil, cv = ImageFolder(tmp_path)("train"), ImageFolder(tmp_path, decoder="cv2")("train")
    for i in range(len(pil)):
        (a, la), (b, lb) = pil[i], cv[i]
        assert isinstance(b, np.ndarray) and b.dtype == np.uint8 and b.shape == (20, 20, 3)
        assert la == lb and np.array_equal(np.asarray(a), b)  # PNG: lossless, identical pixels


def test_unknown_decoder(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"decoder must be one of \['auto', 'cv2', 'nvimgcodec', 'pil'\], got 'turbo'"
    ):
        ImageFolder(tmp_path, decoder="turbo")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"decoder must be one of \['auto', 'cv2', 'nvimgcodec', 'pil'\], got 'turbo'"
    ):
        SyntheticShapes(decoder="turbo")  # type: ignore[arg-type]


def _modes(folder: Path) -> dict[str, np.ndarray]:
    """One image file per mode found in real folders, and the RGB each should decode to."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    grey = rgb[:, :, 0]
    expected = {}
    Image.fromarray(grey).save(folder / "grey.png")
    expected["grey.png"] = np.repeat(grey[:, :, None], 3, axis=2)
    Image.fromarray(np.dstack([rgb, np.full((12, 16), 7, np.uint8)])).save(folder / "rgba.png")
    expected["rgba.png"] = rgb  # alpha dropped
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    expected["palette.png"] = np.asarray(Image.open(folder / "palette.png").convert("RGB"))
    deep = (grey.astype(np.uint16) * 257).astype(np.uint16)  # 16-bit: full range, 8-bit value * 257
    Image.fromarray(deep).save(folder / "deep16.png")
    expected["deep16.png"] = np.repeat(grey[:, :, None], 3, axis=2)
    return expected


@pytest.mark.parametrize("decoder", DECODERS)
def test_image_modes_decode_to_rgb(tmp_path: Path, decoder: str) -> None:
    expected = _modes(tmp_path)
    load = _loader(decoder)
    for name, want in expected.items():
        got = np.asarray(load(tmp_path / name))
        assert got.shape == (12, 16, 3) and got.dtype == np.uint8, name
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1, name


@pytest.mark.parametrize("decoder", DECODERS)
def test_cmyk_jpeg_and_exif_orientation(tmp_path: Path, decoder: str) -> None:
    load = _loader(decoder)
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    red = np.asarray(load(tmp_path / "cmyk.jpg"))
    assert red.shape == (12, 16, 3) and red[..., 0].mean() > 200 and red[..., 1:].mean() < 60
    upright = Image.new("RGB", (16, 12), "white")
    upright.paste((255, 0, 0), (0, 0, 4, 12))  # a red band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels must be rotated 90 degrees clockwise to view
    upright.rotate(90, expand=True).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    shown = np.asarray(load(tmp_path / "rotated.jpg"))
    assert shown.shape == (12, 16, 3)  # turned back upright
    assert shown[:, :4, 0].mean() > 200 and shown[:, :4, 1].mean() < 80  # the band is on the left again


@pytest.mark.parametrize("decoder", ["pil", "cv2"])
def test_raise_names_the_truncated_file(tmp_path: Path, decoder: str) -> None:
    bad = bad_image_folder(tmp_path)
    data = ImageFolder(tmp_path, decoder=decoder)("train")
    with pytest.raises(ValueError, match=f"cannot decode image file '{bad[0]}'"):
        data[0]
    with pytest.raises(ValueError, match="b_text.jpg"):
        data[1]
    assert np.asarray(data[2][0]).shape == (24, 24, 3)  # CMYK, RGBA and grey decode to RGB


@pytest.mark.parametrize("decoder", ["pil", "cv2"])
def test_skip_replaces_bad_files_and_names_them(tmp_path: Path, decoder: str) -> None:
    bad = bad_image_folder(tmp_path)
    data = ImageFolder(tmp_path, decoder=decoder, on_bad_image="skip")("train")
    for index, path in enumerate(bad):  # each bad sample names its own file, replaced by a good one
        image, label, skipped = data[index]
        assert skipped == (path,) and np.asarray(image).shape == (24, 24, 3) and label in (0, 1)
    assert len(data[2]) == 2  # a good file: a plain (image, label)
    fresh = ImageFolder(tmp_path, decoder=decoder, on_bad_image="skip")("train")  # another process, say
    assert np.array_equal(np.asarray(fresh[0][0]), np.asarray(data[0][0]))  # seeded: the same replacement


def test_skip_is_linear_in_the_bad_files_and_spreads_the_replacements() -> None:
    """2,000 unreadable samples before 100 good ones: each position is read at most once per process
    (it was quadratic: the first good file after the block was found by a scan from every bad one, and
    served 2,000 times)."""
    from collections import Counter

    from lightning_aug.data.decode import SkipMemory, read_or_skip

    reads: Counter[int] = Counter()

    def load(position: int) -> tuple[int, int]:
        reads[position] += 1
        if position < 2000:
            raise ValueError("unreadable")
        return position, 0

    memory = SkipMemory()
    served = [read_or_skip(load, str, 2100, i, "skip", "data", memory) for i in range(2100)]
    assert max(reads[p] for p in range(2000)) == 1 and sum(reads.values()) <= 2 * 2100
    replacements = Counter(sample[0] for sample in served[:2000])
    assert (
        set(replacements) <= set(range(2000, 2100)) and max(replacements.values()) <= 60
    )  # 20 each on average
    assert all(sample[2] == (str(i),) for i, sample in enumerate(served[:2000]))  # its own file named
    again = [read_or_skip(load, str, 2100, i, "skip", "data", SkipMemory()) for i in range(5)]
    assert [s[0] for s in again] == [s[0] for s in served[:5]]  # the same replacement in a fresh process
    with pytest.raises(DataError, match=r"no readable image in data \(2000 unreadable\)"):
        read_or_skip(load, str, 2000, 0, "skip", "data", SkipMemory())


def test_bad_policy_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_bad_image must be 'raise' or 'skip', got 'ignore'"):
        ImageFolder(tmp_path, on_bad_image="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize("decoder", DECODERS)
def test_an_empty_file_is_named_once_and_skipped(tmp_path: Path, decoder: str) -> None:
    """A 0-byte .jpg made OpenCV raise cv2.error past on_bad_image; every decoder now reports it."""
    _loader(decoder)  # skips nvimgcodec where the extra is missing
    write_image_folder(tmp_path / "a", {"cls": 2})
    empty = tmp_path / "a" / "cls" / "0_empty.jpg"
    empty.write_bytes(b"")
    data = ImageFolderDataset(tmp_path / "a", decoder=decoder)
    index = [path for path, _ in data.samples].index(str(empty))
    with pytest.raises(ValueError, match="cannot decode image file") as raised:
        data[index]
    assert str(raised.value).count(str(empty)) == 1  # named once
    skipping = ImageFolderDataset(tmp_path / "a", decoder=decoder, on_bad_image="skip")
    assert skipping[index][2] == (str(empty),) and np.asarray(skipping[index][0]).shape[-1] == 3


def test_any_library_error_becomes_the_named_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "a", {"cls": 1})
    data = ImageFolderDataset(tmp_path / "a", decoder="cv2")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a library's own failure")

    monkeypatch.setattr(data.image_decoder, "decode", broken)
    with pytest.raises(ValueError, match=r"cannot decode image file .*0.png': a library's own failure"):
        data[0]


@pytest.mark.parametrize("decoder", DECODERS)
def test_images_above_max_image_pixels_are_refused_before_decoding(
    tmp_path: Path, decoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _loader(decoder)
    write_image_folder(tmp_path / "a", {"cls": 1}, size=40)  # a 40x40 PNG
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp_path / "a" / "cls" / "1.jpg")
    data = ImageFolderDataset(tmp_path / "a", decoder=decoder, max_image_pixels=1000)
    for index, size in ((0, "40x40 = 1600"), (1, "50x30 = 1500")):
        with pytest.raises(
            ValueError, match=f"cannot decode image file .*: {size} pixels, above max_image_pixels=1000"
        ):
            data[index]
    assert ImageFolderDataset(tmp_path / "a", decoder=decoder, max_image_pixels=2000)[0][1] == 0
    with pytest.raises(ValueError, match="max_image_pixels must be an int >= 1 or None, got 0"):
        ImageFolderDataset(tmp_path / "a", max_image_pixels=0)


def test_a_decompression_bomb_is_refused_from_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 15000x15000 PNG (a few hundred KB; 675 MB as RGB) is refused by the default limit before any
    decoder runs: memory stays bounded, and skip replaces it."""
    folder = tmp_path / "a" / "cls"
    folder.mkdir(parents=True)
    Image.new("1", (15000, 15000)).save(folder / "bomb.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "ok.png")
    data = ImageFolderDataset(tmp_path / "a", decoder="cv2", on_bad_image="skip")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the bomb reached the decoder")

    decode = data.image_decoder.decode
    monkeypatch.setattr(
        data.image_decoder,
        "decode",
        lambda d, p, *a, **k: never() if Path(p).name == "bomb.png" else decode(d, p, *a, **k),
    )
    image, _, skipped = data[0]
    assert skipped == (str(folder / "bomb.png"),) and image.shape == (8, 8, 3)


def test_a_directory_link_back_into_the_folder_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """root/a/up -> .. would list every image dozens of times, under the wrong class too."""
    write_image_folder(tmp_path / "root", {"a": 2, "b": 2})
    (tmp_path / "root" / "a" / "up").symlink_to("..")
    (tmp_path / "root" / "b" / "self").symlink_to(".")
    with pytest.warns(UserWarning, match=r"skipped the directory link .*a/up.* leads back into a folder"):
        data = ImageFolderDataset(tmp_path / "root")
    assert len(data) == 4 and len({path for path, _ in data.samples}) == 4
    assert data.targets.tolist() == [0, 0, 1, 1]


def test_a_class_folder_without_images_is_refused_by_name(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "root", {"a": 2, "b": 2})
    (tmp_path / "root" / "empty_one").mkdir()
    (tmp_path / "root" / "empty_two").mkdir()
    with pytest.raises(ValueError, match=r"class folders without images: \['empty_one', 'empty_two'\]"):
        ImageFolderDataset(tmp_path / "root")
    with pytest.raises(ValueError, match="class folders without images"):
        ImageFolder(tmp_path / "root", val_split=0.5)("train")


def test_a_val_split_folder_is_scanned_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning_aug.data.datasets.folder as folder_module

    write_image_folder(tmp_path / "root", {"a": 4, "b": 4})
    scans = []
    scan = folder_module._scan
    monkeypatch.setattr(folder_module, "_scan", lambda *args: scans.append(args[0]) or scan(*args))
    factory = ImageFolder(tmp_path / "root", val_split=0.25)
    train, val = factory("train"), factory("val")
    assert factory.num_classes == 2 and len(train) + len(val) == 8
    assert scans == [tmp_path / "root"]  # was three walks of the folder for one split


def test_sample_list_reads_back_what_it_packed() -> None:
    from lightning_aug.data.datasets.samples import SampleList

    pairs = [("a/ü.jpg", 0), ("b/\udcff.png", 3), ("", 1), ("c/x.jpg", 2)]  # non-UTF-8 names survive
    samples = SampleList(pairs)
    assert list(samples) == pairs and samples == pairs and samples[-1] == ("c/x.jpg", 2)
    assert samples[1:3] == pairs[1:3] and samples.labels.dtype == np.int64
    sub = samples.subset(np.array([3, 0]))
    assert list(sub) == [pairs[3], pairs[0]] and sub._blob is samples._blob  # shares the paths
    with pytest.raises(IndexError, match="sample index 4 out of range for 4 samples"):
        samples[4]
    assert len(SampleList()) == 0


def test_image_folder_samples_are_packed_for_workers(tmp_path: Path) -> None:
    from lightning_aug.data.datasets.samples import SampleList

    write_image_folder(tmp_path / "root", {"a": 3, "b": 2})
    data = ImageFolder(tmp_path / "root", val_split=0.4)
    train, val = data("train"), data("val")
    assert isinstance(train.samples, SampleList) and train.samples._blob is val.samples._blob
    assert isinstance(train.targets, np.ndarray) and len(train) + len(val) == 5


@pytest.mark.parametrize("decoder", ["pil", "cv2"])
def test_a_decompression_bomb_keeps_memory_bounded(tmp_path: Path, decoder: str) -> None:
    """A 20000x20000 PNG (1.2 GB as RGB) skipped by a fresh process: its peak memory grows by far less
    than one decoded copy."""
    import subprocess
    import sys

    from odd_files import _bomb_png

    folder = tmp_path / "a" / "cls"
    folder.mkdir(parents=True)
    (folder / "bomb.png").write_bytes(_bomb_png(20000))
    Image.new("RGB", (8, 8)).save(folder / "ok.png")
    script = (
        "import resource, sys\n"
        "from lightning_aug.data.datasets import ImageFolderDataset\n"
        f"data = ImageFolderDataset(sys.argv[1], decoder={decoder!r}, on_bad_image='skip')\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "image, label, skipped = data[0]\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(len(skipped), (after - before) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "a")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    skipped, grown_mib = map(int, done.stdout.split())
    assert skipped == 1 and grown_mib < 100, done.stdout  # one decode would be 1144 MiB
