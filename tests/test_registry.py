"""Adding a model, a loss or an audio feature is one class plus its registration: a throwaway of
each, registered here, trains through the normal `train` entry point."""

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from echodepth.data import FEATURES, AudioFeature, FeatureConfig
from echodepth.errors import ConfigError
from echodepth.evaluate import evaluate
from echodepth.inference.predictor import Predictor
from echodepth.losses import LOSSES, DepthLoss, masked_l1, valid_mask
from echodepth.models import MODELS, DepthModel
from echodepth.runs.train import train
from echodepth.settings.config import TrainConfig

from .helpers import tiny_config


@dataclass
class TinySettings:
    in_channels: int = 2
    image_size: tuple[int, int] = (16, 16)
    width: int = 4


class TinyNet(DepthModel):
    """One conv and a sigmoid: the smallest network that follows the interface."""

    Settings = TinySettings

    def __init__(self, **settings):
        super().__init__()
        self.cfg = TinySettings(**settings)
        self.conv = nn.Conv2d(self.cfg.in_channels, 1, 3, padding=1)

    def forward(self, features):
        depth = torch.sigmoid(F.interpolate(self.conv(features), size=tuple(self.cfg.image_size)))
        return depth, torch.zeros_like(depth), depth


@dataclass
class PlainL1Settings:
    l1_weight: float = 1.0


class PlainL1(DepthLoss):
    Settings = PlainL1Settings

    def forward(self, base, residual, final, gt):
        recon = masked_l1(final, gt, valid_mask(gt))
        return {"loss": self.l1_weight * recon, "loss_recon": recon}


class EarSum(AudioFeature):
    """Three channels: the two ears' framed waveforms and their sum."""

    n_channels = 3
    compressible = False

    def forward(self, wave):
        frames = F.pad(wave, (32, 32)).unfold(-1, 64, 16).transpose(-1, -2)  # (B, 2, 64, T)
        return torch.cat([frames, frames.sum(1, keepdim=True)], dim=1)


@dataclass
class ScaledEarsSettings:
    ear_gain: float = 1.0  # the right ear's gain


class ScaledEars(AudioFeature):
    """The two ears' framed waveforms, the right one times its own setting `ear_gain`."""

    Settings = ScaledEarsSettings
    compressible = False

    def forward(self, wave):
        frames = F.pad(wave, (32, 32)).unfold(-1, 64, 16).transpose(-1, -2)  # (B, 2, 64, T)
        return torch.cat([frames[:, :1], self.settings.ear_gain * frames[:, 1:]], dim=1)


@pytest.fixture
def throwaways():
    MODELS.register("tiny_test_net")(TinyNet)
    LOSSES.register("plain_l1_test")(PlainL1)
    FEATURES.register("ear_sum_test")(EarSum)
    FEATURES.register("scaled_ears_test")(ScaledEars)
    yield
    MODELS.unregister("tiny_test_net")
    LOSSES.unregister("plain_l1_test")
    FEATURES.unregister("ear_sum_test")
    FEATURES.unregister("scaled_ears_test")


def test_throwaway_model_loss_and_feature_train_through_train(throwaways, synth_dir, tmp_path):
    settings = {"model": "tiny_test_net", "loss": "plain_l1_test", "audio_format": "ear_sum_test", "l1_weight": 2.0}
    cfg = tiny_config(synth_dir, tmp_path, experiment_name="throwaway", **settings)
    result = train(cfg, progress=False)
    rows = cfg.run_dir.read_metrics()
    assert len(rows) == 1 and rows[0]["train/loss"] == pytest.approx(2.0 * rows[0]["train/loss_recon"], rel=1e-5)
    assert torch.isfinite(torch.tensor(result["test"]["rmse"]))
    predictor = Predictor.from_checkpoint(result["best_checkpoint"], device="cpu")
    assert isinstance(predictor.network, TinyNet) and predictor.network.conv.in_channels == 3
    assert predictor.meta["input_shape"] == [3, 16, 16]


def test_unknown_names_and_settings_are_errors_naming_the_allowed_ones(throwaways):
    with pytest.raises(
        ConfigError,
        match=r"model 'nope' is not one of \['base_residual', 'same_backbone', 'unet_baseline', 'tiny_test_net'",
    ):
        TrainConfig(model="nope")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['lamda_base'\]; allowed: \['dataset', "):
        TrainConfig.from_dict({"lamda_base": 1.0})
    with pytest.raises(ConfigError, match=r"'tiny_test_net' takes no setting\(s\) \['ngf'\]; allowed: \['in_channels'"):
        MODELS.build("tiny_test_net", ngf=3)
    with pytest.raises(ValueError, match="already registered"):
        MODELS.register("base_residual")(TinyNet)


def test_registered_names_drive_the_command_line(throwaways):
    from echodepth.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    variants = next(a for a in commands["compare"]._actions if a.dest == "variants")
    assert "tiny_test_net" in variants.choices and "plain_l1_test" in variants.choices
    train_flags = {a.dest: a for a in commands["train"]._actions}
    assert train_flags["max_depth_m"].type is float and train_flags["location_blacklist"].nargs == "*"
    dataset = next(a for a in commands["check-data"]._actions if a.dest == "dataset")
    assert dataset.choices == ["batvisionv1", "batvisionv2", "synthetic"]


def test_a_features_own_setting_reaches_it_in_training_evaluation_and_inference(throwaways, synth_dir, tmp_path):
    # one class and one registration line: its setting is a flag, trains, and travels in the checkpoint
    settings = {"model": "tiny_test_net", "loss": "plain_l1_test", "audio_format": "scaled_ears_test"}
    cfg = tiny_config(synth_dir, tmp_path, experiment_name="scaled", ear_gain=3.0, width=6, l1_weight=2.0, **settings)
    assert cfg.settings_for("audio_format") == {"ear_gain": 3.0}
    result = train(cfg, progress=False)
    predictor = Predictor.from_checkpoint(result["best_checkpoint"], device="cpu")
    feature = predictor.feature_extractor.feature
    assert isinstance(feature, ScaledEars) and feature.settings.ear_gain == 3.0
    assert predictor.network.cfg.width == 6
    wave = torch.randn(1, 2, 4000, generator=torch.Generator().manual_seed(0))
    frames = feature(wave)
    assert torch.allclose(frames[:, 1:], 3.0 * ScaledEars(FeatureConfig())(wave)[:, 1:])
    evaluated = evaluate(result["best_checkpoint"], "test", device="cpu", progress=False)
    assert evaluated["rmse"] == pytest.approx(result["test"]["rmse"], rel=1e-4)
    unset = tiny_config(synth_dir, tmp_path, experiment_name="unset", **settings)
    assert unset.settings_for("audio_format") == {"ear_gain": 1.0}
