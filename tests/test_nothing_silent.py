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
