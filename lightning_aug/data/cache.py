"""Where lightning_aug keeps the files it makes (generated datasets, shard caches)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """``$LIGHTNING_AUG_CACHE``, else ``$XDG_CACHE_HOME/lightning_aug``, else ``~/.cache/lightning_aug``."""
    if "LIGHTNING_AUG_CACHE" in os.environ:
        return Path(os.environ["LIGHTNING_AUG_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "lightning_aug"
