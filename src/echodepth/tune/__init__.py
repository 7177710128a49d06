"""`echodepth tune`: an Optuna study over the decomposition's settings, on one machine or many.

Each trial is a real `echodepth train` run in DIR/trials/NNNN/ built from the base settings and
the trial's sampled values (`space.py`); the study lives in a database (DIR/study.db, or a shared
`--storage` URL), so that the same command run again, in a second shell, or on other machines
adds workers to the same study until it holds N complete trials (`worker.py`). At the end the
study folder holds trials.csv, best.yaml, report.md and report.html (`report.py`).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from ..errors import ConfigError, UserError
from ..runs.interrupt import Interrupted, stop_on_signals
from ..runs.storage import make_dir
from ..settings.config import TrainConfig
from .report import write_report
from .space import default_space, resolve_space
from .study import DEFAULT_OBJECTIVE, OBJECTIVES, open_study
from .worker import Objective, quiet_libraries, work

DEFAULT_STUDY_NAME = "echodepth"


def _check_arguments(n_trials: int, workers: int, objective: str, heartbeat_s: float) -> None:
    if n_trials < 1:
        raise ConfigError(f"--n_trials must be at least 1, got {n_trials}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r}: expected one of {list(OBJECTIVES)}")
    if not heartbeat_s > 0:
        raise ConfigError(f"--heartbeat_s must be > 0 seconds, got {heartbeat_s}")


def _prepare_data(base: TrainConfig) -> None:
    """Makes the data and its caches once, before workers start side by side."""
    from ..training import EchoDepthDataModule

    datamodule = EchoDepthDataModule(base, progress=False)
    datamodule.prepare_data()
    for split in ("train", "val", "test"):
        if datamodule.has_split(split):
            datamodule.dataset(split)


def _worker(base: TrainConfig, options: dict, threads: int) -> None:
    """A local worker process: joins the study and runs trials (the parent writes the report)."""
    import sys

    import torch

    torch.set_num_threads(threads)
    quiet_libraries()
    try:
        space, _ = resolve_space(base, options["space_file"])
        study_options = {k: v for k, v in options.items() if k not in ("space_file", "n_trials")}
        study = open_study(base=base, space=space, **study_options)
        work(study, Objective(base, space, options["study_dir"], options["objective"], options["n_trials"]))
    except UserError as err:  # one line, as the command line prints it
        print(f"echodepth tune: worker {os.getpid()}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as stop:  # stopped with its command: the parent says so, once
        sys.exit(stop.exit_status)


def tune(
    base: TrainConfig,
    *,
    study_dir,
    n_trials: int,
    space_file=None,
    objective: str = DEFAULT_OBJECTIVE,
    storage: str | None = None,
    study_name: str = DEFAULT_STUDY_NAME,
    workers: int = 1,
    heartbeat_s: float = 30.0,
    sampler_seed: int | None = None,
) -> Path:
    """Runs (or joins) the study until it holds `n_trials` complete trials, then writes its report;
    returns report.md's path.

    `base` is the settings every trial starts from; `space_file` a `--space` YAML file (else the
    default space declared beside the settings); `storage` a database URL shared by several
    machines (else study_dir/study.db, SQLite); `workers` local processes, each with
    cpu_count / workers threads. Raises ConfigError before any trial runs for a bad argument or
    space, or a study started with other settings; UserError when a worker's trials keep failing."""
    _check_arguments(n_trials, workers, objective, heartbeat_s)
    study_dir = make_dir(study_dir, "--study_dir")
    space, _ = resolve_space(base, space_file)
    options = {
        "study_dir": study_dir,
        "study_name": study_name,
        "storage": storage,
        "objective": objective,
        "heartbeat_s": heartbeat_s,
        "sampler_seed": sampler_seed,
    }
    quiet_libraries()
    study = open_study(base=base, space=space, **options)  # refuses another study's settings before any work
    _prepare_data(base)
    options.update(space_file=space_file, n_trials=n_trials)
    with stop_on_signals("run the same echodepth tune again to continue the study"):
        if workers == 1:
            work(study, Objective(base, space, study_dir, objective, n_trials))
        else:
            _run_workers(base, options, workers)
    return write_report(study, base, study_dir)


def _run_workers(base: TrainConfig, options: dict, workers: int) -> None:
    """Runs `workers` local worker processes and waits for them; a worker that dies (kill -9)
    costs its current trial only: the others go on, and retry it."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    seed = options["sampler_seed"]
    processes = [  # one sampler seed each: workers with one seed would sample the same values
        context.Process(
            target=_worker,
            args=(base, {**options, "sampler_seed": seed if seed is None else seed + i}, threads),
        )
        for i in range(workers)
    ]
    try:
        for p in processes:
            p.start()
        for p in processes:
            p.join()
    except BaseException:  # interrupted: no worker outlives its command (their trials are retried later)
        for p in processes:
            p.terminate()
        raise
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if len(failed) == workers:
        raise UserError(f"every worker stopped with an error (exit codes {failed}); their messages are above")


__all__ = ["DEFAULT_OBJECTIVE", "OBJECTIVES", "default_space", "tune"]
