"""Paired statistics of compare: Student t-intervals and the three verdicts."""

import math

import pytest
from scipy import stats

from echodepth.compare.stats import censored_epochs, decide, log_t_interval, paired, t_interval


def test_t_interval_is_the_textbook_one_and_shrinks_with_agreement():
    values = [0.1, -0.3, 0.4, -0.2, 0.05]
    wide = t_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=wide.mean, scale=stats.sem(values))
    assert (wide.low, wide.high) == pytest.approx((low, high), rel=1e-12)  # float64 arithmetic, same formula
    narrow = t_interval([0.01, 0.011, 0.012, 0.009, 0.01])
    assert narrow.high - narrow.low < (wide.high - wide.low) / 50
    assert math.isnan(t_interval([math.nan]).mean)


def test_paired_differences_and_verdicts():
    better = paired([0.70, 0.71, 0.69, 0.72, 0.70], [0.75, 0.761, 0.74, 0.769, 0.752])  # lower by ~0.05 each seed
    assert better.values == pytest.approx([-0.05, -0.051, -0.05, -0.049, -0.052])
    assert decide(better, "below") == "holds"
    assert decide(better, "above") == "does not hold"
    mixed = paired([0.70, 0.80, 0.69, 0.81, 0.75], [0.75, 0.74, 0.76, 0.73, 0.75])
    assert decide(mixed, "below") == "undecided"
    assert decide(t_interval([1.3, 1.4, 1.2]), "above", 1.0) == "holds"
    assert decide(t_interval([0.8, 0.85, 0.82]), "above", 1.0) == "does not hold"
    assert decide(t_interval([0.9, 0.95, 0.8]), "above", 1.0) == "undecided"  # t(0.975, 2) = 4.3: reaches 1
    assert decide(t_interval([]), "below") == "not measurable"


def test_censored_epochs_count_one_past_the_end():
    assert censored_epochs([0.9, 0.8, 0.7], 0.8) == (2.0, True)
    assert censored_epochs([0.9, 0.85, 0.82], 0.8) == (4.0, False)


def test_a_claim_with_a_size_does_not_hold_when_the_interval_excludes_that_size():
    ratio = log_t_interval([0.9, 0.95, 0.88, 0.92, 0.97])  # fewer epochs, but not 20% fewer
    assert decide(ratio, "below", 1.0) == "holds"
    slower = log_t_interval([0.86, 1.1, 0.95, 1.19, 1.0])
    assert decide(slower, "below", 1.0) == "undecided"  # straddles no effect
    assert decide(slower, "below", 1.0, claimed=0.8) == "does not hold"  # but excludes 20% fewer
    assert decide(log_t_interval([0.6, 0.7, 0.9, 1.1]), "below", 1.0, claimed=0.8) == "undecided"


def test_one_seed_gives_no_interval_and_decides_nothing():
    # the bootstrap of one value was [d, d], printed as an interval
    one = paired([0.5], [1.0])
    assert one.mean == -0.5 and math.isnan(one.low) and math.isnan(one.high)
    assert one.text() == "-0.500" and one.missing == "one seed gives no interval"  # the report says it once
    assert decide(one, "below") == "undecided (1 seed)"
    assert decide(log_t_interval([0.5]), "below", null=1.0, claimed=0.8) == "undecided (1 seed)"


def test_two_seeds_give_a_t_interval_not_their_min_and_max():
    # a percentile bootstrap over two differences is [min, max]: here [-0.5, -0.4], a "95% interval" that "held"
    two = paired([0.5, 0.6], [1.0, 1.0])
    half = stats.t.ppf(0.975, 1) * math.sqrt(0.005) / math.sqrt(2)  # sd of (-0.5, -0.4) is sqrt(0.005)
    assert (two.low, two.high) == pytest.approx((-0.45 - half, -0.45 + half), rel=1e-12)
    assert two.low < -1.0 and two.high > 0.1  # t(0.975, 1) = 12.7: far wider than the two values
    assert decide(two, "below") == "undecided"


def test_a_ratio_interval_is_the_back_transformed_t_interval_of_its_log():
    ratio = log_t_interval([0.5, 0.8, 1.25, 2.0])  # symmetric in log around 1
    assert ratio.mean == pytest.approx(1.0, rel=1e-12)
    assert ratio.low * ratio.high == pytest.approx(1.0, rel=1e-12) and 0 < ratio.low < 0.5
    assert ratio.values == [0.5, 0.8, 1.25, 2.0]


def test_values_equal_over_every_seed_give_no_zero_width_interval():
    # tied epoch counts gave a ratio of 1.00 [1.00, 1.00] that decided "does not hold" on nothing
    tied = log_t_interval([1.0, 1.0, 1.0])
    assert tied.mean == 1.0 and not tied.has_interval
    assert tied.text(2, signed=False) == "1.00 (equal over every seed: no interval)"
    assert decide(tied, "below", null=1.0, claimed=0.8) == "undecided (no spread)"
