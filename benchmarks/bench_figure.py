"""Decomposition figure speed: the figure training writes every epoch (and diagnose and predict write).

    python benchmarks/bench_figure.py [--samples 4] [--size 32] [--repeats 5]

Times `make_decomposition_figure` and `save_figure` (PNG at 80 dpi, as training saves it) on random
maps of `--samples` rows; prints the seconds of each repeat and their median.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from echodepth.viz import make_decomposition_figure, save_figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base, residual, final, gt = (rng.random((args.samples, args.size, args.size)) * 5 for _ in range(4))
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.repeats):
            start = time.perf_counter()
            figure = make_decomposition_figure(base, residual - 2.5, final, gt, max_depth_m=10.0, title="epoch 1")
            save_figure(figure, Path(folder) / f"figure_{i}.png", dpi=80)
            times.append(time.perf_counter() - start)
            print(f"repeat {i + 1}: {times[-1]:.3f} s")
    print(f"median of {args.repeats}: {statistics.median(times):.3f} s a figure ({args.samples} samples)")


if __name__ == "__main__":
    main()
