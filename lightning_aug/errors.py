"""The errors a user fixes in their data rather than in our code.

:class:`DataError` is raised for input data that cannot be used as it is: a missing, truncated or
corrupt shard, a shard layout we do not write, a label outside the classes, stale shards. Its message
names the file (or chunk and sample), what is wrong and what to do. It is a ``ValueError``, so code
that handles bad values handles it; the apps print it as one line and exit with status 2, wherever it
is raised (also inside a DataLoader worker, whose traceback torch folds into the message).
"""

from __future__ import annotations

__all__ = ["DataError", "DownloadError", "SettingError", "download_error", "one_line"]


class DataError(ValueError):
    """Input data that cannot be used as it is; the message names the file and what is wrong."""


class SettingError(ValueError):
    """A setting that cannot run with the data or with another setting, found only while running
    (a train split smaller than one batch); the message names the keys to change. The apps print it
    as one line (``config error:``) and exit with status 2."""


class DownloadError(OSError):
    """Something to download (a dataset, pretrained weights) could not be fetched: no network, a
    proxy, a server down. The message names what, from where, why, and how to do without; the apps
    print it as one line (``download error:``) and exit with status 2."""


# what a failed download raises beneath urllib, requests, huggingface_hub: the network, not our code
_NETWORK = (
    "URLError",
    "HTTPError",
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "LocalEntryNotFoundError",
)


def download_error(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) is a failed download rather than a bug."""
    seen: BaseException | None = error
    while seen is not None:
        if type(seen).__name__ in _NETWORK or isinstance(seen, (TimeoutError, ConnectionError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line. An error re-raised by torch from a DataLoader worker
    ("Caught DataError in DataLoader worker process 0. Original Traceback ...") is reduced to the
    original message, the last line of that traceback."""
    text = str(error).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].endswith("Error") else last
    return " ".join(text.split())
