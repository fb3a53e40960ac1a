"""The report of ``lightning-aug-bench``: a text table, ``bench.json`` and a bar chart ``bench.png``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning_aug.bench.cases import BASELINE, DECODE_OPENCV, EVAL_BASELINE, FLOOR

__all__ = ["table", "write"]


def spread_warnings(results: dict[str, Any]) -> list[str]:
    """Lines warning about measurements whose repeats disagree by more than ``max_spread``."""
    limit = float(results.get("max_spread", 0.2))
    noisy = {k: v for k, v in results.get("spreads", {}).items() if v > limit}
    if not noisy:
        return []
    worst = ", ".join(f"{k} {v:.0%}" for k, v in sorted(noisy.items(), key=lambda kv: -kv[1])[:6])
    return [
        f"WARNING: {len(noisy)} measurement(s) disagree across repeats by more than "
        f"{limit:.0%} (bench.max_spread): {worst}. Another process was probably busy: rerun on a quiet "
        "machine, or with more bench.repeats, before trusting these ratios."
    ]


def title(results: dict[str, Any]) -> str:
    config = results.get("config", {})
    augment = config.get("augment", {})
    crop = augment.get("train_transforms", {}).get("crop", {}) if isinstance(augment, dict) else {}
    what = crop.get("_target_", "").rsplit(".", 1)[-1] if isinstance(crop, dict) else ""
    return (
        f"lightning-aug-bench: data={config.get('data')}, {augment.get('backend', '?')} pipeline"
        f"{f' ({what})' if what else ''}, {config.get('images')} images x {config.get('repeats')} repeats"
    )


def table(results: dict[str, Any]) -> str:
    lines = [title(results), f"  machine: {results.get('config', {}).get('machine', '?')}"]
    lines += spread_warnings(results)
    rates = results["per_worker_img_s"]
    decode, floor = rates.get(DECODE_OPENCV), rates.get(FLOOR)
    lines.append(
        "per worker (one process)                   img/s  x classic  x OpenCV decode"
        + ("  x floor" if floor else "")
    )
    for k, v in rates.items():
        base = rates[EVAL_BASELINE] if k.startswith("eval") else rates[BASELINE]
        versus = f"{v / decode:>15.2f}" if decode else ""
        versus += f"{v / floor:>9.2f}" if floor and not k.startswith("eval") else ""
        lines.append(f"  {k:<40} {v:>6.0f} {v / base:>9.2f}{versus}")
    if results.get("crop_while_decoding"):
        lines.append("  (the configured pipeline crops while decoding: only the crop's region is decoded)")
    lines.append("DataLoader (configured workers)            img/s")
    lines += [f"  {k:<38} {v:>8.0f}" for k, v in results["loader_img_s"].items()]
    to_step = results["to_training_step_img_s"]
    ratio = to_step["configured (loader + device stage)"] / to_step["baseline (loader)"]
    lines.append(f"to training_step (loader + device stage)   img/s   ({ratio:.1f}x baseline)")
    lines += [f"  {k:<38} {v:>8.0f}" for k, v in to_step.items()]
    if "per_transform_ms" in results:
        lines.append("per-transform cost                         ms/img")
        lines += [f"  {k:<38} {v:>8.3f}" for k, v in results["per_transform_ms"].items()]
    if "per_sample_seeding" in results:
        seeding = results["per_sample_seeding"]
        lines.append(
            f"per-sample seeding (generators from (seed, epoch, sample)): {seeding['us_per_sample']:.2f} "
            f"us/img, {seeding['share']:.1%} of the configured pipeline's time per image"
        )
    lines.append(
        "loader sweep (median of the rounds; 1 decode thread: per sample)  img/s  MiB (PSS, all processes)"
    )

    def sweep_row(name: str, row: dict[str, Any]) -> str:
        rss = f"{row['rss_mib']:>8.0f}" if row["rss_mib"] is not None else "       -"
        return f"  {name:<62} {row['img_s']:>6.0f} {rss}"

    for row in results["rows"]:
        lines.append(sweep_row(f"{row['workers']} workers x {row['decode_threads']} decode threads", row))
    if not results["threads_swept"]:
        lines.append("  (decode threads not swept: the train crop does not run while decoding here)")
    for row in results.get("thread_loader_rows", []):  # the same rounds, a thread-based loader
        lines.append(sweep_row(f"thread loader (SPDL's pipeline), {row['threads']} threads, 0 workers", row))
    if "thread_loader_missing" in results:
        lines.append(f"  (no thread-loader rows: {results['thread_loader_missing']})")
    lines.append(
        f"  recommended: num_workers={results['recommended_num_workers']}, "
        f"decode_threads={results['recommended_decode_threads']}"
    )
    stage = results["device_stage"]
    lines.append(
        f"device stage {stage['batch']} on {stage['device']}: {stage['ms']:.2f} ms/batch, "
        f"x.clone() {stage['clone_ms']:.2f} ms ({stage['x_clone']:.2f}x), "
        f"add(x, y, out=z) {stage['add_out_ms']:.2f} ms"
    )
    lines.append("kernel launches per batch (top-level aten ops on meta tensors)")
    for group, counts in results["launches"].items():
        lines += [f"  {group:<13} {name:<44} {count:>4}" for name, count in counts.items()]
    mix = results["mixup_kernel"]
    lines.append(f"mixup kernel {mix['shape']}            ms/batch  x clone  extra mem")
    for row in mix["rows"]:
        extra = "n/a" if row["extra_memory"] is None else f"{row['extra_memory']:.2f}"
        lines.append(f"  {row['case']:<38} {row['ms']:>8.2f} {row['x_clone']:>8.2f} {extra:>9}")
    if "fit" in results:
        fit = results["fit"]
        lines.append(
            f"trainer.fit: configured {fit['configured_s']:.1f} s, baseline {fit['baseline_s']:.1f} s, "
            f"speed-up {fit['speedup']:.2f}x"
        )
        if "speedup_limit" in fit:
            lines.append(
                f"  the model's step alone: {fit['model_step_ms_per_image']:.2f} ms/img, the baseline fit "
                f"{fit['baseline_ms_per_image']:.2f} ms/img: no data path can make it more than "
                f"{fit['speedup_limit']:.2f}x faster"
            )
    return "\n".join(lines)


def _chart(results: dict[str, Any], path: Path) -> None:
    """Bar-chart panels (PIL, no plotting dependency): loaders (img/s), the device stage and mixup
    (ms per batch against ``x.clone()``), under a title with the configuration."""
    from PIL import Image, ImageDraw

    stage = results["device_stage"]
    panels: list[tuple[str, dict[str, float]]] = [
        (
            "per worker and DataLoader, img/s (higher is better)",
            {**results["per_worker_img_s"], **results["loader_img_s"]},
        ),
        (
            f"device stage, batch {stage['batch']} on {stage['device']}, ms (lower is better)",
            {
                "device stage": stage["ms"],
                "x.clone()": stage["clone_ms"],
                "add(x, y, out=z)": stage["add_out_ms"],
            },
        ),
        (
            f"mixup kernels {results['mixup_kernel']['shape']}, ms (lower is better)",
            {row["case"]: row["ms"] for row in results["mixup_kernel"]["rows"]},
        ),
    ]
    width, row = 760, 22
    height = 56 + sum(30 + row * len(bars) for _, bars in panels)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title(results), fill="black")
    draw.text((10, 24), f"machine: {results.get('config', {}).get('machine', '?')}", fill=(90, 90, 90))
    warned = spread_warnings(results)
    if warned:
        draw.text((10, 38), "WARNING: repeats disagree (see bench.json 'spreads'): rerun", fill=(200, 0, 0))
    y = 56
    for heading, bars in panels:
        draw.text((10, y + 6), heading, fill="black")
        y += 30
        top = max(bars.values()) or 1.0
        for name, value in bars.items():
            length = int((width - 360) * value / top)
            base = "baseline" in name or "clone" in name or "classic" in name or "torchvision" in name
            colour = (190, 110, 70) if base else (70, 110, 190)
            draw.text((10, y + 4), name[:46], fill="black")
            draw.rectangle((320, y + 2, 320 + length, y + row - 4), fill=colour)
            draw.text((325 + length, y + 4), f"{value:.3g}" if value < 100 else f"{value:.0f}", fill="black")
            y += row
    image.save(path)


def write(results: dict[str, Any], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "bench.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    _chart(results, output_dir / "bench.png")
    print(table(results))
    print(f"bench: {output_dir / 'bench.json'} {output_dir / 'bench.png'}")
