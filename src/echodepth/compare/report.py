"""The comparison's Markdown report (report.md, with its PNG plots) and results.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..metrics import analysis_kernel
from ..viz import plot_curves, plot_magnitudes
from .results import epochs_to_target, fmt, mean_curve, mean_std
from .variants import BASELINE, PROPOSED
from .verdicts import verdicts

HIGHLIGHT = (BASELINE, PROPOSED)
RUN_OUTPUTS = (
    "Each run's outputs (metrics.csv, decomposition figures, checkpoints, train.log) are in `runs/<variant>_s<seed>/`."
)
METRIC_COLUMNS = ("rmse", "abs_rel", "mae", "delta1", "delta2", "delta3", "log10")
STRUCTURE_COLUMNS = [
    ("lowpass_mae", "low-pass error (m)"),
    ("highpass_mae", "high-frequency error (m)"),
    ("smooth_mae", "error, smooth regions (m)"),
    ("edge_mae", "error, near edges (m)"),
    ("smooth_roughness_excess", "excess gradient, smooth regions (m/px)"),
    ("base_hf_share", "base HF energy share"),
    ("final_hf_share", "final HF energy share"),
    ("residual_share", "abs residual / abs final"),
    ("residual_edge_to_smooth", "abs residual, edges / smooth"),
]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Returns the lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def seed_stat(values) -> str:
    return fmt(*mean_std(values))


def convergence_section(results: dict, target: float) -> list[str]:
    base_epochs = epochs_to_target(mean_curve(results[BASELINE]["curves"]), target)
    rows = []
    for variant, entry in results.items():
        per_seed = [epochs_to_target(c, target) for c in entry["curves"]]
        mean_epochs = epochs_to_target(mean_curve(entry["curves"]), target)
        rows.append(
            [
                variant,
                fmt(mean_epochs, digits=0),
                fmt(mean_epochs / base_epochs, digits=2),
                ", ".join("—" if not np.isfinite(e) else str(int(e)) for e in per_seed),
                f"{min(mean_curve(entry['curves'])):.4f}",
            ]
        )
    header = ["variant", "seed-mean curve reaches it at epoch", "ratio to baseline", "each seed's curve (— never)"]
    header.append("best seed-mean validation RMSE (m)")
    intro = f"Target RMSE: {target:.4f} m (default: the best of the baseline's seed-mean validation RMSE curve)."
    return ["## Convergence", "", "![validation RMSE](val_rmse.png)", "", intro, "", *table(header, rows), ""]


def metrics_section(results: dict) -> list[str]:
    rows = [[v, *(seed_stat([t[k] for t in e["test"]]) for k in METRIC_COLUMNS)] for v, e in results.items()]
    for name, m in results[BASELINE]["baselines"].items():
        if name in ("mean_depth", "per_pixel_mean_depth"):
            rows.append([f"{name.replace('_', ' ')} predictor (no audio)", *(fmt(m[k]) for k in METRIC_COLUMNS)])
    return ["## Final protocol metrics (test split)", "", *table(["variant", *METRIC_COLUMNS], rows), ""]


def structure_section(results: dict, image_size: int) -> list[str]:
    kernel = analysis_kernel(image_size)
    gt_share = seed_stat([s["gt_hf_share"] for s in results[BASELINE]["structure"]])
    intro = (
        f"Low-pass = the masked {kernel} x {kernel} average used by the structural loss; high-frequency = the rest; "
        f"energy shares above 1/{kernel} cycles per pixel; edges = pixels within one pixel of a >10% depth jump; "
        f"smooth = the other valid pixels. Ground truth HF energy share: {gt_share}."
    )
    rows = [[v, *(seed_stat([s[k] for s in e["structure"]]) for k, _ in STRUCTURE_COLUMNS)] for v, e in results.items()]
    header = ["variant", *(label for _, label in STRUCTURE_COLUMNS)]
    return ["## Structure metrics (test split)", "", intro, "", *table(header, rows), ""]


def magnitudes_section(results: dict) -> list[str]:
    rows = [
        [v, seed_stat([c[-1] for c in e["base"]]), seed_stat([c[-1] for c in e["residual"]])]
        for v, e in results.items()
    ]
    header = ["variant", "mean abs base, last epoch (m)", "mean abs residual, last epoch (m)"]
    title = "## Base and residual magnitudes over training"
    return [title, "", "![magnitudes](magnitudes.png)", "", *table(header, rows), ""]


def write_report(out_dir: Path, results: dict, preset: str, seeds: int, target: float | None, cfg: dict) -> Path:
    """Writes report.md (and its PNG plots) in out_dir; returns its path. `cfg` holds the runs'
    shared settings (one run's TrainConfig as a dict)."""
    if target is None:  # the baseline's best seed-mean validation RMSE
        target = float(min(mean_curve(results[BASELINE]["curves"])))
    title = f"Validation RMSE, mean and min-max band over {seeds} seeds"
    plot_curves(results, out_dir / "val_rmse.png", "curves", "validation RMSE (m)", title, HIGHLIGHT, target)
    plot_magnitudes(results, out_dir / "magnitudes.png", HIGHLIGHT)
    data = (
        f"Data: `{cfg['dataset']}` in `{Path(cfg['data_dir']).name}/`; {cfg['image_size']} x {cfg['image_size']} "
        f"depth; {cfg['epochs']} epochs, batch {cfg['batch_size']}, learning rate {cfg['learning_rate']}, base "
        f"channels {cfg['base_channels']}. Every variant has the same data, budget and seeds; metrics are means ± std "
        "over seeds (test split, best checkpoint by validation RMSE)."
    )
    verdict_rows = [[c, m, k, f"**{v}**"] for c, m, k, v in verdicts(results, target)]
    lines = [f"# echodepth compare: base + residual against the baseline U-Net ({preset} preset, {seeds} seeds)", ""]
    lines += [data, "", "## Verdict on the design guide's claims", ""]
    lines += [*table(["claim", "measured", "criterion", "verdict"], verdict_rows), ""]
    lines += convergence_section(results, target)
    lines += metrics_section(results)
    lines += structure_section(results, cfg["image_size"])
    lines += magnitudes_section(results)
    lines += [RUN_OUTPUTS, ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    summary = {"target_rmse": target, "results": results}
    (out_dir / "results.json").write_text(json.dumps(summary, indent=1, default=float))
    return path
