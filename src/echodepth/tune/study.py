"""The Optuna study of `echodepth tune`: its storage, its identity (base settings, space, objective),
and the objective: one real `echodepth train` run per trial in DIR/trials/NNNN/.

Everything that searches is Optuna's: the samplers (TPE), the pruner (median), the storages
(SQLite, PostgreSQL), the retry of a dead worker's trial (heartbeats and `RetryFailedTrialCallback`).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from ..errors import ConfigError, UserError
from ..runs.resume import MAY_CHANGE
from ..settings.config import TrainConfig
from ..settings.search_space import SearchRange
from .space import space_to_dict

# objective name -> what each value is; every value is minimised
OBJECTIVES = {
    "rmse": ("val_rmse_m",),
    "rmse+health": ("val_rmse_m", "health_shortfall"),
}
# Two objectives by default: validation RMSE alone leads the search to the guide's defaults, where the
# residual carries under 1% of the depth map (the demo's diagnosis); the second is how far the run's
# diagnosis lies from every check healthy (`diagnose.checks.beyond`, 0 when all are healthy).
DEFAULT_OBJECTIVE = "rmse+health"
# settings that say where and how a worker runs, not what a trial trains: they may differ between the
# machines of one study (a data folder mounted elsewhere included); the rest must be the study's
MAY_DIFFER = (MAY_CHANGE - {"epochs", "val_every"}) | {"data_dir"}
TRIAL_SETTINGS = ("experiment_name", "results_dir", "resume", "overwrite")  # each trial's own


def storage_url(study_dir: Path, storage: str | None) -> str:
    """Returns the study's database URL: `storage`, else the SQLite file study_dir/study.db."""
    return storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"


def open_storage(url: str, heartbeat_s: float) -> RDBStorage:
    """Returns Optuna's database storage at `url`, with heartbeats every `heartbeat_s` seconds: a
    trial whose worker stopped beating for 3 heartbeats (killed, machine lost) is marked failed and
    retried once with the same parameters by the next worker that starts a trial. Raises UserError
    (one line) when the database cannot be opened."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=max(1, round(heartbeat_s)),
            grace_period=max(3, round(3 * heartbeat_s)),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    except Exception as err:  # sqlalchemy's errors for a bad URL, a missing driver, a refused connection
        raise UserError(f"--storage {url}: cannot open the study's database: {str(err).splitlines()[0]}") from None


def base_identity(base: TrainConfig) -> dict:
    """Returns the base settings that decide what a trial trains (JSON-ready), without the trial's
    own places and the settings that may differ between machines (`MAY_DIFFER`)."""
    values = base.to_dict()
    return {k: v for k, v in values.items() if k not in TRIAL_SETTINGS and k not in MAY_DIFFER}


def differences(stored: dict, now: dict) -> list[str]:
    """Returns "name stored (now new)" for each key whose value differs."""
    return [
        f"{k} {stored.get(k)} (now {now.get(k)})" for k in sorted(set(stored) | set(now)) if stored.get(k) != now.get(k)
    ]


def open_study(
    *,
    study_dir: Path,
    study_name: str,
    storage: str | None,
    objective: str,
    base: TrainConfig,
    space: dict[str, SearchRange],
    heartbeat_s: float,
    sampler_seed: int | None = None,
) -> optuna.Study:
    """Returns the study `study_name`, created or joined. A study that exists must have been made by
    the same base settings, space and objective: ConfigError naming the differences otherwise, as
    `train --resume` does."""
    directions = ["minimize"] * len(OBJECTIVES[objective])
    n_warmup = max(1, base.epochs // 3)  # epochs before the median rule may stop a trial
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=n_warmup) if len(directions) == 1 else None
    opened = open_storage(storage_url(study_dir, storage), heartbeat_s)
    study = optuna.create_study(
        storage=opened,
        study_name=study_name,
        directions=directions,
        sampler=optuna.samplers.TPESampler(seed=joining_seed(opened, study_name, sampler_seed), n_startup_trials=10),
        pruner=pruner,
        load_if_exists=True,
    )
    identity = {"objective": objective, "base_settings": base_identity(base), "space": space_to_dict(space)}
    stored = study.user_attrs
    if "base_settings" not in stored:
        for key, value in identity.items():
            study.set_user_attr(key, value)
        return study
    changes = []
    if stored.get("objective") != objective:
        changes.append(f"objective {stored.get('objective')} (now {objective})")
    changes += differences(stored["base_settings"], identity["base_settings"])
    if stored.get("space") != identity["space"]:
        changes.append(f"space {stored.get('space')} (now {identity['space']})")
    if changes:
        raise ConfigError(
            f"study {study_name!r} in {storage or study_dir / 'study.db'} was started with other settings: "
            f"{'; '.join(changes)}; state them as the study had them, or give another --study_dir or --study_name"
        )
    return study


def joining_seed(storage, study_name: str, sampler_seed: int | None) -> int | None:
    """Returns the sampler's seed for a worker that joins `study_name` with `sampler_seed`: the seed
    itself for a new study; for a study that holds trials, a seed drawn from it and the number of
    trials held, so that the same command run again does not draw its first trials' parameters again
    (the random start-up trials would repeat). None stays None (a random seed)."""
    if sampler_seed is None:
        return None
    try:
        held = len(storage.get_all_trials(storage.get_study_id_from_name(study_name), deepcopy=False))
    except KeyError:  # no such study yet
        held = 0
    return sampler_seed if held == 0 else int(np.random.SeedSequence([sampler_seed, held]).generate_state(1)[0])


def health_shortfall(diagnosis: dict) -> float:
    """Returns the sum of the diagnosis's check shortfalls (0 when every check is healthy)."""
    return float(sum(c.get("shortfall", 0.0) for c in diagnosis["checks"]))


def trial_config(base: TrainConfig, study_dir: Path, number: int, params: dict) -> TrainConfig:
    """Returns a trial's settings: the base settings, the sampled values, and its run folder
    study_dir/trials/NNNN (a normal run folder: `echodepth train --config` its config.yaml resumes it)."""
    return base.replace(
        **params, results_dir=str(study_dir / "trials"), experiment_name=f"{number:04d}", resume=None, overwrite=False
    )


def finite_or_raise(value, what: str) -> float:
    """Returns `value` as a float; raises optuna.TrialPruned when it is missing or not finite (a run
    whose validation RMSE is NaN is clearly bad: it has nothing to compare)."""
    if value is None or not math.isfinite(float(value)):
        raise optuna.TrialPruned(f"{what} is {value}")
    return float(value)
