"""`echodepth compare`: the design guide's claims, tested against the baseline U-Net.

Trains the baseline and base + residual (plus ablations) on the same data with the same budget
over several seeds, each run in its own process (resumable: a finished run is kept, an
interrupted one continues from its last checkpoint), then writes a Markdown report with plots:
validation RMSE curves, epochs to a target RMSE, final protocol metrics, structure metrics,
predictions on test samples, base / residual magnitudes over training, and a verdict on each
claim from per-seed paired differences with Student t-intervals (stats.py); the same report as
one self-contained report.html.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, UserError
from ..runs.interrupt import stop_on_signals
from ..runs.storage import FileLock, make_dir
from ..training import EchoDepthDataModule
from .identity import check_collected, data_fingerprint, identity_of, place_runs, write_identity
from .report import write_report
from .results import collect, structure_metrics
from .scheduler import execute
from .variants import BASELINE, PRESET_DEFAULTS, PRESETS, PROPOSED, Run, all_variants, plan_runs
from .verdicts import verdicts


def compare(
    out_dir="results/compare",
    preset: str = "small",
    seeds: int | None = None,
    variants=None,
    *,
    jobs: int = 2,
    target_rmse: float | None = None,
    overrides: dict | None = None,
    progress=print,
    time_limit_s: float | None = None,
    new_runs: bool = False,
) -> Path | None:
    """Trains every variant x seed (resuming what exists) and writes the report; returns its path.
    Seeds and variants not given: the preset's (PRESET_DEFAULTS), else 3 seeds of every variant.
    With `time_limit_s`, the runs stop when it has passed (each resumes on the next call) and,
    unless all finished, no report is written and None is returned. A run folder holding a run of
    other settings or data (identity.py) is a ConfigError naming the differences, or, with
    `new_runs`, that run trains in a folder of its own."""
    out_dir = Path(out_dir)
    defaults = PRESET_DEFAULTS.get(preset, {})
    seeds = defaults.get("seeds", 3) if seeds is None else seeds
    for flag, value in {"--seeds": seeds, "--jobs": jobs, "--target_rmse": target_rmse}.items():
        if value is not None and not value > 0:
            raise ConfigError(f"{flag} must be > 0, got {value:g}")
    if time_limit_s is not None and not time_limit_s > 0:  # 0 would stop every run at once, forever
        raise ConfigError(f"--time_limit_min must be above 0 minutes, got {time_limit_s / 60:g}")
    names = list(variants or defaults.get("variants") or all_variants())
    runs = plan_runs(out_dir, preset, seeds, names, overrides=overrides or {})  # every run's settings checked
    make_dir(out_dir, "--out")
    lock = FileLock(out_dir / ".lock")  # held while this runs: a second compare into it is refused
    if not lock.acquire(blocking=False):
        raise UserError(
            f"comparison folder {out_dir} is in use by process {lock.holder()} (another echodepth compare); "
            "wait for it to end, or give another --out"
        )
    try:
        with stop_on_signals("rerun the same echodepth compare to resume its runs"):
            if not new_runs:  # other settings refused before the data is made
                place_runs(runs, out_dir, None, new_runs=False)
            report = dict(preset=preset, seeds=seeds, target_rmse=target_rmse)
            return _compare(out_dir, runs, jobs, progress, time_limit_s, new_runs=new_runs, report=report)
    finally:
        lock.release()


def _compare(out_dir, runs, jobs, progress, time_limit_s, *, new_runs: bool, report: dict) -> Path | None:
    # make the data and its caches once, before the runs start side by side
    datamodule = EchoDepthDataModule(runs[0].cfg, progress=False)
    datamodule.prepare_data()
    datamodule.dataset("test")
    data = data_fingerprint(datamodule)
    runs = place_runs(runs, out_dir, data, new_runs)
    for run in runs:
        if not run.run_dir.finished:
            write_identity(run, identity_of(run, data))
    if not execute(runs, jobs, progress, time_limit_s):
        return None
    for run in runs:
        check_collected(run, data)
    results = collect(runs, datamodule)
    settings = {**runs[0].cfg.to_dict(), "data_dir": str(datamodule.root), "max_depth_m": datamodule.max_depth_m}
    settings["data_fingerprint"] = data
    return write_report(
        out_dir, results, preset=report["preset"], seeds=report["seeds"], target=report["target_rmse"], cfg=settings
    )


__all__ = [
    "BASELINE",
    "PRESETS",
    "PROPOSED",
    "Run",
    "collect",
    "compare",
    "execute",
    "plan_runs",
    "structure_metrics",
    "all_variants",
    "verdicts",
    "write_report",
]
