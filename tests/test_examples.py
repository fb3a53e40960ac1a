"""Every example runs as written (in a subprocess, from its documented directory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BIN, run_command

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = run_command(args, cwd=cwd, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_plain_python_example() -> None:
    result = run([sys.executable, str(EXAMPLES / "plain_python.py")], cwd=EXAMPLES)
    said = next(line for line in result.stdout.splitlines() if line.startswith("test/acc "))
    assert float(said.split()[1]) > 0.3, said  # the number it states: well above chance (0.1)


@pytest.mark.slow
def test_hydra_recipe_with_own_experiment(tmp_path: Path) -> None:
    run(
        [
            str(BIN / "lightning-aug-train"),
            "--config-dir",
            "examples/hydra_recipe",
            "experiment=my_recipe",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=EXAMPLES.parent,
    )
    config = (tmp_path / ".hydra" / "config.yaml").read_text()
    assert "albumentations.Pad" in config and "MixupCallback" in config
    assert json.loads((tmp_path / "metrics.json").read_text())["val/acc"] >= 0


@pytest.mark.slow
def test_custom_dataset_through_target(tmp_path: Path) -> None:
    """The example README's command, as written (the run folder aside)."""
    folder = EXAMPLES / "custom_dataset"
    run(
        [
            str(BIN / "lightning-aug-train"),
            "--config-dir",
            ".",
            "data=my_data",
            "augment=cifar_tv",
            "trainer.max_epochs=2",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=folder,
        PYTHONPATH=str(folder),
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["val/acc"] > 0.75  # two easy classes: horizontal vs vertical gradients


@pytest.mark.slow
def test_the_custom_dataset_docstring_command_runs(tmp_path: Path) -> None:
    """The command in my_dataset.py's docstring, as written (the run folder aside)."""
    import ast
    import shlex

    folder = EXAMPLES / "custom_dataset"
    doc = ast.get_docstring(ast.parse((folder / "my_dataset.py").read_text())) or ""
    line = next(line for line in doc.splitlines() if "lightning-aug-train" in line)
    words = shlex.split(line)
    env = dict(word.split("=", 1) for word in words if word.startswith("PYTHONPATH="))
    args = [word for word in words if not word.startswith("PYTHONPATH=")]
    assert args[0] == "lightning-aug-train" and env == {"PYTHONPATH": "."}
    run([str(BIN / args[0]), *args[1:], f"hydra.run.dir={tmp_path}"], cwd=folder, PYTHONPATH=str(folder))
    assert json.loads((tmp_path / "metrics.json").read_text())["val/acc"] > 0.75
