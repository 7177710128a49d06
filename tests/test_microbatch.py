"""Micro-batches: any batch size on any device, with the gradients of the whole batch."""

import pytest
import torch

from echodepth.cli import main
from echodepth.config import TrainConfig
from echodepth.losses import build_loss_for_training
from echodepth.models import build_model_for_training
from echodepth.training import microbatch
from echodepth.training.microbatch import accumulate_gradients, choose_micro_batch, divisor_at_most

from .test_training import rows, train_args


def gradients(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("loss", ["standard", "frequency"])
def test_four_micro_batches_of_four_give_the_gradients_of_one_batch_of_sixteen(loss):
    torch.manual_seed(0)
    cfg = TrainConfig(base_channels=4, image_size=16, loss=loss)
    model = build_model_for_training(cfg, 2).eval()  # BatchNorm with fixed statistics
    criterion = build_loss_for_training(cfg)
    features = torch.randn(16, 2, 16, 16)
    depth = torch.rand(16, 1, 16, 16)
    depth[3, :, :8] = 0  # holes: the micro-batches hold different numbers of valid pixels
    depth[9] = 0
    valid = depth > 0
    whole = accumulate_gradients(model, criterion, features, depth, valid, 16, lambda loss: loss.backward())
    expected = gradients(model)
    model.zero_grad()
    parts = accumulate_gradients(model, criterion, features, depth, valid, 4, lambda loss: loss.backward())
    for a, b in zip(expected, gradients(model)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    for key in whole:
        assert torch.allclose(whole[key], parts[key], rtol=1e-5), key


def test_micro_batch_never_lets_one_tensor_pass_two_to_the_31_elements():
    cfg = TrainConfig(base_channels=64, image_size=256)  # the guide's network
    model = build_model_for_training(cfg, 2)
    choice = choose_micro_batch(256, model, torch.randn(1, 2, 256, 256))
    # the last up-sampling concatenates 2 x 64 channels at 256 x 256: 8.4M elements a sample
    assert choice["largest_activation_per_sample"] == 128 * 256 * 256
    assert choice["micro_batch_size"] == 128 and 128 * 128 * 256 * 256 < 2**31


def test_micro_batch_divides_the_batch(monkeypatch):
    assert [divisor_at_most(256, k) for k in (255, 100, 1)] == [128, 64, 1]
    assert divisor_at_most(24, 7) == 6 and divisor_at_most(7, 100) == 7
    model = build_model_for_training(TrainConfig(base_channels=4, image_size=16), 2)
    monkeypatch.setattr(microbatch, "MAX_TENSOR_ELEMENTS", 3 * 8 * 16 * 16)  # three samples' worth
    assert choose_micro_batch(12, model, torch.randn(1, 2, 16, 16))["micro_batch_size"] == 3


def test_training_in_micro_batches_steps_once_per_batch(synth_dir, tmp_path, capsys):
    assert main(train_args(synth_dir, tmp_path, "--epochs", "2", "--micro_batch_size", "2")) == 0
    metrics = rows(tmp_path / "results" / "smoke" / "metrics.csv")
    assert len(metrics) == 2 and all(float(r["train/loss"]) > 0 for r in metrics)
    ckpt = torch.load(tmp_path / "results" / "smoke" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2 * 3  # 24 samples, batch 8: 3 optimiser steps an epoch, not 12
    assert "precision: 32-true" in (tmp_path / "results" / "smoke" / "config.yaml").read_text()  # auto on CPU


def test_bad_micro_batch_setting_is_one_line(capsys):
    assert main(["train", "--micro_batch_size", "lots"]) == 2
    assert "micro_batch_size must be a positive whole number or auto, got 'lots'" in capsys.readouterr().err
