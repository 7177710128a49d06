"""Outputs that cannot lock at a head's bound, the input layout decoupled from the depth
layout, the same-backbone control, the seed code's fix and a reduced-resolution base decoder."""

from pathlib import Path

import pytest
import torch

from echodepth.errors import ConfigError
from echodepth.models import build_model, build_model_for_training
from echodepth.models.blocks import HEAD_GRADIENT_FLOOR, PositionStandardiser
from echodepth.runs.train import train
from echodepth.settings.config import TrainConfig

from .helpers import tiny_config


def tiny_base_residual(**settings):
    return build_model("base_residual", base_channels=4, image_size=(16, 16), **settings)


@pytest.mark.parametrize("name", ["base_residual", "same_backbone", "unet_baseline"])
def test_a_head_pushed_to_its_bound_still_gets_a_gradient(name):
    g = torch.Generator().manual_seed(0)
    model = build_model(name, image_size=(16, 16), base_channels=4)
    last = model.ups[-1][-1] if name == "unet_baseline" else model.base_decoder.out
    with torch.no_grad():
        last.bias.fill_(40.0)  # sigmoid(40) = 1 - 4e-18: saturated everywhere
    base, _, _ = model(torch.randn(2, 2, 16, 16, generator=g))
    assert float(base.detach().min()) > 0.999
    base.mean().backward()
    # without the floor the slope is sigmoid'(40) ~ 4e-18 and the bias gets no gradient
    assert float(last.bias.grad.abs().sum()) > 1e-3
    assert float(last.bias.grad.abs().sum()) == pytest.approx(HEAD_GRADIENT_FLOOR * 0.25, rel=0.01)


def test_a_saturated_residual_is_pulled_back_by_its_gradient():
    g = torch.Generator().manual_seed(1)
    model = tiny_base_residual(residual_scale=0.5)
    out = model.residual_decoder.out
    with torch.no_grad():
        out.bias.fill_(-30.0)  # the demo's corner: residual at -bound
    _, residual, _ = model(torch.randn(2, 2, 16, 16, generator=g))
    assert float(residual.detach().max()) == pytest.approx(-0.5, abs=1e-6)
    residual.abs().mean().backward()  # the sparsity term wants it smaller
    assert float(out.bias.grad) < -1e-3  # descent raises the logit towards 0 (tanh'(-30) is 0 in float32)


def test_inference_outputs_are_the_plain_bounded_heads():
    g = torch.Generator().manual_seed(2)
    model = tiny_base_residual().eval()
    x = torch.randn(2, 2, 16, 16, generator=g)
    with torch.no_grad():
        base, residual, _ = model(x)
        features = model.encode(x)
        expected = torch.sigmoid(model.base_decoder(features))
    assert torch.equal(base, expected) and float(residual.abs().max()) < 0.5


def test_a_fixed_pattern_in_every_recording_does_not_reach_the_network():
    """The direct sound fills the same corner of every feature image; standardised per position,
    adding any fixed pattern to every recording changes nothing downstream."""
    g = torch.Generator().manual_seed(3)
    echoes = 0.1 * torch.rand(64, 2, 16, 128, generator=g)
    direct_sound = torch.zeros(2, 16, 128)
    direct_sound[:, :2, :4] = 1.5  # the measured log magnitude at the demo's corner
    norm = PositionStandardiser(2, (16, 128)).train()
    plain, shifted = norm(echoes), PositionStandardiser(2, (16, 128)).train()(echoes + direct_sound)
    assert torch.allclose(plain, shifted, atol=1e-3)
    assert float(plain.mean(0).abs().max()) < 1e-4 and float(plain.std(0).mean()) == pytest.approx(1.0, abs=0.02)


def test_position_standardiser_keeps_the_plain_mean_for_inference_and_takes_a_single_recording():
    g = torch.Generator().manual_seed(4)
    norm = PositionStandardiser(1, (2, 2)).train()
    batches = [torch.full((4, 1, 2, 2), 2.0) + torch.randn(4, 1, 2, 2, generator=g) * 0.1 for _ in range(3)]
    for batch in batches:
        norm(batch)
    mean = torch.cat(batches).mean(0).flatten()
    assert torch.allclose(norm.running_mean, mean, atol=1e-5)  # the plain mean over the batches
    assert norm(batches[0][:1]).shape == (1, 1, 2, 2)  # one recording in training: running statistics


def test_old_checkpoints_load_without_the_standardiser():
    from echodepth.inference.predictor import upgrade_metadata

    meta = {"config": {"image_size": 32}, "features": {"image_size": [32, 32]}}
    assert upgrade_metadata(meta)["config"]["input_norm"] == "none"
    assert TrainConfig(input_norm="none").input_norm == "none"
    with pytest.raises(ConfigError, match="input_norm 'batch' is not one of"):
        TrainConfig(input_norm="batch")


def test_same_backbone_control_is_base_residual_without_the_residual_decoder():
    g = torch.Generator().manual_seed(5)
    control = build_model("same_backbone", base_channels=8, image_size=(32, 32))
    full = build_model("base_residual", base_channels=8, image_size=(32, 32))
    base, residual, final = control(torch.randn(2, 2, 32, 32, generator=g))
    assert torch.count_nonzero(residual) == 0 and torch.equal(base, final)
    counts, full_counts = control.parameter_counts(), full.parameter_counts()
    assert counts["residual_decoder"] == 0 and counts["total"] == full_counts["total"] - full_counts["residual_decoder"]
    assert type(control.encoder[0]) is type(full.encoder[0]) and not control.decomposes
    assert control.compare_settings == {"lambda_base": 0.0, "lambda_sparse": 0.0}  # plain L1 reconstruction


def test_seed_base_decoder_is_about_a_seventeenth_of_the_residual_decoder():
    counts = build_model("base_residual", base_channels=64, base_decoder="seed").parameter_counts()
    ratio = counts["residual_decoder"] / counts["base_decoder"]
    assert 14 < ratio < 20 and counts["residual_decoder"] == 10_178_369
    with pytest.raises(ConfigError, match="base_decoder 'tiny' is not one of"):
        tiny_base_residual(base_decoder="tiny")


@pytest.mark.parametrize("k", [1, 4, 8])
def test_base_decoder_at_reduced_resolution(k):
    g = torch.Generator().manual_seed(6)
    model = build_model("base_residual", base_channels=4, image_size=(32, 32), input_size=(16, 128), base_resolution=k)
    x = torch.randn(2, 2, 40, 200, generator=g)
    logits = model.base_decoder(model.encode(x))
    assert logits.shape[-2:] == (16 // k, 128 // k)
    base, residual, _ = model(x)
    assert base.shape == residual.shape == (2, 1, 32, 32)
    with pytest.raises(ConfigError, match=r"base_resolution 3 is not one of \[1, 2, 4, 8\]"):
        TrainConfig(base_resolution=3)


def test_freeze_base_phase_keeps_the_base_path_and_trains_the_residual(synth_dir, tmp_path):
    common = {"lr_schedule": "none", "seed": 3}
    first = train(tiny_config(synth_dir, tmp_path, experiment_name="one", epochs=1, **common), progress=False)
    frozen = train(
        tiny_config(synth_dir, tmp_path, experiment_name="two", epochs=2, freeze_base_epochs=1, **common),
        progress=False,
    )

    def state(result):
        path = Path(result["out_dir"]) / "checkpoints" / "last.ckpt"
        return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]

    before, after = state(first), state(frozen)
    base_keys = [k for k in before if k.startswith(("model.encoder", "model.base_decoder", "model.input_norm"))]
    assert base_keys and all(torch.equal(before[k], after[k]) for k in base_keys)  # BatchNorm statistics included
    residual = [k for k in before if k.startswith("model.residual_decoder") and k.endswith("weight")]
    assert any(not torch.equal(before[k], after[k]) for k in residual)


def test_freeze_base_needs_a_residual_and_fewer_epochs_than_the_run():
    with pytest.raises(ConfigError, match="freeze_base_epochs must be at least 0 and below epochs"):
        TrainConfig(epochs=4, freeze_base_epochs=4)
    with pytest.raises(ConfigError, match="has no residual"):
        TrainConfig(model="same_backbone", freeze_base_epochs=1)


def test_training_settings_reach_the_network():
    cfg = TrainConfig(image_size=16, base_channels=4, base_decoder="seed", base_resolution=4, input_norm="none")
    model = build_model_for_training(cfg, 2)
    assert (model.cfg.base_decoder, model.cfg.base_resolution, model.cfg.input_norm) == ("seed", 4, "none")
    assert isinstance(model.input_norm, torch.nn.Identity) and len(model.base_decoder.ups) == 2
