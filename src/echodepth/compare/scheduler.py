"""Runs a comparison's trainings side by side, each in its own process, resumable.

Each run trains on one CPU thread whatever --jobs (a run's numbers do not depend on how many run
side by side), and dies with the compare however the compare ends, `kill -9` included: on Linux the
kernel sends it SIGKILL when its parent ends (PR_SET_PDEATHSIG), so no run is left training and
holding its folder's lock; a rerun resumes every run from its last checkpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import yaml

from ..errors import UserError
from ..runs.storage import FileLock, atomic_write_text, make_dir, open_log
from .variants import Run

STOPPED = -1000  # launch()'s exit code for a run stopped at the time limit
TRAIN_THREADS = 1  # CPU threads per run, whatever --jobs: intra-op threads change the sums' order, so the results
# run first in each child: asks the kernel for SIGKILL when the compare ends (Linux; elsewhere a no-op), leaves if
# it ended already, then becomes the training (exec keeps the request and the process id)
PARENT_DEATH_GUARD = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
except AttributeError:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""
_running: set[subprocess.Popen] = set()  # the children alive, stopped with their parent (stop_children)
_no_more = threading.Event()  # set while stopping: no new child starts
_guard = threading.Lock()


def train_command(config_path) -> list[str]:
    """Returns the command line of a run's child process: `echodepth train --config config_path`
    behind the parent-death guard (the child ends when this process ends)."""
    train = ["-m", "echodepth.cli", "train", "--config", str(config_path)]
    return [sys.executable, "-I", "-c", PARENT_DEATH_GUARD, str(os.getpid()), *train]


def train_environment() -> dict[str, str]:
    """Returns the child's environment: this one with TRAIN_THREADS CPU threads."""
    threads = str(TRAIN_THREADS)
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def launch(run: Run, deadline: float | None = None) -> tuple[str, int]:
    """Trains one run in a child process (resuming from its last checkpoint); returns (name, exit
    code). At the deadline (time.monotonic()) the child is stopped: its last.ckpt is at most an
    epoch old and a rerun resumes it exactly; the exit code is then STOPPED."""
    run_dir = run.run_dir
    make_dir(run_dir.path, "results folder")
    cfg = run.cfg.to_dict()
    if run_dir.last_checkpoint.exists():
        cfg["resume"] = "last"  # an interrupted run continues
    atomic_write_text(run_dir.compare_config, yaml.safe_dump(cfg))
    command, env = train_command(run_dir.compare_config), train_environment()
    with open_log(run_dir.train_log) as log:
        if deadline is not None and time.monotonic() >= deadline:
            return run.name, STOPPED
        with _guard:
            if _no_more.is_set():
                return run.name, STOPPED
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            _running.add(child)
        try:
            return run.name, child.wait(timeout=None if deadline is None else max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            child.kill()  # SIGKILL is safe: every write is atomic and a resume is exact
            child.wait()
            return run.name, STOPPED
        finally:
            with _guard:
                _running.discard(child)


def stop_children() -> None:
    """Sends SIGTERM to every run still training (each keeps its last checkpoint: a rerun resumes
    it) and starts no new one."""
    with _guard:
        _no_more.set()
        for child in _running:
            child.terminate()


def refuse_runs_in_use(runs: list[Run]) -> None:
    """Raises a one-line UserError naming the runs whose folder another process trains into (and
    that process), rather than failing each of them."""
    held = []
    for run in runs:
        if run.run_dir.path.is_dir():
            lock = FileLock(run.run_dir.lock)
            if not lock.acquire(blocking=False):
                held.append(f"{run.run_dir.path} (process {lock.holder()})")
            lock.release()
    if held:
        raise UserError(
            f"{len(held)} run folder(s) in use by another process: {', '.join(held)}; wait for it to end or stop it, "
            "then rerun"
        )


def execute(runs: list[Run], jobs: int, progress=print, time_limit_s: float | None = None) -> bool:
    """Runs the unfinished runs, `jobs` at a time, each in its own process; with `time_limit_s`,
    stops them all when it has passed. Returns whether every run finished."""
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    todo = [r for r in runs if not r.run_dir.finished]
    progress(
        f"{len(runs) - len(todo)} of {len(runs)} runs already finished; running {len(todo)}, {jobs} at a time, "
        f"each on {TRAIN_THREADS} CPU thread"
    )
    refuse_runs_in_use(todo)
    failed, stopped = [], []
    _no_more.clear()
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        try:
            for i, (name, code) in enumerate(pool.map(lambda r: launch(r, deadline), todo), 1):
                if code == STOPPED:
                    progress(f"[{i}/{len(todo)}] {name}: stopped at the time limit (rerun to resume it)")
                    stopped.append(name)
                    continue
                state = "done" if code == 0 else f"FAILED (exit {code}, see its train.log)"
                progress(f"[{i}/{len(todo)}] {name}: {state}")
                if code != 0:
                    failed.append(name)
        except BaseException:  # a signal (Interrupted) or a bug: no run outlives its compare
            stop_children()
            raise
    if failed:
        raise UserError(
            f"{len(failed)} run(s) failed: {', '.join(failed)}; their train.log files say why; rerun to retry them"
        )
    return not stopped
