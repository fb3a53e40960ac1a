"""One error style in every app (issue 33): what a user can fix is one line on stderr, exit 2, found
before torch is imported where it needs no data (a missing folder, file or checkpoint), and also
where it is found while running (a dataset to download, a split smaller than a batch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import one_error_line, run_app

EARLY = (
    "import sys\n"
    "sys.argv = ['lightning-aug-{app}', *{args!r}]\n"
    "from lightning_aug.cli.{app} import main\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as stop:\n"
    "    heavy = sorted(m for m in ('torch', 'lightning', 'albumentations', 'cv2') if m in sys.modules)\n"
    "    print(stop.code, heavy)\n"
)


@pytest.mark.parametrize(
    ("app", "args", "said"),
    [
        (
            "train",
            ["data=imagefolder", "data.root={tmp}/nope"],
            "image folder root '{tmp}/nope' does not exist (data.root)",
        ),
        (
            "train",
            ["data=filelist", "data.file={tmp}/nope.csv"],
            "file list '{tmp}/nope.csv' does not exist (data.file)",
        ),
        ("train", ["ckpt_path={tmp}/last.ckpt"], "ckpt_path '{tmp}/last.ckpt' does not exist"),
        (
            "predict",
            ["ckpt_path={tmp}/last.ckpt", "data.predict_root={tmp}"],
            "ckpt_path '{tmp}/last.ckpt' does not exist",
        ),
        (
            "predict",
            ["ckpt_path={tmp}", "data.predict_root={tmp}/new"],
            "predict folder '{tmp}/new' does not exist (data.predict_root)",
        ),
        (
            "preview",
            ["data=imagefolder", "data.root={tmp}/nope"],
            "image folder root '{tmp}/nope' does not exist",
        ),
    ],
)
def test_a_missing_path_is_one_line_before_torch_is_imported(
    tmp_path: Path, app: str, args: list[str], said: str
) -> None:
    script = EARLY.format(app=app, args=[a.format(tmp=tmp_path) for a in args])
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.stdout.strip() == "2 []", done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"config error: {said.format(tmp=tmp_path)}" in lines[0], lines


def test_the_neighbours_of_a_missing_path_run(tmp_path: Path) -> None:
    """An existing folder, a URL (read where it is used) and no checkpoint pass the early check."""
    from hydra import compose, initialize_config_module

    from lightning_aug.cli import _missing_path

    with initialize_config_module(config_module="lightning_aug.conf", version_base="1.3"):
        for overrides in (
            ["data=imagefolder", f"data.root={tmp_path}"],
            ["data=filelist", "data.file=s3://bucket/labels.csv"],
            [f"ckpt_path={tmp_path}"],
            [],
        ):
            assert _missing_path(compose("train", overrides=overrides)) is None, overrides


def test_a_dataset_to_download_is_one_line_naming_the_key(tmp_path: Path) -> None:
    line = one_error_line(
        run_app(
            "train",
            "experiment=cifar10_resnet18",
            "trainer=cpu",
            f"data.root={tmp_path / 'cifar'}",
            f"hydra.run.dir={tmp_path / 'run'}",
            cwd=tmp_path,
        )
    )
    assert (
        line.startswith("lightning-aug-train: data error: CIFAR10 not found") and "data.download=true" in line
    )


def test_a_split_smaller_than_a_batch_is_one_line_naming_the_keys(tmp_path: Path) -> None:
    args = ["data.num_classes=2", "data.train_per_class=2", "data.val_per_class=1", "data.test_per_class=0"]
    result = run_app(
        "train", *args, f"data.root={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    line = one_error_line(result)
    assert line.startswith("lightning-aug-train: config error: the train split has 4 samples, fewer than")
    assert "loader.batch_size" in line and "loader.drop_last=false" in line


def test_a_file_lists_held_out_split_is_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The apps build the factory twice (augment=auto reads its image sizes first): one line, not two."""
    import logging

    from lightning_aug.data.datasets import FileList

    (tmp_path / "list.csv").write_text("path,label\n" + "".join(f"{i}.png,{i % 2}\n" for i in range(20)))
    with caplog.at_level(logging.INFO):
        FileList(tmp_path / "list.csv", on_bad_image="skip")
        FileList(tmp_path / "list.csv", on_bad_image="skip")
        FileList(tmp_path / "list.csv", on_bad_image="skip", seed=1)  # another split: said
    said = [r.getMessage() for r in caplog.records if "has no split column" in r.getMessage()]
    assert len(said) == 2 and "seed 0" in said[0] and "seed 1" in said[1]


OFFLINE = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}


def test_a_dataset_download_without_network_is_one_error_saying_how_to_do_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision's download fails with a URLError (91 lines from the app before); here a closed port
    stands for no network."""
    import torchvision

    from lightning_aug.data.datasets import CIFAR10
    from lightning_aug.errors import DownloadError

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    with pytest.raises(
        DownloadError, match=r"cannot download CIFAR10 from http://127\.0\.0\.1:9/.*URLError.*data\.root"
    ):
        CIFAR10(tmp_path / "cifar", download=True).prepare()
    with pytest.raises(FileNotFoundError, match="data.download=true"):  # the neighbour: no download asked
        CIFAR10(tmp_path / "cifar", download=False).prepare()


def test_pretrained_weights_without_network_are_one_line_naming_the_way_out(tmp_path: Path) -> None:
    args = ["model=resnet18", "model.pretrained=true", "debug=fdr", f"hydra.run.dir={tmp_path / 'run'}"]
    line = one_error_line(
        run_app("train", *args, cwd=tmp_path, TORCH_HOME=str(tmp_path / "torch"), **OFFLINE)
    )
    assert line.startswith(
        "lightning-aug-train: download error: cannot download the pretrained weights of resnet18"
    )
    assert "model.pretrained=false" in line and "$TORCH_HOME" in line


def test_timm_pretrained_weights_without_network_are_one_line_without_the_hubs_retries(
    tmp_path: Path,
) -> None:
    """huggingface_hub retried a refused connection for about a minute, logging each try, before the
    error: now one request finds the Hub unreachable (the weights not cached), and the app says so in
    one line, warnings on (albumentations' update check is off in the apps)."""
    pytest.importorskip("timm")
    args = ["model=timm", "model.name=resnet18", "model.pretrained=true", "debug=fdr"]
    result = run_app(
        "train",
        *args,
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        HF_HOME=str(tmp_path / "hf"),
        PYTHONWARNINGS="default",
        **OFFLINE,
    )
    line = one_error_line(result)
    assert line.startswith("lightning-aug-train: download error: cannot download timm's pretrained weights")
    assert "huggingface.co cannot be reached" in line and "model.pretrained=false" in line
