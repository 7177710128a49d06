"""Binaural cue features: interaural level and phase differences and GCC-PHAT, checked on signals
whose cues are known, trained, exported to ONNX (verified) and offered as `compare` variants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from echodepth.cli import main
from echodepth.compare import all_variants
from echodepth.data import EAR_SPACING_M, FEATURES, FeatureConfig
from echodepth.data.binaural import GccPhat, InterauralLevelPhase, max_lag_samples
from echodepth.deploy import load_model
from echodepth.inference.predictor import Predictor

from .helpers import tiny_config

RATE = 44100
N_FFT = 512


def tone(freq_bin: int, n: int = 4096, delay: float = 0.0) -> torch.Tensor:
    """A sine at the centre of STFT bin freq_bin, delayed by `delay` samples."""
    t = torch.arange(n, dtype=torch.float64) - delay
    return torch.sin(2 * math.pi * freq_bin * t / N_FFT).float()


def test_ild_and_ipd_of_a_louder_earlier_left_ear():
    cues = InterauralLevelPhase(FeatureConfig(audio_format="ild_ipd"))
    k, delay = 40, 2.0  # bin 40 (3.4 kHz); the right ear hears it 2 samples later
    wave = torch.stack([2.0 * tone(k), tone(k, delay=delay)])[None]
    image = cues(wave)  # (1, 5, 257, T)
    assert image.shape[:3] == (1, 5, N_FFT // 2 + 1)
    mid = image[0, :, k, 10:-10]  # away from the padded ends
    assert float(mid[2].mean()) == pytest.approx(20 * math.log10(2), abs=0.01)  # ILD, dB
    ipd = 2 * math.pi * k * delay / N_FFT  # phase of L R*: the left leads by the delay
    assert float(mid[3].mean()) == pytest.approx(math.cos(ipd), abs=1e-3)
    assert float(mid[4].mean()) == pytest.approx(math.sin(ipd), abs=1e-3)
    assert torch.allclose(mid[0], 2 * mid[1], rtol=1e-3)  # the magnitudes stacked first


@pytest.mark.parametrize("delay", [-9, 0, 14])
def test_gcc_phat_peaks_at_the_interaural_delay(delay):
    feature = GccPhat(FeatureConfig(audio_format="gcc_phat"))
    noise = torch.randn(6000, generator=torch.Generator().manual_seed(0))
    left, right = noise[100 + delay : 5100 + delay], noise[100:5100]  # left[n] = right[n + delay]
    gcc = feature(torch.stack([left, right])[None])[0, 2].mean(-1)  # mean over frames, (257 lags,)
    lags = torch.linspace(-max_lag_samples(RATE), max_lag_samples(RATE), N_FFT // 2 + 1)
    assert float(lags[gcc.argmax()]) == pytest.approx(-delay, abs=0.2)  # the left ear hears it earlier


def test_gcc_lags_reach_the_largest_path_difference_the_ears_allow():
    assert EAR_SPACING_M == 0.2  # the built-in data's ears: SynthConfig.ear_offset_m 0.1 m either side
    assert max_lag_samples(RATE) == pytest.approx(0.2 / 340 * RATE)  # 25.9 samples, 0.59 ms
    assert FEATURES.get("gcc_phat").n_channels == 3 and FEATURES.get("ild_ipd").n_channels == 5


def test_near_silence_gives_neutral_cues_not_the_phase_of_noise():
    hiss = 1e-7 * torch.randn(1, 2, 2000, generator=torch.Generator().manual_seed(0))  # below the floor
    image = InterauralLevelPhase(FeatureConfig(audio_format="ild_ipd"))(hiss)
    assert float(image[0, 2].abs().max()) < 0.05  # ILD, dB (unfloored: several dB between two noises)
    assert float(image[0, 3:].abs().max()) < 1e-3  # cos, sin of the IPD: ~0, not of magnitude 1


@pytest.mark.parametrize("audio_format", ["ild_ipd", "gcc_phat"])
def test_cue_features_train_export_to_onnx_and_predict_like_pytorch(audio_format, synth_dir, tmp_path, capsys):
    from echodepth.runs.train import train

    result = train(tiny_config(synth_dir, tmp_path, audio_format=audio_format, log_compression=True), progress=False)
    checkpoint = result["best_checkpoint"]
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    assert predictor.feature_config.audio_format == audio_format
    assert predictor.meta["input_shape"][0] == FEATURES.get(audio_format).n_channels
    path = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", checkpoint, "--output", str(path)]) == 0  # verified, else exit 2
    assert "largest difference to PyTorch" in capsys.readouterr().out
    clip = sorted(synth_dir.glob("*/audio/*.wav"))[0]
    import soundfile as sf

    wave, rate = sf.read(clip, dtype="float32", always_2d=True)
    mine = load_model(path).predict(wave.T, rate).final_m
    reference = predictor.predict(wave.T, rate).final_m.cpu().numpy()
    assert np.abs(mine - reference).max() < 1e-3


def test_compare_offers_the_cue_features_as_variants():
    variants = all_variants()
    assert variants["ild_ipd"] == {"audio_format": "ild_ipd"}
    assert variants["gcc_phat"] == {"audio_format": "gcc_phat"}
