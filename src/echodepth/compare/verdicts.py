"""The design guide's claims, each answered with a per-seed measurement, a 95% Student t-interval
and a verdict (see stats.py: holds / does not hold / undecided)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .stats import Interval, censored_epochs, decide, log_t_interval, paired, t_interval
from .variants import CONTROLS, PROPOSED

SIMILAR_MARGIN = 0.02  # "similar RMSE": at most 2% of the control's mean above it


def default_target(results: dict) -> float:
    """Returns the largest of every run's best validation RMSE over the controls and base +
    residual: the best RMSE that every run reaches, so that no seed is censored."""
    bests = [min(c) for v in (*CONTROLS, PROPOSED) if v in results for c in results[v]["curves"]]
    return float(max(bests))


def _seeds(values) -> str:
    """Returns per-seed values as "0.123, 0.456" ("n/a" for a non-finite one)."""
    return ", ".join("n/a" if not math.isfinite(v) else f"{v:.3f}" for v in values)


@dataclass(frozen=True)
class Measurement:
    """A claim measured: the per-seed interval, the sentence saying what was measured, and the
    figures its criterion quotes (`values`; `null` when the no-effect line comes from the data)."""

    interval: Interval
    text: str
    values: dict = field(default_factory=dict)
    null: float | None = None


@dataclass(frozen=True)
class Claim:
    """One of the guide's claims: its words, how it is measured, and when it holds: the interval
    lies `direction` ("below" / "above") of `null` (no effect); with `claimed`, it does not hold
    when it excludes the claimed size too (see `stats.decide`). `criterion` is formatted with the
    measurement's `values` and the control's name."""

    words: str
    measure: Callable[..., Measurement]
    criterion: str
    direction: str
    null: float | None = None  # None: the measurement gives it
    claimed: float | None = None

    def answer(self, measurement: Measurement, **names) -> tuple[str, str, str, str]:
        """Returns (claim, measured, criterion, verdict)."""
        null = self.null if self.null is not None else measurement.null
        verdict = decide(measurement.interval, self.direction, null, self.claimed)
        return (self.words, measurement.text, self.criterion.format(**names, **measurement.values), verdict)


def convergence(base: dict, prop: dict, control: str, target: float) -> Measurement:
    """Per-seed ratio of epochs to `target` validation RMSE, base + residual / control (a run
    that never reaches it counted as one epoch past its last): geometric mean and the t-interval
    of the mean log ratio, back-transformed."""
    ep_b = [censored_epochs(c, target) for c in base["curves"]]
    ep_p = [censored_epochs(c, target) for c in prop["curves"]]
    ratio = log_t_interval([p / b for (p, _), (b, _) in zip(ep_p, ep_b)])
    missed = sum(not r for _, r in ep_b + ep_p)
    inside = ratio.has_interval and ratio.low <= 0.8 and ratio.high >= 0.7
    text = (
        f"epochs to {target:.3f} m per seed: base+residual {[int(e) for e, _ in ep_p]}, {control} "
        f"{[int(e) for e, _ in ep_b]}"
        + (f" ({missed} run(s) never reached it, counted as one epoch past the last)" if missed else "")
        + f"; ratio (geometric mean) {ratio.text(2, signed=False)}"
        + (f"; the claimed 0.70-0.80 is {'inside' if inside else 'outside'} the interval" if ratio.has_interval else "")
    )
    return Measurement(ratio, text)


def rmse_difference(base: dict, prop: dict, control: str, target: float) -> Measurement:
    """Per-seed difference of test RMSE, base + residual - control; no effect is +2% of the control's mean."""
    rmse_b = [t["rmse"] for t in base["test"]]
    rmse_p = [t["rmse"] for t in prop["test"]]
    diff = paired(rmse_p, rmse_b)
    margin = SIMILAR_MARGIN * t_interval(rmse_b).mean
    text = (
        f"test RMSE per seed: base+residual {_seeds(rmse_p)}, {control} {_seeds(rmse_b)} m; difference {diff.text()} m"
    )
    return Measurement(diff, text, {"margin": margin}, null=margin)


def structure_difference(key: str, label: str, unit: str) -> Callable[..., Measurement]:
    """Returns the measure of a structure metric's per-seed difference, base + residual - control."""

    def measure(base: dict, prop: dict, control: str, target: float) -> Measurement:
        values_b = [s[key] for s in base["structure"]]
        values_p = [s[key] for s in prop["structure"]]
        d = paired(values_p, values_b)
        text = (
            f"{label} per seed: base+residual {_seeds(values_p)}, {control} {_seeds(values_b)} {unit}; "
            f"difference {d.text()} {unit}"
        )
        return Measurement(d, text)

    return measure


def residual_share(prop: dict) -> Measurement:
    """Per-seed mean abs(residual) / mean abs(final) of base + residual."""
    share = t_interval([s["residual_share"] for s in prop["structure"]])
    text = f"mean abs(residual) / mean abs(final) per seed {_seeds(share.values)}; mean {share.text(signed=False)}"
    return Measurement(share, text)


def residual_near_edges(prop: dict) -> Measurement:
    """Per-seed mean abs(residual) near depth edges / in smooth regions."""
    where = t_interval([s["residual_edge_to_smooth"] for s in prop["structure"]])
    text = (
        f"mean abs(residual) near edges / in smooth regions per seed {_seeds(where.values)}; "
        f"mean {where.text(2, signed=False)}"
    )
    return Measurement(where, text)


def base_smoothness(prop: dict) -> Measurement:
    """Per-seed high-frequency energy share of the base minus the final's."""
    hf = paired([s["base_hf_share"] for s in prop["structure"]], [s["final_hf_share"] for s in prop["structure"]])
    text = f"high-frequency energy share, base - final, per seed {_seeds(hf.values)}; mean {hf.text()}"
    return Measurement(hf, text)


COMPARATIVE_CLAIMS = (
    Claim(
        "Faster convergence: 20-30% fewer epochs to a target RMSE",
        convergence,
        "per-seed ratio base+residual / {control}: holds if the interval lies below 1, does not hold if it "
        "lies above 0.8 (the claimed 20% fewer excluded)",
        "below",
        null=1.0,
        claimed=0.8,
    ),
    Claim(
        "Similar or better RMSE than the control",
        rmse_difference,
        "difference below +2% of the control's RMSE (+{margin:.3f} m)",
        "below",
    ),
    Claim(
        "Better structure preservation (straighter walls)",
        structure_difference("lowpass_mae", "low-pass error", "m"),
        "difference below 0",
        "below",
        null=0.0,
    ),
    Claim(
        "Fewer artifacts in uniform regions",
        structure_difference("smooth_roughness_excess", "excess gradient, smooth regions", "m/px"),
        "difference below 0",
        "below",
        null=0.0,
    ),
)
DECOMPOSITION_CLAIMS = (
    Claim("Residual stays small", residual_share, "below 0.25", "below", null=0.25),
    Claim("Residual concentrates near objects (depth edges)", residual_near_edges, "above 1", "above", null=1.0),
    Claim(
        "Base is smooth (room layout), the residual carries the detail",
        base_smoothness,
        "below 0 (the base smoother than the final)",
        "below",
        null=0.0,
    ),
)


def verdicts(results: dict, target: float, proposed: str = PROPOSED) -> list[tuple[str, str, str, str, str]]:
    """Returns (claim, against, measured, criterion, verdict) rows for the guide's claims about the
    variant `proposed` (a base + residual variant in `results`): the comparative ones once per
    control present (the dataset's U-Net, the same-backbone control), the ones about the residual
    alone against none ("—")."""
    rows = []
    for control in CONTROLS:
        if control in results:
            rows += [(claim, control, *rest) for claim, *rest in comparative(results, target, control, proposed)]
    return rows + [(claim, "—", *rest) for claim, *rest in decomposition(results[proposed])]


def comparative(
    results: dict, target: float, control: str, proposed: str = PROPOSED
) -> list[tuple[str, str, str, str]]:
    """Returns (claim, measured, criterion, verdict) for the claims of `proposed` against `control`."""
    base, prop = results[control], results[proposed]
    return [c.answer(c.measure(base, prop, control, target), control=control) for c in COMPARATIVE_CLAIMS]


def decomposition(prop: dict) -> list[tuple[str, str, str, str]]:
    """Returns (claim, measured, criterion, verdict) for the claims about base + residual's own outputs."""
    return [c.answer(c.measure(prop)) for c in DECOMPOSITION_CLAIMS]


def against_controls(results: dict) -> list[list[str]]:
    """Returns, for every variant other than the controls and every control present, the per-seed
    paired differences (variant - control) of test RMSE, low-pass error and excess gradient in smooth
    regions, each as mean [95% interval]."""
    rows = []
    for variant, entry in results.items():
        for control in CONTROLS:
            if variant in CONTROLS or control not in results:
                continue
            cells = [variant, control]
            cells.append(
                paired([t["rmse"] for t in entry["test"]], [t["rmse"] for t in results[control]["test"]]).text()
            )
            for key in ("lowpass_mae", "smooth_roughness_excess"):
                values = [s[key] for s in entry["structure"]]
                cells.append(paired(values, [s[key] for s in results[control]["structure"]]).text())
            rows.append(cells)
    return rows
