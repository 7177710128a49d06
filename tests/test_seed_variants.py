"""The seed research script's variants: SILog, the narrow base decoder, the residual bound, the
optimiser, validation every N epochs; as settings, flags and compare variants."""

from __future__ import annotations

import math

import pytest
import torch

from echodepth.compare import all_variants
from echodepth.errors import ConfigError
from echodepth.losses import build_loss, silog
from echodepth.models import build_model, build_model_for_training
from echodepth.runs.rundir import RunDir
from echodepth.settings.config import TrainConfig
from echodepth.training.module import make_optimizer

from .helpers import tiny_config


def test_silog_is_zero_for_a_perfect_prediction_and_scale_invariant_at_lambda_1():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 8, 8, generator=g) * 0.8 + 0.1
    mask = torch.ones_like(gt)
    assert float(silog(gt, gt, mask, lam=0.5)) < 1e-3
    assert float(silog(2 * gt, gt, mask, lam=1.0)) < 1e-3  # a global scale costs nothing at lambda 1
    assert float(silog(2 * gt, gt, mask, lam=0.5)) == pytest.approx(0.5**0.5 * math.log(2.0), rel=1e-3)
    gt[0, 0, 0, 0] = 0.0  # invalid pixels take no part
    assert torch.isfinite(silog(torch.zeros_like(gt), gt, (gt > 0).float(), lam=0.5))


def test_use_silog_replaces_the_l1_reconstruction_term():
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(2, 1, 8, 8, generator=g) * 0.8 + 0.1
    pred = gt * 1.5
    plain = build_loss("standard").parts(pred, torch.zeros_like(pred), pred, gt)["loss_recon"]
    with_silog = build_loss("standard", use_silog=True, silog_lambda=0.5).parts(pred, pred * 0, pred, gt)["loss_recon"]
    assert float(plain) == pytest.approx(float((pred - gt).abs().mean()), rel=1e-5)
    assert float(with_silog) == pytest.approx(float(silog(pred, gt, torch.ones_like(gt), lam=0.5)), rel=1e-5)


def test_narrow_base_decoder_and_residual_bound():
    g = torch.Generator().manual_seed(2)
    wide = build_model("base_residual", base_channels=64)
    narrow = build_model("base_residual", base_channels=64, base_decoder="narrow")
    assert wide.parameter_counts()["total"] == 29_764_098
    counts = narrow.parameter_counts()
    assert counts["residual_decoder"] == wide.parameter_counts()["residual_decoder"]
    assert counts["base_decoder"] < wide.parameter_counts()["base_decoder"] / 5
    widths = [up.conv[3].out_channels for up in narrow.base_decoder.ups]
    assert widths == [128, 64, 32, 16]
    cfg = TrainConfig(image_size=16, base_channels=4, residual_scale=0.3, base_decoder="narrow")
    model = build_model_for_training(cfg, 2)
    for p in model.residual_decoder.out.parameters():
        p.data.fill_(50.0)  # saturate the tanh
    _, residual, _ = model(torch.randn(2, 2, 16, 16, generator=g))
    assert float(residual.abs().max()) == pytest.approx(0.3, abs=1e-4)


@pytest.mark.parametrize("name", ["AdamW", "Adam", "SGD"])
def test_optimizer_choice(name):
    model = torch.nn.Linear(2, 1)
    optimizer = make_optimizer(TrainConfig(optimizer=name), model.parameters())
    assert type(optimizer).__name__ == name
    if name == "SGD":
        assert optimizer.param_groups[0]["momentum"] == 0.9
    with pytest.raises(ConfigError, match="optimizer 'Lion' is not one of"):
        TrainConfig(optimizer="Lion")
    with pytest.raises(ConfigError, match="silog_lambda must be between 0 and 1"):
        TrainConfig(silog_lambda=2.0)


def test_validation_every_n_epochs_with_the_silog_reconstruction_term(synth_dir, tmp_path, monkeypatch):
    from echodepth import losses
    from echodepth.runs.train import train

    reconstruction_terms = []  # SILog values the training loss computed, with autograd on (training steps)

    def recorded_silog(pred, target, mask, *, lam, **kwargs):
        value = silog(pred, target, mask, lam=lam, **kwargs)
        reconstruction_terms.append((lam, value.requires_grad))
        return value

    monkeypatch.setattr(losses, "silog", recorded_silog)
    cfg = tiny_config(synth_dir, tmp_path, epochs=4, val_every=2, optimizer="Adam", use_silog=True, silog_lambda=0.25)
    result = train(cfg, progress=False)
    rows = RunDir(result["out_dir"]).read_metrics()
    assert [int(r["epoch"]) for r in rows] == [2, 4]
    assert result["test"]["rmse"] > 0
    # the training steps' reconstruction term is SILog with the configured lambda, not the L1 term
    assert (0.25, True) in reconstruction_terms
    assert {lam for lam, _ in reconstruction_terms} == {0.25}


def test_seed_variants_are_compare_variants_and_flags():
    variants = all_variants()
    assert variants["silog"] == {"loss": "standard", "use_silog": True}
    assert variants["narrow_base"]["base_decoder"] == "narrow" and variants["residual_0.3"]["residual_scale"] == 0.3
    assert variants["seed_defaults"]["lambda_base"] == 1.2 and variants["seed_defaults"]["warmup_epochs"] == 50
    assert variants["adam"] == {"optimizer": "Adam"}
    from echodepth.cli import build_parser

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    args = train_parser.parse_args(["--use_silog", "--silog_lambda", "0.3", "--optimizer", "SGD", "--val_every", "5"])
    assert (args.use_silog, args.silog_lambda, args.optimizer, args.val_every) == (True, 0.3, "SGD", 5)
