"""One worker of `echodepth tune`: takes trials from the shared study until it holds N complete ones.

Several workers (local processes, other machines) share one study through its database. A worker
starts a trial only while the complete and running trials number fewer than N, so the study stops
at N complete trials; it waits while the running ones may still complete, and goes on when one is
pruned or fails. A worker killed with `kill -9` stops beating: after three heartbeats the next
worker marks its trial failed and Optuna retries it once with the same parameters.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import optuna
from lightning.pytorch.callbacks import Callback
from optuna.trial import TrialState

from ..errors import UserError
from ..runs.interrupt import Interrupted
from ..runs.storage import open_log
from ..settings.config import TrainConfig
from ..settings.search_space import SearchRange
from .space import suggest
from .study import OBJECTIVES, finite_or_raise, health_shortfall, trial_config

MAX_FAILURES_IN_A_ROW = 3  # a worker whose trials keep failing stops: a bug or a broken set-up, not bad luck
MAX_PRUNED_IN_A_ROW = 20  # nor one whose trials all stop early: the base settings learn nothing in time


class TrialPruning(Callback):
    """Stops a clearly bad trial after a validation: with one objective, Optuna's pruner decides
    (the median of earlier trials' validation RMSE at the same epoch); with two, where Optuna
    prunes nothing, a trial whose validation RMSE after a third of its epochs (at least 2; never at the
    last) is no better than
    predicting the training set's per-pixel mean depth map (it has learnt nothing from the echoes)
    stops. A non-finite validation RMSE stops a trial in both."""

    def __init__(self, trial: optuna.Trial, multi_objective: bool, epochs: int):
        self.trial, self.multi_objective, self.epochs = trial, multi_objective, epochs
        # epochs before the rule may stop a trial: a third of them, at least 2; never at the last
        self.warmup_epochs = max(2, math.ceil(epochs / 3))
        self.reference_rmse: float | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        """Measures the per-pixel mean depth map's validation RMSE (two objectives only)."""
        if self.multi_objective:
            from ..evaluate import mean_depth_baselines

            baselines = mean_depth_baselines(trainer.datamodule, "val")
            self.reference_rmse = baselines["per_pixel_mean_depth"]["rmse"]

    def on_validation_end(self, trainer, pl_module) -> None:
        """Reports the epoch's validation RMSE and raises optuna.TrialPruned when the trial should stop."""
        value = trainer.callback_metrics.get("val/rmse")
        if trainer.sanity_checking or value is None:
            return
        epoch = trainer.current_epoch + 1
        value = finite_or_raise(float(value), f"the validation RMSE of epoch {epoch}")
        if not self.multi_objective:
            self.trial.report(value, epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: validation RMSE {value:.4f} m, above the earlier median")
        elif self.warmup_epochs <= epoch < self.epochs and value >= self.reference_rmse:
            raise optuna.TrialPruned(
                f"epoch {epoch}: validation RMSE {value:.4f} m, no better than the per-pixel mean depth map's "
                f"{self.reference_rmse:.4f} m"
            )


def quiet_libraries() -> None:
    """Keeps the terminal to one line per trial: Lightning's and Optuna's info lines off (each trial's
    train.log keeps its own output), Optuna's experimental-feature warnings off."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass
class Objective:
    """The study's objective: trains trial `number` in study_dir/trials/NNNN with the base settings
    and the sampled values, and returns (best validation RMSE in metres[, health shortfall])."""

    base: TrainConfig
    space: dict[str, SearchRange]
    study_dir: Path
    objective: str
    n_trials: int
    current_trial: int | None = None  # the number of the trial being trained, for `work` to fail if stopped

    def __call__(self, trial: optuna.Trial):
        from ..runs.train import train

        quiet_libraries()
        ahead = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number]
        taken = sum(t.state in (TrialState.COMPLETE, TrialState.RUNNING) for t in ahead)
        if taken >= self.n_trials:  # two workers started one trial too many at once: the later one gives way
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned(f"surplus: {taken} earlier trials complete or running")
        self.current_trial = trial.number
        cfg = trial_config(self.base, self.study_dir, trial.number, suggest(trial, self.space))
        trial.set_user_attr("run_dir", str(Path("trials") / cfg.experiment_name))
        multi = len(OBJECTIVES[self.objective]) > 1
        pruning = TrialPruning(trial, multi, cfg.epochs)
        with open_log(cfg.run_dir.path / "train.log") as log:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                try:
                    result = train(cfg, progress=False, callbacks=[pruning])
                except optuna.TrialPruned as stop:
                    print(f"pruned: {stop}")
                    raise
                except Exception:
                    traceback.print_exc()
                    raise
        rmse = finite_or_raise(result["best_val_rmse"], "the best validation RMSE")
        diagnosis = result.get("diagnosis")
        if diagnosis is not None:
            checks = {c["name"]: c for c in diagnosis["checks"]}
            trial.set_user_attr("checks", {n: [c["value"], c["healthy"], c["shortfall"]] for n, c in checks.items()})
            trial.set_user_attr("unhealthy", sorted(n for n, c in checks.items() if not c["healthy"]))
        if "test" in result:
            trial.set_user_attr("test_rmse_m", result["test"]["rmse"])
        if not multi:
            return rmse
        if diagnosis is None:
            raise UserError(
                "the health objective needs the diagnosis, which needs a test split: give rmse as --objective"
            )
        return rmse, health_shortfall(diagnosis)


def counts(study: optuna.Study) -> dict[TrialState, int]:
    """Returns the number of trials in each state."""
    out = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        out[t.state] += 1
    return out


def best_line(study: optuna.Study) -> str:
    """Returns "best so far: ..." (one objective: the lowest RMSE; two: the lowest RMSE among trials
    whose every check is healthy, and the Pareto front's size)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return "no complete trial yet"
    if len(study.directions) == 1:
        best = min(complete, key=lambda t: t.values[0])
        return f"best so far: trial {best.number}, val RMSE {best.values[0]:.4f} m"
    healthy = [t for t in complete if t.values[1] == 0]
    front = len(study.best_trials)
    if not healthy:
        least = min(complete, key=lambda t: t.values[1])
        return f"no trial healthy yet (least shortfall {least.values[1]:.3f}, trial {least.number}); front {front}"
    best = min(healthy, key=lambda t: t.values[0])
    return f"best healthy so far: trial {best.number}, val RMSE {best.values[0]:.4f} m; Pareto front {front} trial(s)"


def time_left(study: optuna.Study, n_trials: int) -> str:
    """Returns the time left, from the median duration of the finished trials, the trials still to
    complete and the trials running now (one per active worker)."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.duration]
    if not finished:
        return "time left unknown"
    per_trial = statistics.median(t.duration.total_seconds() for t in finished)
    state = counts(study)
    complete_share = state[TrialState.COMPLETE] / max(1, len(finished))
    left = max(0, n_trials - state[TrialState.COMPLETE]) / max(complete_share, 0.1)  # trials to run, pruned included
    seconds = per_trial * left / max(1, state[TrialState.RUNNING])
    return f"about {math.ceil(seconds / 60)} min left"


def progress_line(study: optuna.Study, trial: optuna.trial.FrozenTrial, n_trials: int) -> str:
    """Returns the line printed when a trial ends: its outcome, trial n of N, the best so far, the time left."""
    state = counts(study)
    values = ", ".join(f"{v:.4f}" for v in trial.values) if trial.values else trial.state.name.lower()
    done = state[TrialState.COMPLETE]
    return (
        f"trial {trial.number} {trial.state.name.lower()} ({values}): {done} of {n_trials} complete, "
        f"{state[TrialState.PRUNED]} pruned, {state[TrialState.FAIL]} failed; {best_line(study)}; "
        f"{time_left(study, n_trials)}"
    )


def work(study: optuna.Study, objective: Objective, *, poll_s: float = 2.0, out=print) -> None:
    """Runs trials of `study` until it holds `objective.n_trials` complete ones (this worker's and
    every other worker's). Raises UserError when MAX_FAILURES_IN_A_ROW of this worker's trials failed
    in a row."""
    n_trials = objective.n_trials
    failures, pruned, ended = 0, 0, []
    quiet_libraries()
    while True:
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial: failed, and retried by Optuna
        state = counts(study)
        if state[TrialState.COMPLETE] >= n_trials:
            return
        if state[TrialState.COMPLETE] + state[TrialState.RUNNING] >= n_trials:
            time.sleep(poll_s)  # the running trials may complete the study; if one is pruned or fails, go on
            continue
        ended.clear()
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[lambda s, t: ended.append(t)])
        except Interrupted:  # stopped by SIGTERM / SIGINT: the trial failed (it counts for nothing), not running
            if objective.current_trial is not None:
                with contextlib.suppress(Exception):  # already finished, or the database is gone
                    study.tell(objective.current_trial, state=TrialState.FAIL)
            raise
        for trial in ended:
            if not trial.user_attrs.get("surplus"):
                out(progress_line(study, trial, n_trials))
                sys.stdout.flush()
            failures = failures + 1 if trial.state == TrialState.FAIL else 0
            surplus = trial.user_attrs.get("surplus")
            pruned = pruned + 1 if trial.state == TrialState.PRUNED and not surplus else 0
        if pruned >= MAX_PRUNED_IN_A_ROW:
            raise UserError(
                f"{pruned} trials in a row stopped early, none complete (see their train.log in "
                f"{objective.study_dir / 'trials'}): train longer (--epochs), or use --objective rmse"
            )
        if failures >= MAX_FAILURES_IN_A_ROW:
            last = ended[-1]
            raise UserError(
                f"{failures} trials failed in a row, the last trial {last.number}: see "
                f"{objective.study_dir / last.user_attrs.get('run_dir', 'trials')}/train.log"
            )
