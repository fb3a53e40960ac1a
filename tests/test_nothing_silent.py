"""Every setting a user gives changes what runs or is refused in one line naming where it belongs
(issue 31's cases; each refusal beside its valid neighbour)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import compose_config, one_error_line, run_app


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("+sampler=balanced", "sampler is a config group: sampler=balanced (without +) chooses its option"),
        ("data.num_aug_repeats=3", "num_aug_repeats belongs to datamodule: datamodule.num_aug_repeats=3"),
        (
            "+num_aug_repeats=3",
            "adds a top-level key num_aug_repeats that nothing reads: did you mean "
            "datamodule.num_aug_repeats=3?",
        ),
        ("+epochs=3", "+epochs=3 adds a top-level key epochs that nothing reads"),
    ],
)
def test_a_key_in_the_wrong_place_is_refused_naming_the_right_one(
    tmp_path: Path, override: str, said: str
) -> None:
    line = one_error_line(run_app("train", override, f"hydra.run.dir={tmp_path}", cwd=tmp_path))
    assert line.startswith("lightning-aug-train: config error: ") and said in line, line


def test_the_sampler_group_sets_what_the_datamodule_runs() -> None:
    """The valid neighbours: sampler=... as a group, the datamodule keys themselves."""
    for overrides, expected in [
        ([], ("random", 1)),
        (["sampler=balanced"], ("balanced", 1)),
        (["sampler=repeated"], ("random", 3)),
        (["datamodule.sampler=balanced", "datamodule.num_aug_repeats=2"], ("balanced", 2)),
    ]:
        cfg = compose_config("train", overrides)
        assert (cfg.datamodule.sampler, cfg.datamodule.num_aug_repeats) == expected, overrides


def test_repeated_augmentation_keeps_timms_epoch_length_unless_asked() -> None:
    """num_aug_repeats=3 made the epoch 3x longer without a word; timm's RepeatAugSampler (DeiT's
    recipe) keeps it at the dataset's length, and schedules are written for that."""
    from lightning_aug.data.sampling import EpochSampler, permutation, repeated

    def order(epoch: int) -> object:
        return repeated(permutation(90, 0, epoch), 3)

    for world in (1, 2):
        parts = [EpochSampler(270, order, world, r, strided=True, limit=90) for r in range(world)]
        keys = [(k.sample, k.repeat) for p in parts for k in p]
        assert len(keys) == 90 and len(set(keys)) == 90  # the dataset's length, no read twice
        assert {r for _, r in keys} == {0, 1, 2}  # the copies differ in their repeat (augmentation)
        full = [EpochSampler(270, order, world, r, strided=True) for r in range(world)]
        assert sum(len(p) for p in full) == 270  # repeated_epoch="repeats": 3x


def test_the_datamodule_epoch_follows_repeated_epoch(small_shapes: object) -> None:
    from lightning_aug import AugDataModule, LoaderSettings

    loader = LoaderSettings(batch_size=8, num_workers=0, drop_last=False)
    lengths = {}
    for mode in ("dataset", "repeats"):
        dm = AugDataModule(small_shapes, loader=loader, num_aug_repeats=3, repeated_epoch=mode, seed=0)  # type: ignore[arg-type]
        dm.setup("fit")
        lengths[mode] = len(dm.train_dataloader())
    assert lengths == {"dataset": 8, "repeats": 24}  # 64 training images, batches of 8
    with pytest.raises(ValueError, match="repeated_epoch must be 'dataset' or 'repeats', got 'x3'"):
        AugDataModule(small_shapes, repeated_epoch="x3")  # type: ignore[arg-type]


def test_predict_without_a_predict_split_names_predict_root(tmp_path: Path) -> None:
    from helpers import write_image_folder
    from lightning.pytorch import Trainer

    from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings
    from lightning_aug.data.datasets import ImageFolder

    for split in ("train", "val"):
        write_image_folder(tmp_path / split, {"a": 2, "b": 2}, size=16)
    dm = AugDataModule(ImageFolder(tmp_path), loader=LoaderSettings(batch_size=2, num_workers=0), seed=0)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    with pytest.raises(
        ValueError, match=r"has no 'predict' split .*predict_root=\.\.\.\) \(data\.predict_root"
    ):
        trainer.predict(ImageClassifier(num_classes=2, width=8), datamodule=dm)
    dm = AugDataModule(
        ImageFolder(tmp_path, predict_root=tmp_path / "val"),
        loader=LoaderSettings(batch_size=2, num_workers=0),
        seed=0,
    )
    assert len(trainer.predict(ImageClassifier(num_classes=2, width=8), datamodule=dm)) == 2  # the neighbour


def test_a_mistyped_integer_label_is_warned_and_refused_when_num_classes_is_given(tmp_path: Path) -> None:
    from lightning_aug import AugDataModule
    from lightning_aug.data.datasets import FileList
    from lightning_aug.errors import DataError

    rows = [(f"{i}.png", str(i % 10), "train") for i in range(30)] + [
        ("x.png", "11", "train"),
        ("v.png", "0", "val"),
    ]
    listed = tmp_path / "list.csv"
    listed.write_text("path,label,split\n" + "".join(",".join(r) + "\n" for r in rows))
    with pytest.warns(
        UserWarning,
        match=r"integer labels go up to 11, and classes \[10\] have no sample .* above 10 are in: "
        r"file list '.*list\.csv', line 32 \(11\)\. ",
    ):
        factory = FileList(listed, split_column="split", on_bad_image="skip")  # (no image files needed)
    assert factory.num_classes == 12
    with pytest.raises(
        DataError, match=r"num_classes=10 \(datamodule\.num_classes\), but the train data has 12 classes"
    ):
        AugDataModule(factory, num_classes=10).setup("fit")


def test_the_class_list_and_its_order_are_logged_and_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A TSV of class names is sorted: the log, hparams.yaml and the checkpoint say the list and how it
    was ordered; integer labels and classes given say theirs."""
    import logging

    import torch
    import yaml
    from helpers import tiny_trainer, write_image_folder
    from lightning.pytorch.loggers import CSVLogger

    from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings
    from lightning_aug.data.datasets import FileList

    write_image_folder(tmp_path / "images", {"zebra": 2, "cat": 2, "mole": 2}, size=8)
    rows = [f"{p.relative_to(tmp_path)}\t{p.parent.name}\n" for p in sorted(tmp_path.rglob("*.png"))]
    (tmp_path / "list.tsv").write_text("path\tlabel\n" + "".join(rows))
    dm = AugDataModule(FileList(tmp_path / "list.tsv"), loader=LoaderSettings(batch_size=2, num_workers=0))
    trainer = tiny_trainer(max_steps=1, logger=CSVLogger(tmp_path / "logs"), default_root_dir=tmp_path)
    with caplog.at_level(logging.INFO):
        trainer.fit(ImageClassifier(num_classes=3, width=4), dm)
    said = "3 classes (class names sorted (give classes=[...] for another order)): [cat, mole, zebra]"
    assert said in caplog.text
    hparams = yaml.safe_load(next((tmp_path / "logs").rglob("hparams.yaml")).read_text())
    assert hparams["data_classes"] == ["cat", "mole", "zebra"]
    assert hparams["data_class_order"].startswith("class names sorted")
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)["AugDataModule"]
    assert state["classes"] == ["cat", "mole", "zebra"] and state["class_order"] == "sorted"
    given = FileList(tmp_path / "list.tsv", classes=["zebra", "cat", "mole"])
    assert (given.classes, given.class_order) == (["zebra", "cat", "mole"], "given")
    (tmp_path / "ints.csv").write_text("path,label\na.png,1\nb.png,0\n")
    assert FileList(tmp_path / "ints.csv").class_order == "indices"


def test_paths_relative_to_the_working_folder_name_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import write_image_folder

    from lightning_aug.data.datasets import FileList
    from lightning_aug.errors import DataError

    write_image_folder(tmp_path / "images", {"a": 2, "b": 2}, size=16)
    (tmp_path / "lists").mkdir()
    files = sorted((tmp_path / "images").rglob("*.png"))
    listed = tmp_path / "lists" / "train.csv"  # paths written relative to the working folder, not the list
    listed.write_text(
        "path,label\n" + "".join(f"images/{p.parent.name}/{p.name},{p.parent.name}\n" for p in files)
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"of them are there relative to the working folder .*data\.root="):
        FileList(listed, val_split=0.5)("train")
    assert len(FileList(listed, val_split=0.5, root=tmp_path)("train")) == 2  # the neighbour: root given


def _multi_label_list(tmp_path: Path) -> Path:
    from helpers import write_image_folder

    for split in ("train", "val"):
        write_image_folder(tmp_path / "images" / split, {"a": 4, "b": 4, "c": 4}, size=16)
    listed = tmp_path / "multi.csv"
    rows = [
        f"{p},{p.parent.name} c,{p.parent.parent.name}" for p in sorted((tmp_path / "images").rglob("*.png"))
    ]
    listed.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    return listed


def test_multi_label_is_one_switch_that_the_model_and_mixup_follow(tmp_path: Path) -> None:
    """data.multi_label alone makes the model train binary cross-entropy and mixup smooth towards 0.5;
    a model or mixing callback set otherwise is refused, in the apps and in Python."""
    from helpers import tiny_trainer

    from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings, MixupCallback
    from lightning_aug.cli.common import build_callbacks, build_datamodule, build_model

    listed = _multi_label_list(tmp_path)
    data = [f"data.file={listed}", "data.split_column=split", "data.multi_label=true", "augment=none"]
    cfg = compose_config("train", ["data=filelist", *data, "mixup=mixup"])
    datamodule = build_datamodule(cfg)
    assert datamodule.multi_label and build_model(cfg, datamodule).multi_label
    assert [c.multi_label for c in build_callbacks(cfg, datamodule) if isinstance(c, MixupCallback)] == [True]
    single = compose_config("train", [])  # the neighbour: single-label data, both follow it
    assert not build_model(single, build_datamodule(single)).multi_label
    contradicted = compose_config("train", ["data=filelist", *data, "model.multi_label=false"])
    with pytest.raises(ValueError, match=r"model\.multi_label=false, but the data is multi-label"):
        build_model(contradicted, build_datamodule(contradicted))
    line = one_error_line(
        run_app(
            "train",
            "data=filelist",
            *data,
            "model.multi_label=false",
            f"hydra.run.dir={tmp_path / 'r'}",
            cwd=tmp_path,
        )
    )
    assert "model.multi_label=false, but the data is multi-label" in line
    from lightning_aug.data.datasets import FileList

    dm = AugDataModule(
        FileList(listed, split_column="split", multi_label=True),
        loader=LoaderSettings(batch_size=4, num_workers=0),
    )
    with pytest.raises(ValueError, match=r"the data is multi-label .*ImageClassifier\(multi_label=False\)"):
        tiny_trainer(max_steps=1).fit(ImageClassifier(num_classes=3, width=4), dm)


def test_the_inputs_the_docs_promise_are_read(tmp_path: Path) -> None:
    """A JSON-lines file list, one parquet file, a Dataset in memory: each gives the rows of its
    CSV / folder neighbour, with the same labels."""
    import json

    from helpers import write_file_list, write_hf_dataset, write_image_folder

    from lightning_aug.data.datasets import FileList, HuggingFace
    from lightning_aug.errors import DataError

    for split in ("train", "val"):
        write_image_folder(tmp_path / "images" / split, {"a": 3, "b": 3}, size=16)
    csv_list = FileList(write_file_list(tmp_path / "images", tmp_path / "list.csv"), split_column="split")
    rows = [
        {"path": str(p.relative_to(tmp_path)), "label": p.parent.name, "split": p.parent.parent.name}
        for p in sorted((tmp_path / "images").rglob("*.png"))
    ]
    (tmp_path / "list.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    json_list = FileList(tmp_path / "list.jsonl", split_column="split")
    a, b = csv_list("train"), json_list("train")
    assert (
        a is not None
        and b is not None
        and a.files() == b.files()
        and a.targets.tolist() == b.targets.tolist()
    )
    (tmp_path / "bad.jsonl").write_text('{"path": "x.png", "label": 0}\n{"path": "y.png", "label": 1.5}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl', line 2: label 1\.5 is a float"):
        FileList(tmp_path / "bad.jsonl")
    datasets = pytest.importorskip("datasets")
    folder = write_hf_dataset(tmp_path / "images", tmp_path / "parquet", parquet=True)
    single = HuggingFace(str(next(folder.glob("train-*.parquet"))), val_split=0.5)
    assert single.classes == ["a", "b"] and len(single("train")) + len(single("val")) == 6
    memory = datasets.load_from_disk(str(write_hf_dataset(tmp_path / "images", tmp_path / "saved")))
    in_memory = HuggingFace(memory)
    assert in_memory.classes == ["a", "b"] and len(in_memory("train")) == 6 and len(in_memory("val")) == 6
    assert len(HuggingFace(memory["train"], val_split=0.5)("val")) == 3  # one Dataset: its train split


def test_progressive_resizing_says_its_sizes(small_shapes: object, caplog: pytest.LogCaptureFixture) -> None:
    """An end size other than the eval size warns once; the log says each epoch's size."""
    import logging
    import warnings

    from helpers import tiny_trainer
    from torchvision.transforms import v2

    from lightning_aug import AugDataModule, ImageClassifier, LoaderSettings, ProgressiveResize

    ramp = ProgressiveResize(start_size=16, end_size=32, end_epoch=1, multiple=16)

    def dm(eval_side: int) -> AugDataModule:
        return AugDataModule(
            small_shapes,  # type: ignore[arg-type]
            train_transforms=[v2.RandomResizedCrop(32)],
            eval_transforms=[v2.Resize(eval_side), v2.CenterCrop(eval_side)],
            loader=LoaderSettings(batch_size=16, num_workers=0),
            progressive_resize=ramp,
            seed=0,
        )

    with pytest.warns(
        UserWarning, match=r"ends training at 32x32, but the eval pipeline gives 40x40 .*end_size=40"
    ):
        dm(40)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        matched = dm(32)  # the neighbour: the same size, no word
    with caplog.at_level(logging.INFO):
        tiny_trainer(max_epochs=2, limit_val_batches=0).fit(ImageClassifier(4, width=8), matched)
    said = [r.getMessage() for r in caplog.records if "progressive_resize: epoch" in r.getMessage()]
    assert said == [
        "AugDataModule: progressive_resize: epoch 0 trains at 16x16",
        "AugDataModule: progressive_resize: epoch 1 trains at 32x32",
    ]


@pytest.mark.slow
def test_predict_takes_new_images_of_any_size(tmp_path: Path, real_checkpoint: dict) -> None:
    """A checkpoint whose eval pipeline has no resize, new images of two sizes: one line naming
    predict.resize (it was a traceback advising an augment preset); with it, every image predicted."""
    import numpy as np
    import torch
    from PIL import Image

    torch.save(real_checkpoint, tmp_path / "model.ckpt")  # trained at 64x64, no transforms at all
    folder = tmp_path / "new"
    folder.mkdir()
    for i, (h, w) in enumerate([(64, 64), (65, 70), (64, 64)]):
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(folder / f"{i}.jpg")
    common = [f"ckpt_path={tmp_path / 'model.ckpt'}", f"data.predict_root={folder}", "loader.num_workers=0"]
    line = one_error_line(run_app("predict", *common, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path))
    assert "come in several sizes" in line and "predict.resize=" in line and "augment=" not in line
    result = run_app("predict", *common, "predict.resize=64", f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = (tmp_path / "b" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 4 and all(row.endswith(",") for row in rows[1:])  # no error cell


def test_the_apps_import_a_module_of_the_current_folder(tmp_path: Path) -> None:
    """``model=custom model._target_=my_models.Tiny`` from the folder that holds ``my_models.py``
    trains, as with ``python -m``; from another folder it is refused in one line saying where modules
    are imported from."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my_models.py").write_text(
        "from lightning_aug import ImageClassifier\n\n\n"
        "class Tiny(ImageClassifier):\n"
        "    def __init__(self, num_classes: int) -> None:\n"
        "        super().__init__(num_classes=num_classes, width=4)\n"
    )
    args = [
        "model=custom",
        "model._target_=my_models.Tiny",
        "debug=fdr",
        "data.num_classes=2",
        "data.train_per_class=4",
        "data.val_per_class=2",
        "data.test_per_class=0",
        "data.image_size=16",
        "augment=none",
        "loader.num_workers=0",
        "loader.persistent_workers=false",
        "loader.batch_size=4",
        f"data.root={tmp_path / 'cache'}",
    ]
    trained = run_app("train", *args, f"hydra.run.dir={tmp_path / 'run'}", cwd=mine)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.json").exists()
    line = one_error_line(run_app("train", *args, f"hydra.run.dir={tmp_path / 'elsewhere'}", cwd=tmp_path))
    assert "No module named 'my_models'" in line and "imported from the current folder" in line, line


def test_a_leading_crop_larger_than_the_images_is_refused_at_setup_and_its_neighbours_run(
    tmp_path: Path, digits: Path
) -> None:
    """``augment=cifar_tv`` crops 32x32 (padded by 4) whatever the folder holds: on the 16x16 digits it
    was a worker's traceback, now one line at setup naming a file, its size and what fits. The crops
    that fit (padding counted), pad by themselves or pad when needed still run."""
    import albumentations as A
    from helpers import DIGITS_SIZE, write_image_folder
    from torchvision.transforms import v2

    from lightning_aug import AugDataModule, LoaderSettings
    from lightning_aug.data.datasets import ImageFolder
    from lightning_aug.errors import SettingError

    line = one_error_line(
        run_app("train", "data=imagefolder", f"data.root={digits}", "augment=cifar_tv", cwd=tmp_path)
    )
    assert f"is {DIGITS_SIZE}x{DIGITS_SIZE} (padded: 24x24)" in line and "takes 32x32 crops" in line
    assert "augment.train_transforms.crop.size=16" in line
    write_image_folder(tmp_path / "small", {"a": 4, "b": 4}, size=20)

    def setup(crop: object, backend: str = "torchvision") -> None:
        AugDataModule(
            ImageFolder(tmp_path / "small", val_split=0.5),
            train_transforms=[crop],
            eval_transforms=[],
            backend=backend,  # type: ignore[arg-type]
            loader=LoaderSettings(batch_size=2, num_workers=0),
            seed=0,
        ).setup("fit")

    with pytest.raises(
        SettingError, match=r"RandomCrop takes 32x32 crops, but .*\.png is 20x20 \(padded: 28x28\)"
    ):
        setup(v2.RandomCrop(32, padding=4))
    with pytest.raises(SettingError, match=r"RandomCrop takes 24x24 crops, but .*\.png is 20x20: "):
        setup(A.RandomCrop(24, 24), "albumentations")
    for fits, backend in (
        (v2.RandomCrop(28, padding=4), "torchvision"),
        (v2.RandomCrop(32, pad_if_needed=True), "torchvision"),
        (v2.CenterCrop(32), "torchvision"),
        (A.RandomCrop(20, 20), "albumentations"),
        (A.RandomCrop(32, 32, pad_if_needed=True), "albumentations"),
    ):
        setup(fits, backend)
