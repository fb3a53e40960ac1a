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
