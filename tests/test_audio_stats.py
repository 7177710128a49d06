"""audio-stats on signals with known statistics, and the batvision_v2 synthetic preset."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from echodepth.audio.stats import path_stats, recording_stats
from echodepth.cli import main
from echodepth.errors import DataError
from echodepth.synth import SynthConfig, generate_dataset
from echodepth.synth.presets import preset_settings

RATE = 44100


def burst(onset_ms=10.0, decay_db_per_s=200.0, freq_hz=5000.0, n=RATE // 2, seed=0):
    """A tone burst starting at onset_ms whose amplitude decays exponentially, plus faint noise."""
    t = np.arange(n) / RATE
    amplitude = np.where(t >= onset_ms / 1000, 10 ** (-decay_db_per_s * (t - onset_ms / 1000) / 20), 0.0)
    noise = 1e-5 * np.random.default_rng(seed).standard_normal(n)
    return amplitude * np.sin(2 * np.pi * freq_hz * t) + noise


def test_statistics_of_a_known_signal():
    left = burst()
    right = 0.5 * np.roll(left, 10)  # 6.02 dB quieter, 10 samples (0.227 ms) later
    stats = recording_stats(np.stack([left, right]), RATE)
    assert stats["length_samples"] == RATE // 2 and stats["length_ms"] == pytest.approx(500)
    assert stats["onset_ms"] == pytest.approx(10.0, abs=0.6)  # 1 ms window, centred
    assert stats["peak_ms"] == pytest.approx(10.5, abs=1.0)
    # 200 dB/s: -6 dB 30 ms after the peak, -30 dB 150 ms after
    assert stats["envelope_40ms_db"] == pytest.approx(-200 * 0.030, abs=0.5)
    assert stats["envelope_160ms_db"] == pytest.approx(-200 * 0.150, abs=0.5)
    assert stats["centroid_khz"] == pytest.approx(5.0, abs=0.1)
    assert stats["ild_db"] == pytest.approx(6.02, abs=0.05)
    assert stats["itd_ms"] == pytest.approx(10 / RATE * 1000, abs=0.01)
    assert stats["noise_floor_db"] < -60


def test_folder_medians_side_by_side_and_bad_input(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    for i, onset in enumerate((5.0, 10.0, 20.0)):
        wave = burst(onset_ms=onset, seed=i)
        sf.write(tmp_path / "a" / f"{i}.wav", np.stack([wave, wave]).T, RATE)
    assert path_stats(tmp_path / "a")["onset_ms"] == pytest.approx(10.0, abs=0.6)  # the median
    single = tmp_path / "a" / "0.wav"
    assert main(["audio-stats", str(tmp_path / "a"), str(single)]) == 0
    table = capsys.readouterr().out
    assert "| statistic |" in table and "| recordings | 3 | 1 |" in table
    mono = tmp_path / "mono.wav"
    sf.write(mono, burst(), RATE)
    with pytest.raises(DataError, match=r"has 1 channel\(s\), expected 2"):
        path_stats(mono)
    (tmp_path / "empty").mkdir()
    assert main(["audio-stats", str(tmp_path / "empty")]) == 2
    assert "no recordings" in capsys.readouterr().err


def test_batvision_v2_preset_is_in_the_real_recordings_range(tmp_path):
    settings = {**preset_settings("batvision_v2"), "n_rooms": 3, "samples_per_room": 3, "n_locations": 1}
    settings.update(scatter_rays=1024, tail_max_order=4, image_size=(45, 80))
    generate_dataset(tmp_path, SynthConfig(**settings), workers=1, progress=False)
    wav = sorted(tmp_path.glob("*/audio/*.wav"))[0]
    info = sf.info(wav)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (44100, 2, "PCM_32", 19845)
    stats = path_stats(tmp_path)
    # the real V2 recording of the issue: onset ~6.5 ms, -5.6/-12.2/-23.9/-31.1/-40.6 dB at
    # 10/20/40/80/160 ms, noise floor near -35 dB, centroid ~6 kHz; match the order of magnitude
    assert 5.5 < stats["onset_ms"] < 8.0
    assert -10 < stats["envelope_10ms_db"] <= 0 and -25 < stats["envelope_20ms_db"] < -8
    assert -32 < stats["envelope_40ms_db"] < -15 and -48 < stats["envelope_160ms_db"] < -28
    assert -50 < stats["noise_floor_db"] < -28 and 4.5 < stats["centroid_khz"] < 7.5
    depth = np.stack([np.load(p) for p in tmp_path.glob("*/depth/*.npy")])
    assert depth.shape[1:] == (45, 80) and 0.08 < (depth == 0).mean() < 0.4  # a stereo camera's holes


def test_default_generator_keeps_its_settings():
    cfg = SynthConfig()
    assert (cfg.duration_s, cfg.system_delay_s, cfg.band_hz, cfg.direct_gain) == (0.0, 0.0, (0.0, 0.0), 1.0)
    assert cfg.reverb_rt60_s == (0.0, 0.0) and cfg.invalid_incidence_deg == 90 and cfg.audio_subtype == "PCM_16"
    assert cfg.n_audio_samples == 3145  # unchanged: today's default data stays the same
