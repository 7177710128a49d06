"""Runs a comparison's trainings side by side, each in its own process, resumable."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import yaml

from ..errors import UserError
from .variants import Run


def launch(run: Run, threads: int) -> tuple[str, int]:
    """Trains one run in a child process (resuming from its last checkpoint); returns (name, exit code)."""
    run_dir = run.run_dir
    run_dir.path.mkdir(parents=True, exist_ok=True)
    cfg = run.cfg.to_dict()
    if run_dir.last_checkpoint.exists():
        cfg["resume"] = "last"  # an interrupted run continues
    run_dir.compare_config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "echodepth.cli", "train", "--config", str(run_dir.compare_config)]
    with open(run_dir.train_log, "a") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return run.name, code


def execute(runs: list[Run], jobs: int, progress=print) -> None:
    """Runs the unfinished runs, `jobs` at a time, each in its own process."""
    todo = [r for r in runs if not r.run_dir.finished]
    progress(f"{len(runs) - len(todo)} of {len(runs)} runs already finished; running {len(todo)} with {jobs} at a time")
    threads = max(1, (os.cpu_count() or 1) // max(jobs, 1))
    failed = []
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for i, (name, code) in enumerate(pool.map(lambda r: launch(r, threads), todo), 1):
            progress(f"[{i}/{len(todo)}] {name}: {'done' if code == 0 else f'FAILED (exit {code}, see its train.log)'}")
            if code != 0:
                failed.append(name)
    if failed:
        raise UserError(
            f"{len(failed)} run(s) failed: {', '.join(failed)}; their train.log files say why; rerun to retry them"
        )
