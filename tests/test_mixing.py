from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from helpers import Recorder, RepeatedImageFactory, tiny_trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from lightning_aug import AugDataModule, LoaderSettings, MixupCallback
from lightning_aug.data.datasets import SyntheticShapes
from lightning_aug.device.mixing.functional import chunk_buffers, mix_with_reversed_, smooth_one_hot
from lightning_aug.device.mixing.sampling import rand_bbox

C = 10
CONFIGS = {
    "mixup": {"mixup_alpha": 1.0, "cutmix_alpha": 0.0},
    "cutmix": {"mixup_alpha": 0.0, "cutmix_alpha": 1.0},
    "both": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.5},
    "minmax": {"mixup_alpha": 0.0, "cutmix_minmax": (0.2, 0.8)},
}


def batch(size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Continuous random images (every pixel differs between samples) and labels that differ between
    partners ``i`` and ``size-1-i``."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(size, 3, 12, 10, generator=g), torch.arange(size) % C


def recover_image_lam(x: Tensor, mixed: Tensor, cutmix: Tensor) -> Tensor:
    """Per sample, the weight of its own image: least squares for blends, share of own pixels for boxes."""
    partner = x.flip(0)
    diff = (x - partner).flatten(1)
    blend = ((mixed - partner).flatten(1) * diff).sum(1) / diff.pow(2).sum(1).clamp_min(1e-12)
    own_pixels = (mixed == x).all(dim=1).flatten(1).double().mean(1)
    lam = torch.where(cutmix, own_pixels, blend.double())
    middle = x.shape[0] // 2 if x.shape[0] % 2 else None
    if middle is not None:  # its own partner: any lambda describes it
        lam[middle] = float("nan")
    return lam


def recover_target_lam(targets: Tensor, labels: Tensor, smoothing: float) -> Tensor:
    off = smoothing / C
    on = 1 - smoothing + off
    return ((targets.gather(1, labels.view(-1, 1)).squeeze(1) - off) / (on - off)).double()


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("size", [8, 9])
@pytest.mark.parametrize("kernel", ["chunked", "batched"])
def test_mixing_invariants(mode: str, smoothing: float, config: str, size: int, kernel: str) -> None:
    cb = MixupCallback(
        mode=mode, label_smoothing=smoothing, num_classes=C, seed=1, kernel=kernel, **CONFIGS[config]
    )
    for step in range(5):  # several draws per combination
        x, labels = batch(size, seed=step)
        original = x.clone()
        images, targets = cb.transform_batch(x, labels, None)
        params = cb.last_params
        assert params is not None and images is x  # mixed in place
        # soft targets: rows sum to 1; at most two classes above the smoothing floor
        assert targets.shape == (size, C)
        torch.testing.assert_close(targets.sum(1), torch.ones(size))
        assert ((targets > smoothing / C + 1e-6).sum(1) <= 2).all()
        cutmix, lam = torch.from_numpy(params.use_cutmix), torch.from_numpy(params.lam)
        if config == "mixup":
            assert not cutmix.any()
        if config in ("cutmix", "minmax"):
            assert cutmix.all()
        partner = original.flip(0)
        lam4 = lam.float().view(-1, 1, 1, 1)
        for i in range(size):
            if cutmix[i]:  # every pixel from exactly one of the two images
                own = (images[i] == original[i]).all(0)
                other = (images[i] == partner[i]).all(0)
                assert (own ^ other).all() or i == size - 1 - i
            else:
                torch.testing.assert_close(images[i], lam4[i] * original[i] + (1 - lam4[i]) * partner[i])
        # the lambda seen in the images is the lambda of the targets
        from_images = recover_image_lam(original, images, cutmix)
        from_targets = recover_target_lam(targets, labels, smoothing)
        known = ~from_images.isnan()
        torch.testing.assert_close(from_images[known], from_targets[known], atol=1e-4, rtol=0)
        torch.testing.assert_close(from_targets[known], lam[known], atol=1e-5, rtol=0)
        if mode == "batch":
            assert (lam == lam[0]).all()
        if mode == "pair":
            torch.testing.assert_close(lam, lam.flip(0))
        if size % 2:  # the middle sample is its own partner: unchanged image, own (smoothed) label
            m = size // 2
            assert torch.equal(images[m], original[m])
            torch.testing.assert_close(targets[m], smooth_one_hot(labels[m : m + 1], C, smoothing)[0])


def test_elem_mode_draws_per_sample() -> None:
    x, labels = batch(16)
    elem = MixupCallback(mode="elem", num_classes=C, seed=0)
    elem.transform_batch(x, labels, None)
    assert elem.last_params is not None and np.unique(elem.last_params.lam).size == 16


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
def test_prob_zero_leaves_images_unchanged_and_targets_soft(mode: str) -> None:
    """An unmixed batch keeps its images; its targets are one-hot rows like every other batch's (one
    dtype and shape for timm's SoftTargetCrossEntropy and compiled models), class indices only with
    keep_int_targets."""
    x, labels = batch(8)
    original = x.clone()
    cb = MixupCallback(mode=mode, prob=0.0, label_smoothing=0.0, cutmix_alpha=1.0, num_classes=C, seed=0)
    images, targets = cb.transform_batch(x, labels, None)
    assert torch.equal(images, original)
    torch.testing.assert_close(targets, smooth_one_hot(labels, C, 0.0))
    keep = MixupCallback(
        mode=mode, prob=0.0, label_smoothing=0.0, num_classes=C, seed=0, keep_int_targets=True
    )
    assert keep.transform_batch(x, labels, None)[1] is labels


def test_smoothing_without_mixing_gives_smoothed_targets() -> None:
    cb = MixupCallback(prob=0.0, label_smoothing=0.1, num_classes=C, seed=0)
    x, labels = batch(4)
    _, targets = cb.transform_batch(x, labels, None)
    torch.testing.assert_close(targets, smooth_one_hot(labels, C, 0.1))


def test_soft_input_targets_are_mixed_too() -> None:
    cb = MixupCallback(label_smoothing=0.0, num_classes=C, seed=0)
    x, labels = batch(6)
    soft = smooth_one_hot(labels, C, 0.0)
    _, targets = cb.transform_batch(x, soft, None)
    lam = torch.from_numpy(cb.last_params.lam).float().view(-1, 1)  # type: ignore[union-attr]
    torch.testing.assert_close(targets, lam * soft + (1 - lam) * soft.flip(0))


def draws(cb: MixupCallback, n: int = 4, rank: int = 0, epoch: int = 0, start: int = 0) -> list[Tensor]:
    """The mixed images of batches ``start .. start + n - 1`` of ``epoch`` on ``rank``."""
    out = []
    for step in range(start, start + n):
        x, labels = batch(8, seed=step)
        coordinates = SimpleNamespace(batch_coordinates=(epoch, step))
        trainer = SimpleNamespace(global_rank=rank, current_epoch=epoch, datamodule=coordinates)
        cb.transform_batch(x, labels, trainer)  # type: ignore[arg-type]
        out.append(x)
    return out


def test_same_seed_reproduces_and_ranks_differ() -> None:
    def make() -> MixupCallback:
        return MixupCallback(mode="elem", cutmix_alpha=1.0, num_classes=C, seed=3)

    a, b = draws(make()), draws(make())
    other_rank = draws(make(), rank=1)
    other_seed = draws(MixupCallback(mode="elem", cutmix_alpha=1.0, num_classes=C, seed=4))
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not any(torch.equal(p, q) for p, q in zip(a, other_rank, strict=True))
    assert not any(torch.equal(p, q) for p, q in zip(a, other_seed, strict=True))


def test_a_batch_mixes_alike_in_a_resumed_run() -> None:
    """The parameters are a function of (seed, rank, epoch, batch): a fresh callback (a resumed run)
    starting at batch 2 mixes batches 2-4 as the uninterrupted one did; another epoch differs."""
    expected = draws(MixupCallback(mode="pair", cutmix_alpha=1.0, num_classes=C, seed=0), 5)
    resumed = MixupCallback(mode="pair", cutmix_alpha=1.0, num_classes=C, seed=0)
    resumed.load_state_dict(resumed.state_dict())
    assert all(torch.equal(p, q) for p, q in zip(expected[2:], draws(resumed, 3, start=2), strict=True))
    later = draws(MixupCallback(mode="pair", cutmix_alpha=1.0, num_classes=C, seed=0), 5, epoch=1)
    assert not any(torch.equal(p, q) for p, q in zip(expected, later, strict=True))


def test_kernel_copies_only_into_the_chunk_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-place kernel's only copies go into the two given chunk buffers: no batch-sized copy."""
    x = torch.rand(64, 3, 8, 8)
    expected = torch.lerp(x, x.flip(0), 0.3)
    buffers = chunk_buffers(x, 4)
    owners = {b.untyped_storage().data_ptr() for b in buffers}
    copies: list[tuple[int, int]] = []
    real = torch.index_select

    def index_select(source: Tensor, dim: int, index: Tensor, *, out: Tensor) -> Tensor:
        copies.append((out.shape[0], out.untyped_storage().data_ptr()))
        return real(source, dim, index, out=out)

    monkeypatch.setattr(torch, "index_select", index_select)
    monkeypatch.setattr(torch.Tensor, "flip", lambda *a, **k: pytest.fail("no flip copies"))
    mix_with_reversed_(x, 0.3, chunk=4, buffers=buffers)
    torch.testing.assert_close(x, expected)
    assert len(copies) == 2 * 64 // 2 // 4
    assert all(size <= 4 and ptr in owners for size, ptr in copies)


@pytest.mark.parametrize("size", [2, 7, 10])
@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_kernel_matches_the_definition_for_any_chunk(size: int, chunk: int) -> None:
    x = torch.rand(size, 2, 3, 3)
    w = torch.rand(size, 1, 3, 3)
    expected = torch.lerp(x, x.flip(0), w)
    if size % 2:
        expected[size // 2] = x[size // 2]
    torch.testing.assert_close(mix_with_reversed_(x, lambda a, b: w[a:b], chunk), expected)


def test_rand_bbox_follows_the_cutmix_paper() -> None:
    boxes = rand_bbox(100, 50, np.full(1000, 0.75), np.random.default_rng(0))
    heights, widths = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    assert heights.max() <= 50 and widths.max() <= 25  # sides sqrt(1 - 0.75) = 0.5 of the image, clipped
    assert (heights == 50).any() and (widths == 24).any()  # an unclipped box: int(side), 2 * (side // 2)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] <= 100).all() and (boxes[:, 3] <= 50).all()


# ---------------------------------------------------------------- error paths, one per argument
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"mixup_alpha": -1}, ValueError, r"mixup_alpha must be a float >= 0 \(0 disables it\), got -1"),
        ({"cutmix_alpha": -0.5}, ValueError, "cutmix_alpha must be a float >= 0 .* got -0.5"),
        (
            {"mixup_alpha": 0, "cutmix_alpha": 0},
            ValueError,
            "both 0 and cutmix_minmax is None: nothing to mix",
        ),
        (
            {"cutmix_minmax": (0.8, 0.2)},
            ValueError,
            r"cutmix_minmax must be None or \(min, max\) .* got \(0.8, 0.2\)",
        ),
        ({"cutmix_minmax": [0.1]}, ValueError, r"cutmix_minmax must be .* got \[0.1\]"),
        ({"prob": 1.5}, ValueError, r"prob must be a probability in \[0, 1\], got 1.5"),
        ({"switch_prob": -0.1}, ValueError, r"switch_prob must be a probability in \[0, 1\], got -0.1"),
        ({"mode": "sample"}, ValueError, "mode must be 'batch', 'pair' or 'elem', got 'sample'"),
        ({"correct_lam": "yes"}, TypeError, "correct_lam must be a bool, got 'yes'"),
        ({"label_smoothing": 1.0}, ValueError, r"label_smoothing must be a float in \[0, 1\), got 1.0"),
        ({"num_classes": 1}, ValueError, "num_classes must be an int >= 2 or None, got 1"),
        ({"off_epoch": -1}, ValueError, "off_epoch must be an int >= 0 or None, got -1"),
        ({"image_key": ""}, ValueError, "image_key must be a non-empty string, got ''"),
        ({"target_key": 3}, ValueError, "target_key must be a non-empty string, got 3"),
        (
            {"image_key": "x", "target_key": "x"},
            ValueError,
            "image_key and target_key must differ, both are 'x'",
        ),
        ({"seed": -2}, ValueError, "seed must be an int >= 0 or None, got -2"),
        ({"log_lambda": 1}, TypeError, "log_lambda must be a bool, got 1"),
        ({"chunk_fraction": 0.0}, ValueError, r"chunk_fraction must be a float in \(0, 0.5\], got 0.0"),
    ],
)
def test_constructor_errors(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MixupCallback(**kwargs)


@pytest.mark.parametrize(
    ("images", "targets", "error", "message"),
    [
        (
            torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
            torch.zeros(4, dtype=torch.int64),
            TypeError,
            "mixes float image",
        ),
        (
            torch.zeros(4, 8, 8),
            torch.zeros(4, dtype=torch.int64),
            TypeError,
            r"got torch.float32 of shape \(4, 8, 8\)",
        ),
        (
            torch.zeros(1, 3, 8, 8),
            torch.zeros(1, dtype=torch.int64),
            ValueError,
            "at least 2 samples .* a batch of 1",
        ),
        (torch.zeros(4, 3, 8, 8), torch.zeros(4, 10), ValueError, r"got torch.float32 of shape \(4, 10\)"),
        (torch.zeros(4, 3, 8, 8), torch.zeros(4, 3), ValueError, r"soft targets of shape \(4, 5\), got"),
        (
            torch.zeros(4, 3, 8, 8),
            torch.tensor([0, 1, 5, 2]),
            ValueError,
            r"labels must be in \[0, num_classes=5\), got a label 5",
        ),
        (torch.zeros(4, 3, 8, 8), torch.tensor([0, -1, 2, 2]), ValueError, "got a label -1"),
    ],
)
def test_bad_batches(images: Tensor, targets: Tensor, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MixupCallback(num_classes=5, seed=0).transform_batch(images, targets, None)


def test_num_classes_needed_without_a_datamodule() -> None:
    with pytest.raises(
        ValueError, match="num_classes is None and the trainer's datamodule has no num_classes"
    ):
        MixupCallback().setup(SimpleNamespace(datamodule=None, global_rank=0), None, "fit")  # type: ignore[arg-type]


# ---------------------------------------------------------------- with a real Trainer
def test_trainer_with_augdatamodule_mixes_training_batches_only(small_shapes: SyntheticShapes) -> None:
    dm = AugDataModule(
        small_shapes, [v2.RandomHorizontalFlip()], loader=LoaderSettings(batch_size=8, num_workers=0), seed=0
    )
    model = Recorder(num_classes=4)
    cb = MixupCallback(mixup_alpha=1.0, cutmix_alpha=1.0, label_smoothing=0.0, log_lambda=True)
    trainer = tiny_trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=2, callbacks=[cb])
    trainer.fit(model, dm)
    assert 0.0 <= trainer.callback_metrics["mixup/lam"].item() <= 1.0  # log_lambda
    trainer.test(model, dm, verbose=False)
    assert cb.num_classes == 4  # taken from the DataModule
    assert len(model.targets["train"]) == 4
    for targets in model.targets["train"]:
        assert targets.shape == (8, 4) and targets.dtype == torch.float32
        assert (targets.max(1).values < 1).any()  # mixed: not one-hot
    for targets in model.targets["val"] + model.targets["test"]:
        assert targets.shape == (8,) and targets.dtype == torch.int64  # untouched
    val = dm.datasets["val"]
    assert val is not None
    raw = torch.stack([val[i][0] for i in range(8)])  # the val loader does not shuffle
    torch.testing.assert_close(model.seen["val"][0], dm.stage.normalize(raw))  # normalised, never mixed


class FloatPairs(Dataset):
    """Float images and int labels; ``as_dict`` returns ``{"image", "label"}`` samples."""

    def __init__(self, n: int = 32, as_dict: bool = False) -> None:
        g = torch.Generator().manual_seed(0)
        self.images, self.labels, self.as_dict = (
            torch.rand(n, 3, 8, 8, generator=g),
            torch.arange(n) % 4,
            as_dict,
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Any:
        if self.as_dict:
            return {"image": self.images[i], "label": self.labels[i]}
        return self.images[i], self.labels[i]


@pytest.mark.parametrize("as_dict", [False, True])
def test_plain_dataloaders_list_and_dict_batches_are_mixed(as_dict: bool) -> None:
    loader = DataLoader(FloatPairs(as_dict=as_dict), batch_size=8, shuffle=False)
    model = Recorder(num_classes=4)
    cb = MixupCallback(mixup_alpha=1.0, label_smoothing=0.0, num_classes=4, seed=0)
    tiny_trainer(max_epochs=1, limit_train_batches=3, callbacks=[cb]).fit(model, loader)
    data = FloatPairs()
    for step, (images, targets) in enumerate(zip(model.seen["train"], model.targets["train"], strict=True)):
        assert targets.shape == (8, 4)
        original = data.images[8 * step : 8 * step + 8]
        assert not torch.equal(images, original)
        lam = targets.gather(1, data.labels[8 * step : 8 * step + 8].view(-1, 1)).view(-1, 1, 1, 1)
        torch.testing.assert_close(images, lam * original + (1 - lam) * original.flip(0))


def test_tuple_batches_raise_at_the_first_batch() -> None:
    loader = DataLoader(
        FloatPairs(),
        batch_size=8,
        collate_fn=lambda s: (torch.stack([a for a, _ in s]), torch.stack([b for _, b in s])),
    )
    cb = MixupCallback(num_classes=4, seed=0)
    with pytest.raises(TypeError, match="cannot change a tuple batch in place: return lists"):
        tiny_trainer(max_epochs=1, limit_train_batches=2, callbacks=[cb]).fit(Recorder(num_classes=4), loader)


def test_dict_batch_with_other_keys() -> None:
    loader = DataLoader(FloatPairs(as_dict=True), batch_size=8)
    cb = MixupCallback(num_classes=4, seed=0, image_key="img")
    with pytest.raises(KeyError, match=r"dict batch has no key\(s\) \['img'\]"):
        tiny_trainer(max_epochs=1, limit_train_batches=1, callbacks=[cb]).fit(Recorder(num_classes=4), loader)


def test_off_epoch_stops_mixing_from_that_epoch() -> None:
    loader = DataLoader(FloatPairs(), batch_size=8)
    model = Recorder(num_classes=4)
    cb = MixupCallback(label_smoothing=0.0, num_classes=4, seed=0, off_epoch=1)
    tiny_trainer(max_epochs=3, limit_train_batches=2, callbacks=[cb]).fit(model, loader)
    assert model.epochs == [0, 0, 1, 1, 2, 2]
    targets = model.targets["train"]
    assert all(t.shape == (8, 4) and t.dtype == torch.float32 for t in targets)  # one kind throughout
    mixed = [bool(((t > 0) & (t < 1)).any()) for t in targets]
    assert mixed == [True, True, False, False, False, False]  # mixed in epoch 0, one-hot from epoch 1 on


def test_resumed_fit_continues_the_mixup_stream(repeated: RepeatedImageFactory, tmp_path: Path) -> None:
    def run(max_epochs: int, ckpt: str | None = None, save: bool = False) -> Recorder:
        dm = AugDataModule(repeated, loader=LoaderSettings(batch_size=4, num_workers=0), seed=0)
        model = Recorder(num_classes=2)
        callbacks: list[Any] = [MixupCallback(mode="elem", cutmix_alpha=1.0, label_smoothing=0.0)]
        if save:
            callbacks.append(ModelCheckpoint(dirpath=tmp_path, save_last=True))
        trainer = tiny_trainer(
            max_epochs=max_epochs, limit_val_batches=0, callbacks=callbacks, enable_checkpointing=save
        )
        trainer.fit(model, dm, ckpt_path=ckpt)
        return model

    full = run(2)
    run(1, save=True)
    resumed = run(2, ckpt=str(tmp_path / "last.ckpt"))
    assert len(full.targets["train"]) == 8 and len(resumed.targets["train"]) == 4
    for a, b in zip(full.targets["train"][4:], resumed.targets["train"], strict=True):
        torch.testing.assert_close(a, b)


def test_micro_benchmark_reports_every_case() -> None:
    from lightning_aug.bench.mixup import bench_mixup, format_table, main

    rows = bench_mixup(batch=4, size=8, device="cpu", repeats=1, num_classes=5)
    cases = [r["case"] for r in rows]
    assert cases[0] == "x.clone()" and rows[0]["x_clone"] == 1.0
    assert {
        *(
            f"ours {case} [{kernel}]"
            for kernel in ("chunked", "batched")
            for case in ("batch mixup", "pair mixup+cutmix", "elem mixup")
        ),
        "timm-style elem mixup (loop)",
        "ours batch mixup [chunked], after alloc+free",
    } <= set(cases)
    assert all(r["ms"] > 0 and (r["extra_memory"] is None or r["extra_memory"] >= 0) for r in rows)
    assert format_table(rows).count("\n") == len(rows) + 1
    main(["--batch", "4", "--size", "8", "--device", "cpu", "--repeats", "1"])


# ---------------------------------------------------------------- the two kernels
KERNEL_CASES = {
    "batch mixup": {"mixup_alpha": 0.8, "mode": "batch"},
    "batch cutmix": {"mixup_alpha": 0.0, "cutmix_alpha": 1.0, "mode": "batch"},
    "pair": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "mode": "pair"},
    "elem": {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "mode": "elem"},
    "elem prob": {
        "mixup_alpha": 0.8,
        "cutmix_alpha": 1.0,
        "mode": "elem",
        "prob": 0.5,
        "label_smoothing": 0.0,
    },
    "pair mixup": {"mixup_alpha": 0.8, "mode": "pair"},
    "minmax": {"cutmix_minmax": (0.2, 0.6), "mixup_alpha": 0.0, "mode": "elem"},
}


@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
@pytest.mark.parametrize("size", [7, 16])
@pytest.mark.parametrize("soft", [False, True])
def test_batched_kernel_gives_the_chunked_kernels_batches(case: str, size: int, soft: bool) -> None:
    """The GPU kernel (whole-batch ops on persistent buffers) and the CPU kernel (pairs in chunks)
    draw the same parameters and give the same images and targets, here on CPU tensors."""
    x, labels = batch(size, seed=3)
    targets = smooth_one_hot(labels, C, 0.2) if soft else labels
    results = []
    for kernel in ("chunked", "batched"):
        cb = MixupCallback(num_classes=C, seed=3, kernel=kernel, **KERNEL_CASES[case])  # type: ignore[arg-type]
        out = [cb.transform_batch(x.clone(), targets.clone(), None) for _ in range(3)]
        results.append(out)
    for (a_img, a_tgt), (b_img, b_tgt) in zip(*results, strict=True):
        torch.testing.assert_close(a_img, b_img, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a_tgt.float(), b_tgt.float(), rtol=1e-5, atol=1e-6)


def test_auto_kernel_is_batched_off_the_cpu_and_for_small_cpu_batches() -> None:
    cb = MixupCallback(num_classes=C)
    assert cb._kernel_for(torch.empty(2, 3, 8, 8, device="meta")) == "batched"
    assert cb._kernel_for(torch.empty(4, 3, 8, 8)) == "batched"
    assert cb._kernel_for(torch.empty(256, 3, 224, 224)) == "chunked"  # 154 MB: chunks stay in cache
    with pytest.raises(
        ValueError, match=r"kernel must be one of \['auto', 'batched', 'chunked'\], got 'fast'"
    ):
        MixupCallback(num_classes=C, kernel="fast")  # type: ignore[arg-type]


def test_batched_kernel_keeps_its_buffers_between_batches() -> None:
    cb = MixupCallback(num_classes=C, seed=0, kernel="batched", mode="elem", cutmix_alpha=1.0)
    x, labels = batch(8)
    cb.transform_batch(x, labels, None)
    cb.transform_batch(x, labels, None)  # a batch with cutmix makes the weight buffer
    held = {name: b.data_ptr() for name, b in cb._device_buffers.items()}
    for _ in range(4):
        cb.transform_batch(x, labels, None)
    assert {"reverse", "partner", "weight"} <= set(held)
    assert {name: b.data_ptr() for name, b in cb._device_buffers.items()} == held


def test_the_states_of_earlier_versions_still_load() -> None:
    """0.1 (a torch.Generator's) and 0.2 (a numpy Generator's) callback states load; they are not
    needed any more (each batch draws from its own generator)."""
    cb = MixupCallback(num_classes=C, seed=0)
    expected = draws(MixupCallback(num_classes=C, seed=0), 2)
    cb.load_state_dict({"generator": torch.Generator().get_state()})
    cb.load_state_dict({"generator": np.random.default_rng(0).bit_generator.state})
    assert all(torch.equal(p, q) for p, q in zip(expected, draws(cb, 2), strict=True))


def test_keep_int_targets_gives_int_targets_or_is_refused_with_smoothing() -> None:
    """keep_int_targets=True alone keeps class indices (the smoothing default follows it to 0); asked
    together with a smoothing it is refused in one line naming both (it gave floats silently)."""
    x, labels = batch(8)
    keep = MixupCallback(prob=0.0, num_classes=C, seed=0, keep_int_targets=True)
    assert keep.label_smoothing == 0.0 and keep.transform_batch(x, labels, None)[1] is labels
    assert MixupCallback(num_classes=C, seed=0).label_smoothing == 0.1  # the default otherwise
    with pytest.raises(
        ValueError, match=r"keep_int_targets=True .* label_smoothing=0\.1: set label_smoothing=0"
    ):
        MixupCallback(num_classes=C, seed=0, keep_int_targets=True, label_smoothing=0.1)
