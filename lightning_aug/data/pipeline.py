"""Per-sample CPU pipelines built from config, with albumentations 2.x or torchvision.transforms.v2.

Both backends take an image as PIL, HWC uint8 ``ndarray`` or CHW uint8 tensor and return the same
contract: a CHW uint8 tensor. No float work happens here; normalisation runs batched on the device
(:meth:`lightning_aug.AugDataModule.on_after_batch_transfer`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from lightning_aug.data.decoders import UNPARSED, ImageDecoder
from lightning_aug.seeding import NumpyRandom, seed_pcg64
from lightning_aug.targets import build_transform

__all__ = ["Backend", "Pipeline", "to_rgb_array", "to_rgb_tensor"]

Backend = Literal["albumentations", "torchvision"]
BACKENDS: tuple[str, ...] = get_args(Backend)


def to_rgb_array(image: Any) -> np.ndarray:
    """An RGB image as an HWC uint8 ndarray (no copy where the input already is one; grey is repeated).

    Raises:
        TypeError: for anything but PIL, an HWC/HW uint8 ndarray or a CHW uint8 tensor.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    if isinstance(image, Tensor):
        return to_rgb_tensor(image).permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        _check_uint8_image(image, "ndarray", channels_first=False)
        if image.ndim == 2:
            image = image[:, :, None]
        return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    raise TypeError(
        f"image must be a PIL image, an HWC uint8 ndarray or a CHW uint8 tensor, got {type(image).__name__}"
    )


def to_rgb_tensor(image: Any) -> Tensor:
    """An RGB image as a CHW uint8 tensor (a view where the input allows one; grey is repeated)."""
    if isinstance(image, Tensor):
        _check_uint8_image(image, "tensor", channels_first=True)
        if image.ndim == 2:
            image = image.unsqueeze(0)
        return image.expand(3, -1, -1) if image.shape[0] == 1 else image
    array = to_rgb_array(image)
    if not array.flags.writeable:  # e.g. np.asarray(PIL image): torch needs memory it may own
        array = array.copy()
    return torch.from_numpy(array).permute(2, 0, 1)


def _check_uint8_image(image: np.ndarray | Tensor, kind: str, channels_first: bool) -> None:
    layout = "CHW" if channels_first else "HWC"
    dtype_ok = image.dtype == (torch.uint8 if isinstance(image, Tensor) else np.uint8)
    channel_axis = 0 if channels_first else -1
    shape_ok = image.ndim == 2 or (image.ndim == 3 and image.shape[channel_axis] in (1, 3))
    if not (dtype_ok and shape_ok):
        raise TypeError(
            f"image {kind} must be uint8 {layout} with 1 or 3 channels (or HW), "
            f"got {image.dtype} of shape {tuple(image.shape)}"
        )


def _named(transforms: Any, name: str) -> list[tuple[Any, Any]]:
    """``(key, transform)`` pairs of a list (keys 0, 1, ...) or of a mapping of named transforms (keys
    the names, in order: config presets inherit one another's and add or drop entries by name).

    Raises:
        TypeError: anything else, or one ``{"_target_": ...}`` transform where a collection is expected.
    """
    if isinstance(transforms, Mapping):
        if "_target_" in transforms:
            raise TypeError(
                f"{name}: transforms must be a list or a mapping of named transforms, got one transform "
                f"({transforms['_target_']}); put it in a list"
            )
        return list(transforms.items())
    if isinstance(transforms, str) or not isinstance(transforms, Sequence):
        raise TypeError(
            f"{name}: transforms must be a list or a mapping of named transforms, "
            f"got {type(transforms).__name__}"
        )
    return list(enumerate(transforms))


class _ImageFunction:
    """A plain ``image -> image`` callable as albumentations' ``Lambda`` calls it (with keywords)."""

    def __init__(self, function: Any) -> None:
        self.function = function

    def __call__(self, image: Any, **kwargs: Any) -> Any:
        return self.function(image)

    def __repr__(self) -> str:
        return repr(self.function)


def _own_module(obj: Any) -> bool:
    return type(obj).__module__.startswith(("torchvision.", "albumentations.", "lightning_aug."))


def _adapt(transform: Any, backend: str, where: str) -> tuple[Any, bool]:
    """``(transform, foreign)``: a transform of ``backend`` as it is; any other callable (a plain
    function, a torchvision v1 transform, timm's ``rand_augment_transform``) wrapped so that the
    backend calls it on the image alone (``v2.Lambda``, ``A.Lambda``); ``foreign`` says whether it
    may draw from Python's or numpy's global generators (anything not of torchvision,
    albumentations or this package).

    Raises:
        TypeError: a transform of the other backend, or something that is not callable.
    """
    import albumentations as A
    from torchvision.transforms import v2

    is_alb = isinstance(transform, (A.BasicTransform, A.BaseCompose))
    is_v2 = isinstance(transform, v2.Transform)
    name = f"{type(transform).__module__}.{type(transform).__qualname__}"
    if backend == "albumentations":
        if is_alb:
            return transform, not _own_module(transform)
        if not is_v2 and callable(transform):
            return A.Lambda(image=_ImageFunction(transform), p=1.0), True
        raise TypeError(
            f"{where}: backend 'albumentations' expects albumentations transforms or a callable "
            f"image -> image on HWC uint8 arrays, got {name}"
        )
    if is_v2:
        return transform, not _own_module(transform)
    if not is_alb and callable(transform):
        return v2.Lambda(transform), True
    raise TypeError(
        f"{where}: backend 'torchvision' expects torchvision.transforms.v2 transforms or a callable "
        f"image -> image on CHW uint8 tensors (PIL images with decoder='pil'), got {name}"
    )


def _resized_crops() -> tuple[type, ...]:
    import albumentations as A
    from torchvision import transforms as v1
    from torchvision.transforms import v2

    return (A.RandomResizedCrop, v2.RandomResizedCrop, v1.RandomResizedCrop)


def _fixed_size_classes() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """The transforms whose output has one size whatever the input's: ``(always, resizes)``, the
    second only when given a height and a width."""
    import albumentations as A
    from torchvision import transforms as v1
    from torchvision.transforms import v2

    always = (
        *_resized_crops(),
        *(v2.RandomCrop, v2.CenterCrop, v1.RandomCrop, v1.CenterCrop),
        *(A.RandomCrop, A.CenterCrop, A.Crop, A.RandomSizedCrop, A.RandomSizedBBoxSafeCrop, A.Resize),
        *(A.CropNonEmptyMaskIfExists, A.AtLeastOneBBoxRandomCrop),
    )
    return always, (v2.Resize, v1.Resize)


def gives_fixed_size(transform: Any) -> bool:
    """Whether ``transform`` outputs one size whatever its input's, decided on what it is: its own
    declaration (a ``gives_fixed_size`` attribute: your own transforms say it), else the crops and
    resizes to height and width of torchvision (v2, v1) and albumentations, subclasses included."""
    declared = getattr(transform, "gives_fixed_size", None)
    if isinstance(declared, bool):
        return declared
    always, resizes = _fixed_size_classes()
    if isinstance(transform, always):
        return True
    size = getattr(transform, "size", None)
    return isinstance(transform, resizes) and isinstance(size, (list, tuple)) and len(size) == 2


class Pipeline:
    """A per-sample augmentation pipeline whose output is always a CHW uint8 tensor.

    Args:
        transforms: a list of transforms of ``backend``, each an object or a ``{"_target_":
            "albumentations.HorizontalFlip", ...}`` mapping (checked against the class signature, then
            instantiated); or a mapping of named ones, in order (``None`` entries are left out). Empty:
            only the conversion to a CHW uint8 tensor. **Any other callable** is taken too, with one
            contract: ``image -> image`` of the backend's type (torchvision: a CHW uint8 tensor, or a
            PIL image with ``decoder="pil"``; albumentations: an HWC uint8 array). A plain function, a
            torchvision v1 transform, timm's ``rand_augment_transform``: wrapped in ``v2.Lambda`` or
            ``A.Lambda``, and seeded per sample through Python's and numpy's global generators.
        backend: ``"albumentations"`` (2.x, wrapped in an ``albumentations.Compose`` with its own seed)
            or ``"torchvision"`` (``torchvision.transforms.v2``, drawing from torch's RNG).
        name: used in error messages (``"train pipeline"``).

    A pipeline that starts with a crop that can run while decoding (``RandomResizedCrop`` of either
    backend; ``SmallestMaxSize`` or ``Resize`` followed by ``CenterCrop``) exposes it as
    :attr:`decode_head` (:func:`lightning_aug.data.transforms.decode_head`): a dataset that reads image
    bytes (an image folder with any decoder but ``pil``) runs :meth:`decode_first` instead of decoding,
    then :meth:`after_decode` runs the rest of the pipeline. The two make the same random draws as the
    whole pipeline on the decoded image.

    Raises:
        ValueError: unknown backend, target or argument.
        TypeError: a transform of the other backend, or not callable.

    Example::

        >>> import numpy as np
        >>> from torchvision.transforms import v2
        >>> pipe = Pipeline([v2.RandomHorizontalFlip()], backend="torchvision")
        >>> out = pipe(np.zeros((8, 6, 3), dtype=np.uint8))
        >>> out.dtype, tuple(out.shape)
        (torch.uint8, (3, 8, 6))
    """

    def __init__(
        self,
        transforms: Sequence[Any] | Mapping[str, Any] = (),
        backend: Backend = "torchvision",
        name: str = "pipeline",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.name = name
        built, foreign = [], False
        for key, transform in _named(transforms, name):
            if transform is None:  # a named transform switched off (augment.train_transforms.flip=null)
                continue
            where = f"{name} transform {key}"
            transform, other = _adapt(build_transform(transform, where), backend, where)
            foreign = foreign or other
            built.append(transform)
        self.transforms = built
        self._foreign = foreign
        self._compose: Any
        self._rest: Any = None
        self._flip: Any = None  # the rest is one horizontal flip: run without the framework's dispatch
        from lightning_aug.data.transforms import decode_head, is_plain_flip

        self.decode_head = decode_head(built, backend)
        rest = built[len(self.decode_head.transforms) :] if self.decode_head is not None else []
        if backend == "albumentations":
            import albumentations as A

            self._compose = A.Compose(built)
            if self.decode_head is not None:
                self._rest = A.Compose(rest)
        else:
            from torchvision.transforms import v2

            self._compose = v2.Compose(built) if built else None
            self._rest = v2.Compose(rest) if rest else None
        if self.decode_head is not None and len(rest) == 1 and is_plain_flip(rest[0], backend):
            self._flip = rest[0]

    @property
    def fixed_size(self) -> bool:
        """Whether some transform makes every output the same size whatever the input's
        (:func:`gives_fixed_size`: a crop or a resize to height and width)."""
        return any(gives_fixed_size(t) for t in self.transforms)

    @property
    def output_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of every output, where the last transform that gives one size says it
        (a crop or resize of torchvision or albumentations); ``None`` otherwise."""
        for transform in reversed(self.transforms):
            if gives_fixed_size(transform):
                size = getattr(transform, "size", None)
                if isinstance(size, int):
                    return size, size
                if isinstance(size, (list, tuple)) and len(size) == 2:
                    return int(size[0]), int(size[1])
                height, width = getattr(transform, "height", None), getattr(transform, "width", None)
                if isinstance(height, int) and isinstance(width, int):
                    return height, width
                return None
        return None

    @property
    def leading_resized_crop(self) -> Any | None:
        """The ``RandomResizedCrop`` (of either backend, or ours) the pipeline starts with, if it does:
        the crop whose output size progressive resizing sets (:meth:`set_crop_size`)."""
        first = self.transforms[0] if self.transforms else None
        return first if first is not None and isinstance(first, _resized_crops()) else None

    def set_crop_size(self, size: int) -> None:
        """Make the leading ``RandomResizedCrop`` (and the crop run while decoding, which reads it)
        give ``size`` x ``size`` images from the next sample on.

        Raises:
            ValueError: the pipeline does not start with a ``RandomResizedCrop``.
        """
        crop = self.leading_resized_crop
        if crop is None:
            raise ValueError(
                f"progressive_resize sets the size of the {self.name}'s leading RandomResizedCrop, and it "
                f"has none ({self.contents}): start it with one (augment=imagenet_alb or imagenet_tv in "
                "the apps)"
            )
        crop.size = (size, size) if self.backend == "albumentations" else [size, size]

    def reseed(self, seed: int) -> None:
        """Seed the pipeline's own RNG (albumentations' ``Compose``); torchvision uses torch's RNG.

        All albumentations transforms share one generator pair (``Compose.set_random_state``), rather
        than one generator per transform seeded alike (``set_random_seed``), whose streams are equal.
        """
        if self.backend == "albumentations":
            self._rng = np.random.default_rng(seed)
            self._py_rng = NumpyRandom(self._rng)
            self._compose.set_random_state(self._rng, self._py_rng)
            if self._rest is not None:
                self._rest.set_random_state(self._rng, self._py_rng)

    def reseed_sample(self, value: int) -> None:
        """Re-seed the pipeline's own generators for one sample, in place and cheaply (2 us: numpy's
        PCG64 state, which albumentations' Python-side generator draws from too; ``random.seed``
        would add 3.6 us, ``Compose.set_random_seed`` makes new ones and hands them to every
        transform: 36 us). ``value`` is a 64-bit mixed seed (:func:`lightning_aug.seeding.sample_seed`);
        torchvision draws from torch's generator, which the caller seeds."""
        if self.backend != "albumentations":
            return
        if not hasattr(self, "_rng"):
            self.reseed(0)
        seed_pcg64(self._rng, value)  # the Python-side generator draws from the same PCG64: seeded with it

    def random_state(self) -> tuple[Any, ...]:
        """The state of every generator the pipeline draws from: torch's, its own, and Python's and
        numpy's global ones where :attr:`draws_from_globals`; :meth:`set_random_state` puts it back."""
        own = self._rng.bit_generator.state if hasattr(self, "_rng") else None
        outer = (random.getstate(), np.random.get_state()) if self._foreign else None
        return torch.default_generator.get_state(), own, outer

    def set_random_state(self, state: tuple[Any, ...]) -> None:
        """Put back the generators' state :meth:`random_state` gave."""
        torch_state, own, outer = state
        torch.default_generator.set_state(torch_state)
        if own is not None:
            self._rng.bit_generator.state = own
        if outer is not None:
            random.setstate(outer[0])
            np.random.set_state(outer[1])

    @property
    def draws_from_globals(self) -> bool:
        """Whether a transform may draw from Python's or numpy's global generators: any that is not of
        torchvision, albumentations or this package (a plain function, another library's transform)."""
        return self._foreign

    def __call__(self, image: Any) -> Tensor:
        if self.backend == "albumentations":
            return self.to_output(self._compose(image=np.ascontiguousarray(to_rgb_array(image)))["image"])
        if not isinstance(image, Image.Image):
            image = to_rgb_tensor(image)
        elif image.mode != "RGB":
            image = image.convert("RGB")
        return self.to_output(self._compose(image) if self._compose is not None else image)

    def decode_first(
        self, data: np.ndarray, decoder: ImageDecoder, path: str | os.PathLike[str], header: Any = UNPARSED
    ) -> Any:
        """Decode the image bytes ``data`` (of the file at ``path``) with ``decoder``, running
        :attr:`decode_head` while decoding; then :meth:`after_decode`. The two make the same random
        draws, in the same order, as the pipeline on the decoded image. ``header``: the JPEG header as
        the caller parsed it (parsed here otherwise).

        Raises:
            RuntimeError: the pipeline has no :attr:`decode_head`.
            ValueError: the bytes cannot be decoded (the message names ``path``).
        """
        return self.plan_first(data, decoder, path, header)()

    def plan_first(
        self, data: np.ndarray, decoder: ImageDecoder, path: str | os.PathLike[str], header: Any = UNPARSED
    ) -> Callable[[], Any]:
        """:meth:`decode_first` with its random draws made now and the decoding and resizing left to
        the job it returns, which draws nothing (a thread may run it: :mod:`lightning_aug.data.threads`)."""
        if self.decode_head is None:
            raise RuntimeError(f"{self.name} cannot run while decoding: it does not start with a crop")
        if self.backend == "albumentations":
            self._compose.py_random.random()  # the draw albumentations' Compose makes first on each call
        return self.decode_head.prepare(data, decoder, path, header)

    def after_decode(self, image: Any) -> Tensor:
        """The pipeline after its :attr:`decode_head`, for what :meth:`decode_first` returned."""
        if self.decode_head is None:
            raise RuntimeError(f"{self.name} cannot run while decoding: it does not start with a crop")
        flip = self._flip
        if self.backend == "albumentations":
            image = np.ascontiguousarray(image)
            if flip is not None:  # the flip's own draw (should_apply) and kernel, without the Compose
                return self.to_output(flip.apply(image) if flip.should_apply() else image)
            # force_apply: the Compose's own draw was made in decode_first
            return self.to_output(self._rest(image=image, force_apply=True)["image"])
        if flip is not None:  # v2.RandomHorizontalFlip's draw and kernel, without the v2 dispatch
            return self.to_output(image.flip(-1) if torch.rand(1) < flip.p else image)
        return self.to_output(self._rest(image) if self._rest is not None else image)

    def to_output(self, out: Any) -> Tensor:
        """The last transform's output as the contract's CHW uint8 tensor.

        Raises:
            TypeError: the output is not uint8 (a float conversion or normalisation in the pipeline).
        """
        if isinstance(out, Image.Image) or (isinstance(out, np.ndarray) and out.dtype == np.uint8):
            out = to_rgb_tensor(out)
        if not (isinstance(out, Tensor) and out.dtype == torch.uint8 and out.ndim == 3):
            got = f"{out.dtype} of shape {tuple(out.shape)}" if hasattr(out, "dtype") else type(out).__name__
            raise TypeError(
                f"{self.name} must output a CHW uint8 tensor, got {got}; remove float conversion and "
                "normalisation from the pipeline: AugDataModule normalises batches on the device"
            )
        return out

    @property
    def contents(self) -> str:
        """What the pipeline runs, for messages: ``"['RandomResizedCrop', 'HorizontalFlip']"``, or
        ``"only tensor conversion"``."""
        return str([type(t).__name__ for t in self.transforms] or "only tensor conversion")

    def __repr__(self) -> str:
        inner = ", ".join(type(t).__name__ for t in self.transforms)
        return f"Pipeline(backend={self.backend!r}, transforms=[{inner}])"
