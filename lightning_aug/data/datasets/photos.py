"""An ImageNet-like set of real photographs, made from the ones scikit-image and scikit-learn ship.

ImageNet's JPEGs are photographs of about 500x375 pixels at quality around 90 (about 110 KB on average
for the full set, much less for the smooth ones). The speed of decoding depends on what is in the
picture (entropy), so synthetic shapes or noise mislead. This set takes random crops (random position,
scale and flip) of each shipped photograph, resizes them to 500x375 (or 375x500) and saves them as JPEG
at quality 90: the class is the source photograph. No download: the photographs come with the
packages (``pip install lightning-aug[bench]``).
"""

from __future__ import annotations

import functools

import numpy as np

from lightning_aug.data.datasets.synthetic import SyntheticShapes

__all__ = ["PHOTO_NAMES", "Photos", "source_photos"]

# skimage.data functions whose images ship in the wheel, then scikit-learn's two sample images
_SKIMAGE = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
PHOTO_NAMES: tuple[str, ...] = (*_SKIMAGE, "china", "flower")


@functools.cache
def source_photos() -> tuple[np.ndarray, ...]:
    """The shipped photographs, RGB HWC uint8, in the order of :data:`PHOTO_NAMES`.

    Raises:
        ImportError: scikit-image or scikit-learn is not installed.
    """
    try:
        import skimage.data
        from sklearn.datasets import load_sample_images
    except ImportError as err:
        raise ImportError(
            "the photo set needs scikit-image and scikit-learn: pip install 'lightning-aug[bench]'"
        ) from err
    photos = [np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]) for name in _SKIMAGE]
    photos += list(load_sample_images().images)
    return tuple(photos)


def photo_crop(source: np.ndarray, rng: np.random.Generator, long_side: int = 500) -> np.ndarray:
    """A random crop of ``source`` (between 40% and all of its shorter side, 4:3 landscape or 3:4
    portrait, randomly flipped), resized to ``long_side`` x ``long_side * 3 / 4``."""
    import cv2

    h, w = source.shape[:2]
    portrait = rng.random() < 0.25
    aspect = 3 / 4 if portrait else 4 / 3  # width / height
    side = rng.uniform(0.4, 1.0) * min(h, w / aspect)
    ch, cw = max(8, int(side)), max(8, int(side * aspect))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = source[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = (round(long_side * 3 / 4), long_side) if not portrait else (long_side, round(long_side * 3 / 4))
    shrink = out[0] < ch
    return cv2.resize(
        np.ascontiguousarray(crop), out[::-1], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    )


class Photos(SyntheticShapes):
    """Dataset factory of ImageNet-like JPEGs cut from real photographs (classes: the source photos).

    Generated once by :meth:`prepare` into ``root/photos-<hash>/{train,val,test}/<NN_name>/*.jpg``, as
    :class:`~lightning_aug.data.datasets.SyntheticShapes` is.

    Args: those of :class:`~lightning_aug.data.datasets.SyntheticShapes`, except:
        num_classes: 2 to 9 source photographs; ``None``: all 9.
        image_size: the long side in pixels; ``None``: 500 (ImageNet's typical 500x375); the short side
            is 3/4 of it.

    Raises:
        ImportError: scikit-image or scikit-learn is missing (at :meth:`prepare`).
    """

    kind = "photos"
    class_names = PHOTO_NAMES
    default_image_size = 500

    def image_sizes(self, limit: int = 64, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
        """Landscape and portrait photographs: ``image_size`` by three quarters of it, both ways."""
        long, short = self.image_size, self.image_size * 3 // 4
        return [("landscape photographs", (short, long)), ("portrait photographs", (long, short))]

    def prepare(self) -> None:
        source_photos()  # fail before writing anything when the packages are missing
        super().prepare()

    def _draw(self, label: int, rng: np.random.Generator) -> np.ndarray:
        return photo_crop(source_photos()[label], rng, self.image_size)
