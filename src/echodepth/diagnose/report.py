"""How a diagnosis is shown: the printed table, the re-run command, diagnosis.json and
diagnosis.md with the figure of the best and worst samples."""

from __future__ import annotations

import json
import math
import shlex

import numpy as np

from ..runs.rundir import RunDir
from ..runs.storage import atomic_write_text
from ..viz import decomposition_figure
from .checks import Check


def flag_words(flags: dict) -> list[str]:
    """Returns command-line words for training flags (name -> value): `--name value` (floats
    in %g form), or `--name` alone for True."""
    words = []
    for name, value in flags.items():
        words.append(f"--{name}")
        if value is not True:
            words.append(f"{value:g}" if isinstance(value, float) else str(value))
    return words


def rerun_command(run_dir: RunDir, checks: list[Check]) -> str | None:
    """Returns a command line that re-runs training with every unhealthy check's flags (the
    first check to name a flag decides its value), or None when all checks are healthy."""
    flags: dict = {}
    for check in checks:
        if not check.healthy:
            for name, value in check.flags.items():
                flags.setdefault(name, value)
    if not flags:
        return None
    words = ["echodepth", "train", "--config", str(run_dir.config), "--experiment_name", f"{run_dir.name}_tuned"]
    return shlex.join(words + flag_words(flags))


def fmt(value: float) -> str:
    """Returns a statistic with 3 decimals, or "n/a" when it is not finite (not measured)."""
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def table(checks: list[Check]) -> str:
    """Returns the checks as a fixed-width table, each unhealthy one followed by its advice."""
    lines = [f"{'check':<24}{'value':>9}  {'healthy when':<38}status"]
    for c in checks:
        lines.append(f"{c.name:<24}{fmt(c.value):>9}  {c.threshold:<38}{'healthy' if c.healthy else 'UNHEALTHY'}")
        if not c.healthy:
            flags = f": try {' '.join(flag_words(c.flags))}" if c.flags else ""
            lines.append(f"    {c.symptom}; {c.advice}{flags}")
    return "\n".join(lines)


def summary_lines(diagnosis: dict) -> list[str]:
    """Returns one line per unhealthy check (what `train` prints at the end of a run)."""
    return [
        f"diagnosis: {c['name']} unhealthy ({fmt(c['value'])}, healthy {c['threshold']}): {c['advice']}"
        for c in diagnosis["checks"]
        if not c["healthy"]
    ]


def write_figure(run_dir: RunDir, split: dict, max_depth_m: float) -> str | None:
    """Saves the decomposition of the best and worst samples; returns the file name."""
    samples = split["best"] + split["worst"]
    if not samples:
        return None
    maps = [np.stack([s[1][k] for s in samples]) for k in range(4)]
    labels = [f"best {i + 1}, RMSE {s[0]:.2f} m" for i, s in enumerate(split["best"])]
    labels += [f"worst {i + 1}, RMSE {s[0]:.2f} m" for i, s in enumerate(split["worst"])]
    title = f"{run_dir.name}: best and worst samples of the {split['split']} split"
    # the depth scale from the data shown (99th percentile of its ground truth), not max depth
    vmax = float(np.percentile(maps[3][maps[3] > 0], 99)) if (maps[3] > 0).any() else max_depth_m
    decomposition_figure(*maps, path=run_dir.diagnosis_figure, max_depth_m=vmax, title=title, row_labels=labels)
    return run_dir.diagnosis_figure.name


def write_files(run_dir: RunDir, diagnosis: dict, split: dict, max_depth_m: float) -> None:
    """Writes diagnosis.json, diagnosis.md and the samples figure into the run folder."""
    figure = write_figure(run_dir, split, max_depth_m)
    atomic_write_text(run_dir.diagnosis_json, json.dumps(diagnosis, indent=2, default=float))
    checks = diagnosis["checks"]
    lines = [f"# Diagnosis of `{run_dir.name}` ({diagnosis['split']} split, best checkpoint)", ""]
    n_bad = sum(not c["healthy"] for c in checks)
    lines += [f"{len(checks) - n_bad} of {len(checks)} checks healthy.", ""]
    lines += ["| check | statistic | value | healthy when | status |", "|---|---|---|---|---|"]
    for c in checks:
        status = "healthy" if c["healthy"] else "**unhealthy**"
        lines.append(f"| {c['name']} | {c['statistic']} | {fmt(c['value'])} | {c['threshold']} | {status} |")
    for c in checks:
        if not c["healthy"]:
            lines += ["", f"- **{c['name']}**: {c['symptom']}. Advice: {c['advice']}."]
    if diagnosis["command"]:
        lines += ["", "Re-run with the advice:", "", "```bash", diagnosis["command"], "```"]
    if figure:
        lines += ["", "Best and worst samples (base, residual, final, ground truth):", "", f"![samples]({figure})"]
    atomic_write_text(run_dir.diagnosis_md, "\n".join(lines) + "\n")
