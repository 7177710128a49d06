"""Micro-batches: any batch size on any device, with the gradients of the whole batch."""

import pytest
import torch
from torch import nn

from echodepth.cli import main
from echodepth.errors import DataError
from echodepth.losses import build_loss_for_training
from echodepth.models import build_model_for_training
from echodepth.settings.config import TrainConfig
from echodepth.training import microbatch
from echodepth.training.microbatch import accumulate_gradients, choose_micro_batch, divisor_at_most

from .helpers import rows, train_args


def gradients(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("loss", ["standard", "frequency"])
def test_four_micro_batches_of_four_give_the_gradients_of_one_batch_of_sixteen(loss):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cfg = TrainConfig(base_channels=4, image_size=16, loss=loss)
    model = build_model_for_training(cfg, 2).eval()  # BatchNorm with fixed statistics
    criterion = build_loss_for_training(cfg)
    features = torch.randn(16, 2, 16, 16, generator=g)
    depth = torch.rand(16, 1, 16, 16, generator=g)
    depth[3, :, :8] = 0  # holes: the micro-batches hold different numbers of valid pixels
    depth[9] = 0
    valid = depth > 0
    batch = {"feature_image": features, "depth_norm": depth, "valid": valid, "backward": lambda loss: loss.backward()}
    whole = accumulate_gradients(model, criterion, micro_batch=16, **batch)
    expected = gradients(model)
    model.zero_grad()
    parts = accumulate_gradients(model, criterion, micro_batch=4, **batch)
    # float32: a weight's gradient sums 16 samples x 16 x 16 pixels = 4096 terms, in four parts here and at
    # once there: relative difference up to summed_error(4096, 1) = 7.6e-6; measured at most 6.5e-7 over
    # seeds 0-9 (rtol needed with atol 1e-7). rtol 1e-4 leaves 13x over the bound.
    for a, b in zip(expected, gradients(model)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    # the loss terms are means over the same 4096 pixels: 7.6e-6 at most, measured 1.8e-7
    for key in whole:
        assert torch.allclose(whole[key], parts[key], rtol=1e-5), key


def test_micro_batch_never_lets_one_tensor_pass_two_to_the_31_elements():
    g = torch.Generator().manual_seed(1)
    cfg = TrainConfig(base_channels=64, image_size=256)  # the guide's network
    model = build_model_for_training(cfg, 2)
    choice = choose_micro_batch(256, model, torch.randn(1, 2, 256, 256, generator=g))
    # the last up-sampling concatenates 2 x 64 channels at 256 x 256: 8.4M elements a sample
    assert choice["largest_activation_per_sample"] == 128 * 256 * 256
    assert choice["micro_batch_size"] == 128 and 128 * 128 * 256 * 256 < 2**31


def test_micro_batch_divides_the_batch(monkeypatch):
    g = torch.Generator().manual_seed(2)
    assert [divisor_at_most(256, k) for k in (255, 100, 1)] == [128, 64, 1]
    assert divisor_at_most(24, 7) == 6 and divisor_at_most(7, 100) == 7
    model = build_model_for_training(TrainConfig(base_channels=4, image_size=16), 2)
    monkeypatch.setattr(microbatch, "MAX_TENSOR_ELEMENTS", 3 * 8 * 16 * 16)  # three samples' worth
    assert choose_micro_batch(12, model, torch.randn(1, 2, 16, 16, generator=g))["micro_batch_size"] == 3
    monkeypatch.setattr(microbatch, "MAX_TENSOR_ELEMENTS", 8 * 16 * 16 - 1)  # under one sample's worth
    choice = choose_micro_batch(12, model, torch.randn(1, 2, 16, 16, generator=g))
    assert (choice["element_limit"], choice["micro_batch_size"]) == (1, 1)  # still one sample at a time
    monkeypatch.setattr(microbatch, "MAX_TENSOR_ELEMENTS", 2**31 - 1)
    one_number = choose_micro_batch(4, nn.Linear(2, 1), torch.randn(1, 2, generator=g))  # one element a sample
    assert (one_number["largest_activation_per_sample"], one_number["element_limit"]) == (1, 2**31 - 1)


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


class Recorder(torch.nn.Module):
    """A stand-in network: base, residual, final = x, x, 2x of the first channel; records its inputs."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x)
        base = x[:, :1] * self.scale
        return base, base, 2 * base


def accumulate(model, criterion, features, depth, *, micro_batch=2, backward=lambda loss: None, **options):
    """`accumulate_gradients` over (features, depth), its valid mask depth > 0, in micro-batches of 2."""
    return accumulate_gradients(
        model,
        criterion,
        feature_image=features,
        depth_norm=depth,
        valid=depth > 0,
        micro_batch=micro_batch,
        backward=backward,
        **options,
    )


def test_micro_batches_without_a_valid_pixel_are_skipped_and_a_batch_without_one_is_refused():
    g = torch.Generator().manual_seed(3)
    criterion = build_loss_for_training(TrainConfig(loss="standard", lowpass_kernel=1))
    features = torch.rand(6, 2, 4, 4, generator=g)
    depth = torch.rand(6, 1, 4, 4, generator=g) + 0.5
    depth[2:4] = 0  # the second micro-batch of two holds no valid pixel
    model, losses = Recorder(), []
    totals = accumulate(model, criterion, features, depth, backward=losses.append)
    assert [len(x) for x in model.inputs] == [2, 2]  # rows 0-1 and 4-5; rows 2-3 never reach the network
    assert torch.equal(model.inputs[1], features[4:6, :])
    # the shares of the valid pixels: 32 of 64 each, so the parts add up to the whole batch's means
    one_pass = criterion(*(t.float() for t in Recorder()(features)), depth)
    for key in one_pass:
        assert torch.allclose(totals[key], one_pass[key].detach(), rtol=1e-5), key
        assert not totals[key].requires_grad
    assert torch.allclose(sum(losses), one_pass["loss"], rtol=1e-5) and all(t.requires_grad for t in losses)
    hint = r"\(echodepth check-data --image_size names the depth maps with none left at the training size\)$"
    with pytest.raises(
        DataError, match="^a training batch holds no valid depth pixel: no loss can be computed .*" + hint
    ):
        accumulate(Recorder(), criterion, features, torch.zeros_like(depth), backward=losses.append)
    one_pixel = torch.zeros_like(depth)
    one_pixel[5, 0, 1, 1] = 0.7  # a single valid pixel is enough for a loss
    assert torch.isfinite(accumulate(Recorder(), criterion, features, one_pixel, backward=losses.append)["loss"])
    single = Recorder()  # one micro-batch for the whole batch: it runs even where rows hold no valid pixel
    accumulate(single, criterion, features, depth, micro_batch=6)
    assert [len(x) for x in single.inputs] == [6]


def test_each_micro_batch_goes_through_prepare_before_the_network():
    g = torch.Generator().manual_seed(4)
    criterion = build_loss_for_training(TrainConfig(loss="standard"))
    features, depth = torch.rand(4, 2, 4, 4, generator=g), torch.rand(4, 1, 4, 4, generator=g) + 0.5
    model, prepared = Recorder(), []

    def prepare(x):
        prepared.append(len(x))
        return x + 100.0

    accumulate(model, criterion, features, depth, prepare=prepare)
    assert prepared == [2, 2] and all(bool((x >= 100).all()) for x in model.inputs)


def test_the_largest_activation_is_measured_on_one_sample_in_eval_mode_and_the_mode_restored():
    g = torch.Generator().manual_seed(5)

    class TwoOutputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.norm(x)
            return y[:, :1], torch.cat([y, y, y], dim=1)  # the second output: 6 channels

    model = TwoOutputs().train()
    assert microbatch.largest_activation(model, torch.randn(5, 2, 1, 1, generator=g)) == 6  # one sample, 6 x 1 x 1
    assert model.training and model.norm.running_mean.abs().sum() == 0  # no statistics updated
    assert not model.norm._forward_hooks  # the hooks are removed
    model.eval()
    assert microbatch.largest_activation(model, torch.randn(5, 2, 3, 3, generator=g)) == 6 * 9 and not model.training


def test_the_cuda_probe_measures_bytes_per_sample_from_two_peaks(monkeypatch):
    # a step's peak memory: 1000 bytes allocated before it, 500 fixed and 300 per sample on top
    state = {"allocated": 1000, "peak": 0}
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: state.update(peak=0))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda: state["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: state["peak"])

    def step(features):
        state["peak"] = max(state["peak"], state["allocated"] + 500 + 300 * len(features))

    assert microbatch.measured_bytes_per_sample(step, torch.zeros(4, 2)) == (500, 300)
    # a step whose peak does not grow with the samples: at least 1 byte a sample, never a division by 0
    assert microbatch.measured_bytes_per_sample(lambda f: state.update(peak=1700), torch.zeros(4, 2)) == (699, 1)


class LooksLikeCuda(torch.Tensor):
    @property
    def is_cuda(self):
        return True


def test_on_cuda_the_micro_batch_also_fits_the_free_memory(monkeypatch):
    g = torch.Generator().manual_seed(6)
    model = build_model_for_training(TrainConfig(base_channels=4, image_size=16), 2)
    features = torch.randn(1, 2, 16, 16, generator=g).as_subclass(LooksLikeCuda)
    probed = []
    monkeypatch.setattr(
        microbatch, "measured_bytes_per_sample", lambda step, f: probed.append((step, f)) or (1000, 100)
    )
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (10_000, 80_000))

    def step(f):
        return None

    choice = choose_micro_batch(100, model, features, step=step)
    assert probed == [(step, features)]  # the probe runs the given step on the given features
    # 0.8 x 10000 free bytes - 1000 fixed = 7000 bytes: 70 samples, the largest divisor of 100 under it: 50
    assert choice["micro_batch_size"] == 50
    assert (choice["bytes_per_sample"], choice["free_bytes"], choice["memory_limit"]) == (100, 10_000, 70)
    half = choose_micro_batch(100, model, features, step=lambda f: None, memory_share=0.5)
    assert (half["memory_limit"], half["micro_batch_size"]) == (40, 25)
    monkeypatch.setattr(microbatch, "measured_bytes_per_sample", lambda step, f: (-50, 100))
    assert choose_micro_batch(64, model, features, step=lambda f: None)["memory_limit"] == 80  # fixed < 0: 0
    monkeypatch.setattr(microbatch, "measured_bytes_per_sample", lambda step, f: (9000, 100))
    crowded = choose_micro_batch(64, model, features, step=lambda f: None)
    assert crowded["memory_limit"] == 1 and crowded["micro_batch_size"] == 1  # never fewer than one sample
    assert "memory_limit" not in choose_micro_batch(64, model, features)  # no step: no probe
    assert "memory_limit" not in choose_micro_batch(
        64, model, torch.randn(1, 2, 16, 16, generator=g), step=lambda f: None
    )


def test_the_largest_activation_counts_whole_outputs_whatever_their_layout():
    # an output that is not batch-first counts whole (18 elements), not per row of its first axis
    g = torch.Generator().manual_seed(7)
    assert microbatch.largest_activation(torch.nn.Flatten(0), torch.randn(5, 2, 3, 3, generator=g)) == 18
    assert microbatch.largest_activation(torch.nn.Identity(), torch.zeros(5, 0)) == 0  # empty outputs: none
