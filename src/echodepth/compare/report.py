"""The comparison's report: report.md with its PNG plots, the same as one self-contained
report.html (images embedded), and results.json. Every path in them is relative."""

from __future__ import annotations

import json
from pathlib import Path

from ..metrics import DEFAULT_PROTOCOL, analysis_kernel
from ..runs.storage import atomic_write_bytes
from ..viz import decomposition_figure, plot_curves, plot_magnitudes
from .html import markdown_to_html
from .results import fmt, mean_curve, mean_std
from .scheduler import TRAIN_THREADS
from .stats import METHOD, ONE_SEED, censored_epochs
from .variants import BASELINE, CLAIM_VARIANTS, PROPOSED, TUNED, TUNED_MEDIUM
from .verdicts import against_controls, default_target, verdicts

HIGHLIGHT = (BASELINE, PROPOSED)
VERDICT_HEADINGS = {
    PROPOSED: "base_residual: the guide's default loss weights",
    TUNED: "tuned: the loss weights of the demo study's best healthy trial (recipes/tuned.yaml)",
    TUNED_MEDIUM: "tuned_medium: the weights of the medium study's best healthy trial (recipes/tuned_medium.yaml)",
}
THREADS_TEXT = (
    f"Each run trains on {TRAIN_THREADS} CPU thread whatever `--jobs` (a thread count changes the order of "
    "floating-point sums, so the results would depend on it)."
)
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
    ("saturated_pixel_share", "pixels saturated (share)"),
    ("locked_pixel_share", "pixels locked (share)"),
]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Returns the lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def plural(n: int, noun: str) -> str:
    """Returns "1 seed", "3 seeds"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def seed_stat(values) -> str:
    """Returns "mean ± std" over seeds of the finite values (3 decimals), or "n/a"."""
    return fmt(*mean_std(values))


def convergence_section(results: dict, target: float) -> list[str]:
    """Returns the report's convergence section: epochs to the target RMSE (metres) per seed, best RMSEs."""
    rows = []
    for variant, entry in results.items():
        per_seed = [censored_epochs(c, target) for c in entry["curves"]]
        epochs = ", ".join(str(int(e)) if reached else "—" for e, reached in per_seed)
        bests = [min(c) for c in entry["curves"]]
        rows.append([variant, epochs, seed_stat(bests), f"{min(mean_curve(entry['curves'])):.4f}"])
    header = ["variant", "epochs to the target, per seed (— never)", "best validation RMSE (m)"]
    header.append("best of the seed-mean curve (m)")
    intro = (
        f"Target RMSE: {target:.4f} m (default: the largest of the best validation RMSEs of every baseline and "
        "base + residual run, so that every run reaches it)."
    )
    return ["## Convergence", "", "![validation RMSE](val_rmse.png)", "", intro, "", *table(header, rows), ""]


def decomposition_section(results: dict, out_dir: Path, max_depth_m: float) -> list[str]:
    """Returns the section showing base, residual, final and ground truth of a few test samples
    (first seed), writing their figures into out_dir."""
    lines = ["## Predictions on test samples (first seed)", ""]
    for variant in (*CLAIM_VARIANTS, BASELINE):
        samples = results.get(variant, {}).get("samples")
        if samples is None:
            continue
        name = f"decomposition_{variant}.png"
        decomposition_figure(
            samples["base"],
            samples["residual"],
            samples["final"],
            samples["gt"],
            path=out_dir / name,
            max_depth_m=max_depth_m,
            title=variant,
        )
        lines += [f"![{variant} on test samples]({name})", ""]
    lines += ["Depth colours run from 0 to the 99th percentile of the ground truth shown.", ""]
    return lines


def metrics_section(results: dict) -> list[str]:
    """Returns the section of test metrics per variant (mean ± std over seeds) under the headline
    protocol, with the mean-depth predictors when that is echodepth's protocol."""
    rows = [[v, *(seed_stat([t[k] for t in e["test"]]) for k in METRIC_COLUMNS)] for v, e in results.items()]
    headline = results[BASELINE]["test"][0].get("headline", DEFAULT_PROTOCOL)
    if headline == DEFAULT_PROTOCOL:  # the mean-depth predictors are measured under echodepth's protocol
        for name, m in results[BASELINE]["baselines"].items():
            if name in ("mean_depth", "per_pixel_mean_depth"):
                rows.append([f"{name.replace('_', ' ')} predictor (no audio)", *(fmt(m[k]) for k in METRIC_COLUMNS)])
    title = f"## Final protocol metrics (test split, headline protocol {headline})"
    return [title, "", *table(["variant", *METRIC_COLUMNS], rows), "", *protocols_section(results)]


def protocols_section(results: dict) -> list[str]:
    """Returns the test RMSE under every evaluation protocol (runs that recorded them)."""
    tests = [t for e in results.values() for t in e["test"]]
    if not tests or not all("protocols" in t for t in tests):
        return []
    names = list(tests[0]["protocols"])
    header = ["variant", *(f"RMSE {n} (m)" for n in names)]
    rows = [
        [v, *(seed_stat([t["protocols"][n]["metrics"]["rmse"] for t in e["test"]]) for n in names)]
        for v, e in results.items()
    ]
    definitions = "; ".join(
        f"{n}: {p['resolution']}, 0-{p['depth_range_m'][1]:g} m, {p['pixels']}"
        for n, p in tests[0]["protocols"].items()
    )
    return ["Test RMSE under each evaluation protocol (" + definitions + "):", "", *table(header, rows), ""]


def structure_section(results: dict, image_size: int) -> list[str]:
    """Returns the section of structure metrics per variant (test split), with the analysis kernel
    of `image_size`."""
    kernel = analysis_kernel(image_size)
    gt_share = seed_stat([s["gt_hf_share"] for s in results[BASELINE]["structure"]])
    intro = (
        f"Low-pass = the masked {kernel} x {kernel} average used by the structural loss; high-frequency = the rest; "
        f"energy shares above 1/{kernel} cycles per pixel; edges = pixels within one pixel of a >10% depth jump; "
        f"smooth = the other valid pixels. Ground truth HF energy share: {gt_share}. Pixels saturated: the largest "
        "share over the heads of depth-map pixels whose mean over the test recordings lies within 1% of the head's "
        "range of its bound; locked: within 5% with a std across recordings below 1% (target 0 for both)."
    )
    rows = [[v, *(seed_stat([s[k] for s in e["structure"]]) for k, _ in STRUCTURE_COLUMNS)] for v, e in results.items()]
    header = ["variant", *(label for _, label in STRUCTURE_COLUMNS)]
    return ["## Structure metrics (test split)", "", intro, "", *table(header, rows), ""]


def magnitudes_section(results: dict) -> list[str]:
    """Returns the section of mean |base| and |residual| (metres) at the last epoch, per variant."""
    rows = [
        [v, seed_stat([c[-1] for c in e["base"]]), seed_stat([c[-1] for c in e["residual"]])]
        for v, e in results.items()
    ]
    header = ["variant", "mean abs base, last epoch (m)", "mean abs residual, last epoch (m)"]
    title = "## Base and residual magnitudes over training"
    return [title, "", "![magnitudes](magnitudes.png)", "", *table(header, rows), ""]


CONTROLS_TEXT = (
    "Each comparative claim is decided against each control run: `unet_baseline`, the dataset's U-Net (another "
    "backbone: strided 4x4 convolutions, transposed-convolution decoder), and `same_backbone`, base + "
    "residual's own encoder and decoder blocks with one decoder and a plain L1 loss. Only a claim that holds "
    "against `same_backbone` owes its effect to the decomposition rather than to the backbone."
)


def controls_section(results: dict) -> list[str]:
    """Returns the section of paired differences of every variant against each control, or [] when
    there is none to compare."""
    rows = against_controls(results)
    if not rows:
        return []
    header = ["variant", "against", "test RMSE difference (m)", "low-pass error difference (m)"]
    header.append("excess gradient difference, smooth regions (m/px)")
    intro = f"Per-seed paired differences (variant - control), mean [95% {METHOD}]; below 0 is better."
    if len(results[BASELINE]["test"]) < 2:
        intro += f" With one seed, the difference alone: {ONE_SEED}."
    return ["## Every variant against the controls", "", intro, "", *table(header, rows), ""]


STATISTICS = (
    "Verdicts compare the runs seed by seed (same data order and initial draws): the mean of the per-seed "
    f"differences with its 95% {METHOD} over the n seeds, mean ± t(0.975, n - 1) · sd / √n, written mean "
    "[low, high]; the ratio of epochs gets the t-interval of the mean log ratio, back-transformed (a geometric "
    "mean). The t-interval assumes roughly normal per-seed values and widens with few seeds as it should (with "
    "2 seeds, t = 12.7). **holds**: the whole interval lies on the claimed side of no effect; **does not hold**: "
    "the whole interval lies on the other side; **undecided**: it straddles it."
)
ONE_SEED_TEXT = (
    "**One seed gives no interval**: every claim is undecided (1 seed), and the tables show single values, "
    "not means ± std. Run at least 2 seeds (5 for intervals narrow enough to decide) to test the claims."
)


def statistics_text(seeds: int) -> list[str]:
    """Returns the paragraphs saying how the verdicts are decided (and that one seed decides none)."""
    return [STATISTICS, "", ONE_SEED_TEXT] if seeds < 2 else [STATISTICS]


def write_report(out_dir: Path, results: dict, *, preset: str, seeds: int, target: float | None, cfg: dict) -> Path:
    """Writes report.md, report.html (and the PNG plots) in out_dir; returns report.md's path.
    `cfg` holds the runs' shared settings (one run's TrainConfig as a dict)."""
    if target is None:
        target = default_target(results)
    title = f"Validation RMSE, mean and min-max band over {plural(seeds, 'seed')}"
    plot_curves(
        results,
        out_dir / "val_rmse.png",
        key="curves",
        ylabel="validation RMSE (m)",
        title=title,
        highlight=HIGHLIGHT,
        target=target,
    )
    plot_magnitudes(results, out_dir / "magnitudes.png", HIGHLIGHT)
    fingerprint = f" (fingerprint {cfg['data_fingerprint']})" if cfg.get("data_fingerprint") else ""
    data = (
        f"Data: `{cfg['dataset']}` in `{Path(cfg['data_dir']).name}/`{fingerprint}; {cfg['image_size']} x "
        f"{cfg['image_size']} "
        f"depth; {cfg['epochs']} epochs, batch {cfg['batch_size']}, learning rate {cfg['learning_rate']}, base "
        f"channels {cfg['base_channels']}, precision {cfg['precision']}. Every variant has the same data, budget "
        "and seeds; tables give means ± std over seeds (test split, best checkpoint by validation RMSE). "
        f"{THREADS_TEXT}"
    )
    heading = f"echodepth compare: base + residual against its controls ({preset} preset, {plural(seeds, 'seed')})"
    lines = [f"# {heading}", "", data, "", "## Verdict on the design guide's claims", "", *statistics_text(seeds)]
    lines += ["", CONTROLS_TEXT, ""]
    for variant in [v for v in CLAIM_VARIANTS if v in results]:
        verdict_rows = [[c, a, m, k, f"**{v}**"] for c, a, m, k, v in verdicts(results, target, variant)]
        lines += [f"### {VERDICT_HEADINGS[variant]}", ""]
        lines += [*table(["claim", "against", "measured", "criterion", "verdict"], verdict_rows), ""]
    lines += controls_section(results)
    lines += convergence_section(results, target)
    lines += metrics_section(results)
    lines += structure_section(results, cfg["image_size"])
    lines += decomposition_section(results, out_dir, float(cfg["max_depth_m"]))
    lines += magnitudes_section(results)
    lines += [RUN_OUTPUTS, ""]
    path = out_dir / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    atomic_write_bytes(out_dir / "report.html", markdown_to_html(lines, out_dir, heading).encode())
    plain = {v: {k: e for k, e in entry.items() if k != "samples"} for v, entry in results.items()}
    summary = {"target_rmse": target, "results": plain}
    atomic_write_bytes(out_dir / "results.json", json.dumps(summary, indent=1, default=float).encode())
    return path
