"""The chirp detector of `predict --chirps` (`echodepth.deploy.chirps.find_chirps`): false chirps
per minute on noise-only input (target 0) and the detection rate at 0, 10 and 20 dB SNR.

    python benchmarks/bench_chirps.py [--minutes 10] [--chirps_per_snr 200] [--seed 0] [--json]

The chirp is the built-in synthetic data's (a 3 ms linear sweep, `echodepth.synth.chirp_signal`),
at 44.1 kHz; min_gap is 2594 samples (the window of a 10 m model). Noise-only input: white and
pink Gaussian noise at full-scale RMS 0.1 and 0.001 (the detector does not depend on the level),
`minutes` of each, in 10 s recordings. Detection: chirps placed at random in 10 s white-noise
recordings, each SNR being the chirp's mean power over the noise's power; a chirp counts as
found when a detected peak lies within half a chirp length of it. The relative rule alone (any
peak above 0.25 x the strongest, the detector of echodepth 0.3) is measured beside it.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from echodepth.deploy.chirps import find_chirps, matched_filter
from echodepth.synth import SynthConfig, chirp_signal

RATE = 44100
SECONDS = 10
MIN_GAP = 2594


def relative_rule(wave: np.ndarray, chirp: np.ndarray, min_gap: int, threshold: float = 0.25) -> np.ndarray:
    """The 0.3 detector: every first point above threshold x the strongest peak, min_gap apart."""
    score = matched_filter(wave, chirp)
    peaks, i = [], 0
    while i < score.size:
        above = np.flatnonzero(score[i:] >= threshold * score.max())
        if above.size == 0:
            break
        peak = i + int(above[0]) + int(np.argmax(score[i + int(above[0]) : i + int(above[0]) + len(chirp)]))
        peaks.append(peak)
        i = peak + min_gap
    return np.asarray(peaks)


def pink(rng, n: int) -> np.ndarray:
    """Returns (2, n) noise with a 1/f power spectrum, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal((2, n)))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.shape[-1]), 1))
    noise = np.fft.irfft(spectrum, n)
    return noise / noise.std()


def false_chirps_per_minute(chirp, minutes: float, rng) -> dict:
    n = SECONDS * RATE
    results = {}
    for kind in ("white", "pink"):
        for rms in (0.1, 0.001):
            counts = {"significance": 0, "relative_only": 0}
            for _ in range(max(1, round(minutes * 60 / SECONDS))):
                noise = (rng.standard_normal((2, n)) if kind == "white" else pink(rng, n)) * rms
                counts["significance"] += len(find_chirps(noise, chirp, MIN_GAP))
                counts["relative_only"] += len(relative_rule(noise, chirp, MIN_GAP))
            results[f"{kind} RMS {rms:g}"] = {k: v / minutes for k, v in counts.items()}
    return results


def detection_rates(chirp, per_snr: int, rng) -> dict:
    n = SECONDS * RATE
    chirp_power = float(np.mean(chirp**2))
    results = {}
    for snr_db in (0, 10, 20):
        found = total = false = 0
        noise_rms = np.sqrt(chirp_power / 10 ** (snr_db / 10))
        while total < per_snr:
            k = min(20, per_snr - total)
            slots = np.arange(1, n // (2 * MIN_GAP) - 1)  # two gaps apart: no chirp inside another's min_gap
            starts = np.sort(rng.choice(slots, k, replace=False)) * 2 * MIN_GAP
            starts += rng.integers(0, MIN_GAP // 2, k)
            wave = rng.standard_normal((2, n)) * noise_rms
            for s in starts:
                wave[:, s : s + len(chirp)] += chirp
            peaks = find_chirps(wave, chirp, MIN_GAP)
            hit = [np.any(np.abs(peaks - s) <= len(chirp) // 2) for s in starts]
            found += sum(hit)
            false += sum(not np.any(np.abs(starts - p) <= len(chirp) // 2) for p in peaks)
            total += k
        results[f"{snr_db} dB"] = {"detected": found / total, "chirps": total, "false": false}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="noise-only minutes per noise kind and level")
    parser.add_argument("--chirps_per_snr", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    chirp = chirp_signal(SynthConfig())
    result = {
        "false_chirps_per_minute": false_chirps_per_minute(chirp, args.minutes, rng),
        "detection": detection_rates(chirp, args.chirps_per_snr, rng),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"false chirps per minute on noise only ({args.minutes:g} min each; target 0):")
    for name, rates in result["false_chirps_per_minute"].items():
        print(f"  {name:<18} significance test {rates['significance']:6.2f}   relative rule alone "
              f"{rates['relative_only']:7.1f}")  # fmt: skip
    print("detection rate (chirp power / noise power):")
    for name, r in result["detection"].items():
        print(f"  {name:>5} SNR: {100 * r['detected']:5.1f}% of {r['chirps']} chirps, {r['false']} false")


if __name__ == "__main__":
    main()
