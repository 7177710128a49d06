"""Statistics that can decide a claim: per-seed paired differences and bootstrap intervals.

Runs of the same seed share data order and initial draws, so the baseline and base + residual
are compared seed by seed: d_s = proposed_s - baseline_s. The interval is the percentile
bootstrap of the mean of d over seeds (10,000 resamples of the seeds, with replacement). A claim
says in which direction the effect goes from "no effect" (0, or a stated threshold):
- holds: the whole 95% interval lies on the claimed side (it excludes no effect);
- does not hold: the whole interval lies on the other side (it excludes the claim);
- undecided: the interval straddles it, or there is one seed only (no interval).
With 5 seeds a percentile bootstrap is narrower than it should be (it cannot see beyond the 5
values); the report says so beside the verdicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 10_000
LEVEL = 0.95


@dataclass
class Interval:
    """A mean over seeds with its 95% percentile-bootstrap interval [low, high], and the per-seed values."""

    values: list[float]  # one per seed (a paired difference, a ratio, or a plain value)
    mean: float
    low: float
    high: float

    def text(self, digits: int = 3, signed: bool = True) -> str:
        """Returns "mean [low, high]" with `digits` decimals (signed: a leading + on positives), or "n/a"."""
        if not math.isfinite(self.mean):
            return "n/a"
        sign = "+" if signed else ""
        return f"{self.mean:{sign}.{digits}f} [{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}]"


def bootstrap(values, seed: int = 0) -> Interval:
    """Returns the mean of the finite values and its 95% percentile-bootstrap interval."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(arr) == 0:
        return Interval([], math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), size=(N_RESAMPLES, len(arr)))].mean(axis=1)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval([float(v) for v in arr], float(arr.mean()), float(low), float(high))


def paired(proposed, baseline) -> Interval:
    """Returns the bootstrap interval of the per-seed differences proposed - baseline."""
    return bootstrap([p - b for p, b in zip(proposed, baseline)])


def decide(interval: Interval, direction: str, null: float = 0.0, claimed: float | None = None) -> str:
    """Returns the verdict for a claim that the values lie `direction` ("below" or "above") of
    null (no effect), by at least as far as `claimed` when the claim names a size (e.g. a ratio
    of 0.8 for "20% fewer"): holds when the interval excludes no effect, does not hold when it
    excludes the claim, else undecided. One seed gives no interval (its bootstrap is [d, d]): undecided."""
    if not math.isfinite(interval.mean):
        return "not measurable"
    if len(interval.values) < 2:
        return "undecided"
    edge = null if claimed is None else claimed
    if direction == "below":
        return "holds" if interval.high < null else "does not hold" if interval.low >= edge else "undecided"
    return "holds" if interval.low > null else "does not hold" if interval.high <= edge else "undecided"


def epochs_to_target(curve, target: float) -> float:
    """Returns the first (1-based) validation epoch whose RMSE is <= target, or NaN if none."""
    for epoch, value in enumerate(curve, 1):
        if value <= target:
            return float(epoch)
    return math.nan


def censored_epochs(curve, target: float) -> tuple[float, bool]:
    """Returns (epochs to target, reached): a run that never reaches it counts as len(curve) + 1."""
    epochs = epochs_to_target(curve, target)
    return (epochs, True) if math.isfinite(epochs) else (float(len(curve) + 1), False)
