"""`echodepth diagnose`: each of the guide's problem patterns is flagged with its advice.

Stub networks with a chosen decomposition (independent of the input) are trained one epoch
through `train()`, so the whole path runs: checkpoint, Predictor, measurement, checks, files."""

import json
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from echodepth.cli import main
from echodepth.diagnose import diagnose
from echodepth.diagnose.checks import next_kernel
from echodepth.models import MODELS, DepthModel
from echodepth.runs.train import train
from echodepth.settings.config import TrainConfig

from .helpers import tiny_config


@dataclass
class StubSettings:
    in_channels: int = 2
    image_size: tuple[int, int] = (16, 16)


class Stub(DepthModel):
    """Predicts a fixed base and residual (normalised depth); one weight so the optimiser has work."""

    Settings = StubSettings

    def __init__(self, **settings):
        super().__init__()
        self.cfg = StubSettings(**settings)
        self.weight = nn.Parameter(torch.zeros(()))
        h, w = self.cfg.image_size
        generator = torch.Generator().manual_seed(0)
        ramp = torch.linspace(0.2, 0.5, w).expand(h, w)  # a smooth wall
        noise = torch.rand(h, w, generator=generator) - 0.5
        base, residual = self.maps(ramp, noise)
        self.register_buffer("base", base[None, None].clone())
        self.register_buffer("residual", residual[None, None].clone())

    def maps(self, ramp, noise):
        raise NotImplementedError

    def forward(self, features):
        b = len(features)
        base = self.base.expand(b, -1, -1, -1) + 0 * self.weight
        residual = self.residual.expand(b, -1, -1, -1) + 0 * self.weight
        return base, residual, base + residual


class NoResidual(Stub):  # the base is the final: the residual is suppressed
    def maps(self, ramp, noise):
        return ramp, torch.zeros_like(ramp)


class HugeResidual(Stub):  # a flat base and a residual as large as the final
    def maps(self, ramp, noise):
        return torch.full_like(ramp, 0.1), ramp + 0.3 * noise


class NoisyBase(Stub):  # fine-grained noise in the base
    def maps(self, ramp, noise):
        return ramp + 0.4 * noise, 0.02 * noise


class LockedCorner(Stub):  # a demo run's top-left residual, pinned at its bound in every recording
    def maps(self, ramp, noise):
        residual = 0.02 * noise
        residual[:4, 0] = -0.5 * (1 - 1e-4)  # rows 0-3, column 0, at -bound
        return ramp + 0.2, residual  # the base away from its bounds

    def head_bounds(self):
        return {"base": (0.0, 1.0), "residual": (-0.5, 0.5)}


STUBS = {
    "stub_no_residual": NoResidual,
    "stub_huge_residual": HugeResidual,
    "stub_noisy_base": NoisyBase,
    "stub_locked_corner": LockedCorner,
}


@pytest.fixture(scope="module")
def stub_runs(synth_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diag")
    for name, cls in STUBS.items():
        MODELS.register(name)(cls)
    runs = {}
    for name in STUBS:
        cfg = tiny_config(synth_dir, tmp, model=name, lambda_sparse=0.1, experiment_name=name)
        runs[name] = (cfg, train(cfg, progress=False))
    yield runs
    for name in STUBS:
        MODELS.unregister(name)


def checks_of(diagnosis: dict) -> dict:
    return {c["name"]: c for c in diagnosis["checks"]}


def test_suppressed_residual_is_flagged_with_lower_lambda_sparse(stub_runs):
    cfg, result = stub_runs["stub_no_residual"]
    checks = checks_of(result["diagnosis"])  # train() ran the diagnosis on the val split
    assert checks["base_not_final"]["value"] == pytest.approx(1.0) and not checks["base_not_final"]["healthy"]
    assert checks["base_not_final"]["flags"] == {"lambda_sparse": 0.05}
    assert checks["residual_small"]["healthy"] and checks["base_smoothness"]["healthy"]
    assert "--lambda_sparse 0.05" in result["diagnosis"]["command"]


def test_large_residual_is_flagged_with_higher_sparsity_and_base_weights(stub_runs):
    cfg, result = stub_runs["stub_huge_residual"]
    checks = checks_of(result["diagnosis"])
    assert checks["residual_small"]["value"] > 0.5 and not checks["residual_small"]["healthy"]
    assert checks["residual_small"]["flags"] == {"lambda_sparse": 0.2, "lambda_base": 1.0}
    assert checks["base_not_final"]["healthy"]


def test_noisy_base_is_flagged_with_lambda_base_and_a_larger_lowpass(stub_runs):
    cfg, result = stub_runs["stub_noisy_base"]
    checks = checks_of(result["diagnosis"])
    assert checks["base_smoothness"]["value"] > 0.5 and not checks["base_smoothness"]["healthy"]
    assert checks["base_smoothness"]["flags"] == {"lambda_base": 1.0, "lowpass_kernel": 12}
    # the stub ignores the audio, so it is no better than the mean-depth predictors
    assert not checks["reconstruction"]["healthy"] and checks["reconstruction"]["flags"]["lambda_recon"] == 2.0


def test_diagnose_command_writes_files_and_exit_status(stub_runs, capsys):
    cfg, _ = stub_runs["stub_noisy_base"]
    run = cfg.run_dir
    assert main(["diagnose", str(run.path), "--split", "test"]) == 1
    out = capsys.readouterr().out
    assert "base_smoothness" in out and "UNHEALTHY" in out and "--lowpass_kernel 12" in out
    assert f"echodepth train --config {run.config}" in out
    saved = json.loads(run.diagnosis_json.read_text())
    assert saved["split"] == "test" and not saved["healthy"]
    md = run.diagnosis_md.read_text()
    assert "| base_smoothness |" in md and "![samples](diagnosis_samples.png)" in md
    assert run.diagnosis_figure.stat().st_size > 10_000
    assert main(["diagnose", str(run.path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["run"] == "stub_noisy_base"


def test_a_locked_corner_is_flagged_with_where_and_advice(stub_runs):
    cfg, result = stub_runs["stub_locked_corner"]
    check = checks_of(result["diagnosis"])["no_locked_outputs"]
    assert not check["healthy"] and check["value"] == pytest.approx(4 / 256)
    assert "residual locked at 4 pixel(s), e.g. row 0, column 0" in check["symptom"]
    # trained with the default input centring: the advice is the learning rate (none: see the test below)
    assert check["flags"] == {"learning_rate": cfg.learning_rate / 2}
    assert f"--learning_rate {cfg.learning_rate / 2:g}" in result["diagnosis"]["command"]
    saturation = result["diagnosis"]["measured"]["saturation"]["heads"]["residual"]
    assert saturation["share_within_1pct_of_bound"] == pytest.approx(4 / 256)
    assert saturation["share_of_pixels_saturated"] == pytest.approx(4 / 256)
    # outputs that ignore the recording but sit away from their bounds are not locked (the noisy
    # stub's base does touch 0 m)
    for name in ("stub_no_residual", "stub_huge_residual"):
        assert checks_of(stub_runs[name][1]["diagnosis"])["no_locked_outputs"]["healthy"], name


@pytest.mark.parametrize(
    "input_norm, advice", [("none", {"input_norm": "centre"}), ("centre", {"learning_rate": 0.001})]
)
def test_a_real_network_planted_at_its_bound_is_flagged(synth_dir, tmp_path, input_norm, advice):
    cfg = tiny_config(synth_dir, tmp_path, input_norm=input_norm, learning_rate=0.002)
    train(cfg, progress=False)
    path = cfg.run_dir.best_checkpoint
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt["state_dict"]["model.residual_decoder.out.bias"].fill_(-30.0)  # every pixel at -bound
    torch.save(ckpt, path)
    check = checks_of(diagnose(cfg.run_dir.path, progress=False))["no_locked_outputs"]
    assert not check["healthy"] and check["value"] == pytest.approx(1.0)
    assert check["flags"] == advice


def test_training_instability_from_the_history(stub_runs):
    cfg, _ = stub_runs["stub_no_residual"]
    run = cfg.run_dir
    rows = run.read_metrics()
    for epoch, loss, rmse in ((2, 5.0, 0.5), (3, 0.2, 0.9)):  # a loss spike, then a validation rise
        run.append_metrics({**rows[0], "epoch": epoch, "train/loss": loss, "val/rmse": rmse})
    checks = checks_of(diagnose(run.path, progress=False))
    stability = checks["training_stability"]
    assert not stability["healthy"] and stability["flags"] == {"use_adaptive_loss": True}
    assert "loss spikes in epochs [2]" in stability["symptom"] and "validation RMSE" in stability["symptom"]


def test_a_nan_stop_is_flagged(stub_runs):
    cfg, _ = stub_runs["stub_huge_residual"]
    cfg.run_dir.stop_reason.write_text(json.dumps({"reason": "non-finite loss", "message": "..."}))
    stability = checks_of(diagnose(cfg.run_dir.path, progress=False))["training_stability"]
    assert not stability["healthy"] and "stopped: non-finite loss" in stability["symptom"]


def test_baseline_gets_no_decomposition_checks(synth_dir, tmp_path):
    cfg = tiny_config(synth_dir, tmp_path, model="unet_baseline")
    names = [c["name"] for c in train(cfg, progress=False)["diagnosis"]["checks"]]
    assert names == ["no_locked_outputs", "reconstruction", "training_stability"]


def test_next_lowpass_kernel_follows_the_guide():
    assert [next_kernel(k, 256) for k in (4, 8, 12, 16, 64)] == [12, 12, 16, 32, 128]
    assert next_kernel(8, 10) == 10 and math.isfinite(next_kernel(1, 32))


def test_missing_run_folder_is_one_line(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no checkpoints/best.ckpt" in err[0]


@pytest.mark.slow
def test_real_runs_made_unhealthy_on_purpose(tmp_path):
    """Real training on the CPU preset's data, 8 epochs (about 1 minute a run on 2 cores): a huge
    lambda_sparse leaves the base identical to the final, and diagnose says to lower it; without
    the sparsity term the residual carries more of the final."""
    from echodepth.settings.sources import CPU_PRESET

    common = {**CPU_PRESET, "dataset": "synthetic", "epochs": 8, "results_dir": str(tmp_path)}
    runs = {}
    for name, extra in {"huge_sparse": {"lambda_sparse": 100.0}, "no_sparse": {"lambda_sparse": 0.0}}.items():
        runs[name] = train(TrainConfig.from_dict({**common, "experiment_name": name, **extra}), progress=False)
    huge = checks_of(runs["huge_sparse"]["diagnosis"])
    assert not huge["base_not_final"]["healthy"] and huge["base_not_final"]["flags"] == {"lambda_sparse": 0.05}
    none = checks_of(runs["no_sparse"]["diagnosis"])
    assert none["residual_small"]["value"] > 3 * huge["residual_small"]["value"]
    assert none["base_not_final"]["value"] < huge["base_not_final"]["value"]


def test_residual_off_the_edges_is_advised_a_larger_lambda_base_and_a_smaller_lambda_sparse():
    from types import SimpleNamespace

    from echodepth.diagnose.checks import residual_near_objects

    split = {"structure": {"residual_edge_to_smooth": 0.7}}
    guide = residual_near_objects(split, SimpleNamespace(lambda_base=0.5, lambda_sparse=0.1))
    assert not guide.healthy and guide.flags == {"lambda_base": 1.0, "lambda_sparse": 0.05}
    sparse_already = residual_near_objects(split, SimpleNamespace(lambda_base=1.0, lambda_sparse=0.01))
    assert sparse_already.flags == {"lambda_base": 2.0} and "lambda_sparse" not in sparse_already.advice
    assert residual_near_objects(
        {"structure": {"residual_edge_to_smooth": 1.2}}, SimpleNamespace(lambda_base=0.5, lambda_sparse=0.1)
    ).healthy


def test_a_best_checkpoint_from_another_run_is_refused_naming_both(stub_runs, tmp_path, capsys):
    import shutil

    own, _ = stub_runs["stub_no_residual"]
    other, _ = stub_runs["stub_huge_residual"]
    mixed = tmp_path / "mixed"
    shutil.copytree(own.run_dir.path, mixed)
    shutil.copy(other.run_dir.best_checkpoint, mixed / "checkpoints" / "best.ckpt")  # another run's checkpoint
    assert main(["diagnose", str(mixed)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{mixed}/checkpoints/best.ckpt is not the checkpoint of the run in {mixed}" in err[0]
    assert "trained by run 'stub_huge_residual', the folder's config.yaml is run 'stub_no_residual'" in err[0]
    assert "model stub_huge_residual (checkpoint) vs stub_no_residual (config.yaml)" in err[0]
    assert not (mixed / "diagnosis.json").exists() or (mixed / "diagnosis.json").read_bytes() == (
        own.run_dir.diagnosis_json.read_bytes()
    )  # nothing new written
    moved = tmp_path / "moved"
    shutil.copytree(own.run_dir.path, moved)  # a run folder moved or renamed is still its run
    assert main(["diagnose", str(moved), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["run"] == "moved"
