"""`echodepth compare`: the design guide's claims, tested against the baseline U-Net.

Trains the baseline and base + residual (plus ablations) on the same data with the same budget
over several seeds, each run in its own process (resumable: a finished run is kept, an
interrupted one continues from its last checkpoint), then writes a Markdown report with plots:
validation RMSE curves, epochs to a target RMSE, final protocol metrics, structure metrics,
base / residual magnitudes over training, and a verdict on each claim.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from .config import CPU_PRESET, TrainConfig
from .losses import lowpass

# name -> settings over the preset; the baseline is the dataset paper's U-Net with its plain L1
VARIANTS: dict[str, dict] = {
    "unet_baseline": {"model": "unet_baseline", "lambda_base": 0.0, "lambda_sparse": 0.0},
    "base_residual": {},
    "no_structural": {"lambda_base": 0.0},
    "no_sparsity": {"lambda_sparse": 0.0},
    "lowpass_4": {"lowpass_kernel": 4},
    "lowpass_16": {"lowpass_kernel": 16},
    "adaptive": {"loss": "adaptive"},
    "frequency": {"loss": "frequency"},
}
BASELINE, PROPOSED = "unet_baseline", "base_residual"

PRESETS: dict[str, dict] = {
    # CPU: 24 runs (8 variants x 3 seeds) in about 18 minutes on 2 cores (measured 17 min 33 s)
    "small": {**CPU_PRESET, "synth_rooms": 100, "epochs": 8, "warmup_epochs": 3},
    # GPU: the guide's defaults (256 x 256, 64 channels, batch 256) on the built-in data at 128 x 128 rendering
    "full": {"dataset": "synthetic", "synth_rooms": 1000, "synth_image_size": 128, "epochs": 80, "num_workers": 4},
    # tests
    "tiny": {**CPU_PRESET, "synth_rooms": 8, "synth_image_size": 16, "image_size": 16, "base_channels": 4, "batch_size": 8, "epochs": 2, "warmup_epochs": 1},
}


@dataclass
class Run:
    variant: str
    seed: int
    cfg: TrainConfig

    @property
    def name(self) -> str:
        return f"{self.variant}_s{self.seed}"

    @property
    def out_dir(self) -> Path:
        return self.cfg.out_dir

    @property
    def done(self) -> bool:
        return (self.out_dir / "test_metrics.json").exists()


def plan_runs(out_dir: Path, preset: str, seeds: int, variants, overrides: dict) -> list[Run]:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; expected some of {list(VARIANTS)}")
    if BASELINE not in variants or PROPOSED not in variants:
        raise ValueError(f"the comparison needs {BASELINE} and {PROPOSED} among the variants")
    runs = []
    for variant in variants:
        for seed in range(seeds):
            values = {**PRESETS[preset], **overrides, **VARIANTS[variant], "seed": seed, "results_dir": str(out_dir / "runs"), "experiment_name": f"{variant}_s{seed}"}
            runs.append(Run(variant, seed, TrainConfig.from_dict(values)))
    return runs


def _launch(run: Run, threads: int) -> tuple[str, int]:
    run.out_dir.mkdir(parents=True, exist_ok=True)
    cfg = run.cfg.to_dict()
    if (run.out_dir / "checkpoints" / "last.ckpt").exists():
        cfg["resume"] = "last"  # an interrupted run continues
    config_path = run.out_dir / "compare_run.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(run.out_dir / "train.log", "a") as log:
        code = subprocess.call([sys.executable, "-m", "echodepth.cli", "train", "--config", str(config_path)], stdout=log, stderr=subprocess.STDOUT, env=env)
    return run.name, code


def execute(runs: list[Run], jobs: int, progress=print) -> None:
    """Runs the unfinished runs, `jobs` at a time, each in its own process."""
    todo = [r for r in runs if not r.done]
    progress(f"{len(runs) - len(todo)} of {len(runs)} runs already finished; running {len(todo)} with {jobs} at a time")
    threads = max(1, (os.cpu_count() or 1) // max(jobs, 1))
    failed = []
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for i, (name, code) in enumerate(pool.map(lambda r: _launch(r, threads), todo), 1):
            progress(f"[{i}/{len(todo)}] {name}: {'done' if code == 0 else f'FAILED (exit {code}, see its train.log)'}")
            if code != 0:
                failed.append(name)
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed: {', '.join(failed)}; their train.log files say why; rerun to retry them")


# ---------------------------------------------------------------- structure metrics


def depth_edges(gt: torch.Tensor, valid: torch.Tensor, jump: float = 0.1) -> torch.Tensor:
    """Returns a bool map of pixels within one pixel of a depth edge: a 4-neighbour whose depth
    differs by more than `jump` (relative) from the pixel's."""
    g = torch.where(valid, gt, torch.zeros_like(gt))
    edge = torch.zeros_like(valid)
    for dim in (-1, -2):
        a, b = g.narrow(dim, 0, g.shape[dim] - 1), g.narrow(dim, 1, g.shape[dim] - 1)
        both = (a > 0) & (b > 0)
        step = both & ((a - b).abs() > jump * torch.minimum(a, b))
        pad = (0, 1) if dim == -1 else (0, 0, 0, 1)
        pad2 = (1, 0) if dim == -1 else (0, 0, 1, 0)
        edge = edge | F.pad(step, pad) | F.pad(step, pad2)
    return F.max_pool2d(edge.float(), 3, stride=1, padding=1) > 0


def high_frequency_share(maps: torch.Tensor, cutoff_cycles_per_px: float) -> torch.Tensor:
    """Returns, per map, the share of its spectral energy (mean removed) above the cutoff."""
    spectrum = torch.fft.rfft2(maps - maps.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
    h, w = maps.shape[-2:]
    fy = torch.fft.fftfreq(h, device=maps.device).abs()[:, None]
    fx = torch.fft.rfftfreq(w, device=maps.device)[None, :]
    high = ((fy**2 + fx**2).sqrt() > cutoff_cycles_per_px).to(spectrum.dtype)
    total = spectrum.sum(dim=(-2, -1)).clamp(min=1e-12)
    return (spectrum * high).sum(dim=(-2, -1)) / total


def structure_sums(base, residual, final, gt, kernel: int) -> dict[str, float]:
    """Returns sums (to be divided by the matching counts) of the structure metrics of a batch
    of (B, 1, H, W) maps in metres; see `finish_structure`."""
    valid = gt > 0
    mask = valid.float()
    gt_low, _ = lowpass(gt, mask, kernel)
    pred_low, _ = lowpass(final, mask, kernel)
    edges = depth_edges(gt, valid) & valid
    smooth = valid & ~edges
    err = (final - gt).abs()
    grad = lambda m: (m[..., :, 1:] - m[..., :, :-1]).abs()[..., :-1, :] + (m[..., 1:, :] - m[..., :-1, :]).abs()[..., :, :-1]  # noqa: E731
    smooth_inner = smooth[..., :-1, :-1]
    cutoff = 1.0 / kernel  # a K-box filter's first zero, cycles per pixel
    return {
        "lowpass_err": float(((pred_low - gt_low).abs() * mask).sum()),
        "highpass_err": float((((final - pred_low) - (gt - gt_low)).abs() * mask).sum()),
        "valid": float(mask.sum()),
        "edge_err": float((err * edges).sum()),
        "edges": float(edges.sum()),
        "smooth_err": float((err * smooth).sum()),
        "smooth": float(smooth.sum()),
        "smooth_roughness": float(((grad(final) - grad(gt)) * smooth_inner).sum()),
        "smooth_inner": float(smooth_inner.sum()),
        "base_hf_share": float(high_frequency_share(base[:, 0], cutoff).sum()),
        "final_hf_share": float(high_frequency_share(final[:, 0], cutoff).sum()),
        "gt_hf_share": float(high_frequency_share(torch.where(valid, gt, gt_low)[:, 0], cutoff).sum()),
        "images": float(len(gt)),
        "abs_residual": float((residual.abs() * mask).sum()),
        "abs_final": float((final.abs() * mask).sum()),
        "res_edges": float((residual.abs() * edges).sum()),
        "res_smooth": float((residual.abs() * smooth).sum()),
    }


def finish_structure(s: dict[str, float]) -> dict[str, float]:
    """Returns the structure metrics from summed parts."""

    def div(a, b):
        return s[a] / s[b] if s[b] > 0 else math.nan

    res_edge, res_smooth = div("res_edges", "edges"), div("res_smooth", "smooth")
    return {
        "lowpass_mae": div("lowpass_err", "valid"),  # error of the prediction's low-pass component (m)
        "highpass_mae": div("highpass_err", "valid"),  # error of its high-frequency component (m)
        "edge_mae": div("edge_err", "edges"),  # error near depth edges (m)
        "smooth_mae": div("smooth_err", "smooth"),  # error in smooth ground-truth regions (m)
        "smooth_roughness_excess": div("smooth_roughness", "smooth_inner"),  # extra gradient in smooth regions (m/px): artifacts
        "base_hf_share": div("base_hf_share", "images"),  # base energy above the low-pass cutoff
        "final_hf_share": div("final_hf_share", "images"),
        "gt_hf_share": div("gt_hf_share", "images"),
        "residual_share": div("abs_residual", "abs_final"),  # mean |residual| / mean |final|
        "residual_edge_to_smooth": res_edge / res_smooth if res_smooth and res_smooth > 0 else math.nan,
    }


def analysis_kernel(image_size: int) -> int:
    """The low-pass kernel of the structure analysis: 1/8 of the image side (8 px at 64), at least 3."""
    return max(3, image_size // 8)


@torch.no_grad()
def run_structure(run: Run, datamodule, split: str = "test") -> dict[str, float]:
    from .evaluate import load_checkpoint, run_split

    network, cfg, meta = load_checkpoint(run.out_dir / "checkpoints" / "best.ckpt")
    kernel = analysis_kernel(cfg.image_size)
    total: dict[str, float] = {}
    for _, base, residual, final, gt in run_split(network, datamodule, split, float(meta["max_depth_m"]), "cpu", progress=False):
        for k, v in structure_sums(base, residual, final, gt, kernel).items():
            total[k] = total.get(k, 0.0) + v
    return finish_structure(total)


# ---------------------------------------------------------------- report


def _mean_std(values) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def _fmt(mean: float, std: float | None = None, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _mean_curve(curves: list[list[float]]) -> list[float]:
    n = min(len(c) for c in curves)
    return list(np.asarray([c[:n] for c in curves]).mean(0))


def epochs_to_target(curve: list[float], target: float) -> float:
    """Returns the first (1-based) epoch whose validation RMSE is <= target, or NaN if none."""
    for epoch, value in enumerate(curve, 1):
        if value <= target:
            return float(epoch)
    return math.nan


def collect(runs: list[Run], datamodule) -> dict:
    """Returns, per variant, per-seed curves, test metrics and structure metrics."""
    from .training import read_metrics

    results: dict[str, dict] = {}
    for run in runs:
        rows = read_metrics(run.out_dir / "metrics.csv")
        test = json.loads((run.out_dir / "test_metrics.json").read_text())
        entry = results.setdefault(run.variant, {"curves": [], "base": [], "residual": [], "test": [], "structure": [], "baselines": test})
        entry["curves"].append([r["val/rmse"] for r in rows])
        entry["base"].append([r["val/mean_abs_base"] for r in rows])
        entry["residual"].append([r["val/mean_abs_residual"] for r in rows])
        entry["test"].append(test["model"])
        entry["structure"].append(run_structure(run, datamodule))
    return results


def _plot_curves(results: dict, path: Path, key: str, ylabel: str, title: str, target: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for variant, entry in results.items():
        curves = entry[key]
        n = min(len(c) for c in curves)
        arr = np.asarray([c[:n] for c in curves])
        epochs = np.arange(1, n + 1)
        style = {"lw": 2.5} if variant in (BASELINE, PROPOSED) else {"lw": 1.0, "alpha": 0.8}
        line = ax.plot(epochs, arr.mean(0), label=variant, **style)[0]
        ax.fill_between(epochs, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.15)
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:.3f} m")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_magnitudes(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for variant, entry in results.items():
        for ax, key in zip(axes, ("base", "residual")):
            arr = np.asarray([c[: min(len(x) for x in entry[key])] for c in entry[key]])
            ax.plot(np.arange(1, arr.shape[1] + 1), arr.mean(0), label=variant, lw=2.5 if variant in (BASELINE, PROPOSED) else 1.0)
    axes[0].set_title("mean |base| on validation (m)")
    axes[1].set_title("mean |residual| on validation (m)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def verdicts(results: dict, target: float) -> list[tuple[str, str, str, str]]:
    """Returns (claim, measured, criterion, verdict) rows for the guide's claims."""
    base, prop = results[BASELINE], results[PROPOSED]
    rows = []

    def compare_lower(claim, measured_b, measured_p, label, unit="m"):
        (mb, sb), (mp, sp) = _mean_std(measured_b), _mean_std(measured_p)
        spread = max(sb, sp)
        if not (np.isfinite(mb) and np.isfinite(mp)):
            verdict = "not measurable"
        elif abs(mp - mb) <= spread:
            verdict = "inconclusive (difference within one std over seeds)"
        else:
            verdict = "holds" if mp < mb else "does not hold"
        rows.append((claim, f"{label}: base+residual {_fmt(mp, sp)} vs baseline {_fmt(mb, sb)} {unit}", "lower than the baseline by more than one std", verdict))

    eb, ep = epochs_to_target(_mean_curve(base["curves"]), target), epochs_to_target(_mean_curve(prop["curves"]), target)
    if not np.isfinite(ep):
        verdict, measured = "does not hold", f"the seed-mean validation RMSE of base+residual never reached {target:.3f} m in {len(_mean_curve(prop['curves']))} epochs (baseline: epoch {_fmt(eb, digits=0)})"
    else:
        ratio = ep / eb if np.isfinite(eb) and eb > 0 else math.nan
        verdict = "holds" if ratio <= 0.8 else "does not hold"
        measured = f"seed-mean curve reaches {target:.3f} m at epoch {ep:.0f} vs {_fmt(eb, digits=0)} for the baseline (ratio {_fmt(ratio, digits=2)})"
    rows.append(("Faster convergence: 20-30% fewer epochs to a target RMSE", measured, "ratio <= 0.80", verdict))

    rb, rp = _mean_std([t["rmse"] for t in base["test"]]), _mean_std([t["rmse"] for t in prop["test"]])
    similar = rp[0] <= rb[0] * 1.02 or rp[0] - rb[0] <= max(rb[1], rp[1])
    rows.append(("Similar or better RMSE than the baseline", f"test RMSE {_fmt(*rp)} vs {_fmt(*rb)} m", "at most 2% (or one std) above the baseline", "holds" if similar else "does not hold"))
    compare_lower("Better structure preservation (straighter walls)", [s["lowpass_mae"] for s in base["structure"]], [s["lowpass_mae"] for s in prop["structure"]], "low-pass error")
    compare_lower("Fewer artifacts in uniform regions", [s["smooth_roughness_excess"] for s in base["structure"]], [s["smooth_roughness_excess"] for s in prop["structure"]], "excess gradient in smooth regions", "m/px")
    share = _mean_std([s["residual_share"] for s in prop["structure"]])
    rows.append(("Residual stays small", f"mean abs(residual) / mean abs(final) = {_fmt(*share)}", "< 0.25", "holds" if share[0] < 0.25 else "does not hold"))
    where = _mean_std([s["residual_edge_to_smooth"] for s in prop["structure"]])
    rows.append(("Residual concentrates near objects (depth edges)", f"mean abs(residual) near edges / in smooth regions = {_fmt(*where, digits=2)}", "> 1", "holds" if where[0] > 1 else "does not hold"))
    b_hf = _mean_std([s["base_hf_share"] for s in prop["structure"]])
    f_hf = _mean_std([s["final_hf_share"] for s in prop["structure"]])
    rows.append(("Base is smooth (room layout), the residual carries the detail", f"high-frequency energy share: base {_fmt(*b_hf)} vs final {_fmt(*f_hf)}", "base share below the final's", "holds" if b_hf[0] < f_hf[0] else "does not hold"))
    return rows


def write_report(out_dir: Path, results: dict, preset: str, seeds: int, target: float | None) -> Path:
    """Writes report.md (and its PNG plots) in out_dir; returns its path."""
    base_curves = results[BASELINE]["curves"]
    if target is None:  # the baseline's best seed-mean validation RMSE
        target = float(min(_mean_curve(base_curves)))
    _plot_curves(results, out_dir / "val_rmse.png", "curves", "validation RMSE (m)", f"Validation RMSE, mean and min-max band over {seeds} seeds", target)
    _plot_magnitudes(results, out_dir / "magnitudes.png")
    lines = [f"# echodepth compare: base + residual against the baseline U-Net ({preset} preset, {seeds} seeds)", ""]
    cfg = yaml.safe_load((next(iter((out_dir / "runs").glob("*/config.yaml")))).read_text())
    lines += [f"Data: `{cfg['dataset']}` in `{cfg['data_dir']}`; {cfg['image_size']} x {cfg['image_size']} depth; {cfg['epochs']} epochs, batch {cfg['batch_size']}, learning rate {cfg['learning_rate']}, base channels {cfg['base_channels']}. Every variant has the same data, budget and seeds; metrics are means ± std over seeds (test split, best checkpoint by validation RMSE).", ""]
    lines += ["## Verdict on the design guide's claims", "", "| claim | measured | criterion | verdict |", "|---|---|---|---|"]
    for claim, measured, criterion, verdict in verdicts(results, target):
        lines.append(f"| {claim} | {measured} | {criterion} | **{verdict}** |")
    lines += ["", "## Convergence", "", "![validation RMSE](val_rmse.png)", "", f"Target RMSE: {target:.4f} m (default: the best of the baseline's seed-mean validation RMSE curve).", "", "| variant | seed-mean curve reaches it at epoch | ratio to baseline | each seed's curve (— never) | best seed-mean validation RMSE (m) |", "|---|---|---|---|---|"]
    base_epochs = epochs_to_target(_mean_curve(base_curves), target)
    for variant, entry in results.items():
        per = [epochs_to_target(c, target) for c in entry["curves"]]
        mean_epochs = epochs_to_target(_mean_curve(entry["curves"]), target)
        lines.append(f"| {variant} | {_fmt(mean_epochs, digits=0)} | {_fmt(mean_epochs / base_epochs, digits=2)} | {', '.join('—' if not np.isfinite(e) else str(int(e)) for e in per)} | {min(_mean_curve(entry['curves'])):.4f} |")
    keys = ("rmse", "abs_rel", "mae", "delta1", "delta2", "delta3", "log10")
    lines += ["", "## Final protocol metrics (test split)", "", "| variant | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for variant, entry in results.items():
        lines.append(f"| {variant} | " + " | ".join(_fmt(*_mean_std([t[k] for t in entry["test"]])) for k in keys) + " |")
    for name, m in results[BASELINE]["baselines"].items():
        if name in ("mean_depth", "per_pixel_mean_depth"):
            lines.append(f"| {name.replace('_', ' ')} predictor (no audio) | " + " | ".join(_fmt(m[k]) for k in keys) + " |")
    skeys = [("lowpass_mae", "low-pass error (m)"), ("highpass_mae", "high-frequency error (m)"), ("smooth_mae", "error, smooth regions (m)"), ("edge_mae", "error, near edges (m)"), ("smooth_roughness_excess", "excess gradient, smooth regions (m/px)"), ("base_hf_share", "base HF energy share"), ("final_hf_share", "final HF energy share"), ("residual_share", "abs residual / abs final"), ("residual_edge_to_smooth", "abs residual, edges / smooth")]
    kernel = analysis_kernel(cfg["image_size"])
    lines += ["", "## Structure metrics (test split)", "", f"Low-pass = the masked {kernel} x {kernel} average used by the structural loss; high-frequency = the rest; energy shares above 1/{kernel} cycles per pixel; edges = pixels within one pixel of a >10% depth jump; smooth = the other valid pixels. Ground truth HF energy share: {_fmt(*_mean_std([s['gt_hf_share'] for s in results[BASELINE]['structure']]))}.", "", "| variant | " + " | ".join(label for _, label in skeys) + " |", "|---|" + "---|" * len(skeys)]
    for variant, entry in results.items():
        lines.append(f"| {variant} | " + " | ".join(_fmt(*_mean_std([s[k] for s in entry["structure"]])) for k, _ in skeys) + " |")
    lines += ["", "## Base and residual magnitudes over training", "", "![magnitudes](magnitudes.png)", ""]
    lines += ["| variant | mean abs base, last epoch (m) | mean abs residual, last epoch (m) |", "|---|---|---|"]
    for variant, entry in results.items():
        lines.append(f"| {variant} | {_fmt(*_mean_std([c[-1] for c in entry['base']]))} | {_fmt(*_mean_std([c[-1] for c in entry['residual']]))} |")
    lines += ["", "Each run's outputs (metrics.csv, decomposition figures, checkpoints, train.log) are in `runs/<variant>_s<seed>/`.", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    (out_dir / "results.json").write_text(json.dumps({"target_rmse": target, "results": results}, indent=1, default=float))
    return path


def compare(out_dir="results/compare", preset: str = "small", seeds: int = 3, variants=None, jobs: int = 2, target_rmse: float | None = None, overrides: dict | None = None, progress=print) -> Path:
    """Trains every variant x seed (resuming what exists) and writes the report; returns its path."""
    from .training import EchoDepthDataModule

    out_dir = Path(out_dir)
    variants = list(variants or VARIANTS)
    runs = plan_runs(out_dir, preset, seeds, variants, overrides or {})
    # make the data and its caches once, before the runs start side by side
    datamodule = EchoDepthDataModule(runs[0].cfg, progress=False)
    datamodule.prepare_data()
    datamodule.dataset("test")
    execute(runs, jobs, progress)
    results = collect(runs, datamodule)
    return write_report(out_dir, results, preset, seeds, target_rmse)
