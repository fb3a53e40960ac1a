"""One way in for every source: one reader of local bytes (regular files, a size cap), one label rule
(refused naming the row), one error line for bad data found while training."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import one_error_line, run_app, write_image_folder
from PIL import Image

from lightning_aug.data.datasets import FileList, ImageFiles, ImageFolder
from lightning_aug.data.decode import file_image_size
from lightning_aug.data.labels import class_indices
from lightning_aug.data.reader import UnreadableFile, file_cap, read_bytes
from lightning_aug.errors import DataError

# ---------------------------------------------------------------- the reader


@pytest.fixture()
def odd_paths(tmp_path: Path) -> dict[str, Path]:
    """Paths that are no image file: a link to /dev/zero, a FIFO with no writer, a directory named
    .jpg, a link to a file larger than the cap; and a good image beside them."""
    paths = {"zero": tmp_path / "zero.jpg", "fifo": tmp_path / "fifo.jpg", "dir": tmp_path / "dir.jpg"}
    paths["zero"].symlink_to("/dev/zero")
    os.mkfifo(paths["fifo"])
    paths["dir"].mkdir()
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:  # sparse: 8 GiB on paper, nothing on disk
        handle.truncate(8 << 30)
    paths["huge"] = tmp_path / "huge.jpg"
    paths["huge"].symlink_to(big)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "good.png")
    paths["good"] = tmp_path / "good.png"
    return paths


@pytest.fixture()
def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts of every ``os.read`` the reader makes."""
    import lightning_aug.data.reader as reader

    counts: list[int] = []
    real = os.read

    def counting(fd: int, n: int) -> bytes:
        data = real(fd, n)
        counts.append(len(data))
        return data

    monkeypatch.setattr(reader.os, "read", counting)
    return counts


def test_the_reader_refuses_what_is_no_regular_file_and_reads_nothing(
    odd_paths: dict[str, Path], count_reads: list[int]
) -> None:
    said = {"zero": "a character device", "fifo": "a FIFO", "dir": "a directory"}
    for name, kind in said.items():
        with pytest.raises(UnreadableFile, match=rf"{name}\.jpg' is not a regular file \({kind}\)"):
            read_bytes(odd_paths[name], max_bytes=file_cap(1000))
    with pytest.raises(UnreadableFile, match=r"huge\.jpg' has 8589934592 bytes, more than an image can take"):
        read_bytes(odd_paths["huge"], max_bytes=file_cap(178956970))  # the default pixel limit: 716 MB
    assert count_reads == []  # not one byte read of any of them (a FIFO would have blocked)
    assert read_bytes(odd_paths["good"], max_bytes=file_cap(1000)).size > 0  # the valid neighbour
    assert sum(count_reads) == odd_paths["good"].stat().st_size
    for name in ("zero", "fifo", "dir", "huge"):  # the size probe of augment=auto: "no image"
        assert file_image_size(odd_paths[name]) is None
    assert file_image_size(odd_paths["good"]) == (8, 8)


def _folder_with(tmp_path: Path, odd_paths: dict[str, Path], name: str) -> Path:
    root = tmp_path / f"folder-{name}"
    write_image_folder(root / "train", {"a": 3, "b": 3}, size=16)
    write_image_folder(root / "val", {"a": 1, "b": 1}, size=16)
    link = root / "train" / "a" / f"0_{name}.jpg"
    if name == "fifo":
        os.mkfifo(link)
    else:
        link.symlink_to(odd_paths[name].resolve() if name != "zero" else "/dev/zero")
    return root


@pytest.mark.parametrize("name", ["zero", "fifo", "huge"])
def test_every_source_reads_through_the_reader(tmp_path: Path, odd_paths: dict[str, Path], name: str) -> None:
    """An image folder, a file list, a predict folder and a Hugging Face path cell: a named
    DataError (or a skip) at once, never a read of the endless, blocking or huge file."""
    root = _folder_with(tmp_path, odd_paths, name)
    bad = str(root / "train" / "a" / f"0_{name}.jpg")
    folder = ImageFolder(root)("train")
    index = [p for p, _ in folder.samples].index(bad)
    with pytest.raises(DataError, match=rf"cannot decode image file '.*0_{name}\.jpg'"):
        folder[index]
    skipping = ImageFolder(root, on_bad_image="skip")("train")
    assert skipping[index][2] == (bad,)
    good = str(root / "train" / "b" / "0.png")
    listed = FileList(samples=[(bad, "a", "train"), (good, "b", "train"), (good, "b", "val")])("train")
    assert listed is not None and listed.samples.path(0) == bad
    with pytest.raises(DataError, match=rf"cannot decode image file '.*0_{name}\.jpg'"):
        listed[0]
    predict = ImageFiles(root, on_bad_image="skip")("predict")
    assert any(bad in s[2] for s in (predict[i] for i in range(len(predict))) if len(s) == 3)


def test_a_hugging_face_path_cell_goes_through_the_reader(tmp_path: Path, odd_paths: dict[str, Path]) -> None:
    """A table whose ``path`` cells point at a FIFO and at /dev/zero (written with pyarrow: ``datasets``
    itself would read them while saving)."""
    pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lightning_aug.data.datasets import HuggingFace

    good = {"bytes": odd_paths["good"].read_bytes(), "path": None}
    cells = [
        {"bytes": None, "path": str(odd_paths["fifo"])},
        good,
        {"bytes": None, "path": str(odd_paths["zero"])},
        good,
    ]
    (tmp_path / "hf").mkdir()
    pq.write_table(pa.table({"image": cells, "label": [0, 1, 0, 1]}), tmp_path / "hf" / "train-00000.parquet")
    train = HuggingFace(str(tmp_path / "hf"), val_split=0.25)("train")
    assert train is not None
    rows = [train._row(i) for i in range(len(train))]
    refused = 0
    for i, row in enumerate(rows):
        if row in (0, 2):
            with pytest.raises(DataError, match=r"cannot decode the image of .* is not a regular file"):
                train[i]
            refused += 1
    assert refused >= 1


# ---------------------------------------------------------------- the label rule


@pytest.mark.parametrize(
    ("cells", "row", "said"),
    [
        (["3", "3.0", "1"], 1, "label '3.0' is a number but not a class index"),
        (["0", "-1"], 1, "label '-1' is a number but not a class index"),
        (["0", "09"], 1, "label '09' is a number but not a class index"),
        (["0", "1", "eleven"], 2, "label 'eleven' is a class name, but .* holds '0', a class index"),
        (["0", "2000000000"], 1, "label 2000000000 would make 2000000001 classes for 2 rows"),
    ],
)
def test_text_labels_that_change_meaning_are_refused_naming_the_row(
    cells: list[str], row: int, said: str
) -> None:
    with pytest.raises(DataError, match=rf"^row {row}: {said}"):
        class_indices(cells, lambda r: f"row {r}", text=True)


@pytest.mark.parametrize(
    ("values", "row", "said"),
    [
        ([1, None, 2], 1, "label None is a null"),
        ([1, 2.0, 0], 1, "label 2.0 is a float"),
        ([True, False], 0, "label True is a bool"),
        ([0, "cat"], 1, "label 'cat' is a class name, but .* holds 0, a class index"),
        ([0, float("nan")], 1, "label nan is a null"),
        ([0, 3_000_000_000], 1, "label 3000000000 would make 3000000001 classes for 2 rows"),
    ],
)
def test_python_and_table_labels_are_refused_naming_the_row(values: list[Any], row: int, said: str) -> None:
    with pytest.raises(DataError, match=rf"^row {row}: {said}"):
        class_indices(values, lambda r: f"row {r}")


def test_the_valid_neighbours_keep_their_meaning() -> None:
    assert class_indices(["2", "0", "1"], "f", text=True)[0].tolist() == [2, 0, 1]  # indices stay indices
    assert class_indices([2, 0, 1], "f")[1] == ["0", "1", "2"]
    indices, classes = class_indices(
        ["dog", "cat", "10", "2"], "f", classes=["cat", "dog", "2", "10"], text=True
    )
    assert indices.tolist() == [1, 0, 3, 2] and classes == ["cat", "dog", "2", "10"]  # names given: names
    assert class_indices(["b", "a", "b"], "f")[0].tolist() == [1, 0, 1]
    with pytest.warns(UserWarning, match=r"classes \[10\] have no sample"):  # 11 among 0-9: warned
        indices, classes = class_indices([str(i) for i in range(10)] + ["11"] * 3, "f", text=True)
    assert len(classes) == 12


def test_a_file_list_names_the_file_and_line_of_a_bad_label(tmp_path: Path) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("path,label\n" + "".join(f"{i}.png,{i % 3}\n" for i in range(6)) + "x.png,3.0\n")
    with pytest.raises(
        DataError, match=r"list\.csv', line 8: label '3\.0' is a number but not a class index"
    ):
        FileList(listed)
    listed.write_text("path,label\n" + "".join(f"{i}.png,{i % 3}\n" for i in range(6)) + "x.png,2000000000\n")
    with pytest.raises(DataError, match=r"line 8: label 2000000000 would make 2000000001 classes for 7 rows"):
        FileList(listed)
    with pytest.raises(DataError, match=r"the list of samples, item 1: label None is a null"):
        FileList(samples=[("a.png", 0), ("b.png", None)])


def test_a_hugging_face_label_column_keeps_its_meaning_or_is_refused(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from lightning_aug.data.datasets import HuggingFace

    png = (lambda p: (Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p), Path(p).read_bytes())[1])(
        tmp_path / "x.png"
    )

    def table(labels: list[Any], feature: Any = None) -> str:
        features = (
            datasets.Features({"image": datasets.Image(decode=False), "label": feature}) if feature else None
        )
        images = [{"bytes": png, "path": None}] * len(labels)
        folder = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
        datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).save_to_disk(
            str(folder)
        )
        return str(folder)

    labels = [2, 10, 0, 1, 3, 4, 5, 6, 7, 8, 9, None]  # one null: the column became text before
    with pytest.raises(DataError, match=r"\[train\], row 11: label None is a null"):
        HuggingFace(table(labels))
    with pytest.raises(DataError, match=r"\[train\], row 0: label 0\.0 is a float"):
        HuggingFace(table([0.0, 1.5, 2.0, 1.0]))
    with pytest.raises(DataError, match=r"row 0: label True is a bool"):
        HuggingFace(table([True, False, True, False]))
    hub = HuggingFace(table([0, 1, -1, 1], datasets.ClassLabel(names=["a", "b"])), val_split=0.25)
    refused = []  # the hub's "no label", in whichever split holds row 2
    for split in ("train", "val"):
        try:
            hub(split)
        except DataError as err:
            refused.append(str(err))
    assert len(refused) == 1 and "row 2: label -1 is outside the 2 classes (0..1)" in refused[0]
    with pytest.raises(DataError, match=r"row 1: label 3000000000 would make 3000000001 classes"):
        HuggingFace(table([0, 3_000_000_000, 1, 0]))
    kept = HuggingFace(table([2, 10, 0, 1, 3, 4, 5, 6, 7, 8, 9, 1]), val_split=0.1)  # the valid neighbour
    assert kept.classes == [str(i) for i in range(11)]
    train = kept("train")
    assert all(
        int(train.targets[i]) == [2, 10, 0, 1, 3, 4, 5, 6, 7, 8, 9, 1][train._row(i)]
        for i in range(len(train))
    )


# ---------------------------------------------------------------- one error line


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["fifo", "text"])
def test_bad_data_found_while_training_is_one_data_error_line(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "images"
    write_image_folder(root / "train", {"a": 4, "b": 4}, size=16)
    write_image_folder(root / "val", {"a": 2, "b": 2}, size=16)
    path = root / "train" / "b" / f"9_{bad}.png"
    if bad == "fifo":
        os.mkfifo(path)
    else:
        path.write_text("this is no image")
    result = run_app(
        "train",
        "data=imagefolder",
        f"data.root={root}",
        "augment=none",
        "trainer.max_epochs=1",
        "loader.batch_size=4",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        timeout=120,
    )
    line = one_error_line(result)
    assert (
        line.startswith("lightning-aug-train: data error: cannot decode image file")
        and f"9_{bad}.png" in line
    )


@pytest.mark.slow
def test_bad_data_found_while_predicting_is_one_data_error_line(tmp_path: Path, real_checkpoint: Any) -> None:
    import torch

    torch.save(real_checkpoint, tmp_path / "model.ckpt")
    folder = tmp_path / "new"
    write_image_folder(folder, {"x": 3}, size=64)
    os.mkfifo(folder / "x" / "9_fifo.png")
    common = [f"ckpt_path={tmp_path / 'model.ckpt'}", f"data.predict_root={folder}", "loader.num_workers=0"]
    raised = run_app(
        "predict",
        *common,
        "data.on_bad_image=raise",
        f"hydra.run.dir={tmp_path / 'a'}",
        cwd=tmp_path,
        timeout=120,
    )
    line = one_error_line(raised)
    assert (
        line.startswith("lightning-aug-predict: data error: cannot decode image file")
        and "9_fifo.png" in line
    )
    skipped = run_app("predict", *common, f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path, timeout=120)
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    rows = (tmp_path / "b" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 5 and any(
        "9_fifo.png" in row and row.endswith("unreadable (see the warning)") for row in rows
    )


# ---------------------------------------------------------------- decided on what a thing is


def test_augment_auto_asks_any_factory_for_its_sizes_not_its_name() -> None:
    from lightning_aug.data.source import DatasetFactory
    from lightning_aug.presets import choose

    class Declared(DatasetFactory):  # a built-in-like factory the presets never heard of
        def image_sizes(self, limit: int = 64, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
            return [("a", (48, 48)), ("b", (48, 48))]

        def build(self, split: str) -> None:
            return None

    import helpers

    helpers.Declared = Declared  # importable by its path, as a config names it
    Declared.__module__, Declared.__qualname__ = "helpers", "Declared"
    assert choose({"_target_": "helpers.Declared"}).size == (48, 48)
    assert choose({"_target_": "helpers.Declared"}).preset == "cifar_tv"
    # a factory of one's own that is no DatasetFactory but declares its sizes; a plain function does not
    assert choose({"_target_": "helpers.SizedFactory", "side": 40}).size == (40, 40)
    assert choose({"_target_": "helpers.halve", "_partial_": True}).preset == "none"
    # one that cannot be built says nothing (its own error comes when the app builds it)
    from lightning_aug.presets import said

    choose({"_target_": "lightning_aug.data.datasets.ImageFolder", "root": "/nonexistent/folder"})
    assert said() is None


def test_crops_are_known_by_what_they_are_or_declare() -> None:
    import albumentations as A
    from torchvision.transforms import v2

    from lightning_aug.data.pipeline import Pipeline, gives_fixed_size

    class RandomResizedCrop:  # a look-alike name that does not crop
        size = (32, 32)

        def __call__(self, image: Any) -> Any:
            return image

    class MyCrop(v2.RandomCrop):  # a subclass of a crop
        pass

    class Declares:
        gives_fixed_size = True

        def __call__(self, image: Any) -> Any:
            return image

    assert gives_fixed_size(v2.RandomResizedCrop(32)) and gives_fixed_size(A.CenterCrop(8, 8))
    assert gives_fixed_size(MyCrop(8)) and gives_fixed_size(Declares())
    assert gives_fixed_size(v2.Resize((8, 8))) and not gives_fixed_size(v2.Resize(8))  # shorter side only
    assert not gives_fixed_size(RandomResizedCrop()) and not gives_fixed_size(A.RandomCropFromBorders())
    assert Pipeline([RandomResizedCrop()], "torchvision").leading_resized_crop is None
    assert Pipeline([v2.RandomResizedCrop(16)], "torchvision").leading_resized_crop is not None


# ---------------------------------------------------------------- one decode site


@pytest.mark.parametrize("pipeline", ["none", "tv_crop", "alb_crop", "eval"])
def test_the_jpeg_header_is_parsed_once_per_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipeline: str
) -> None:
    """Its size check, the crop run while decoding and the decoder share one parse (it was three)."""
    import albumentations as A
    from torchvision.transforms import v2

    import lightning_aug.data.decoders as decoders
    from lightning_aug.data.datasets import TransformedDataset
    from lightning_aug.data.pipeline import Pipeline
    from lightning_aug.data.transforms import RandomResizedCrop

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "train" / name).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "train" / name / f"{i}.jpg", quality=90)
    transforms, backend = {
        "none": ([], "torchvision"),
        "tv_crop": ([v2.RandomResizedCrop(24)], "torchvision"),
        "alb_crop": ([RandomResizedCrop(size=(24, 24))], "albumentations"),
        "eval": ([A.SmallestMaxSize(max_size=32), A.CenterCrop(24, 24)], "albumentations"),
    }[pipeline]
    source = ImageFolder(tmp_path, decoder="cv2", val_split=0.2)("train")
    data = TransformedDataset(source, Pipeline(transforms, backend), seed=0)
    assert data.fused == (pipeline != "none")
    calls: list[int] = []
    real = decoders.jpeg_header
    monkeypatch.setattr(decoders, "jpeg_header", lambda raw: calls.append(1) or real(raw))
    for i in range(len(data)):
        data[i]
    assert len(calls) == len(data)  # once per sample
