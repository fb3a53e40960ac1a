from __future__ import annotations

import pytest
import torch

from lightning_aug.data import loader as loader_mod
from lightning_aug.data.loader import LoaderSettings, collate_uint8
from lightning_aug.seeding import derive_seed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
        ({"batch_size": 2.5}, "batch_size must be an int >= 1, got 2.5"),
        ({"batch_size": True}, "batch_size must be an int >= 1, got True"),
        ({"eval_batch_size": -4}, "eval_batch_size must be an int >= 1, got -4"),
        ({"num_workers": -1}, "num_workers must be an int >= 0, got -1"),
        ({"num_workers": "many"}, "num_workers must be an int >= 0 or 'auto', got 'many'"),
        ({"pin_memory": "yes"}, "pin_memory must be a bool or 'auto', got 'yes'"),
        ({"prefetch_factor": 0, "num_workers": 2}, "prefetch_factor must be an int >= 1, got 0"),
        (
            {"multiprocessing_context": "thread", "num_workers": 2},
            "multiprocessing_context must be one of .* got 'thread'",
        ),
        (
            {"num_workers": 0, "persistent_workers": True},
            "persistent_workers=True needs num_workers > 0, got num_workers=0",
        ),
        ({"num_workers": 0, "prefetch_factor": 2}, "prefetch_factor=2 needs num_workers > 0"),
        (
            {"num_workers": 0, "multiprocessing_context": "spawn"},
            "multiprocessing_context='spawn' needs num_workers > 0",
        ),
    ],
)
def test_bad_settings_raise_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoaderSettings(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"persistent_workers": "yes"}, "persistent_workers must be a bool, got 'yes'"),
        ({"drop_last": 1}, "drop_last must be a bool, got 1"),
    ],
)
def test_bad_flags_raise_type_error(kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        LoaderSettings(**kwargs)


def test_auto_workers_divide_cpus_by_local_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader_mod, "available_cpus", lambda: 16)
    settings = LoaderSettings(num_workers="auto")
    assert settings.resolve_num_workers(1) == 16
    assert settings.resolve_num_workers(4) == 4
    assert LoaderSettings(num_workers=3).resolve_num_workers(4) == 3


def test_auto_resolving_to_zero_drops_worker_settings_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader_mod, "available_cpus", lambda: 1)
    settings = LoaderSettings(num_workers="auto", persistent_workers=True, prefetch_factor=4)
    workers = settings.resolve_num_workers(2)
    assert workers == 0
    with pytest.warns(UserWarning, match=r"ignoring \['persistent_workers', 'prefetch_factor'\]"):
        kwargs = settings.dataloader_kwargs(train=True, num_workers=workers, pin_memory=False)
    assert "persistent_workers" not in kwargs and "prefetch_factor" not in kwargs
    torch.utils.data.DataLoader(range(4), **{k: v for k, v in kwargs.items() if k != "collate_fn"})


def test_eval_kwargs_never_drop_and_use_eval_batch_size() -> None:
    settings = LoaderSettings(
        batch_size=8, eval_batch_size=32, num_workers=2, persistent_workers=True, prefetch_factor=3
    )
    train = settings.dataloader_kwargs(train=True, num_workers=2, pin_memory=False)
    evals = settings.dataloader_kwargs(train=False, num_workers=2, pin_memory=False)
    assert (train["batch_size"], train["drop_last"]) == (8, True)
    assert (evals["batch_size"], evals["drop_last"]) == (32, False)
    assert train["persistent_workers"] and train["prefetch_factor"] == 3
    assert train["worker_init_fn"].keywords == {"rank": 0}


def test_collate_stacks_uint8_and_int64() -> None:
    images, labels = collate_uint8(
        [(torch.zeros(3, 4, 4, dtype=torch.uint8), 1), (torch.ones(3, 4, 4, dtype=torch.uint8), 2)]
    )
    assert images.shape == (2, 3, 4, 4) and images.dtype == torch.uint8
    assert labels.tolist() == [1, 2] and labels.dtype == torch.int64


def test_collate_names_mismatched_shapes() -> None:
    samples = [(torch.zeros(3, 4, 4, dtype=torch.uint8), 0), (torch.zeros(3, 5, 4, dtype=torch.uint8), 0)]
    with pytest.raises(ValueError, match=r"different shapes in one batch \(\(3, 4, 4\) and \(3, 5, 4\)\)"):
        collate_uint8(samples)


def test_derive_seed_separates_streams() -> None:
    seeds = {derive_seed(s, r, k) for s in range(3) for r in range(3) for k in range(3)}
    assert len(seeds) == 27
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(5, 1) == derive_seed(5, 1)


class _Clock:
    """The loader module's clock in the test below: time moves only as samples are made."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class _Costly(torch.utils.data.Dataset):
    """Samples that take ``ms`` each to make on ``clock``; counts the ones made."""

    def __init__(self, ms: float, clock: _Clock) -> None:
        self.ms, self.clock, self.made = ms, clock, 0

    def __len__(self) -> int:
        return 64

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.made += 1
        self.clock.now += self.ms / 1e3
        return torch.zeros(3, 4, 4, dtype=torch.uint8), index % 2


def test_auto_workers_are_none_where_a_batch_is_made_here_faster_than_a_worker_hands_one_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``num_workers="auto"``: no workers for data this process makes a batch of within the hand-over
    time (8 samples of 0.2 ms), the CPUs' workers for data that takes longer (8 samples of 1.2 ms: the
    measurement stops past 2 ms); an explicit count is never measured."""
    import random

    import numpy as np

    monkeypatch.setattr(loader_mod, "available_cpus", lambda: 4)
    clock = _Clock()
    monkeypatch.setattr(loader_mod, "time", clock)
    settings = LoaderSettings(batch_size=8, num_workers="auto")
    cheap, costly = _Costly(0.2, clock), _Costly(1.2, clock)
    random.seed(3)
    np.random.seed(3)
    assert settings.resolve_num_workers(1, cheap) == 0 and cheap.made == 8
    assert (random.random(), np.random.random()) == (
        random.Random(3).random(),
        np.random.RandomState(3).random(),
    )
    assert settings.resolve_num_workers(2, costly) == 2 and costly.made == 2  # stopped past 2 ms
    assert LoaderSettings(batch_size=8, num_workers=3).resolve_num_workers(1, cheap) == 3 and cheap.made == 8
    said = r"resolved to 0 \(this process makes a batch faster .* 2 ms\); ignoring"
    with pytest.warns(UserWarning, match=said):
        made = LoaderSettings(batch_size=8, num_workers="auto", persistent_workers=True).make_loader(
            cheap, train=True, generator=torch.Generator()
        )
    assert made.num_workers == 0 and len(list(made)) == 8
