"""Paired statistics of compare: bootstrap intervals and the three verdicts."""

import math

import pytest

from echodepth.compare.stats import bootstrap, censored_epochs, decide, paired


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_agreement():
    wide = bootstrap([0.1, -0.3, 0.4, -0.2, 0.05])
    narrow = bootstrap([0.01, 0.011, 0.012, 0.009, 0.01])
    assert wide.low <= wide.mean <= wide.high
    assert narrow.high - narrow.low < (wide.high - wide.low) / 50
    assert math.isnan(bootstrap([math.nan]).mean)


def test_paired_differences_and_verdicts():
    better = paired([0.70, 0.71, 0.69, 0.72, 0.70], [0.75, 0.76, 0.74, 0.77, 0.75])  # lower by 0.05 each seed
    assert better.values == pytest.approx([-0.05] * 5)
    assert decide(better, "below") == "holds"
    assert decide(better, "above") == "does not hold"
    mixed = paired([0.70, 0.80, 0.69, 0.81, 0.75], [0.75, 0.74, 0.76, 0.73, 0.75])
    assert decide(mixed, "below") == "undecided"
    assert decide(bootstrap([1.3, 1.4, 1.2]), "above", 1.0) == "holds"
    assert decide(bootstrap([0.9, 0.95, 0.8]), "above", 1.0) == "does not hold"
    assert decide(bootstrap([]), "below") == "not measurable"


def test_censored_epochs_count_one_past_the_end():
    assert censored_epochs([0.9, 0.8, 0.7], 0.8) == (2.0, True)
    assert censored_epochs([0.9, 0.85, 0.82], 0.8) == (4.0, False)


def test_a_claim_with_a_size_does_not_hold_when_the_interval_excludes_that_size():
    ratio = bootstrap([0.9, 0.95, 0.88, 0.92, 0.97])  # fewer epochs, but not 20% fewer
    assert decide(ratio, "below", 1.0) == "holds"
    slower = bootstrap([0.86, 1.1, 0.95, 1.19, 1.0])
    assert decide(slower, "below", 1.0) == "undecided"  # straddles no effect
    assert decide(slower, "below", 1.0, claimed=0.8) == "does not hold"  # but excludes 20% fewer
    assert decide(bootstrap([0.6, 0.7, 0.9, 1.1]), "below", 1.0, claimed=0.8) == "undecided"


def test_one_seed_decides_nothing():
    # one seed's bootstrap interval is that seed's value, [d, d]: no interval, so no verdict either way
    assert decide(paired([0.5], [1.0]), "below") == "undecided"
    assert decide(bootstrap([0.5]), "below", null=1.0, claimed=0.8) == "undecided"
    assert decide(paired([0.5, 0.6], [1.0, 1.0]), "below") == "holds"
