"""`echodepth tune`: the search space, the study's identity, its workers (one, several, killed), and
what it writes; each trial a real training run on the tiny synthetic data."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from echodepth.cli import main
from echodepth.diagnose.checks import NOT_MEASURED_SHORTFALL, beyond
from echodepth.errors import ConfigError
from echodepth.runs.rundir import RunDir
from echodepth.settings.config import TrainConfig
from echodepth.tune import default_space
from echodepth.tune.space import check_space, parse_space

from .browser import chromium
from .helpers import space_file, tune_args


def load(study_dir, name="echodepth") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{Path(study_dir).resolve() / 'study.db'}")


def states(study) -> dict:
    return {s: len(study.get_trials(states=(s,))) for s in TrialState}


def assert_values_are_the_runs_own(study_dir):
    """Every complete trial's stored value is its run folder's own best validation RMSE."""
    for trial in load(study_dir).get_trials(states=(TrialState.COMPLETE,)):
        run = RunDir(Path(study_dir) / trial.user_attrs["run_dir"])
        assert trial.values[0] == min(row["val/rmse"] for row in run.read_metrics())
        assert run.best_checkpoint.is_file() and run.config.is_file() and (run.path / "diagnosis.json").is_file()
        settings = yaml.safe_load(run.config.read_text())
        assert {k: settings[k] for k in trial.params} == trial.params  # the run trained the sampled values


@pytest.fixture(scope="module")
def tiny_study(synth_dir, tmp_path_factory):
    """A finished 3-trial study (one objective, the --space file above)."""
    tmp_path = tmp_path_factory.mktemp("tune")
    study_dir = tmp_path / "study"
    assert main(tune_args(study_dir, 3, synth_dir, tmp_path)) == 0
    return study_dir, tmp_path


def test_a_tiny_study_holds_three_trials_whose_values_are_their_runs_own(tiny_study):
    study_dir, _ = tiny_study
    study = load(study_dir)
    assert states(study)[TrialState.COMPLETE] == 3
    assert_values_are_the_runs_own(study_dir)
    rows = list(csv.DictReader(open(study_dir / "trials.csv")))
    assert [r["state"] for r in rows].count("complete") == 3
    assert {r["run_dir"] for r in rows} == {f"trials/{t.number:04d}" for t in study.trials}
    best = min(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.values[0])
    assert yaml.safe_load((study_dir / "best.yaml").read_text())["lambda_base"] == best.params["lambda_base"]
    report = (study_dir / "report.md").read_text()
    assert f"| {best.number} | {best.values[0]:.4f} |" in report and "Parameter importances" in report
    assert str(study_dir) not in report and str(study_dir) not in (study_dir / "report.html").read_text()


def test_best_yaml_trains(tiny_study, capsys):
    study_dir, tmp_path = tiny_study
    results = tmp_path / "best_results"
    assert (
        main(["train", "--config", str(study_dir / "best.yaml"), "--results_dir", str(results), "--epochs", "1"]) == 0
    )
    trained = yaml.safe_load((results / "tune_best" / "config.yaml").read_text())
    best = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert trained["lambda_base"] == best["lambda_base"] and trained["lambda_sparse"] == best["lambda_sparse"]


def test_the_same_command_resumes_the_study_and_adds_only_what_is_missing(synth_dir, tmp_path):
    study_dir = tmp_path / "study"
    seeded = ("--sampler_seed", "0")
    assert main(tune_args(study_dir, 2, synth_dir, tmp_path, *seeded)) == 0
    assert main(tune_args(study_dir, 2, synth_dir, tmp_path, *seeded)) == 0  # already done: no trial added
    assert len(load(study_dir).trials) == 2
    assert main(tune_args(study_dir, 3, synth_dir, tmp_path, *seeded)) == 0
    assert states(load(study_dir))[TrialState.COMPLETE] == 3 and len(load(study_dir).trials) == 3
    assert_values_are_the_runs_own(study_dir)
    first, second, added = (t.params for t in load(study_dir).trials)
    assert added not in (first, second)  # the same seed again does not replay the study's first draws


def test_a_lost_study_database_is_rebuilt_from_its_trials_csv_and_the_command_joins_it(tiny_study, synth_dir, tmp_path):
    study_dir, study_tmp = tiny_study
    restored = tmp_path / "restored"
    flags = tune_args(restored, 3, synth_dir, study_tmp)[5:]  # the settings after --n_trials N
    script = Path(__file__).parents[1] / "scripts" / "restore_study.py"
    done = subprocess.run(
        [sys.executable, str(script), str(study_dir / "trials.csv"), str(restored), *flags],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    original = load(study_dir).get_trials(states=(TrialState.COMPLETE,))
    rebuilt = load(restored).get_trials(states=(TrialState.COMPLETE,))
    assert [(t.number, t.values, t.params) for t in rebuilt] == [(t.number, t.values, t.params) for t in original]
    assert main(tune_args(restored, 3, synth_dir, study_tmp)) == 0  # same settings: joined, nothing to add
    assert len(load(restored).trials) == 3
    rows = list(csv.DictReader(open(restored / "trials.csv")))
    ran = [r["epochs_run"] for r in csv.DictReader(open(study_dir / "trials.csv"))]
    assert [r["epochs_run"] for r in rows] == ran and int(ran[0]) > 0  # from the study: no run folders here


def test_a_study_started_with_other_settings_is_refused_naming_them(tiny_study, synth_dir, capsys):
    study_dir, tmp_path = tiny_study
    args = tune_args(study_dir, 3, synth_dir, tmp_path)
    args[args.index("--epochs") + 1] = "3"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "epochs 2 (now 3)" in err and "other settings" in err


def test_the_default_objective_stores_the_rmse_and_the_diagnosis_shortfall(synth_dir, tmp_path):
    study_dir = tmp_path / "study"
    args = tune_args(study_dir, 1, synth_dir, tmp_path)
    args[args.index("--objective") + 1] = "rmse+health"
    assert main(args) == 0
    study = load(study_dir)
    (trial,) = study.get_trials(states=(TrialState.COMPLETE,))
    diagnosis = json.loads((study_dir / trial.user_attrs["run_dir"] / "diagnosis.json").read_text())
    assert trial.values[1] == pytest.approx(sum(c["shortfall"] for c in diagnosis["checks"]))
    assert (trial.values[1] == 0) == diagnosis["healthy"]
    assert "Pareto front" in (study_dir / "report.md").read_text()


@pytest.mark.slow  # several processes, each importing torch and training: about a minute
def test_two_workers_of_one_command_complete_the_study(synth_dir, tmp_path):
    study_dir = tmp_path / "study"
    assert main(tune_args(study_dir, 3, synth_dir, tmp_path, "--workers", "2")) == 0
    study = load(study_dir)
    assert states(study)[TrialState.COMPLETE] == 3 and states(study)[TrialState.RUNNING] == 0
    assert len({t.user_attrs["run_dir"] for t in study.trials if "run_dir" in t.user_attrs}) >= 3
    assert_values_are_the_runs_own(study_dir)


def command(study_dir, synth_dir, tmp_path, n_trials, *extra) -> list[str]:
    return [sys.executable, "-m", "echodepth.cli", *tune_args(study_dir, n_trials, synth_dir, tmp_path, *extra)]


@pytest.mark.slow  # several processes, each importing torch and training: about a minute
def test_two_shells_at_once_share_the_study(synth_dir, tmp_path):
    study_dir = tmp_path / "study"
    main(tune_args(study_dir, 1, synth_dir, tmp_path))  # the data's cache made once, before both start
    shells = [subprocess.Popen(command(study_dir, synth_dir, tmp_path, 4), stdout=subprocess.PIPE) for _ in range(2)]
    outputs = [s.communicate(timeout=600)[0].decode() for s in shells]
    assert [s.returncode for s in shells] == [0, 0]
    assert all("of 4 complete" in out for out in outputs)  # each shell ran trials of the shared study
    assert states(load(study_dir))[TrialState.COMPLETE] == 4
    assert_values_are_the_runs_own(study_dir)


@pytest.mark.slow  # several processes, each importing torch and training: about a minute
def test_a_worker_killed_with_kill_9_loses_only_its_trial(synth_dir, tmp_path):
    study_dir = tmp_path / "study"
    args = command(study_dir, synth_dir, tmp_path, 3, "--heartbeat_s", "1")
    args[args.index("--epochs") + 1] = "6"  # long enough to be killed in the middle
    victim = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = study_dir / "trials" / "0000" / "metrics.csv"
    deadline = time.monotonic() + 300
    while not metrics.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert metrics.exists()
    survivor = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert survivor.returncode == 0, survivor.stderr[-2000:]
    study = load(study_dir)
    count = states(study)
    assert count[TrialState.COMPLETE] == 3 and count[TrialState.FAIL] == 1 and count[TrialState.RUNNING] == 0
    killed = study.trials[0]
    assert killed.state == TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].params == killed.params  # Optuna retried it with its values
    assert_values_are_the_runs_own(study_dir)


class FakeTrainer:
    sanity_checking = False

    def __init__(self, epoch, rmse):
        self.current_epoch, self.callback_metrics = epoch - 1, {"val/rmse": rmse}


def test_two_objectives_stop_a_trial_no_better_than_the_per_pixel_mean_only_between_warm_up_and_last_epoch():
    from echodepth.tune.worker import TrialPruning

    rule = TrialPruning(trial=None, multi_objective=True, epochs=9)
    rule.reference_rmse = 1.0
    rule.on_validation_end(FakeTrainer(2, 1.5), None)  # warm-up: a third of 9 epochs
    rule.on_validation_end(FakeTrainer(3, 0.9), None)  # better than the per-pixel mean
    rule.on_validation_end(FakeTrainer(9, 1.5), None)  # the last epoch: the trial completes
    with pytest.raises(optuna.TrialPruned, match="per-pixel mean"):
        rule.on_validation_end(FakeTrainer(3, 1.0), None)
    with pytest.raises(optuna.TrialPruned, match="nan"):
        rule.on_validation_end(FakeTrainer(1, float("nan")), None)
    assert TrialPruning(trial=None, multi_objective=True, epochs=2).warmup_epochs == 2  # a 2-epoch run is never cut


def test_the_default_space_holds_the_decomposition_knobs_that_apply():
    guide = TrainConfig.from_dict({})
    assert set(default_space(guide)) == {
        "learning_rate", "lambda_base", "lambda_sparse", "lowpass_kernel", "base_resolution", "base_decoder"
    }  # fmt: skip
    adaptive = TrainConfig.from_dict({"loss": "adaptive"})
    assert "warmup_epochs" in default_space(adaptive)
    unet = TrainConfig.from_dict({"model": "unet_baseline"})  # a model without a base decoder
    assert not {"base_decoder", "base_resolution"} & set(default_space(unet)) and "lambda_base" in default_space(unet)
    for name, spec in default_space(adaptive).items():
        check_space({name: spec}, adaptive, "the default space")  # every declared range is accepted


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"lambda_bse": {"range": [0.1, 1]}}, "lambda_bse is not a setting"),
        ({"warmup_epochs": {"range": [1, 5]}}, "does not apply to --loss standard"),
        ({"base_channels": {"range": [4, 8.5]}}, "whole numbers"),
        ({"lowpass_kernel": {"range": [4, 64]}}, "64 is refused by the settings: lowpass_kernel 64 must be at most"),
        ({"lambda_base": {"range": [0, 1], "log": True}}, "a log range needs low > 0"),
        ({"lambda_base": {"range": [2, 1]}}, "low < high"),
        ({"base_decoder": {"range": [1, 2]}}, "is not a number"),
        ({"base_decoder": {"choices": ["wide", "round"]}}, "round is refused"),
        ({"lambda_base": [0.1, 1]}, "expected {range"),
    ],
)
def test_a_bad_space_is_refused_in_one_line_before_any_trial(space, expected, synth_dir, tmp_path, capsys):
    args = tune_args(tmp_path / "study", 2, synth_dir, tmp_path)
    space_file(tmp_path, space)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "study" / "trials").exists()


def test_space_files_parse_ranges_steps_and_choices():
    space = parse_space({"a": {"range": [1, 8], "step": 2}, "b": {"choices": [1, 2]}, "c": {"range": [0.1, 1]}}, "f")
    assert (space["a"].low, space["a"].high, space["a"].step) == (1, 8, 2) and space["b"].choices == (1, 2)
    assert space["c"].log is False
    with pytest.raises(ConfigError, match="f: c"):
        parse_space({"c": {"range": [0.1, 1], "log": True, "step": 0.1}}, "f")


def test_the_health_shortfall_is_zero_when_healthy_and_grows_with_the_distance():
    assert beyond(0.4, 0.5) == 0 and beyond(1.2, 1.0, healthy_below=False) == 0
    assert beyond(1.0, 0.5) == pytest.approx(math.log(2))
    assert beyond(1 - 0.999, 1 - 0.99, healthy_below=False) == pytest.approx(math.log(10))  # a collapsed residual
    assert beyond(float("nan"), 1.0) == NOT_MEASURED_SHORTFALL


def test_bad_arguments_are_refused_in_one_line(synth_dir, tmp_path, capsys):
    for extra, expected in ((["--workers", "0"], "--workers"), (["--heartbeat_s", "0"], "--heartbeat_s")):
        assert main(tune_args(tmp_path / "s", 2, synth_dir, tmp_path, *extra)) == 2
        assert expected in capsys.readouterr().err
    args = tune_args(tmp_path / "s", 2, synth_dir, tmp_path, "--storage", "nosuchdb://x")
    assert main(args) == 2
    assert "--storage nosuchdb://x: cannot open" in capsys.readouterr().err


@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_the_report_renders_in_a_real_browser_with_no_console_error(tiny_study):
    study_dir, tmp_path = tiny_study
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--dump-dom", (study_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<table>" in done.stdout and "Parameter importances" in done.stdout and "<img " in done.stdout
    assert [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line] == []


@pytest.mark.parametrize(
    ("variant", "study", "n_complete"), [("tuned", "tune_demo", 40), ("tuned_medium", "tune_medium", 16)]
)
def test_the_tuned_compare_variants_are_the_committed_studies_best_healthy_trials(variant, study, n_complete):
    from echodepth.compare.variants import TRAINING_VARIANTS

    committed = Path(__file__).resolve().parents[1] / "docs" / study
    best = yaml.safe_load((committed / "best.yaml").read_text())
    for name, value in TRAINING_VARIANTS[variant].items():
        expected = pytest.approx(best[name], rel=0.02) if isinstance(value, float) else best[name]
        assert value == expected, name  # rounded as a user would type it
    rows = list(csv.DictReader(open(committed / "trials.csv")))
    complete = [r for r in rows if r["state"] == "complete"]
    healthy = [r for r in complete if float(r["health_shortfall"]) == 0]
    assert len(complete) >= n_complete and min(healthy, key=lambda r: float(r["val_rmse_m"]))["lambda_base"] == str(
        best["lambda_base"]
    )
