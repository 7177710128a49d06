"""The design guide's claims, each answered with a per-seed measurement, a 95% bootstrap interval
and a verdict (see stats.py: holds / does not hold / undecided)."""

from __future__ import annotations

import math

from .stats import Interval, bootstrap, censored_epochs, decide, paired
from .variants import CONTROLS, PROPOSED

SIMILAR_MARGIN = 0.02  # "similar RMSE": at most 2% of the control's mean above it


def default_target(results: dict) -> float:
    """Returns the largest of every run's best validation RMSE over the controls and base +
    residual: the best RMSE that every run reaches, so that no seed is censored."""
    bests = [min(c) for v in (*CONTROLS, PROPOSED) if v in results for c in results[v]["curves"]]
    return float(max(bests))


def _seeds(values) -> str:
    return ", ".join("n/a" if not math.isfinite(v) else f"{v:.3f}" for v in values)


def _row(claim: str, measured: str, criterion: str, interval: Interval, direction: str, null: float, claimed=None):
    return (claim, measured, criterion, decide(interval, direction, null, claimed))


def verdicts(results: dict, target: float) -> list[tuple[str, str, str, str, str]]:
    """Returns (claim, against, measured, criterion, verdict) rows for the guide's claims: the
    comparative ones once per control present (the dataset's U-Net, the same-backbone control),
    the ones about the residual alone against none ("—")."""
    rows = []
    for control in CONTROLS:
        if control in results:
            rows += [(claim, control, *rest) for claim, *rest in comparative(results, target, control)]
    return rows + [(claim, "—", *rest) for claim, *rest in decomposition(results[PROPOSED])]


def comparative(results: dict, target: float, control: str) -> list[tuple[str, str, str, str]]:
    """Returns (claim, measured, criterion, verdict) for the claims of base + residual against `control`."""
    base, prop = results[control], results[PROPOSED]
    rows = []

    ep_b = [censored_epochs(c, target) for c in base["curves"]]
    ep_p = [censored_epochs(c, target) for c in prop["curves"]]
    ratio = bootstrap([p / b for (p, _), (b, _) in zip(ep_p, ep_b)])
    missed = sum(not r for _, r in ep_b + ep_p)
    inside = ratio.low <= 0.8 and ratio.high >= 0.7
    rows.append(
        _row(
            "Faster convergence: 20-30% fewer epochs to a target RMSE",
            f"epochs to {target:.3f} m per seed: base+residual {[int(e) for e, _ in ep_p]}, {control} "
            f"{[int(e) for e, _ in ep_b]}"
            + (f" ({missed} run(s) never reached it, counted as one epoch past the last)" if missed else "")
            + f"; ratio {ratio.text(2, signed=False)}; the claimed 0.70-0.80 is "
            f"{'inside' if inside else 'outside'} the interval",
            f"per-seed ratio base+residual / {control}: holds if the interval lies below 1, does not hold if it "
            "lies above 0.8 (the claimed 20% fewer excluded)",
            ratio,
            "below",
            1.0,
            0.8,
        )
    )
    rmse_b = [t["rmse"] for t in base["test"]]
    rmse_p = [t["rmse"] for t in prop["test"]]
    diff = paired(rmse_p, rmse_b)
    margin = SIMILAR_MARGIN * bootstrap(rmse_b).mean
    rows.append(
        _row(
            "Similar or better RMSE than the control",
            f"test RMSE per seed: base+residual {_seeds(rmse_p)}, {control} {_seeds(rmse_b)} m; "
            f"difference {diff.text()} m",
            f"difference below +2% of the control's RMSE (+{margin:.3f} m)",
            diff,
            "below",
            margin,
        )
    )
    for claim, key, label, unit in (
        ("Better structure preservation (straighter walls)", "lowpass_mae", "low-pass error", "m"),
        ("Fewer artifacts in uniform regions", "smooth_roughness_excess", "excess gradient, smooth regions", "m/px"),
    ):
        values_b = [s[key] for s in base["structure"]]
        values_p = [s[key] for s in prop["structure"]]
        d = paired(values_p, values_b)
        rows.append(
            _row(
                claim,
                f"{label} per seed: base+residual {_seeds(values_p)}, {control} {_seeds(values_b)} {unit}; "
                f"difference {d.text()} {unit}",
                "difference below 0",
                d,
                "below",
                0.0,
            )
        )
    return rows


def decomposition(prop: dict) -> list[tuple[str, str, str, str]]:
    """Returns (claim, measured, criterion, verdict) for the claims about base + residual's own outputs."""
    rows = []
    share = bootstrap([s["residual_share"] for s in prop["structure"]])
    rows.append(
        _row(
            "Residual stays small",
            f"mean abs(residual) / mean abs(final) per seed {_seeds(share.values)}; mean {share.text(signed=False)}",
            "below 0.25",
            share,
            "below",
            0.25,
        )
    )
    where = bootstrap([s["residual_edge_to_smooth"] for s in prop["structure"]])
    rows.append(
        _row(
            "Residual concentrates near objects (depth edges)",
            f"mean abs(residual) near edges / in smooth regions per seed {_seeds(where.values)}; "
            f"mean {where.text(2, signed=False)}",
            "above 1",
            where,
            "above",
            1.0,
        )
    )
    hf = paired([s["base_hf_share"] for s in prop["structure"]], [s["final_hf_share"] for s in prop["structure"]])
    rows.append(
        _row(
            "Base is smooth (room layout), the residual carries the detail",
            f"high-frequency energy share, base - final, per seed {_seeds(hf.values)}; mean {hf.text()}",
            "below 0 (the base smoother than the final)",
            hf,
            "below",
            0.0,
        )
    )
    return rows


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
