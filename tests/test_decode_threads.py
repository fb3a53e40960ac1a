"""A batch's crops decoded in threads (``LoaderSettings.decode_threads``): the images of the per-sample
path, bit for bit, for every backend, decoder and pipeline shape; really in several threads; bad files
handled as ``on_bad_image`` says; refused where it cannot act, and its valid neighbours taken."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pytest
import torch
from helpers import bad_image_folder, photo_folder
from PIL import Image
from torchvision.transforms import v2

from lightning_aug import AugDataModule, LoaderSettings
from lightning_aug.data.datasets.base import TransformedDataset
from lightning_aug.data.datasets.folder import ImageFolderDataset
from lightning_aug.data.decoders import nvimgcodec_available
from lightning_aug.data.pipeline import Pipeline
from lightning_aug.data.sampling import SampleKey
from lightning_aug.data.threads import DecodeThreads
from lightning_aug.errors import DataError, SettingError

DECODERS = [
    "cv2",
    pytest.param("nvimgcodec", marks=pytest.mark.skipif(not nvimgcodec_available(), reason="-")),
]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped photographs cut into JPEGs of mixed sizes, and one PNG (decoded whole: no crop while
    decoding) among them."""
    root = photo_folder(tmp_path_factory.mktemp("photos"), per_class=3)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)).save(next(root.iterdir()) / "png.png")
    return root


def _transforms(backend: str, rest: str) -> list[Any]:
    """A training crop run while decoding, then a lone flip (its fast path) or a flip and a colour op
    (the rest's own Compose), or an evaluation resize + centre crop (no draws)."""
    if backend == "albumentations":
        if rest == "eval":
            return [A.SmallestMaxSize(max_size=72), A.CenterCrop(height=64, width=64)]
        made = [A.RandomResizedCrop(size=(64, 64)), A.HorizontalFlip(p=0.5)]
        return made + ([A.RandomBrightnessContrast(p=0.5)] if rest == "colour" else [])
    if rest == "eval":
        return [v2.Resize(72, antialias=True), v2.CenterCrop(64)]
    made = [v2.RandomResizedCrop(64, antialias=True), v2.RandomHorizontalFlip(p=0.5)]
    return made + ([v2.ColorJitter(brightness=0.4)] if rest == "colour" else [])


def _dataset(
    root: Path, backend: str, rest: str, decoder: str, threads: int, **kw: Any
) -> TransformedDataset:
    source = ImageFolderDataset(root, decoder=decoder, **kw)
    return TransformedDataset(
        source, Pipeline(_transforms(backend, rest), backend), seed=3, decode_threads=threads
    )


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("rest", ["flip", "colour", "eval"])
@pytest.mark.parametrize("backend", ["albumentations", "torchvision"])
def test_threads_give_the_per_sample_images_and_leave_torch_generator_alone(
    photos: Path, backend: str, rest: str, decoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = _dataset(photos, backend, rest, decoder, threads=1)
    three = _dataset(photos, backend, rest, decoder, threads=3)
    assert one.fused and three.fused
    keys = [SampleKey(i, epoch) for epoch in (0, 1) for i in range(len(one))]
    expected = one.__getitems__(keys)
    decode = type(three.dataset.image_decoder)._decode  # type: ignore[union-attr]
    names: set[str] = set()

    def recorded(self: Any, *args: Any) -> Any:
        names.add(threading.current_thread().name)
        return decode(self, *args)

    monkeypatch.setattr(type(three.dataset.image_decoder), "_decode", recorded)
    torch.manual_seed(11)
    outer = torch.get_rng_state()
    got = three.__getitems__(keys)
    assert torch.equal(torch.get_rng_state(), outer)  # the main process's draws are not moved
    assert len(got) == len(expected) == 2 * len(one)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a[1] == b[1] and a[0].shape == (3, 64, 64)
        assert torch.equal(a[0], b[0]), (i, keys[i])
    assert len(names) == 3, names  # the calling thread and two pool threads decoded
    assert not torch.equal(got[0][0], got[len(one)][0]) or rest == "eval"  # each epoch its own draws


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_a_file_that_fails_in_a_thread_is_handled_as_the_per_sample_path_handles_it(
    tmp_path: Path, policy: str
) -> None:
    """A truncated JPEG passes the header and fails while decoding, in a thread: ``skip`` gives the
    per-sample path's replacement and names the file; ``raise`` gives its error."""
    bad = bad_image_folder(tmp_path)
    root = tmp_path / "train"
    sources = [ImageFolderDataset(root, decoder="cv2", on_bad_image=policy) for _ in range(2)]
    pipelines = [Pipeline(_transforms("albumentations", "flip"), "albumentations") for _ in range(2)]
    one, two = (
        TransformedDataset(s, p, seed=0, decode_threads=n)
        for s, p, n in zip(sources, pipelines, (1, 2), strict=True)
    )
    keys = [SampleKey(i, 0) for i in range(len(one))]
    if policy == "raise":
        with pytest.raises(DataError) as expected:
            one.__getitems__(keys)
        with pytest.raises(DataError) as got:
            two.__getitems__(keys)
        assert str(got.value) == str(expected.value) and bad[0] in str(got.value)
        return
    expected, got = one.__getitems__(keys), two.__getitems__(keys)
    assert [len(s) for s in got] == [len(s) for s in expected]
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    assert {p for s in got if len(s) == 3 for p in s[2]} == set(bad)


def test_decode_threads_run_every_job_once_in_order_and_hand_back_errors() -> None:
    threads = DecodeThreads(4)
    seen: list[int] = []

    def job(i: int) -> Any:
        seen.append(i)
        if i == 5:
            raise ValueError("five")
        return i * i

    out = threads.run([lambda i=i: job(i) for i in range(40)])
    assert sorted(seen) == list(range(40))
    assert [o for i, o in enumerate(out) if i != 5] == [i * i for i in range(40) if i != 5]
    assert isinstance(out[5], ValueError)
    with pytest.raises(ValueError, match="decode_threads must be an int >= 1, got 0"):
        DecodeThreads(0)
    with pytest.raises(ValueError, match="decode_threads must be an int >= 1 or 'auto', got 'many'"):
        LoaderSettings(decode_threads="many")  # type: ignore[arg-type]


def _module(root: Path, **loader: Any) -> AugDataModule:
    from lightning_aug.data.datasets import ImageFolder

    return AugDataModule(
        ImageFolder(root, val_split=0.25),
        train_transforms=_transforms("albumentations", "flip"),
        eval_transforms=_transforms("albumentations", "eval"),
        backend="albumentations",
        loader=LoaderSettings(batch_size=8, **loader),
        seed=0,
    )


def test_workers_with_threads_serve_the_batches_of_workers_without(photos: Path) -> None:
    """Through the DataModule's loaders: 1 worker with 2 decode threads, 2 workers with 1 thread each:
    the same training batches in the same order."""
    batches = []
    for workers, threads in ((2, 1), (1, 2)):
        dm = _module(photos, num_workers=workers, decode_threads=threads)
        dm.setup("fit")
        assert dm.datasets["train"].threads.threads == threads  # type: ignore[union-attr]
        batches.append([b[0] for b in dm.train_dataloader()])
    assert len(batches[0]) == len(batches[1]) > 1
    assert all(torch.equal(a, b) for a, b in zip(*batches, strict=True))


def test_decode_threads_where_nothing_is_decoded_with_the_crop_is_refused_auto_is_not(photos: Path) -> None:
    from lightning_aug.data.datasets import ImageFolder

    def module(decoder: str, threads: int | str) -> AugDataModule:
        return AugDataModule(
            ImageFolder(photos, val_split=0.5, decoder=decoder),  # type: ignore[arg-type]
            train_transforms=_transforms("albumentations", "flip"),
            eval_transforms=_transforms("albumentations", "eval"),
            backend="albumentations",
            loader=LoaderSettings(batch_size=4, num_workers=0, decode_threads=threads),  # type: ignore[arg-type]
            seed=0,
        )

    with pytest.raises(
        SettingError, match=r"^loader.decode_threads=2 decodes .* \(images decoded by pil; .*"
    ):
        module("pil", 2).setup("fit")
    in_memory = AugDataModule(
        ImageFolder(photos, val_split=0.5),
        in_memory=True,
        loader=LoaderSettings(batch_size=4, num_workers=0, decode_threads=3),
        seed=0,
    )
    with pytest.raises(SettingError, match=r"^loader.decode_threads=3 .* but in_memory=True holds decoded"):
        in_memory.setup("fit")
    no_crop = AugDataModule(
        ImageFolder(photos, val_split=0.5, decoder="cv2"),
        train_transforms=[A.Resize(32, 32), A.HorizontalFlip()],
        eval_transforms=[A.Resize(32, 32)],
        backend="albumentations",
        loader=LoaderSettings(batch_size=4, num_workers=0, decode_threads=2),
        seed=0,
    )
    with pytest.raises(SettingError, match=r"\(the train pipeline does not start with one: \['Resize', 'Hor"):
        no_crop.setup("fit")
    for decoder, threads, expected in (("pil", "auto", 1), ("pil", 1, 1), ("cv2", 2, 2)):
        dm = module(decoder, threads)
        dm.setup("fit")
        assert dm.datasets["train"].threads.threads == expected  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["albumentations", "torchvision"])
def test_a_pickled_dataset_gives_the_same_samples(photos: Path, backend: str) -> None:
    """What spawned workers receive: the dataset pickled with its pipeline's generators (the
    albumentations pipeline's Python-side generator could not be pickled before)."""
    import pickle

    made = _dataset(photos, backend, "colour", "cv2", threads=2)
    keys = [SampleKey(i, 0) for i in range(8)]
    expected = made.__getitems__(keys)
    back = pickle.loads(pickle.dumps(made))
    assert back.dataset._head.__self__ is back and back.threads.threads == 2  # type: ignore[attr-defined]
    got = back.__getitems__(keys)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(got, expected, strict=True))


def test_spawned_workers_serve_the_batches_of_forked_ones(photos: Path) -> None:
    batches = []
    for context in ("fork", "spawn"):
        dm = _module(photos, num_workers=1, decode_threads=2, multiprocessing_context=context)
        dm.setup("fit")
        batches.append([b[0] for b in dm.train_dataloader()])
    assert len(batches[0]) == len(batches[1]) > 1
    assert all(torch.equal(a, b) for a, b in zip(*batches, strict=True))
