"""The chirp detector's significance test: noise holds no chirp, chirps in noise are found."""

import numpy as np
import pytest

from echodepth.deploy.chirps import find_chirps
from echodepth.synth import SynthConfig, chirp_signal

RATE = 44100
GAP = 2594  # the window of a 10 m model


@pytest.fixture(scope="module")
def chirp():
    return chirp_signal(SynthConfig())


@pytest.mark.parametrize("kind", ["white", "pink", "hum"])
@pytest.mark.parametrize("rms", [0.3, 1e-4])
def test_noise_alone_holds_no_chirp_at_any_level(chirp, kind, rms):
    rng = np.random.default_rng(0)
    n = 20 * RATE
    noise = rng.standard_normal((2, n))
    if kind == "pink":
        spectrum = np.fft.rfft(noise)
        noise = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(spectrum.shape[-1]), 1)), n)
    elif kind == "hum":  # mains hum and its harmonics under a little noise
        t = np.arange(n) / RATE
        noise = 0.1 * noise + sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8))
    noise *= rms / noise.std()
    assert len(find_chirps(noise, chirp, GAP)) == 0


@pytest.mark.parametrize("snr_db", [0, 10, 20])
def test_chirps_in_noise_are_found_where_they_are(chirp, snr_db):
    rng = np.random.default_rng(snr_db)
    wave = rng.standard_normal((2, 5 * RATE)) * np.sqrt(np.mean(chirp**2) / 10 ** (snr_db / 10))
    starts = np.arange(1, 40) * 2 * GAP + rng.integers(0, GAP // 2, 39)
    for s in starts:
        wave[:, s : s + len(chirp)] += chirp
    peaks = find_chirps(wave, chirp, GAP)
    assert len(peaks) == len(starts) and np.abs(peaks - starts).max() <= 2


def test_normalised_correlation_is_one_for_the_chirp_at_any_level_and_zero_in_silence(chirp):
    from echodepth.deploy.chirps import normalised_correlation

    wave = np.zeros((2, 3000))
    wave[:, 1000 : 1000 + len(chirp)] = 1e-6 * chirp
    score = normalised_correlation(wave, chirp)
    assert score[1000] == pytest.approx(1.0, abs=1e-6) and score[:800].max() == 0
