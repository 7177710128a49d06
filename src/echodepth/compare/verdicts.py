"""The design guide's claims, each with what was measured, the criterion and a verdict."""

from __future__ import annotations

import math

import numpy as np

from .results import epochs_to_target, fmt, mean_curve, mean_std
from .variants import BASELINE, PROPOSED


def verdicts(results: dict, target: float) -> list[tuple[str, str, str, str]]:
    """Returns (claim, measured, criterion, verdict) rows for the guide's claims."""
    base, prop = results[BASELINE], results[PROPOSED]
    rows = []

    def compare_lower(claim, measured_b, measured_p, label, unit="m"):
        (mb, sb), (mp, sp) = mean_std(measured_b), mean_std(measured_p)
        spread = max(sb, sp)
        if not (np.isfinite(mb) and np.isfinite(mp)):
            verdict = "not measurable"
        elif abs(mp - mb) <= spread:
            verdict = "inconclusive (difference within one std over seeds)"
        else:
            verdict = "holds" if mp < mb else "does not hold"
        rows.append(
            (
                claim,
                f"{label}: base+residual {fmt(mp, sp)} vs baseline {fmt(mb, sb)} {unit}",
                "lower than the baseline by more than one std",
                verdict,
            )
        )

    prop_curve = mean_curve(prop["curves"])
    eb, ep = epochs_to_target(mean_curve(base["curves"]), target), epochs_to_target(prop_curve, target)
    if not np.isfinite(ep):
        verdict = "does not hold"
        measured = (
            f"the seed-mean validation RMSE of base+residual never reached {target:.3f} m in {len(prop_curve)} "
            f"epochs (baseline: epoch {fmt(eb, digits=0)})"
        )
    else:
        ratio = ep / eb if np.isfinite(eb) and eb > 0 else math.nan
        verdict = "holds" if ratio <= 0.8 else "does not hold"
        measured = (
            f"seed-mean curve reaches {target:.3f} m at epoch {ep:.0f} vs {fmt(eb, digits=0)} for the baseline "
            f"(ratio {fmt(ratio, digits=2)})"
        )
    rows.append(("Faster convergence: 20-30% fewer epochs to a target RMSE", measured, "ratio <= 0.80", verdict))

    rb, rp = mean_std([t["rmse"] for t in base["test"]]), mean_std([t["rmse"] for t in prop["test"]])
    similar = rp[0] <= rb[0] * 1.02 or rp[0] - rb[0] <= max(rb[1], rp[1])
    rows.append(
        (
            "Similar or better RMSE than the baseline",
            f"test RMSE {fmt(*rp)} vs {fmt(*rb)} m",
            "at most 2% (or one std) above the baseline",
            "holds" if similar else "does not hold",
        )
    )
    compare_lower(
        "Better structure preservation (straighter walls)",
        [s["lowpass_mae"] for s in base["structure"]],
        [s["lowpass_mae"] for s in prop["structure"]],
        "low-pass error",
    )
    compare_lower(
        "Fewer artifacts in uniform regions",
        [s["smooth_roughness_excess"] for s in base["structure"]],
        [s["smooth_roughness_excess"] for s in prop["structure"]],
        "excess gradient in smooth regions",
        "m/px",
    )
    share = mean_std([s["residual_share"] for s in prop["structure"]])
    rows.append(
        (
            "Residual stays small",
            f"mean abs(residual) / mean abs(final) = {fmt(*share)}",
            "< 0.25",
            "holds" if share[0] < 0.25 else "does not hold",
        )
    )
    where = mean_std([s["residual_edge_to_smooth"] for s in prop["structure"]])
    rows.append(
        (
            "Residual concentrates near objects (depth edges)",
            f"mean abs(residual) near edges / in smooth regions = {fmt(*where, digits=2)}",
            "> 1",
            "holds" if where[0] > 1 else "does not hold",
        )
    )
    b_hf = mean_std([s["base_hf_share"] for s in prop["structure"]])
    f_hf = mean_std([s["final_hf_share"] for s in prop["structure"]])
    rows.append(
        (
            "Base is smooth (room layout), the residual carries the detail",
            f"high-frequency energy share: base {fmt(*b_hf)} vs final {fmt(*f_hf)}",
            "base share below the final's",
            "holds" if b_hf[0] < f_hf[0] else "does not hold",
        )
    )
    return rows
