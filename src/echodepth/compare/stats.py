"""Statistics that can decide a claim: per-seed paired differences and Student t-intervals.

Runs of the same seed share data order and initial draws, so the baseline and base + residual
are compared seed by seed: d_s = proposed_s - baseline_s. The interval is the 95% Student
t-interval of the mean of d over the n seeds, mean ± t(0.975, n - 1) * sd / sqrt(n): it assumes
roughly normal per-seed values and widens with few seeds as it should (with 2 seeds t is 12.7,
an honest, very wide interval); a percentile bootstrap over a handful of values cannot see beyond
them and is too narrow. Ratios (epochs to a target) get the t-interval of the mean log ratio,
back-transformed: a geometric mean whose interval stays positive. One seed gives no interval, nor
do values equal over every seed (epoch counts tie often): their spread estimate of 0 is no evidence
of certainty, and a zero-width interval would decide a claim on nothing.
A claim says in which direction the effect goes from "no effect" (0, or a stated threshold):
- holds: the whole 95% interval lies on the claimed side (it excludes no effect);
- does not hold: the whole interval lies on the other side (it excludes the claim);
- undecided: the interval straddles it; "undecided (1 seed)" or "undecided (no spread)" when there
  is no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
METHOD = "Student t-interval"
ONE_SEED = "one seed gives no interval"
NO_SPREAD = "equal over every seed: no interval"


@dataclass
class Interval:
    """A mean over seeds with its 95% t-interval [low, high] (NaN when there is none: `missing`
    says why), and the per-seed values."""

    values: list[float]  # one per seed (a paired difference, a ratio, or a plain value)
    mean: float
    low: float
    high: float
    missing: str = ""  # why there is no interval: ONE_SEED or NO_SPREAD

    @property
    def has_interval(self) -> bool:
        """Whether there is an interval (two or more finite values)."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    def text(self, digits: int = 3, signed: bool = True) -> str:
        """Returns "mean [low, high]" with `digits` decimals (signed: a leading + on positives), the
        mean alone when there is no interval (one seed: the report says so once; otherwise why in
        brackets), or "n/a"."""
        if not math.isfinite(self.mean):
            return "n/a"
        sign = "+" if signed else ""
        if not self.has_interval:
            return f"{self.mean:{sign}.{digits}f}" + ("" if self.missing == ONE_SEED else f" ({self.missing})")
        return f"{self.mean:{sign}.{digits}f} [{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}]"


def finite(values) -> np.ndarray:
    """Returns the finite values as a float array (None and NaN left out)."""
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def t_interval(values) -> Interval:
    """Returns the mean of the finite values with its 95% Student t-interval (none for one value,
    nor for values all equal)."""
    arr = finite(values)
    if len(arr) == 0:
        return Interval([], math.nan, math.nan, math.nan)
    mean, listed = float(arr.mean()), [float(v) for v in arr]
    if len(arr) < 2 or np.all(arr == arr[0]):
        return Interval(listed, mean, math.nan, math.nan, ONE_SEED if len(arr) < 2 else NO_SPREAD)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    return Interval(listed, mean, mean - half, mean + half)


def log_t_interval(ratios) -> Interval:
    """Returns the geometric mean of positive ratios with the t-interval of their mean log,
    back-transformed (none for one ratio); `values` keeps the ratios themselves."""
    arr = finite(ratios)
    if np.any(arr <= 0):
        raise ValueError(f"ratios must be positive, got {arr.tolist()}")
    logs = t_interval(np.log(arr))
    bounds = (math.exp(logs.mean), math.exp(logs.low), math.exp(logs.high))
    return Interval([float(v) for v in arr], *bounds, logs.missing)


def paired(proposed, baseline) -> Interval:
    """Returns the t-interval of the per-seed differences proposed - baseline."""
    return t_interval([p - b for p, b in zip(proposed, baseline)])


def decide(interval: Interval, direction: str, null: float = 0.0, claimed: float | None = None) -> str:
    """Returns the verdict for a claim that the values lie `direction` ("below" or "above") of
    null (no effect), by at least as far as `claimed` when the claim names a size (e.g. a ratio
    of 0.8 for "20% fewer"): holds when the interval excludes no effect, does not hold when it
    excludes the claim, else undecided; without an interval "undecided (1 seed)" or "undecided (no
    spread)"."""
    if not math.isfinite(interval.mean):
        return "not measurable"
    if not interval.has_interval:
        return "undecided (1 seed)" if interval.missing == ONE_SEED else "undecided (no spread)"
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
