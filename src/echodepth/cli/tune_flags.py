"""The flags of `echodepth tune`."""

from __future__ import annotations

import argparse

TUNE_HELP = """Search the decomposition's settings with Optuna: each trial is a real `echodepth train` run in
STUDY_DIR/trials/NNNN (the base settings from --config and the flags, plus the trial's sampled values). The
study lives in STUDY_DIR/study.db (SQLite) or a shared --storage database (PostgreSQL): the same command run
again, in another shell or on other machines joins it, until N trials are complete. Writes trials.csv,
best.yaml (`echodepth train --config best.yaml`), report.md and report.html in STUDY_DIR."""


def tune_flags(p: argparse.ArgumentParser) -> None:
    """Adds `tune`'s flags: the study's, then `--config` and every flag of `train` (the base settings)."""
    from ..tune import DEFAULT_OBJECTIVE, DEFAULT_STUDY_NAME, OBJECTIVES
    from .flags import add_train_flags

    study = p.add_argument_group("the study")
    study.add_argument("--study_dir", help="the study's folder: study.db, trials/, the report (required)")
    study.add_argument("--n_trials", type=int, help="complete trials the study holds at the end (required)")
    study.add_argument(
        "--space", default=None, metavar="FILE",
        help="YAML: name -> {range: [low, high], log: true, step: N} or {choices: [...]} (default: the ranges "
        "declared beside the settings that apply: see docs/tutorials/tune.md)",
    )  # fmt: skip
    study.add_argument(
        "--objective", default=DEFAULT_OBJECTIVE, choices=list(OBJECTIVES),
        help="rmse: validation RMSE alone (pruned by Optuna's median rule); rmse+health: and the diagnosis's "
        f"shortfall from every check healthy (a Pareto front) (default: {DEFAULT_OBJECTIVE})",
    )  # fmt: skip
    study.add_argument(
        "--storage", default=None, help="database URL shared by several machines (default: STUDY_DIR/study.db)"
    )
    study.add_argument(
        "--study_name", default=DEFAULT_STUDY_NAME, help=f"its name in the database (default: {DEFAULT_STUDY_NAME})"
    )
    study.add_argument("--workers", type=int, default=1, help="local worker processes (default: 1)")
    study.add_argument(
        "--heartbeat_s", type=float, default=30.0,
        help="seconds between a worker's heartbeats; a trial silent for 3 is failed and retried (default: 30)",
    )  # fmt: skip
    study.add_argument("--sampler_seed", type=int, default=None, help="seed of Optuna's TPE sampler (default: none)")
    study.add_argument(
        "--show_space", action="store_true",
        help="print the search space these settings get (a --space file to start from) and exit",
    )  # fmt: skip
    p.add_argument(
        "--config", default=None,
        help="YAML file of base settings, or a recipe name; flags override it (as echodepth train)",
    )  # fmt: skip
    add_train_flags(p)
