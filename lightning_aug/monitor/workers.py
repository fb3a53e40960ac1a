"""The CPU time of the loader's worker processes: whether they decode (busy) or wait (reading).

The workers are this process's children. Their CPU time is that of the live ones (``/proc``: each
task's ``children``, then each child's ``stat``) plus that of the ones already ended and reaped
(``getrusage(RUSAGE_CHILDREN)``: non-persistent workers end every epoch), so the difference of two
readings is what the workers used in between, whatever ended meanwhile. ``None`` where ``/proc`` is
not there (not Linux).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

__all__ = ["children_cpu_seconds", "live_children"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def live_children() -> set[int]:
    """The pids of this process's live child processes (each thread's ``children`` in ``/proc``)."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            found |= {int(pid) for pid in (task / "children").read_text().split()}
        except OSError:  # a thread that ended meanwhile
            continue
    return found


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:  # ended meanwhile: counted by getrusage once reaped
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def children_cpu_seconds() -> float | None:
    """CPU seconds used so far by this process's child processes, live and reaped; ``None`` without
    ``/proc`` (the verdict then does without)."""
    if not Path(f"/proc/{os.getpid()}/task").is_dir():
        return None
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        live = sum(_cpu_of(pid) for pid in live_children())
    except OSError:
        return None
    return reaped.ru_utime + reaped.ru_stime + live
