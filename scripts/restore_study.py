"""Rebuilds a lost `echodepth tune` study database from the study's trials.csv, so that the same
`echodepth tune` command continues it.

    python scripts/restore_study.py TRIALS_CSV STUDY_DIR [tune flags, e.g. --sampler_seed 0]

Creates STUDY_DIR/study.db (SQLite) holding the study as `echodepth tune` with those flags opens it
(its base settings, space and objective) and adds every complete trial of the CSV with its
parameters, objective values, test RMSE, check values, unhealthy checks, epochs and duration.
Failed, pruned and waiting rows are not added (a re-run of the command trains new trials instead).
What the CSV does not hold is not invented: a check's own shortfall (only the sum is stored) is left
empty for unhealthy checks. Refuses a STUDY_DIR that already holds a study.db.
"""

from __future__ import annotations

import csv
import datetime
import sys
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from echodepth.cli import build_parser
from echodepth.cli.commands import train_settings
from echodepth.tune.space import _number_type, resolve_space
from echodepth.tune.study import OBJECTIVES, open_study


def distributions(space) -> dict:
    """Returns the Optuna distribution of each space entry, as `tune.space.suggest` samples it."""
    out = {}
    for name, spec in space.items():
        if spec.choices:
            out[name] = CategoricalDistribution(list(spec.choices))
        elif _number_type(name) is int:
            out[name] = IntDistribution(int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)
        else:
            out[name] = FloatDistribution(float(spec.low), float(spec.high), log=spec.log, step=spec.step)
    return out


def parsed(value: str, distribution):
    """Returns a CSV cell as the value its distribution holds."""
    if isinstance(distribution, CategoricalDistribution):
        for choice in distribution.choices:
            if str(choice) == value:
                return choice
        raise ValueError(f"{value!r} is not one of {distribution.choices}")
    return int(value) if isinstance(distribution, IntDistribution) else float(value)


def main(argv: list[str]) -> int:
    csv_path, study_dir = Path(argv[0]), Path(argv[1])
    if (study_dir / "study.db").exists():
        sys.exit(f"{study_dir / 'study.db'} exists: this script only rebuilds a lost one")
    args = build_parser().parse_args(["tune", "--study_dir", str(study_dir), "--n_trials", "1", *argv[2:]])
    base = train_settings(args)
    space, _ = resolve_space(base, args.space)
    dists = distributions(space)
    study_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(
        study_dir=study_dir,
        study_name=args.study_name,
        storage=None,
        objective=args.objective,
        base=base,
        space=space,
        heartbeat_s=args.heartbeat_s,
    )
    names = OBJECTIVES[args.objective]
    rows = list(csv.DictReader(csv_path.open()))
    not_checks = {"number", "state", "run_dir", "duration_s", "test_rmse_m", "epochs_run", "unhealthy", *names, *dists}
    check_names = [c for c in rows[0] if c not in not_checks]
    end = datetime.datetime.now()
    added = 0
    for row in rows:
        if row["state"] != "complete":
            continue
        unhealthy = row["unhealthy"].split()
        checks = {c: [float(row[c]), c not in unhealthy, 0.0 if c not in unhealthy else None] for c in check_names}
        study.add_trial(
            FrozenTrial(
                number=int(row["number"]),
                trial_id=0,
                state=TrialState.COMPLETE,
                value=None,
                values=[float(row[n]) for n in names],
                datetime_start=end - datetime.timedelta(seconds=float(row["duration_s"])),
                datetime_complete=end,
                params={name: parsed(row[name], d) for name, d in dists.items()},
                distributions=dists,
                user_attrs={
                    "run_dir": row["run_dir"],
                    "test_rmse_m": float(row["test_rmse_m"]),
                    "checks": checks,
                    "unhealthy": unhealthy,
                    "epochs_run": int(row["epochs_run"]),
                    "restored_from_csv": True,
                },
                system_attrs={},
                intermediate_values={},
            )
        )
        added += 1
    print(f"{study_dir / 'study.db'}: study {study.study_name!r} with {added} complete trials from {csv_path}")
    return 0


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sys.exit(main(sys.argv[1:]))
