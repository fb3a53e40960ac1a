"""The worker side of ``prepare_shards``: each sample read once, stored as its own bytes where they
are a fast format (JPEG, PNG) and no resize is asked, else re-encoded (PNG, or JPEG of ``quality``
at ``max_side``); a file that cannot be read is left out and noted, never a stop."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import numpy as np

from lightning_aug.data.jpeg import fast_format

__all__ = ["Encoder"]


def _watch_parent(parent: int) -> None:
    """Exit this process, and the processes it started, as soon as ``parent`` is gone (a killed
    ``lightning-aug-prepare``)."""
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.1)
        import multiprocessing

        for child in multiprocessing.active_children():  # LitData's uploaders would wait forever
            child.kill()
        os._exit(1)

    threading.Thread(target=watch, name="lightning-aug-parent-watch", daemon=True).start()


def _to_array(image: Any) -> np.ndarray:
    """An RGB HWC uint8 array of a PIL image, an HWC array or a CHW tensor."""
    if hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3] if array.shape[2] >= 3 else np.repeat(array, 3, axis=2))


def _encode(image: np.ndarray, max_side: int | None, quality: int) -> bytes:
    import cv2

    if max_side is None:
        ok, out = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    else:
        h, w = image.shape[:2]
        if max(h, w) > max_side:
            scale = max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, out = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
    if not ok:
        raise ValueError("OpenCV could not encode the image")
    return out.tobytes()


class Encoder:
    """LitData's ``optimize`` function: sample index -> ``{"image", "label", "name"}``, or ``None``
    (left out) for a file that cannot be decoded, noted in ``bad_log``."""

    def __init__(self, dataset: Any, max_side: int | None, quality: int, bad_log: str) -> None:
        self.dataset, self.max_side, self.quality, self.bad_log = dataset, max_side, quality, bad_log
        self.parent = os.getpid()
        self._watching = -1

    def __call__(self, index: int) -> dict[str, Any] | None:
        if self._watching != os.getpid() and os.getpid() != self.parent:
            self._watching = os.getpid()
            _watch_parent(self.parent)
        name = self.dataset.sample_name(index)
        try:
            data, image, label = self.dataset.read_sample(index)  # files: read once, checked
            if data is not None and self.max_side is None and fast_format(data) is not None:
                payload = data.tobytes()
            else:
                payload = _encode(_to_array(image), self.max_side, self.quality)
        except ValueError as err:
            with open(self.bad_log, "a") as log:  # one short line per file: appends do not interleave
                log.write(json.dumps([name, str(err)[:500]]) + "\n")
            return None
        # LitData picks serialisers by value: a string ending in ".jpg" would be read as an image
        # path, so the name is stored as bytes, the image as a 1-d uint8 array
        return {
            "image": np.frombuffer(payload, dtype=np.uint8),
            "label": int(label),
            "name": name.encode("utf-8", "surrogateescape"),
        }
