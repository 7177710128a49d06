"""Scale-out, simulated on one machine (slow): training across two nodes (two `echodepth train`
processes, node ranks 0 and 1, gloo over 127.0.0.1) and one `echodepth tune` study shared by two
processes through a PostgreSQL server started on localhost."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from echodepth.runs.rundir import RunDir

from .helpers import tiny_flags, tune_args

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_command(synth_dir, tmp_path, *extra) -> list[str]:
    flags = tiny_flags(synth_dir, tmp_path, epochs=2)
    return [sys.executable, "-m", "echodepth.cli", "train", *flags, "--results_dir", str(tmp_path / "results"), *extra]


def test_training_on_two_nodes_gives_the_one_node_result_at_the_same_effective_batch(synth_dir, tmp_path):
    one = train_command(synth_dir, tmp_path, "--experiment_name", "one_node", "--accelerator", "cpu")
    one[one.index("--batch_size") + 1] = "16"
    done = subprocess.run(one, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    port = free_port()
    two = train_command(
        synth_dir, tmp_path, "--experiment_name", "two_nodes", "--accelerator", "cpu", "--num_nodes", "2"
    )
    nodes = []
    for rank in (0, 1):  # what a cluster's launcher sets on each node
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NODE_RANK": str(rank)}
        env.update(WORLD_SIZE="2", LOCAL_RANK="0", OMP_NUM_THREADS="1")
        nodes.append(subprocess.Popen(two, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [n.communicate(timeout=900)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    single, double = (RunDir(tmp_path / "results" / name).read_metrics() for name in ("one_node", "two_nodes"))
    assert len(single) == len(double) == 2
    # the same samples per optimiser step (8 per node x 2 nodes = 16) and the same order: the two runs
    # differ only by BatchNorm's statistics, taken over 8 samples per node instead of 16
    for a, b in zip(single, double):
        assert b["val/n_images"] == a["val/n_images"]
        assert abs(b["val/rmse"] - a["val/rmse"]) <= 0.1 * a["val/rmse"], (a["val/rmse"], b["val/rmse"])


def _initdb() -> str | None:
    found = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    return str(found) if found else None


@pytest.fixture
def postgres_url():
    """A PostgreSQL server on 127.0.0.1 (Debian's postgresql package), stopped after the test."""
    initdb = _initdb()
    if initdb is None:
        pytest.skip("needs Debian's postgresql package (apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="needs psycopg2: pip install 'echodepth[postgres]'")
    bin_dir = Path(initdb).parent
    root = Path(tempfile.mkdtemp(prefix="echodepth-pg-"))
    root.chmod(0o755)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    port = free_port()
    data = root / "data"

    def run(*args):
        done = subprocess.run([*as_postgres, *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]

    run(bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    run(bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", root / "log", "-w", "start")
    try:
        run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "echodepth")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/echodepth"
    finally:
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def test_two_machines_share_one_study_through_postgresql(postgres_url, synth_dir, tmp_path):
    machines = [tmp_path / "machine_a", tmp_path / "machine_b"]  # each machine's own study folder
    commands = [
        [sys.executable, "-m", "echodepth.cli", *tune_args(m, 4, synth_dir, tmp_path, "--storage", postgres_url)]
        for m in machines
    ]
    workers = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in commands]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="echodepth", storage=postgres_url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    ran_on = {
        m: {t.number for t in complete if (m / t.user_attrs["run_dir"] / "metrics.csv").exists()} for m in machines
    }
    assert set().union(*ran_on.values()) == {t.number for t in complete}
    for machine in machines:
        assert (machine / "report.md").is_file() and (machine / "trials.csv").is_file()
    for trial in complete:
        machine = next(m for m in machines if trial.number in ran_on[m])
        run = RunDir(machine / trial.user_attrs["run_dir"])
        assert trial.values[0] == min(row["val/rmse"] for row in run.read_metrics())
