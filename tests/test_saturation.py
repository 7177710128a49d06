"""Saturated outputs measured per pixel across recordings, and the default input
centring that keeps the feature image's fixed layout (the direct sound's corner) from driving the heads."""

import math

import pytest
import torch

from echodepth.diagnose.saturation import PixelSpread, saturation_shares
from echodepth.models.registry import build_model_for_training
from echodepth.settings.config import TrainConfig


def spread_of(residual: torch.Tensor) -> dict:
    spread = PixelSpread({"residual": (-5.0, 5.0)})
    spread.add({"residual": residual})
    return spread.summary()


def test_a_pixel_at_its_bound_in_every_recording_is_saturated_and_one_at_it_in_half_is_not():
    residual = torch.zeros(10, 1, 4, 4)
    residual[:, 0, 0, 0] = -4.95  # within 1% of the range (0.1 m) of -5 m in every recording
    residual[:5, 0, 0, 1] = 5.0  # at the bound in half the recordings: mean 2.5 m, not saturated
    residual[:, 0, 1, 1] = torch.linspace(-1, 1, 10)  # moving: not saturated
    summary = spread_of(residual)
    head = summary["heads"]["residual"]
    assert head["share_of_pixels_saturated"] == pytest.approx(1 / 16)
    assert head["share_within_1pct_of_bound"] == pytest.approx((10 + 5) / (10 * 16))
    shares = saturation_shares(summary)
    assert shares["saturated_pixel_share"] == pytest.approx(1 / 16)
    assert shares["locked_pixel_share"] == pytest.approx(1 / 16)  # pinned there with no spread


def test_a_pixel_just_beyond_one_percent_of_its_bound_is_not_saturated():
    residual = torch.full((6, 1, 2, 2), -4.85)  # 0.15 m from -5 m: 1.5% of the range
    assert spread_of(residual)["heads"]["residual"]["share_of_pixels_saturated"] == 0.0


def test_no_recording_measured_gives_nan_shares():
    shares = saturation_shares(PixelSpread({"base": (0.0, 10.0)}).summary())
    assert math.isnan(shares["saturated_pixel_share"]) and math.isnan(shares["locked_pixel_share"])


@pytest.mark.parametrize("model", ["base_residual", "same_backbone", "unet_baseline"])
def test_by_default_a_fixed_input_layout_cannot_drive_the_outputs(model):
    """The demo's locked corner came from the direct sound's fixed place in the feature image: a big
    offset at the same positions in every recording. Centred by default, the training forward pass is
    the same with or without that offset."""
    g = torch.Generator().manual_seed(0)
    cfg = TrainConfig(model=model, image_size=16, base_channels=4, input_size=[16, 32])
    torch.manual_seed(0)
    network = build_model_for_training(cfg, 2).train()
    audio = torch.rand(6, 2, 16, 32, generator=g)
    layout = torch.zeros(1, 2, 16, 32)
    layout[..., :2, :4] = 50.0  # the direct sound: loud, low frequencies, first frames, every recording
    outputs = [torch.stack(network(x)) for x in (audio, audio + layout)]
    assert cfg.input_norm == "centre"
    # float32: centring subtracts a batch mean of up to 50 + 1, which leaves a rounding error of 51 x eps =
    # 6e-6 on each input; the network's normalised outputs moved by at most 7e-6 over seeds 0-9 and the
    # three models. 1e-4 leaves 14x; without centring (input_norm none) the offset moves them by 0.56 or more.
    assert torch.allclose(outputs[0], outputs[1], atol=1e-4)
