"""Runs that survive a SIGKILL: resumed from last.ckpt, they end byte-identical to an
uninterrupted run with the same seed (CPU)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .helpers import cosine_train_args

RUNNER = Path(__file__).with_name("fault_runner.py")
EPOCHS = 4  # 24 training samples, batch 8: 3 steps an epoch (cosine_train_args' default)


def run(args: list[str], fault: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(RUNNER), *(map(str, fault) if fault else ("none", "0")), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def outputs(run_dir: Path) -> dict:
    """Returns what must be identical: metrics.csv and test_metrics.json bytes, final weights."""
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return {
        "metrics.csv": (run_dir / "metrics.csv").read_bytes(),
        "test_metrics.json": (run_dir / "test_metrics.json").read_bytes(),
        "weights": state,
    }


def assert_identical(a: dict, b: dict) -> None:
    assert a["metrics.csv"] == b["metrics.csv"]
    assert a["test_metrics.json"] == b["test_metrics.json"]
    assert a["weights"].keys() == b["weights"].keys()
    for key, value in a["weights"].items():
        assert torch.equal(value, b["weights"][key]), key


@pytest.fixture(scope="module")
def uninterrupted(synth_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    result = run(cosine_train_args(synth_dir, root, "reference"))
    assert result.returncode == 0, result.stderr[-3000:]
    return root, outputs(root / "results" / "reference")


def kill_and_resume(synth_dir, root: Path, name: str, fault: tuple[str, int]) -> dict:
    killed = run(cosine_train_args(synth_dir, root, name), fault)
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL
    resumed = run([*cosine_train_args(synth_dir, root, name), "--resume", "last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run_dir = root / "results" / name
    assert not list(run_dir.rglob("*.tmp-*")), "a partial file was left behind"
    return outputs(run_dir)


def test_two_uninterrupted_runs_are_identical(synth_dir, uninterrupted):
    root, reference = uninterrupted
    again = run(cosine_train_args(synth_dir, root, "again"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert_identical(reference, outputs(root / "results" / "again"))


def test_kill_mid_epoch_then_resume_is_identical(synth_dir, uninterrupted):
    root, reference = uninterrupted
    # step 7 is the second step of epoch 3 (steps 0-2 epoch 1, 3-5 epoch 2)
    assert_identical(reference, kill_and_resume(synth_dir, root, "mid_epoch", ("step", 7)))


def test_kill_while_last_checkpoint_is_written_then_resume_is_identical(synth_dir, uninterrupted):
    root, reference = uninterrupted
    # checkpoint writes: epoch 1 best, epoch 1 last, then epoch 2 best (if it improved) and last
    assert_identical(reference, kill_and_resume(synth_dir, root, "in_checkpoint", ("checkpoint", 4)))


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault", [("step", 1), ("step", 5), ("step", 11), ("checkpoint", 1), ("checkpoint", 3), ("metrics", 2)]
)
def test_kill_anywhere_then_resume_is_identical(synth_dir, uninterrupted, fault):
    root, reference = uninterrupted
    name = f"{fault[0]}_{fault[1]}"
    killed = run(cosine_train_args(synth_dir, root, name), fault)
    assert killed.returncode == -9, killed.stderr[-3000:]
    last = root / "results" / name / "checkpoints" / "last.ckpt"
    args = [*cosine_train_args(synth_dir, root, name), *(["--resume", "last"] if last.exists() else [])]
    resumed = run(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_identical(reference, outputs(root / "results" / name))


def test_last_checkpoint_is_the_last_epoch_and_best_the_best(uninterrupted):
    root, _ = uninterrupted
    run_dir = root / "results" / "reference"
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    rmse = [float(line.split(",")[header.index("val/rmse")]) for line in lines[1:]]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert last["epoch"] == EPOCHS - 1  # 0-based: the last epoch, whatever its validation RMSE
    assert best["epoch"] == rmse.index(min(rmse))
    lrs = [float(line.split(",")[header.index("lr")]) for line in lines[1:]]
    assert lrs[0] == pytest.approx(0.002) and lrs == sorted(lrs, reverse=True)  # the rate in force, cosine


@pytest.mark.slow
def test_kill_during_the_cache_build_then_rerun_gives_the_same_cache(synth_dir, tmp_path):
    reference = run(cosine_train_args(synth_dir, tmp_path / "a", "cache_ref"))
    assert reference.returncode == 0, reference.stderr[-3000:]
    args = [*cosine_train_args(synth_dir, tmp_path / "b", "cache_kill"), "--epochs", "1"]
    killed = run(args, ("cache", 0))  # before the first batch of the first cache is written
    assert killed.returncode == -9
    assert list((tmp_path / "b" / "cache").glob("*.partial-*"))  # the killed build's folder
    rerun = run(args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not list((tmp_path / "b" / "cache").glob("*.partial-*"))

    def arrays(root):
        return {p.parent.name.split("-")[1] + "/" + p.name: p.read_bytes() for p in sorted(root.glob("*/*.npy"))}

    assert arrays(tmp_path / "a" / "cache") == arrays(tmp_path / "b" / "cache")
