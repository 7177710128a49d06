"""The audio window on BatVision V1 recordings that begin with a near-silent lead-in: the window's
start as a setting, aligned to the emission in each recording, or the whole waveform."""

import numpy as np
import pytest
import torch

from echodepth.cli import main
from echodepth.data import AudioFeatures, FeatureConfig, build_dataset
from echodepth.data.features import cut_length
from echodepth.errors import ConfigError
from echodepth.settings.config import TrainConfig
from echodepth.synth import SynthConfig, chirp_signal

from .helpers import SR, write_csv

LEAD_IN = 980  # near-silent samples before the emission in V1 files (the dataset's issue tracker)
N = 6000
ECHO_M = 11.0  # beyond the baseline window's reach (about 8 m) once the lead-in is spent


def v1_recording(rng, lead_in: int, echo: bool = True) -> np.ndarray:
    """Returns a (2, N) V1-like recording: lead-in, emission, an echo from ECHO_M, faint noise."""
    chirp = chirp_signal(SynthConfig())
    wave = rng.standard_normal((2, N)) * 1e-4
    wave[:, lead_in : lead_in + len(chirp)] += 0.5 * chirp
    if echo:
        delay = lead_in + round(2 * ECHO_M / 343.0 * SR)
        wave[:, delay : delay + len(chirp)] += 0.2 * chirp
    return wave.astype(np.float32)


def make_v1_lead_in(root, n_per_split: int = 4):
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        rows = []
        for i in range(n_per_split):
            stem = f"{split}{i}"
            (root / "audio").mkdir(parents=True, exist_ok=True)
            (root / "depth").mkdir(parents=True, exist_ok=True)
            wave = v1_recording(rng, LEAD_IN + 10 * i)
            np.save(root / "audio" / f"{stem}_left.npy", wave[0])
            np.save(root / "audio" / f"{stem}_right.npy", wave[1])
            np.save(root / "depth" / f"{stem}.npy", rng.uniform(1000, 11000, (32, 32)))
            rows.append([f"depth/{stem}.npy", f"audio/{stem}_left.npy", f"audio/{stem}_right.npy"])
        write_csv(root / f"{split}.csv", ["depth path", "audio path left", "audio path right"], rows)
    return root


def features(wave: np.ndarray, **settings) -> torch.Tensor:
    cfg = FeatureConfig(image_size=(32, 32), **settings)
    return AudioFeatures(cfg, 12.0)(torch.from_numpy(wave)[None])[0]


def test_the_baseline_window_loses_a_far_echo_after_the_lead_in_and_the_emission_window_keeps_it():
    rng = np.random.default_rng(1)
    with_echo = v1_recording(rng, LEAD_IN)
    without_echo = with_echo.copy()
    without_echo[:, LEAD_IN + 600 :] = v1_recording(np.random.default_rng(1), LEAD_IN, echo=False)[:, LEAD_IN + 600 :]
    assert cut_length(12.0, SR) < LEAD_IN + round(2 * ECHO_M / 343.0 * SR)
    assert torch.equal(features(with_echo), features(without_echo))  # the echo is thrown away
    aligned = features(with_echo, align_to_emission=True)
    assert not torch.allclose(aligned, features(without_echo, align_to_emission=True))  # the echo is seen


def test_the_emission_window_is_the_same_whatever_the_lead_in():
    from echodepth.data.features import emission_onsets

    early = v1_recording(np.random.default_rng(2), 0)
    late = np.concatenate([np.zeros((2, LEAD_IN), np.float32), early], axis=1)
    late[:, :LEAD_IN] = np.random.default_rng(3).standard_normal((2, LEAD_IN)) * 1e-4
    assert emission_onsets(torch.from_numpy(np.stack([early, late[:, :N]]))).tolist()[1] - LEAD_IN >= 0
    assert torch.allclose(features(early, align_to_emission=True), features(late, align_to_emission=True), atol=1e-5)
    start_ms = LEAD_IN / SR * 1000
    assert torch.allclose(features(late, window_start_ms=start_ms), features(early), atol=1e-5)
    assert not torch.allclose(features(late), features(early), atol=1e-3)


def test_the_whole_waveform_keeps_every_sample():
    wave = v1_recording(np.random.default_rng(4), LEAD_IN)
    changed = wave.copy()
    changed[:, -10:] += 0.3
    assert not torch.equal(features(wave, cut=False), features(changed, cut=False))
    assert torch.equal(features(wave), features(changed))


def test_waveform_items_hold_the_aligned_window_and_give_the_per_sample_features(tmp_path):
    root = make_v1_lead_in(tmp_path / "v1")
    cfg = FeatureConfig(image_size=(32, 32), align_to_emission=True)
    per_sample = build_dataset("batvisionv1", root, "train", feature_config=cfg)
    batched = build_dataset("batvisionv1", root, "train", feature_config=cfg, waveforms=True)
    window = batched[1]["waveform"]
    assert window.shape == (2, cut_length(12.0, SR))
    assert torch.allclose(batched.feature_extractor.image(window[None])[0], per_sample[1]["feature_image"], atol=1e-6)


def test_the_training_settings_choose_the_window(tmp_path):
    from echodepth.training import EchoDepthDataModule

    for window, start_ms, expected in (
        ("start", 0.0, (True, 0.0, False)),
        ("start", 22.2, (True, 22.2, False)),
        ("emission", -0.5, (True, -0.5, True)),
        ("whole", 0.0, (False, 0.0, False)),
    ):
        cfg = TrainConfig(dataset="batvisionv1", data_dir=str(tmp_path), audio_window=window, window_start_ms=start_ms)
        features = EchoDepthDataModule(cfg).requested_feature_config()
        assert (features.cut, features.window_start_ms, features.align_to_emission) == expected


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["--cache", "--no-cache"])
def test_training_with_the_emission_window_on_v1_and_predicting_from_it(tmp_path, cache, capsys):
    root = make_v1_lead_in(tmp_path / "v1")
    args = ["train", "--dataset", "batvisionv1", "--data_dir", str(root), "--image_size", "16"]
    args += ["--base_channels", "4", "--batch_size", "4", "--epochs", "1", "--num_workers", "0", cache]
    args += ["--audio_window", "emission", "--results_dir", str(tmp_path / "results"), "--experiment_name", "v1"]
    args += ["--cache_dir", str(tmp_path / "cache")]
    assert main(args) == 0
    from echodepth.inference.predictor import Predictor

    checkpoint = tmp_path / "results" / "v1" / "checkpoints" / "best.ckpt"
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    assert predictor.feature_config.align_to_emission and predictor.min_samples == cut_length(12.0, SR)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), str(root / "audio"), "--out_dir", str(out)]) == 0
    assert len(list(out.glob("*_depth.npy"))) == 12


def test_window_settings_are_checked():
    with pytest.raises(ConfigError, match="audio_window 'middle' is not one of"):
        TrainConfig(audio_window="middle")
    with pytest.raises(ConfigError, match="window_start_ms -5"):
        TrainConfig(window_start_ms=-5)
    TrainConfig(audio_window="emission", window_start_ms=-1.0)  # a little lead before the onset
