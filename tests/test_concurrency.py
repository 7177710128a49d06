"""Runs started together: on one cache folder they all succeed and share one cache; into one
results folder the second is refused with the holder's process id, and allowed after it ends."""

import subprocess
import sys
import time

from echodepth.cli import main

from .helpers import cosine_train_args


def start(args):
    return subprocess.Popen(
        [sys.executable, "-m", "echodepth.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_runs_on_one_cache_folder_all_succeed_and_share_it(synth_dir, tmp_path):
    procs = [start([*cosine_train_args(synth_dir, tmp_path, f"run{i}"), "--epochs", "1"]) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    caches = sorted(p.name.split("-")[1] for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert caches == ["test", "train", "val"]  # one cache per split, shared by the three runs
    assert not list((tmp_path / "cache").glob("*.partial-*"))


def test_second_run_into_a_held_results_folder_is_refused(synth_dir, tmp_path, capsys):
    first = start([*cosine_train_args(synth_dir, tmp_path, "shared"), "--epochs", "40"])
    lock = tmp_path / "results" / "shared" / ".lock"
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    code = main(cosine_train_args(synth_dir, tmp_path, "shared"))
    err = capsys.readouterr().err.strip().splitlines()
    first.kill()  # SIGKILL releases the lock
    first.communicate()
    assert code == 2 and len(err) == 1 and f"in use by process {first.pid}" in err[0]
    assert main([*cosine_train_args(synth_dir, tmp_path, "shared"), "--epochs", "1", "--overwrite"]) == 0  # free again
    assert main([*cosine_train_args(synth_dir, tmp_path, "shared"), "--epochs", "1"]) == 2  # not overwritten silently
    assert "holds a previous run; continue it with --resume last" in capsys.readouterr().err
