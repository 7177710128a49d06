"""Runs that never mix and never lie about how they ended: a resume that would change the run is
refused in one line (config.yaml untouched), --epochs extends it, a checkpoint of another run does
not land in a folder holding a run, an exported model given as a checkpoint is named, and
SIGTERM / SIGINT end with 143 / 130, one line, and the last good checkpoint kept."""

import math
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from echodepth.cli import main
from echodepth.errors import ConfigError
from echodepth.inference.predictor import read_checkpoint
from echodepth.runs.resume import resolve_resume
from echodepth.settings.config import TrainConfig
from echodepth.training.schedule import make_lr_schedule

from .helpers import one_line_error, rows, train_args


@pytest.fixture(scope="module")
def run(one_epoch_run, tmp_path_factory):
    """A copy of the session's 1-epoch run: the tests here try to resume into it."""
    root = shutil.copytree(one_epoch_run[0], tmp_path_factory.mktemp("resume") / "run")
    return root, root / "results" / "smoke"


@pytest.mark.parametrize(
    "flags, field",
    [
        (["--learning_rate", "0.01"], "learning_rate 0.002 (now 0.01)"),
        (["--batch_size", "4"], "batch_size 8 (now 4)"),
        (["--image_size", "32"], "image_size 16 (now 32)"),
        (["--base_channels", "8"], "base_channels 4 (now 8)"),
        (["--model", "unet_baseline"], "model base_residual (now unet_baseline)"),
        (["--lambda_sparse", "0.5", "--seed", "3"], "lambda_sparse 0.1 (now 0.5); seed 0 (now 3)"),
    ],
)
def test_a_resume_that_changes_the_run_is_refused_in_one_line(run, synth_dir, flags, field, capsys):
    root, out = run
    before = {name: (out / name).read_bytes() for name in ("config.yaml", "metrics.csv")}
    capsys.readouterr()
    assert main(train_args(synth_dir, root, "--epochs", "2", "--resume", "last", *flags)) == 2
    line = one_line_error(capsys)
    assert "the run was trained with other settings" in line and field in line
    assert f"--config {out / 'config.yaml'}" in line  # how to state the run's settings again
    assert {name: (out / name).read_bytes() for name in before} == before  # config.yaml written only after loading


def test_a_resume_may_name_the_unit_it_read_or_another_headline_protocol(run):
    _, out = run
    stored = read_checkpoint(out / "checkpoints" / "last.ckpt")["echodepth"]["config"]
    stored = {**stored, "results_dir": str(out.parent)}  # the run was trained in another folder and copied here
    for same_run in ({"depth_unit": "mm"}, {"depth_unit": None}, {"protocol": "htf"}):
        cfg = TrainConfig.from_dict({**stored, "resume": "last", "epochs": 2, **same_run})
        assert resolve_resume(cfg) == str(out / "checkpoints" / "last.ckpt"), same_run
    with pytest.raises(ConfigError, match=r"depth_unit mm \(now m\)"):
        resolve_resume(TrainConfig.from_dict({**stored, "resume": "last", "epochs": 2, "depth_unit": "m"}))


def test_more_epochs_extend_the_run(synth_dir, tmp_path):
    assert main(train_args(synth_dir, tmp_path, "--epochs", "1")) == 0
    assert main(train_args(synth_dir, tmp_path, "--epochs", "2", "--resume", "last")) == 0
    out = tmp_path / "results" / "smoke"
    assert [int(r["epoch"]) for r in rows(out / "metrics.csv")] == [1, 2]
    assert "epochs: 2" in (out / "config.yaml").read_text()
    assert main(train_args(synth_dir, tmp_path, "--epochs", "1", "--resume", "last")) == 2  # 2 done already


@pytest.mark.parametrize("warmup", [0, 1])
def test_a_cosine_run_extended_follows_the_cosine_of_its_new_length(synth_dir, tmp_path, warmup):
    cosine = ["--lr_schedule", "cosine", "--lr_warmup_epochs", str(warmup)]
    assert main(train_args(synth_dir, tmp_path, "--epochs", "2", *cosine)) == 0
    assert main(train_args(synth_dir, tmp_path, "--epochs", "4", *cosine, "--resume", "last")) == 0
    rates = [float(r["lr"]) / 0.002 for r in rows(tmp_path / "results" / "smoke" / "metrics.csv")]
    # epochs 1-2 as the 2-epoch run had them; 3-4 on the 4-epoch schedule: 0.5 (1 + cos(pi (e - w) / (4 - w)))
    first = [1.0, 0.5] if warmup == 0 else [1.0, 1.0]
    rest = [0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))] if warmup == 0 else [0.75, 0.25]
    assert rates == pytest.approx(first + rest)


def test_a_plain_cosine_annealing_state_resumes_at_its_epoch():
    weight = torch.nn.Parameter(torch.zeros(1))
    old_optimizer = torch.optim.AdamW([weight], lr=0.002)
    old = torch.optim.lr_scheduler.CosineAnnealingLR(old_optimizer, T_max=4)  # cosine, no warm-up: older checkpoints
    old_optimizer.step()
    old.step()
    optimizer = torch.optim.AdamW([weight], lr=0.002)
    optimizer.load_state_dict(old_optimizer.state_dict())
    schedule = make_lr_schedule(TrainConfig(lr_schedule="cosine", epochs=8), optimizer)
    schedule.load_state_dict(old.state_dict())
    assert schedule.last_epoch == 1
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.002 * 0.5 * (1 + math.cos(math.pi / 8)))


def test_a_checkpoint_of_another_run_into_a_folder_holding_a_run(run, synth_dir, tmp_path, capsys):
    _, other = run
    assert main(train_args(synth_dir, tmp_path, "--epochs", "1")) == 0
    out = tmp_path / "results" / "smoke"
    before = (out / "metrics.csv").read_bytes()
    capsys.readouterr()
    foreign = str(other / "checkpoints" / "last.ckpt")
    assert main(train_args(synth_dir, tmp_path, "--epochs", "2", "--resume", foreign)) == 2
    assert "holds another run, which this one would mix with" in one_line_error(capsys)
    assert (out / "metrics.csv").read_bytes() == before
    (out / "epoch_0001_decomposition.png").write_bytes(b"stale")
    assert main(train_args(synth_dir, tmp_path, "--epochs", "2", "--resume", foreign, "--overwrite")) == 0
    assert [int(r["epoch"]) for r in rows(out / "metrics.csv")] == [2]  # only the continued run's epochs
    assert not (out / "epoch_0001_decomposition.png").exists()  # the other run's figures are gone
    assert main(train_args(synth_dir, tmp_path / "new", "--epochs", "2", "--resume", foreign)) == 0  # an empty folder


def test_an_exported_model_given_as_a_checkpoint_is_named(synth_dir, tmp_path, capsys):
    class Twice(torch.nn.Module):
        def forward(self, x):
            return 2 * x

    scripted = tmp_path / "model.pt"
    torch.jit.save(torch.jit.trace(Twice(), torch.ones(2)), str(scripted))
    onnx_file = tmp_path / "model.onnx"
    torch.onnx.export(Twice(), (torch.ones(2),), str(onnx_file), dynamo=False)
    for path, kind in ((scripted, "TorchScript"), (onnx_file, "ONNX")):
        for args in (
            train_args(synth_dir, tmp_path, "--epochs", "1", "--resume", str(path)),
            ["eval", "--checkpoint", str(path)],
        ):
            capsys.readouterr()
            assert main(args) == 2
            line = one_line_error(capsys)
            assert f"is an exported {kind} model, not a training checkpoint" in line and "predict --model" in line
            assert "weights_only" not in line  # no advice to load unsafely
    assert not (tmp_path / "results" / "smoke").exists()


def test_a_foreign_pickle_is_refused_without_advice_to_load_it_unsafely(tmp_path):
    path = tmp_path / "foreign.ckpt"
    torch.save({"echodepth": {}, "thing": torch.nn.Linear(1, 1)}, path)  # a pickled module, not weights
    with pytest.raises(Exception) as caught:
        read_checkpoint(path)
    assert "unreadable or not a plain weights file" in str(caught.value)
    assert "weights_only" not in str(caught.value) and "trusted" not in str(caught.value)


def as_from_a_shell() -> None:
    """A child's signals as a shell's foreground command has them: default and not blocked. A test run
    started as a background job of a non-interactive shell (`cmd &`) has SIGINT ignored, its children
    inherit that, and echodepth keeps an inherited ignore on purpose (a background job must not stop
    on the terminal's Ctrl+C): the SIGINT case then trained on to its 200th epoch and timed out."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM))


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_with_its_status_and_keeps_the_last_checkpoint(synth_dir, tmp_path, signum, status):
    args = train_args(synth_dir, tmp_path, "--epochs", "200")
    child = subprocess.Popen(
        [sys.executable, "-m", "echodepth.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_from_a_shell,
    )
    last = tmp_path / "results" / "smoke" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.2)
    child.send_signal(signum)
    _, err = child.communicate(timeout=300)
    assert child.returncode == status, err[-2000:]
    assert err.strip().splitlines()[-1] == "echodepth train: interrupted: resume with --resume last"
    assert not (tmp_path / "results" / "smoke" / "test_metrics.json").exists()
    done = read_checkpoint(last)["epoch"] + 1  # whole: it loads
    assert main([*args[:-2], "--epochs", str(done + 1), "--resume", "last"]) == 0
