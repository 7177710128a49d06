"""`echodepth check-data`: validate every sample of every split before a long run, and the
splits together: a recording named twice in a split, or in two splits (train / test leakage)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import soundfile as sf

from ..errors import DataError
from .datasets import EmptySplitError, build_dataset

SPLITS = ("train", "val", "test")


def repeated_recordings(rows_per_split: dict[str, list]) -> list[str]:
    """Returns one line per recording named by more than one row: twice in a split (a duplicate
    row) or in two splits (a sample shared between them). `rows_per_split`: split -> SampleRefs."""
    seen: dict[tuple, list[tuple[str, object]]] = {}
    for split, refs in rows_per_split.items():
        for ref in refs:
            seen.setdefault(ref.audio, []).append((split, ref))
    lines = []
    for audio, rows in seen.items():
        if len(rows) < 2:
            continue
        splits = sorted({split for split, _ in rows}, key=list(rows_per_split).index)
        kind = f"DUPLICATE row in {splits[0]}" if len(splits) == 1 else f"SHARED between {' and '.join(splits)}"
        named = "; ".join(f"{split}: {ref.where()}" for split, ref in rows)
        lines.append(f"{kind}: recording {';'.join(str(p) for p in audio)} ({named})")
    return lines


def check_dataset(name: str, root, splits=SPLITS, print_fn=print, **dataset_kwargs) -> int:
    """Prints a summary per split and one line per bad sample, then one line per recording named
    twice (within a split or across splits); returns the number of bad samples, repeats and
    empty splits (an empty split is named as such, not counted as a bad sample).

    Reports samples per split and per location, the depth range (m), the share of invalid
    depth pixels, audio lengths (samples) and sample rates.
    """
    n_bad = 0
    rows_per_split, empty = {}, []
    for split in splits:
        try:
            ds = build_dataset(name, root, split, on_error="skip", check_samples=False, **dataset_kwargs)
        except EmptySplitError as err:  # no rows: not a bad sample
            print_fn(f"EMPTY {split}: {err}")
            empty.append(split)
            continue
        except DataError as err:
            print_fn(f"BAD {split}: {err}")
            n_bad += 1
            continue
        bad = list(ds.skipped)
        rows_per_split[split] = list(ds.refs)
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
    repeats = repeated_recordings(rows_per_split)
    for line in repeats:
        print_fn(line)
    verdict = "OK" if n_bad + len(repeats) + len(empty) == 0 else "FAILED"
    empty_splits = f", {len(empty)} empty split(s) ({', '.join(empty)})" if empty else ""
    print_fn(f"{verdict}: {n_bad} bad sample(s), {len(repeats)} repeated recording(s){empty_splits}")
    return n_bad + len(repeats) + len(empty)
