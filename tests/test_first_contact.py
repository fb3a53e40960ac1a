"""A newcomer's first ten minutes: the README's photo-folder command, folder errors that say what is
wrong, configuration errors before the heavy imports, one loss key per meaning."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import BIN, run_command
from PIL import Image

from lightning_aug.data.datasets import ImageFolder

README = Path(__file__).resolve().parents[1] / "README.md"
# the README and the docs site's pages: every command they show runs or composes here
DOCS = [README, *sorted((README.parent / "docs").glob("**/*.md"))]


def _doc_lines() -> list[str]:
    return [line for page in DOCS for line in page.read_text().splitlines()]


def _readme_command(marker: str) -> list[str]:
    """The README command line holding ``marker``, without its comment."""
    line = next(line for line in _doc_lines() if marker in line)
    return shlex.split(line.split("#", 1)[0])


def _photos(root: Path, per_class: int = 50) -> None:
    """JPEGs of mixed sizes (as photos come), two classes, no train/ or val/."""
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            h, w = int(rng.integers(160, 360)), int(rng.integers(160, 480))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.jpg", quality=85)


@pytest.mark.slow
def test_the_readme_photo_folder_command_trains(tmp_path: Path) -> None:
    words = _readme_command("data.root=/path/to/photos")
    assert words[0] == "lightning-aug-train" and "data.val_split=0.2" in words
    _photos(tmp_path / "photos")  # 80 to train on: more than the default batch of 64
    args = [w.replace("/path/to/photos", str(tmp_path / "photos")) for w in words[1:]]
    # as written, for one epoch (the trainer's five add nothing to what is checked)
    run = [str(BIN / words[0]), *args, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_command(run, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val/acc" in json.loads((tmp_path / "run" / "metrics.json").read_text())


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "image folder root '{root}' does not exist (data.root)"),
        ("file", "image folder root '{root}' is not a directory"),
        ("empty", "image folder root '{root}' is empty: expected <class>/<image>, or train/<class>/<image>"),
        ("no class folders", "image folder '{root}' has no class subfolders"),
    ],
)
def test_folder_errors_say_what_is_wrong(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "data"
    val_split = None
    if layout == "file":
        root.write_text("not a folder")
    elif layout == "empty":
        root.mkdir()
    elif layout == "no class folders":
        root.mkdir()
        Image.new("RGB", (8, 8)).save(root / "loose.png")
        val_split = 0.5
    with pytest.raises(FileNotFoundError) as raised:
        ImageFolder(root, val_split=val_split)("train")
    assert message.format(root=root) in str(raised.value)


def test_a_config_error_comes_before_torch_and_lightning_are_imported(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.argv = ['lightning-aug-train', 'data=imagefolder']\n"
        "from lightning_aug.cli.train import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as stop:\n"
        "    heavy = sorted(m for m in ('torch', 'lightning', 'albumentations', 'cv2') if m in sys.modules)\n"
        "    print(stop.code, heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.stdout.strip() == "2 []", done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    expected = "lightning-aug-train: config error: Missing mandatory value: root full_key: data.root"
    assert len(lines) == 1 and lines[0].startswith(expected), lines


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("augment=nope", "Could not find 'augment/nope' Available options in 'augment': auto cifar_alb"),
        (
            "loader.batchsize=3",
            "unknown key loader.batchsize: did you mean loader.batch_size? (loader.batch_size=3)",
        ),
        (
            "trainer.max_epoch=2",
            "unknown key trainer.max_epoch: did you mean trainer.max_epochs? (trainer.max_epochs=2)",
        ),
        (
            "+trainer.max_epoch=2",
            "unknown argument(s) ['max_epoch'] for lightning.pytorch.Trainer (did you mean max_epochs?)",
        ),
    ],
)
def test_hydra_errors_are_one_line_and_exit_2(tmp_path: Path, override: str, message: str) -> None:
    result = run_command([str(BIN / "lightning-aug-train"), override], cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def _readme_commands() -> list[list[str]]:
    """Every command of the bash blocks of the README and the docs, continuation lines joined,
    comments dropped."""
    commands, block = [], None
    for line in _doc_lines():
        if line.strip().startswith("```"):
            block = [] if line.strip() == "```bash" and block is None else None
            continue
        if block is not None:
            block.append(line.strip())
            if not line.rstrip().endswith("\\"):
                text = " ".join(part.rstrip("\\").strip() for part in block).split("  #")[0]
                block = []
                if text.strip() and not text.lstrip().startswith("#"):
                    commands.append(shlex.split(text, comments=True))
    return commands


def test_every_readme_app_command_composes(tmp_path: Path) -> None:
    """Each Hydra app command of the README, as written, composes (``--cfg job``: Hydra checks every
    override without running); each LightningCLI command parses (``--print_config``). The ones that
    train, bench or prepare for minutes are run by their own tests with smaller data."""
    checked = 0
    for words in _readme_commands():
        if words[0].startswith("lightning-aug-") and "my_configs" not in words:  # a placeholder folder
            args = words[1:]
            if "-m" in args:  # a sweep: Hydra composes one job with --cfg; each choice in turn
                args = [a.split(",")[0] if "=" in a else a for a in args if a != "-m"]
            args = [*args, "--cfg", "job"] if "--cfg" not in args else args
            result = run_command([str(BIN / words[0]), *args], cwd=tmp_path)
        elif words[:3] == ["python", "-m", "lightning_aug.cli.lightning"]:
            pytest.importorskip("jsonargparse")
            args = [w.replace("examples/", str(README.parent / "examples") + "/") for w in words[3:]]
            result = run_command(
                [sys.executable, "-m", "lightning_aug.cli.lightning", *args, "--print_config"], cwd=tmp_path
            )
        else:
            continue
        assert result.returncode == 0, f"{' '.join(words)}: {result.stderr[-1500:]}"
        checked += 1
    assert checked >= 15


# the docstring commands that run in seconds: run as written; the others are checked as below
QUICK = {
    "python -m lightning_aug.bench.memory --samples 100000 --reads 2000",
    "python -m lightning_aug.bench.launches",
}


def _docstring_commands() -> list[list[str]]:
    """The command lines of the apps' and benches' module docstrings (continuations joined)."""
    import ast

    package = README.parent / "lightning_aug"
    commands = []
    for path in sorted([*package.glob("cli/*.py"), *package.glob("bench/*.py")]):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        pending = ""
        for line in doc.splitlines():
            text = pending + " " + line.strip() if pending else line.strip()
            if text.endswith("\\"):
                pending = text[:-1].strip()
                continue
            pending = ""
            if text.startswith(("lightning-aug-", "python -m lightning_aug")):
                commands.append(shlex.split(text, comments=True))
    return commands


def test_every_docstring_command_runs_or_composes(tmp_path: Path) -> None:
    """The quick ones run as written; each app command composes (``--cfg job``); each LightningCLI one
    parses (``--print_config``); each other module answers ``--help`` (its options exist)."""
    checked = 0
    for words in _docstring_commands():
        line = " ".join(words)
        if line in QUICK:
            args = [sys.executable, *words[1:]]
        elif words[0].startswith("lightning-aug-"):
            args = [str(BIN / words[0]), *(a for a in words[1:] if a != "-m"), "--cfg", "job"]
            args = [a.split(",")[0] if "=" in a else a for a in args]  # a sweep: its first job
            if "--cfg" in words:
                args = [str(BIN / words[0]), *words[1:]]
        elif words[2] == "lightning_aug.cli.lightning":
            pytest.importorskip("jsonargparse")
            rest = [w.replace("examples/", str(README.parent / "examples") + "/") for w in words[3:]]
            args = [
                sys.executable,
                "-m",
                words[2],
                *rest,
                *([] if "--print_config" in rest else ["--print_config"]),
            ]
        elif words[2] == "lightning_aug.cli.train":  # python -m lightning_aug.cli.train --cfg job
            args = [sys.executable, *words[1:]]
        else:
            args = [sys.executable, "-m", words[2], "--help"]
        result = run_command(args, cwd=tmp_path)
        assert result.returncode == 0, f"{line}: {result.stderr[-1500:]}"
        checked += 1
    assert checked >= 20


def test_the_readme_is_short_and_its_links_lead_somewhere() -> None:
    """The README is read in five minutes (at most 250 lines); every page it links to exists (the docs
    site's own links are checked by its strict build in CI)."""
    import re

    text = README.read_text()
    assert len(text.splitlines()) <= 250
    targets = [t for t in re.findall(r"\]\(([^)#]+)\)", text) if "://" not in t]
    assert len(targets) >= 8 and all((README.parent / t).is_file() for t in targets), targets
