"""What `echodepth tune` writes in its study folder: trials.csv, best.yaml, report.md and a
self-contained report.html (the trials, the best so far or the Pareto front, Optuna's parameter
importances, and the best trials' diagnosis and decomposition figures)."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..compare.html import markdown_to_html
from ..compare.report import table
from ..runs.rundir import RunDir
from ..runs.storage import atomic_write_bytes, atomic_write_text
from ..settings.config import TrainConfig
from ..settings.yaml_files import save_yaml
from ..viz.decomposition import plt, save_figure
from .study import OBJECTIVES

IMPORTANCE_TEXT = (
    "Optuna's PED-ANOVA over the complete trials: how much each parameter decides whether a trial lands among "
    "the best 10% of that objective (each column sums to 1). With a few dozen trials, read it as a ranking."
)
CORRELATION_TEXT = (
    "Spearman's rank correlation between each numeric parameter and each check's statistic over the complete "
    "trials (+1: the statistic rises with the parameter). Hold it against `echodepth diagnose`'s advice."
)
BEST_EXPERIMENT = "tune_best"  # best.yaml's experiment name: `train --config best.yaml` trains into results/tune_best


def best_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Returns the best trials, best first. One objective: the lowest validation RMSE. Two: the
    trials whose every check is healthy (shortfall 0) by RMSE, then the rest of the Pareto front by
    shortfall. Empty while no trial is complete."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(study.directions) == 1:
        return sorted(complete, key=lambda t: t.values[0])[:5]
    healthy = sorted((t for t in complete if t.values[1] == 0), key=lambda t: t.values[0])
    front = sorted((t for t in study.best_trials if t.values[1] > 0), key=lambda t: t.values[1])
    return healthy[:5] + front[:5]


def trial_rows(study: optuna.Study, study_dir: Path) -> list[dict]:
    """Returns one dict per trial: number, state, its values by name, parameters, run folder,
    duration, test RMSE and the checks that were unhealthy."""
    names = OBJECTIVES[study.user_attrs["objective"]]
    params = list(study.user_attrs["space"])
    rows = []
    for t in study.get_trials(deepcopy=False):
        values = t.values or []
        row = {"number": t.number, "state": "surplus" if t.user_attrs.get("surplus") else t.state.name.lower()}
        row.update(
            {
                name: (values[i] if i < len(values) and t.state == TrialState.COMPLETE else "")
                for i, name in enumerate(names)
            }
        )
        row.update({name: t.params.get(name, "") for name in params})
        run_dir = RunDir(study_dir / t.user_attrs["run_dir"]) if "run_dir" in t.user_attrs else None
        if run_dir and run_dir.metrics.exists():
            row["epochs_run"] = len(run_dir.read_metrics())
        else:  # a trial that never wrote metrics, or one restored from a trials.csv (scripts/restore_study.py)
            row["epochs_run"] = t.user_attrs.get("epochs_run", 0)
        row["run_dir"] = t.user_attrs.get("run_dir", "")
        row["duration_s"] = round(t.duration.total_seconds(), 1) if t.duration else ""
        row["test_rmse_m"] = t.user_attrs.get("test_rmse_m", "")
        row["unhealthy"] = " ".join(t.user_attrs.get("unhealthy", []))
        row.update({name: value for name, (value, _, _) in t.user_attrs.get("checks", {}).items()})
        rows.append(row)
    return rows


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    """Writes trials.csv (one row per trial, `trial_rows`)."""
    rows = trial_rows(study, path.parent)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)), restval="")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def write_best_yaml(study: optuna.Study, base: TrainConfig, path: Path) -> TrainConfig | None:
    """Writes best.yaml: the base settings with the best trial's values, training into
    results/tune_best (`echodepth train --config best.yaml`); returns its settings (None: no trial)."""
    best = best_trials(study)
    if not best:
        return None
    cfg = base.replace(**best[0].params, results_dir="results", experiment_name=BEST_EXPERIMENT)
    save_yaml(cfg, path)
    return cfg


def importances(study: optuna.Study) -> dict[str, dict[str, float]]:
    """Returns objective name -> parameter -> importance (Optuna's PED-ANOVA: how much each parameter
    decides whether a trial lands among the best 10% of that value; summing to 1), over the complete
    trials; {} while fewer than two are complete or the values do not vary."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    out = {}
    for i, name in enumerate(OBJECTIVES[study.user_attrs["objective"]]):
        if len({t.values[i] for t in complete}) < 2:
            continue
        try:
            with warnings.catch_warnings():  # it warns that it ranks for low values: ours are all minimised
                warnings.simplefilter("ignore", UserWarning)
                out[name] = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=lambda t, i=i: t.values[i]
                )
        except (ValueError, RuntimeError):  # too few distinct parameter values to split on
            continue
    return out


def check_correlations(study: optuna.Study) -> dict[str, dict[str, float]]:
    """Returns check name -> numeric parameter -> Spearman's rank correlation between the parameter
    and the check's statistic over the complete trials (what the study says moves each check;
    `diagnose` advises which way); {} with fewer than 5 complete trials."""
    from scipy.stats import spearmanr

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "checks" in t.user_attrs]
    if len(complete) < 5:
        return {}
    numeric = [p for p in study.user_attrs["space"] if all(isinstance(t.params.get(p), (int, float)) for t in complete)]
    out: dict[str, dict[str, float]] = {}
    for check in complete[0].user_attrs["checks"]:
        values = [t.user_attrs["checks"].get(check, [float("nan")])[0] for t in complete]
        if len(set(values)) < 2:  # a statistic that never varied (every run stable): nothing to rank
            continue
        for param in numeric:
            rho = spearmanr([t.params[param] for t in complete], values, nan_policy="omit").statistic
            out.setdefault(check, {})[param] = float(rho)
    return out


def plot_trials(study: optuna.Study, path: Path) -> None:
    """Plots each complete trial's validation RMSE by trial number (healthy ones filled), the best so
    far as a line, and for two objectives RMSE against health shortfall with the Pareto front."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    multi = len(study.directions) > 1
    fig, axes = plt.subplots(
        1, 2 if multi else 1, figsize=(12 if multi else 7, 4.5), constrained_layout=True, squeeze=False
    )
    ax = axes[0, 0]
    numbers = [t.number for t in complete]
    rmse = [t.values[0] for t in complete]
    healthy = [multi and t.values[1] == 0 for t in complete]
    ax.scatter(numbers, rmse, c=["tab:green" if h else "tab:grey" for h in healthy], s=25)
    best, line = float("inf"), []
    for r in rmse:
        best = min(best, r)
        line.append(best)
    ax.step(numbers, line, where="post", color="k", lw=1, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("best validation RMSE (m)")
    ax.set_title("trials (green: every diagnose check healthy)" if multi else "trials")
    ax.legend(fontsize=8)
    if multi:
        ax = axes[0, 1]
        front = {t.number for t in study.best_trials}
        for t in complete:
            ax.scatter(t.values[1], t.values[0], color="tab:red" if t.number in front else "tab:grey", s=25)
        ax.set_xlabel("health shortfall (0: every check healthy)")
        ax.set_ylabel("best validation RMSE (m)")
        ax.set_title("Pareto front (red)")
    save_figure(fig, path, dpi=90)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_report(study: optuna.Study, base: TrainConfig, study_dir: Path) -> Path:
    """Writes trials.csv, best.yaml, report.md, report.html and trials.png in study_dir; returns report.md."""
    study_dir = Path(study_dir)
    write_trials_csv(study, study_dir / "trials.csv")
    best_cfg = write_best_yaml(study, base, study_dir / "best.yaml")
    objective = study.user_attrs["objective"]
    names = OBJECTIVES[objective]
    state = {s: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    space = study.user_attrs["space"]
    lines = [f"# echodepth tune: study {study.study_name}", ""]
    lines += [
        f"Objective: {' and '.join(f'`{n}`' for n in names)}, minimised. Trials: {state[TrialState.COMPLETE]} "
        f"complete, {state[TrialState.PRUNED]} pruned, {state[TrialState.FAIL]} failed, "
        f"{state[TrialState.RUNNING]} running, {state[TrialState.WAITING]} waiting (failed trials queued for a retry). "
        f"Base settings: `{base.model}`, `{base.loss}` loss, dataset "
        f"`{base.dataset}`, {base.image_size} px, {base.epochs} epochs, batch {base.batch_size}, seed {base.seed}.",
        "",
        "Search space:",
        "",
        *table(["setting", "range"], [[f"`{k}`", f"`{json.dumps(v)}`"] for k, v in space.items()]),
        "",
    ]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        plot_trials(study, study_dir / "trials.png")
        lines += ["## Trials", "", "![trials](trials.png)", ""]
    best = best_trials(study)
    heading = "## Best trials" if len(names) == 1 else "## Healthy trials by RMSE, then the Pareto front"
    rows = []
    for t in best:
        values = [f"{v:.4f}" for v in t.values]
        params = ", ".join(f"{k} {_fmt(v)}" for k, v in t.params.items())
        unhealthy = ", ".join(t.user_attrs.get("unhealthy", [])) or "none"
        rows.append([str(t.number), *values, _fmt(t.user_attrs.get("test_rmse_m", "")), unhealthy, params])
    lines += [heading, ""]
    lines += table(["trial", *names, "test_rmse_m", "unhealthy checks", "parameters"], rows) if rows else ["none yet"]
    lines += [""]
    if best_cfg is not None:
        lines += [f"`echodepth train --config best.yaml` trains trial {best[0].number}'s settings.", ""]
    found = importances(study)
    if found:
        lines += ["## Parameter importances", "", IMPORTANCE_TEXT, ""]
        params = list(space)
        rows = [[f"`{p}`", *(f"{found[n].get(p, 0.0):.3f}" if n in found else "" for n in names)] for p in params]
        lines += table(["parameter", *names], rows) + [""]
    moves = check_correlations(study)
    if moves:
        lines += ["## What moves each check", "", CORRELATION_TEXT, ""]
        params = list(next(iter(moves.values())))
        rows = [[f"`{check}`", *(f"{by[p]:+.2f}" for p in params)] for check, by in moves.items()]
        lines += table(["check statistic", *(f"`{p}`" for p in params)], rows) + [""]
    for t in best[:2]:
        run = t.user_attrs.get("run_dir", "")
        lines += [f"## Trial {t.number}: diagnosis and decomposition", ""]
        diagnosis = study_dir / run / "diagnosis.md"
        if diagnosis.is_file():
            lines += [ln for ln in diagnosis.read_text().splitlines() if ln.startswith("|")] + [""]
        for name in ("diagnosis_samples.png",):
            if (study_dir / run / name).is_file():
                lines += [f"![trial {t.number} {name}]({run}/{name})", ""]
    lines += [
        "Each trial is a normal run folder (`trials/NNNN`): resume, evaluate, diagnose or export it like any run. "
        "trials.csv holds every trial; the study itself is in its database.",
        "",
    ]
    path = study_dir / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    title = f"echodepth tune: study {study.study_name}"
    atomic_write_bytes(study_dir / "report.html", markdown_to_html(lines, study_dir, title).encode())
    return path
