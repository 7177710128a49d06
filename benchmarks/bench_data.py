"""Data loading speed: the dataset authors' per-sample path against the feature cache.

    python benchmarks/bench_data.py [--samples 1000] [--size 256] [--workers 0 2] [--repeats 3]

Per-sample path: decode + STFT + resize inside __getitem__ (how the baseline loader works).
Cached path: the memory-mapped cache, a shuffled batch per read. Both through a DataLoader
with batch 64 and the same number of workers; prints samples/s per run and the median.
"""

import argparse
import statistics
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from echodepth.data import FeatureConfig, build_cache, build_dataset, collate_batch
from echodepth.synth import SynthConfig, generate_dataset


def rate(loader, n_epochs=1) -> float:
    start = time.perf_counter()
    n = 0
    for _ in range(n_epochs):
        for batch in loader:
            n += len(batch["features"])
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SynthConfig(n_rooms=args.samples // 10, split_fractions=(1.0, 0.0, 0.0), n_locations=1)
        generate_dataset(f"{tmp}/data", cfg, progress=False)
        ds = build_dataset(
            "synthetic", f"{tmp}/data", "train", features=FeatureConfig(image_size=(args.size, args.size))
        )
        start = time.perf_counter()
        cached = build_cache(ds, f"{tmp}/cache", progress=False)
        print(
            f"cache build: {len(ds) / (time.perf_counter() - start):.0f} samples/s "
            f"({len(ds)} samples, {args.size}x{args.size})"
        )
        for workers in args.workers:
            kw = dict(batch_size=64, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
            per_sample = DataLoader(ds, **kw)
            fast = DataLoader(cached, collate_fn=collate_batch, **kw)
            slow_rates = [rate(per_sample) for _ in range(args.repeats)]
            fast_rates = [rate(fast, 3) for _ in range(args.repeats)]
            s, f = statistics.median(slow_rates), statistics.median(fast_rates)
            print(
                f"workers {workers}: per-sample {', '.join(f'{r:.0f}' for r in slow_rates)} -> median {s:.0f} samples/s"
            )
            print(
                f"workers {workers}: cached     {', '.join(f'{r:.0f}' for r in fast_rates)} "
                f"-> median {f:.0f} samples/s ({f / s:.1f}x)"
            )


if __name__ == "__main__":
    main()
