"""The per-step chart of :class:`~lightning_aug.monitor.DataStallMonitor` (``data_stall.png``): one
column per training step (averaged over neighbouring steps when there are more steps than columns),
stacked: the wait for the batch, the device stage, the training step, the rest of the interval."""

from __future__ import annotations

import itertools
from pathlib import Path

from lightning_aug.monitor.report import StallReport, StepTimes

__all__ = ["plot_steps"]

WIDTH, HEIGHT, MARGIN, COLUMNS = 900, 340, 48, 600
SERIES = (  # (name, colour)
    ("wait for the batch", (214, 69, 65)),
    ("device stage", (242, 163, 60)),
    ("training step", (66, 133, 214)),
    ("transfer, hooks", (190, 190, 190)),
)


def _binned(values: list[float], bins: int) -> list[float]:
    if len(values) <= bins:
        return values
    edges = [round(i * len(values) / bins) for i in range(bins + 1)]
    return [sum(values[a:b]) / (b - a) for a, b in itertools.pairwise(edges) if b > a]


def plot_steps(times: StepTimes, report: StallReport, path: Path) -> Path:
    """Draw ``times`` with ``report``'s headline into the PNG ``path``; returns ``path``."""
    from PIL import Image, ImageDraw

    series = zip(times.interval, times.wait, times.stage, times.step, strict=True)
    rest = [max(i - w - s - t, 0.0) for i, w, s, t in series]
    columns = [_binned(list(v), COLUMNS) for v in (times.wait, times.stage, times.step, rest)]
    n = len(columns[0])
    sheet = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(sheet)
    top = max((sum(c[i] for c in columns) for i in range(n)), default=0.0) or 1.0
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 3 * MARGIN
    base = HEIGHT - MARGIN
    for i in range(n):
        x0 = MARGIN + i * plot_w / max(n, 1)
        x1 = MARGIN + (i + 1) * plot_w / max(n, 1)
        y = float(base)
        for column, (_, colour) in zip(columns, SERIES, strict=True):
            h = column[i] / top * plot_h
            if h > 0:
                draw.rectangle([x0, y - h, max(x0, x1 - 1), y], fill=colour)
            y -= h
    draw.line([MARGIN, base, WIDTH - MARGIN, base], fill="black")
    draw.line([MARGIN, base, MARGIN, base - plot_h], fill="black")
    draw.text((4, base - plot_h - 4), f"{top * 1e3:.0f} ms", fill="black")
    draw.text((4, base - 6), "0", fill="black")
    draw.text((MARGIN, base + 6), f"training steps 1..{len(times)} (measured)", fill="black")
    x = MARGIN
    for name, colour in SERIES:
        draw.rectangle([x, 30, x + 10, 40], fill=colour)
        draw.text((x + 14, 29), name, fill="black")
        x += 24 + 7 * len(name)
    headline = (
        f"waiting {report.wait_fraction:.0%} of the time; {report.batches_per_s:.1f} batches/s; "
        f"limit: {report.limit}"
    )
    draw.text((MARGIN, 8), headline, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
