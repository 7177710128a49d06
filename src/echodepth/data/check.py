"""`echodepth check-data`: validate every sample of every split before a long run."""

from __future__ import annotations

from collections import Counter

import numpy as np
import soundfile as sf

from ..errors import DataError
from .datasets import build_dataset

SPLITS = ("train", "val", "test")


def check_dataset(name: str, root, splits=SPLITS, print_fn=print, **dataset_kwargs) -> int:
    """Prints a summary per split and one line per bad sample; returns the number of bad samples.

    Reports samples per split and per location, the depth range (m), the share of invalid
    depth pixels, audio lengths (samples) and sample rates.
    """
    n_bad = 0
    for split in splits:
        try:
            ds = build_dataset(name, root, split, on_error="skip", check_samples=False, **dataset_kwargs)
        except DataError as err:
            print_fn(f"BAD {split}: {err}")
            n_bad += 1
            continue
        bad = list(ds.skipped)
        per_location = Counter()
        lengths, rates = [], Counter()
        d_min, d_max, invalid, pixels = np.inf, 0.0, 0, 0
        for ref in ds.refs:
            try:
                audio, depth = ds.load_raw(ref)
            except DataError as err:
                bad.append(str(err))
                continue
            per_location[ref.location or "-"] += 1
            lengths.append(audio.shape[1])
            rates[sf.info(ref.audio[0]).samplerate if len(ref.audio) == 1 else ds.sample_rate_hz] += 1
            valid = depth > 0
            d_min, d_max = min(d_min, float(depth[valid].min())), max(d_max, float(depth[valid].max()))
            invalid += int((~valid).sum())
            pixels += depth.size
        good = len(ds.refs) + len(ds.skipped) - len(bad)
        print_fn(f"{split}: {good} good, {len(bad)} bad")
        if good:
            print_fn("  per location: " + ", ".join(f"{k} {v}" for k, v in sorted(per_location.items())))
            print_fn(
                f"  depth: {d_min:.3f} - {d_max:.3f} m (max_depth {ds.max_depth_m:g} m), "
                f"invalid pixels {100 * invalid / pixels:.2f}%"
            )
            print_fn(
                f"  audio: {min(lengths)} - {max(lengths)} samples, sample rate(s) "
                + ", ".join(f"{r} Hz x{n}" for r, n in sorted(rates.items()))
            )
        for line in bad:
            print_fn(f"BAD {line}")
        n_bad += len(bad)
    print_fn(f"{'OK' if n_bad == 0 else 'FAILED'}: {n_bad} bad sample(s)")
    return n_bad
