import pytest
import torch

from echodepth.errors import ConfigError
from echodepth.models import MODELS, build_model, build_model_for_training, parameter_counts
from echodepth.settings.config import TrainConfig


def small_model(name: str, image_size: int = 32, in_channels: int = 2):
    """Builds a registered model the way training does, from a small TrainConfig."""
    cfg = TrainConfig(model=name, base_channels=8, image_size=image_size)
    return build_model_for_training(cfg, in_channels)


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("input_hw", [(32, 32), (257, 45)])
def test_forward_backward_shapes(name, input_hw):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = small_model(name)
    audio = torch.randn(3, 2, *input_hw, generator=g)
    base, residual, final = model(audio)
    for t in (base, residual, final):
        assert t.shape == (3, 1, 32, 32)
        assert torch.isfinite(t).all()
    assert torch.equal(final, base + residual)
    assert (base >= 0).all() and (base <= 1.0).all()  # normalised depth
    final.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", MODELS.names())
def test_non_square_output_and_other_channel_counts(name):
    g = torch.Generator().manual_seed(1)
    model = build_model(name, in_channels=3, image_size=(32, 48), base_channels=4)
    outputs = model(torch.randn(2, 3, 40, 40, generator=g))
    assert all(t.shape == (2, 1, 32, 48) for t in outputs)
    counts = parameter_counts(model)
    assert counts["total"] == sum(p.numel() for p in model.parameters())


def test_residual_bounds_and_transposed_mode():
    g = torch.Generator().manual_seed(2)
    model = build_model("base_residual", base_channels=8, image_size=(16, 16), bilinear=False, residual_scale=0.25)
    _, residual, _ = model(torch.randn(2, 2, 16, 16, generator=g) * 100)
    assert residual.abs().max() < 0.25 + 1e-6
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())


def test_baseline_has_zero_residual():
    g = torch.Generator().manual_seed(3)
    model = build_model("unet_baseline", base_channels=8, image_size=(32, 32))
    base, residual, final = model(torch.randn(2, 2, 40, 40, generator=g))
    assert torch.count_nonzero(residual) == 0
    assert torch.equal(base, final)


def test_parameter_count_near_30m():
    counts = parameter_counts(build_model("base_residual", base_channels=64))
    assert abs(counts["total"] - 30e6) / 30e6 < 0.15
    assert counts["total"] == counts["encoder"] + counts["base_decoder"] + counts["residual_decoder"]


def test_unknown_model_and_unknown_setting_are_named():
    with pytest.raises(
        ConfigError, match=r"unknown model 'nope'; expected one of \['base_residual', 'same_backbone', 'unet_baseline'"
    ):
        build_model("nope")
    with pytest.raises(
        ConfigError, match=r"model 'unet_baseline' takes no setting\(s\) \['bilinear'\]; allowed: .*'base_channels'"
    ):
        build_model("unet_baseline", bilinear=True)


def test_baseline_takes_no_input_size_its_input_is_the_nearest_power_of_two():
    with pytest.raises(ConfigError, match=r"'unet_baseline' takes no setting\(s\) \['input_size'\]"):
        build_model("unet_baseline", input_size=(48, 48))
    assert build_model("unet_baseline", base_channels=4, image_size=(48, 40)).input_size == (64, 64)
