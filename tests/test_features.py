"""The audio features, checked against values derived by hand: the cut's length, the window's
place, the STFT of pure tones, the mel triangles, the framed waveform, the resize to the image."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from echodepth.data.features import (
    FEATURES,
    AudioFeature,
    AudioFeatures,
    FeatureConfig,
    cut_length,
    emission_onsets,
    mel_filterbank,
    min_window_samples,
    own_settings,
    window_length,
    window_offset,
)
from echodepth.errors import ConfigError

from .helpers import summed_error

SR = 44100


def test_settings_are_checked_and_written_as_plain_values():
    cfg = FeatureConfig(image_size=[24.0, 16])
    assert cfg.image_size == (24, 16) and all(type(v) is int for v in cfg.image_size)
    assert cfg.to_dict()["image_size"] == [24, 16] and FeatureConfig(**cfg.to_dict()) == cfg
    assert set(cfg.to_dict()) == set(FeatureConfig.__dataclass_fields__) - {"settings"}  # empty: left out
    own = FeatureConfig(settings={"ear_gain": 2.0})
    assert own.to_dict()["settings"] == {"ear_gain": 2.0} and FeatureConfig(**own.to_dict()) == own
    with pytest.raises(ConfigError, match="unknown audio feature 'cqt'"):
        FeatureConfig(audio_format="cqt")
    FeatureConfig(n_fft=64, win_length=64, hop_length=1)  # the bounds themselves are allowed
    FeatureConfig(n_fft=64, win_length=1)
    expected = (
        r"^STFT settings n_fft 64, win_length {}, hop_length {}: expected 1 <= win_length <= n_fft and hop_length >= 1$"
    )
    for win, hop in ((65, 16), (0, 16), (64, 0)):
        with pytest.raises(ConfigError, match=expected.format(win, hop)):
            FeatureConfig(n_fft=64, win_length=win, hop_length=hop)
    assert FeatureConfig().n_channels == FeatureConfig(audio_format="mel").n_channels == 2


def test_the_cut_is_the_echos_return_time():
    # 2 x 30 m / 340 m/s = 0.17647 s = 7782.35 samples at 44.1 kHz: 7782 (kept whole samples)
    assert cut_length(30.0, SR) == 7782
    assert cut_length(3.0, SR) == 778  # 778.24
    assert cut_length(3.0, 48000) == 847  # 847.06
    cfg = FeatureConfig()
    assert window_length(cfg, 30.0) == 7782
    assert window_length(cfg, 0.5) == 257  # the cut (129) is shorter than the STFT's n_fft / 2 + 1
    assert type(window_length(cfg, 0.5)) is int
    assert window_length(FeatureConfig(n_fft=128, win_length=64), 0.5) == 129  # the cut itself
    assert window_offset(FeatureConfig(window_start_ms=22.2)) == 979  # 979.02
    assert window_offset(FeatureConfig(sample_rate_hz=1000, window_start_ms=1.6)) == 2  # rounded, not truncated
    assert window_offset(FeatureConfig(sample_rate_hz=1000, window_start_ms=-1.6)) == -2


def test_the_shortest_recording_each_window_fits_in():
    assert min_window_samples(FeatureConfig(window_start_ms=22.2), 30.0) == 979 + 7782
    assert min_window_samples(FeatureConfig(window_start_ms=22.2, align_to_emission=True), 30.0) == 7782
    assert min_window_samples(FeatureConfig(cut=False), 30.0) == 257
    assert type(min_window_samples(FeatureConfig(cut=False), 30.0)) is int  # a sample count users read in errors
    assert min_window_samples(FeatureConfig(cut=False, n_fft=128, win_length=64), 30.0) == 65


def test_a_max_depth_too_short_for_the_stft_window_is_refused_with_the_least_that_works():
    # 0.5 m keeps int(2 * 0.5 / 340 * 44100) = 129 samples; the STFT needs 512 // 2 + 1 = 257, which
    # 257 * 340 / (2 * 44100) = 0.9907 m gives
    message = (
        "^max_depth_m 0.5 keeps 129 samples of each recording (the echo's return time at 44100 Hz); the "
        "spectrogram features' window needs 257: give max_depth_m of at least 0.99$"
    )
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AudioFeatures(FeatureConfig(), 0.5)
    AudioFeatures(FeatureConfig(), 0.995)  # 258 samples
    AudioFeatures(FeatureConfig(cut=False), 0.5)  # the whole waveform: no cut to check
    # the framed waveform needs win_length // 2 + 1 = 33 samples: 0.1 m keeps 25 (33 * 340 / 88200 = 0.127 m)
    with pytest.raises(ConfigError, match="window needs 33: give max_depth_m of at least 0.13$"):
        FeatureConfig(audio_format="waveform").check_cut(0.1)
    FeatureConfig(audio_format="waveform").check_cut(0.13)  # 33 samples: just enough
    FeatureConfig().check_cut(257 * 340 / (2 * SR) + 1e-9)  # exactly 257 samples: just enough


def test_the_emission_onset_is_the_first_sample_within_20_db_of_the_peak_in_either_ear():
    wave = torch.zeros(3, 2, 100)
    wave[0, 0, 40] = 1.0  # left ear only
    wave[0, 1, 30] = 0.1  # exactly 0.1 of the peak: counts
    wave[1, 1, 70] = -2.0  # negative peak in the right ear
    wave[1, 0, 20] = 0.19  # under 0.1 of the peak (0.2): does not count
    wave[1, 0, 50] = 0.2
    assert emission_onsets(wave).tolist() == [30, 50, 0]  # silence: the first sample
    quiet = torch.zeros(1, 2, 100)
    quiet[0, 0, 60], quiet[0, 1, 20] = 0.5, 0.06  # peak 0.5: 0.06 is beyond its tenth (0.05)
    assert emission_onsets(quiet).tolist() == [20]


def test_the_mel_filterbank_is_htk_triangles():
    # one band from 0 to 2100 Hz: on the HTK mel scale 2595 log10(1 + f / 700) its centre is the
    # mean of mel(0) = 0 and mel(2100) = 2595 log10 4, i.e. 2595 log10 2 = mel(700 Hz). At 4200 Hz
    # seven bins lie at 0, 350, ..., 2100 Hz: rising f / 700, falling (2100 - f) / 1400.
    bank = mel_filterbank(7, 1, 4200, f_min=0.0, f_max=2100.0)
    assert bank.shape == (1, 7) and bank.dtype == torch.float32
    assert torch.allclose(bank[0], torch.tensor([0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0]), atol=1e-6)
    # two bands over 20 Hz - 20 kHz: every weight in [0, 1], the band edges where the next band peaks
    bank = mel_filterbank(257, 2, SR, f_min=20.0, f_max=20000.0)
    assert bank.shape == (2, 257) and bank.min() == 0 and bank.max() <= 1
    assert bank[0, 0] == 0 and bank[1, -1] == 0  # 0 Hz is below 20 Hz; 22.05 kHz above 20 kHz
    centres_hz = bank.argmax(dim=1).double() * SR / 2 / 256
    mel = [2595 * math.log10(1 + f / 700) for f in (20.0, 20000.0)]
    expected = [700 * (10 ** ((mel[0] + k * (mel[1] - mel[0]) / 3) / 2595) - 1) for k in (1, 2)]
    assert torch.allclose(centres_hz, torch.tensor(expected, dtype=torch.float64), atol=SR / 2 / 256)


def tone(bin_index: int, n: int, amplitude: float = 0.5, n_fft: int = 512) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64)
    return (amplitude * torch.sin(2 * math.pi * bin_index * t / n_fft)).float()


def test_the_spectrogram_is_each_ears_stft_magnitude_with_a_hann_window():
    cfg = FeatureConfig()
    wave = torch.stack([tone(20, 4000), tone(100, 4000, 0.25)])[None]  # left: bin 20, right: bin 100
    spec = FEATURES.get("spectrogram")(cfg)(wave)
    assert spec.shape == (1, 2, 257, 4000 // 16 + 1)  # centred frames every 16 samples
    inner = spec[0, :, :, 10:-10]  # frames away from the reflect-padded ends
    assert inner[0].argmax(dim=0).eq(20).all() and inner[1].argmax(dim=0).eq(100).all()
    # a sine of amplitude A under a periodic Hann window of 64 samples (sum 32): |X| = A * 32 / 2
    assert torch.allclose(inner[0, 20], torch.tensor(8.0), rtol=0.03)
    assert torch.allclose(inner[1, 100], torch.tensor(4.0), rtol=0.03)
    expected = torch.stft(
        wave[0], 512, 16, 64, torch.hann_window(64), center=True, return_complex=True
    ).abs()  # the magnitude (power 1) at every bin
    assert torch.allclose(spec[0], expected, atol=1e-5)


def test_the_mel_spectrogram_sums_the_magnitudes_under_each_triangle():
    g = torch.Generator().manual_seed(0)
    cfg = FeatureConfig(audio_format="mel", n_mels=8, image_size=(8, 8))
    wave = torch.randn(2, 2, 3000, generator=g)
    feature = FEATURES.get("mel")(cfg)
    magnitude = FEATURES.get("spectrogram")(cfg)(wave)
    bank = mel_filterbank(257, 8, SR, f_min=20.0, f_max=20000.0)
    expected = torch.einsum("mf,bcft->bcmt", bank, magnitude)
    # float32: a mel band sums up to 257 weighted bins, values up to ~550 over seeds 0-9: another order of
    # the sum differs by summed_error(257, 550) = 1e-3 (an absolute 1e-4 would be under it); measured 0.
    tolerance = 5 * summed_error(257, expected.abs().max())
    assert torch.allclose(feature(wave), expected, atol=tolerance)


def test_the_framed_waveform_holds_win_length_samples_every_hop_length():
    cfg = FeatureConfig(audio_format="waveform", win_length=8, hop_length=4)
    wave = torch.arange(1.0, 21.0).repeat(1, 2, 1)  # samples 1 .. 20 in both ears
    wave[0, 1] *= -1
    frames = FEATURES.get("waveform")(cfg)(wave)
    assert frames.shape == (1, 2, 8, 6)  # (20 + 2 * 4 - 8) // 4 + 1 frames
    assert frames[0, 0, :, 0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4]  # 4 zeros of padding, then the start
    assert frames[0, 0, :, 1].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert frames[0, 0, :, -1].tolist() == [17, 18, 19, 20, 0, 0, 0, 0]
    assert torch.equal(frames[0, 1], -frames[0, 0])
    assert FEATURES.get("waveform").compressible is False and FEATURES.get("spectrogram").compressible is True


def test_the_fixed_window_starts_at_its_offset_and_reads_only_its_samples():
    g = torch.Generator().manual_seed(1)
    cfg = FeatureConfig(window_start_ms=1000 * 100 / SR, image_size=(8, 8))  # 100 samples after the start
    extractor = AudioFeatures(cfg, 3.0)  # 778 samples
    wave = torch.randn(2, 2, 2000, generator=g)
    assert torch.equal(extractor.window(wave), wave[..., 100:878])
    assert extractor.n_samples(2000) == 878 and extractor.n_samples(800) == 800
    assert extractor.n_channels == 2
    whole = AudioFeatures(FeatureConfig(cut=False), 3.0)
    assert whole.window(wave) is wave and whole.n_samples(2000) == 2000


def test_the_emission_window_follows_each_recordings_onset_and_stays_inside_it():
    g = torch.Generator().manual_seed(2)
    cfg = FeatureConfig(align_to_emission=True, window_start_ms=-1000 * 10 / SR)  # 10 samples of lead
    extractor = AudioFeatures(cfg, 3.0)  # 778 samples
    wave = torch.randn(3, 2, 2000, generator=g) * 1e-3
    wave[0, :, 300] = 1.0  # onset 300: the window starts at 290
    wave[1, :, 5] = 1.0  # onset 5: 5 - 10 < 0, the window starts at the first sample
    wave[2, :, 1900] = 1.0  # onset 1900: the window ends at the last sample (starts at 2000 - 778)
    window = extractor.window(wave)
    assert window.shape == (3, 2, 778)
    assert torch.equal(window[0], wave[0, :, 290:1068])
    assert torch.equal(window[1], wave[1, :, :778])
    assert torch.equal(window[2], wave[2, :, 1222:])
    assert extractor.n_samples(2000) == 2000  # any sample may hold the window
    short = torch.randn(1, 2, 500, generator=g) * 1e-3
    short[..., 30] = 1.0  # onset 30, yet the window starts at the first sample: the recording is too short
    padded = extractor.window(short)  # shorter than the window: zeros after its end
    assert padded.shape == (1, 2, 778) and torch.equal(padded[..., :500], short) and not padded[..., 500:].any()
    exact = torch.randn(1, 2, 778, generator=g) * 1e-3
    exact[..., 30] = 1.0  # exactly the window's length: the whole recording
    assert torch.equal(extractor.window(exact), exact)
    framed = AudioFeatures(FeatureConfig(audio_format="waveform", image_size=(8, 8)), 0.5)
    assert framed.window(torch.randn(2, 2, 400, generator=g)).shape == (
        2,
        2,
        257,
    )  # the cut (129) is under n_fft / 2 + 1


def test_the_image_is_the_antialiased_resize_of_the_feature_with_log_compression_where_it_applies():
    g = torch.Generator().manual_seed(3)
    wave = torch.randn(2, 2, 2000, generator=g)
    plain = AudioFeatures(FeatureConfig(image_size=(12, 20)), 3.0)
    window = plain.window(wave)
    magnitude = FEATURES.get("spectrogram")(plain.cfg)(window)
    image = plain(wave)
    assert image.shape == (2, 2, 12, 20) and torch.equal(image, plain.image(window))
    expected = F.interpolate(magnitude, size=(12, 20), mode="bilinear", align_corners=False, antialias=True)
    # float32: the antialiased resize of 257 x 49 to 12 x 20 sums about 43 x 5 taps per pixel, values up
    # to ~9.4 over seeds 0-9: another order differs by summed_error(215, 9.4) = 1.6e-5; measured 0 (the
    # same F.interpolate call); the tolerance is 5x the bound.
    assert torch.allclose(image, expected, atol=5 * summed_error(215, expected.abs().max()))
    logged = AudioFeatures(FeatureConfig(image_size=(12, 20), log=True), 3.0)(wave)
    expected_log = F.interpolate(torch.log1p(magnitude), size=(12, 20), mode="bilinear", antialias=True)
    assert torch.allclose(logged, expected_log, atol=5 * summed_error(215, expected_log.abs().max()))
    framed = FeatureConfig(audio_format="waveform", image_size=(12, 20))
    assert torch.equal(
        AudioFeatures(framed, 3.0)(wave), AudioFeatures(FeatureConfig(**{**framed.to_dict(), "log": True}), 3.0)(wave)
    )
    assert AudioFeatures(FeatureConfig(image_size=(12, 20)), 3.0)(wave.double()).dtype == torch.float32


def test_a_click_in_any_frame_reaches_the_image():
    # 487 STFT frames shrink to 16 columns: a plain bilinear resize reads 2 frames of every 30 or
    # so and misses a click that falls between them; the antialiased one averages every frame
    extractor = AudioFeatures(FeatureConfig(image_size=(16, 16)), 30.0)
    for sample in range(1000, 7000, 371):
        wave = torch.zeros(1, 2, 7782)
        wave[..., sample] = 1.0
        assert extractor(wave).amax() > 1e-3, sample


def test_the_defaults_are_the_dataset_baselines_settings():
    # checkpoints of 0.1 stored no feature settings: they are read with these (inference.upgrade_metadata)
    assert FeatureConfig().to_dict() == {
        "audio_format": "spectrogram",
        "sample_rate_hz": 44100,
        "n_fft": 512,
        "win_length": 64,
        "hop_length": 16,
        "n_mels": 32,
        "f_min_hz": 20.0,
        "f_max_hz": 20000.0,
        "cut": True,
        "window_start_ms": 0.0,
        "align_to_emission": False,
        "log": False,
        "image_size": [128, 128],
    }


@pytest.mark.parametrize(
    "n_freqs, n_mels, rate, f_min, f_max",
    [(257, 32, SR, 20.0, 20000.0), (1000, 128, 96000, 0.0, 48000.0)],  # the default; a grid float32 cannot hold
)
def test_the_default_mel_bank_matches_htk_triangles_computed_another_way(n_freqs, n_mels, rate, f_min, f_max):
    import numpy as np

    # each band: weight 0 at its lower edge, 1 at its centre, 0 at its upper edge, linear in Hz in
    # between (np.interp), the edges mel-spaced from f_min to f_max; computed in float64
    edges_mel = np.linspace(2595 * np.log10(1 + f_min / 700), 2595 * np.log10(1 + f_max / 700), n_mels + 2)
    edges_hz = 700 * (10 ** (edges_mel / 2595) - 1)
    freqs = np.linspace(0, rate / 2, n_freqs)
    expected = np.stack([np.interp(freqs, edges_hz[m : m + 3], [0.0, 1.0, 0.0]) for m in range(n_mels)])
    bank = mel_filterbank(n_freqs, n_mels, rate, f_min=f_min, f_max=f_max)
    # float32 rounding of the weights only (a grid computed in float32 is off by up to 3e-6 here)
    assert np.abs(bank.numpy() - expected).max() < 5e-7


def test_features_hold_no_weights_so_checkpoints_do_not_carry_them():
    for name in FEATURES.names():
        extractor = AudioFeatures(FeatureConfig(audio_format=name), 30.0)
        assert extractor.state_dict() == {}, name
        assert all(b.dtype == torch.float32 for b in extractor.buffers()), name


def test_a_feature_gets_its_own_settings_from_the_feature_settings_and_their_held_fields():
    @dataclasses.dataclass
    class Own:
        log_compression: bool = False  # FeatureConfig.log holds it
        gain: float = 1.0

    class WithSettings(AudioFeature):
        Settings = Own

    cfg = FeatureConfig(log=True, settings={"gain": 2.0, "log_compression": False, "another_features": 3})
    assert own_settings(WithSettings, cfg) == Own(log_compression=True, gain=2.0)
    assert own_settings(AudioFeature, cfg) is None  # a feature without settings of its own
    assert FEATURES.get("spectrogram")(FeatureConfig(log=True)).settings.log_compression is True
