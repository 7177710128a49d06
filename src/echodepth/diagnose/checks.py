"""The design guide's "what to look for" and troubleshooting table as named checks.

Each check has one statistic, one threshold and, when unhealthy, the guide's advice as concrete
flags. Thresholds are the guide's words made numbers (the constants below); docs/how-to/diagnose.md
lists them with their advice.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..settings.components import declared_settings
from .saturation import LOCK_NEAR, LOCK_STD, locked_summary

BASE_HF_RATIO_MAX = 0.5  # the base keeps at most half the ground truth's fine detail
RESIDUAL_SHARE_MAX = 0.25  # "residual: small values"
BASE_EXPLAINS_MAX = 0.99  # above this the residual carries under 1% of the final's variation
RESIDUAL_EDGE_RATIO_MIN = 1.0  # "residual: mostly near objects"
RMSE_RATIO_MAX = 0.9  # at least 10% below the better predictor that ignores the audio
VAL_RISE_MAX = 0.2  # the last validation RMSE at most 20% above the best
# residual_near_objects' advice lowers lambda_sparse to this too: in the demo's tuning study
# (docs/tune_demo, 40 trials), both trials with lambda_sparse above 0.2 had the residual off the edges,
# with lambda_base 1.0 and 2.7; each of the 26 trials whose checks were all healthy had lambda_sparse
# below 0.09
SPARSE_FOR_OBJECTS_MAX = 0.05


@dataclass
class Check:
    """One check's outcome: the statistic measured, its value and threshold, whether it is healthy
    and, when not, the guide's symptom, advice and training flags to change."""

    name: str
    statistic: str
    value: float
    threshold: str
    healthy: bool
    symptom: str = ""
    advice: str = ""
    flags: dict = field(default_factory=dict)  # training flags to change: name -> new value
    shortfall: float = 0.0  # how far outside its healthy range, in natural-log units; 0 when healthy

    def to_dict(self) -> dict:
        """Returns the check as a JSON-ready dict (diagnosis.json)."""
        return asdict(self)


def at_most(value: float, limit: float) -> bool:
    """Returns whether a statistic is measured (finite) and at most `limit`: NaN is never healthy."""
    return math.isfinite(value) and value <= limit


def at_least(value: float, limit: float) -> bool:
    """Returns whether a statistic is measured (finite) and at least `limit`."""
    return math.isfinite(value) and value >= limit


# the shortfall of a statistic that could not be measured (NaN): worse than any measured one (a
# residual suppressed to 0.1% of the final's variation falls short by log(10) = 2.3)
NOT_MEASURED_SHORTFALL = 10.0


def beyond(value: float, limit: float, healthy_below: bool = True) -> float:
    """Returns how far a positive statistic lies on the unhealthy side of `limit`, as |log(value /
    limit)| (0 on the healthy side; NOT_MEASURED_SHORTFALL for NaN). Summed over the checks, this is
    `echodepth tune`'s health objective: 0 when every check is healthy."""
    if not math.isfinite(value):
        return NOT_MEASURED_SHORTFALL
    ratio = max(value, 1e-12) / limit
    return max(0.0, math.log(ratio) if healthy_below else -math.log(ratio))


def raised(weight: float, at_least: float) -> float:
    """Returns a loss weight doubled, and at least `at_least` (the guide's suggested value)."""
    return round(max(2 * weight, at_least), 3)


def next_kernel(kernel: int, image_size: int) -> int:
    """Returns the guide's next low-pass kernel: 12 or 16, else double, at most the image side."""
    for k in (12, 16):
        if k > kernel:
            return min(k, image_size)
    return min(2 * kernel, image_size)


def base_smoothness(split: dict, cfg) -> Check:
    """Checks that the base holds little fine detail: its energy above the analysis cutoff over the
    ground truth's, at most BASE_HF_RATIO_MAX."""
    ratio = split["structure"]["base_hf_to_gt"]
    flags = {
        "lambda_base": round(max(2 * cfg.lambda_base, 1.0), 3),
        "lowpass_kernel": next_kernel(cfg.lowpass_kernel, cfg.image_size),
    }
    return Check(
        "base_smoothness",
        f"base energy above 1/{split['analysis_kernel']} cycles/px / the ground truth's",
        ratio,
        f"<= {BASE_HF_RATIO_MAX}",
        at_most(ratio, BASE_HF_RATIO_MAX),
        "Base is too noisy or has sharp edges: it holds fine detail that belongs to the residual",
        "raise lambda_base and lowpass_kernel (the guide: 12 or 16) so the base learns only the room layout",
        flags,
        beyond(ratio, BASE_HF_RATIO_MAX),
    )


def residual_small(split: dict, cfg) -> Check:
    """Checks that the residual stays small: mean |residual| / mean |final|, at most RESIDUAL_SHARE_MAX."""
    share = split["structure"]["residual_share"]
    flags = {
        "lambda_sparse": round(max(2 * cfg.lambda_sparse, 0.1), 3),
        "lambda_base": round(max(2 * cfg.lambda_base, 1.0), 3),
    }
    return Check(
        "residual_small",
        "mean abs(residual) / mean abs(final)",
        share,
        f"<= {RESIDUAL_SHARE_MAX}",
        at_most(share, RESIDUAL_SHARE_MAX),
        "Residual dominates or is very large: the base is not learning the structure",
        "raise lambda_sparse, and lambda_base (the guide: 1.0 or 1.5)",
        flags,
        beyond(share, RESIDUAL_SHARE_MAX),
    )


def base_not_final(split: dict, cfg) -> Check:
    """Checks that the residual is not suppressed: the share of the final's variation the base
    explains, at most BASE_EXPLAINS_MAX."""
    explained = split["base_explains_final"]
    target = 0.05 if cfg.lambda_sparse > 0.05 else 0.01
    return Check(
        "base_not_final",
        "share of the final's variation the base explains, 1 - sum(residual^2) / sum((final - mean)^2)",
        explained,
        f"<= {BASE_EXPLAINS_MAX}",
        at_most(explained, BASE_EXPLAINS_MAX),
        "Base looks identical to final: the residual is suppressed too much",
        "lower lambda_sparse (the guide: 0.05 or 0.01)",
        {"lambda_sparse": target},
        # on the residual's share of the variation (1 - explained), whose limit is 1%
        beyond(1 - explained, 1 - BASE_EXPLAINS_MAX, healthy_below=False)
        if math.isfinite(explained)
        else beyond(explained, 1),
    )


def residual_near_objects(split: dict, cfg) -> Check:
    """Checks that the residual lies near objects: mean |residual| near depth edges over that in
    smooth regions, at least RESIDUAL_EDGE_RATIO_MIN."""
    ratio = split["structure"]["residual_edge_to_smooth"]
    flags = {"lambda_base": raised(cfg.lambda_base, 1.0)}
    advice = "raise lambda_base so the base carries the walls and floor"
    if cfg.lambda_sparse > SPARSE_FOR_OBJECTS_MAX:
        flags["lambda_sparse"] = SPARSE_FOR_OBJECTS_MAX
        advice += (
            f", and lower lambda_sparse to {SPARSE_FOR_OBJECTS_MAX} (a larger one keeps the residual off the edges)"
        )
    return Check(
        "residual_near_objects",
        "mean abs(residual) within a pixel of a >10% depth jump / in smooth regions",
        ratio,
        f">= {RESIDUAL_EDGE_RATIO_MIN}",
        at_least(ratio, RESIDUAL_EDGE_RATIO_MIN),
        "Residual lies in flat regions rather than near objects: the base leaves room structure to it",
        advice,
        flags,
        beyond(ratio, RESIDUAL_EDGE_RATIO_MIN, healthy_below=False),
    )


def reconstruction(split: dict, cfg) -> Check:
    """Checks the reconstruction: RMSE over the better mean-depth predictor's, at most RMSE_RATIO_MAX."""
    rmse = split["metrics"]["rmse"]
    better = min(m["rmse"] for m in split["mean_depth_predictors"].values())
    ratio = rmse / better if better > 0 else math.nan
    return Check(
        "reconstruction",
        f"RMSE ({rmse:.3f} m) / the better mean-depth predictor's ({better:.3f} m)",
        ratio,
        f"<= {RMSE_RATIO_MAX}",
        at_most(ratio, RMSE_RATIO_MAX),
        "Poor reconstruction: the final depth does not match the ground truth much better than ignoring the audio",
        "raise lambda_recon (and train longer)",
        {"lambda_recon": round(2 * cfg.lambda_recon, 3), "epochs": 2 * cfg.epochs},
        beyond(ratio, RMSE_RATIO_MAX),
    )


def no_locked_outputs(split: dict, cfg) -> Check:
    """Checks that no output pixel is locked at a head's bound whatever the recording (saturation.py)."""
    share, where = locked_summary(split["saturation"])
    if cfg.input_norm == "none":
        advice = (
            "retrain with this version (its heads keep a gradient at their bounds); if it persists, centre each "
            "input position so the direct sound's fixed place stops driving the heads"
        )
        flags: dict = {"input_norm": "centre"}
    else:
        advice = "halve the learning rate, so that no head is thrown to its bound early"
        flags = {"learning_rate": cfg.learning_rate / 2}
    return Check(
        "no_locked_outputs",
        f"share of pixels whose base or residual sits within {LOCK_NEAR:.0%} of its bound with a std across "
        f"recordings below {LOCK_STD:.0%} of its range",
        share,
        "== 0",
        share == 0,
        f"Saturated or input-layout-locked outputs: {where}; they ignore the recording and dominate the "
        "residual statistics",
        advice,
        flags,
        math.log1p(1000 * share) if math.isfinite(share) else NOT_MEASURED_SHORTFALL,  # 1 pixel in 1,000: 0.69
    )


def training_stability(history: dict, cfg) -> Check:
    """Checks the training history: no NaN stop, no loss spike, a validation RMSE at most
    VAL_RISE_MAX above its best at the end."""
    problems = []
    if history["stop_reason"]:
        problems.append(f"stopped: {history['stop_reason'].get('reason', 'unknown')}")
    if history["non_finite_epochs"]:
        problems.append(f"non-finite loss in epochs {history['non_finite_epochs']}")
    if history["loss_spikes"]:
        problems.append(f"loss spikes in epochs {history['loss_spikes']}")
    rise = history["val_rise_from_best"]
    if not math.isfinite(rise):
        problems.append("validation RMSE not measured (NaN: no valid depth pixel?)")
    elif rise > VAL_RISE_MAX:
        problems.append(f"last validation RMSE {100 * rise:.0f}% above the best")
    flags = {"use_adaptive_loss": True} if cfg.loss != "adaptive" else {"learning_rate": cfg.learning_rate / 2}
    return Check(
        "training_stability",
        "NaN stops, loss spikes (> 1.5x the lowest before), validation RMSE rise from its best",
        float(len(problems)),
        f"no NaN stop, no spike, rise <= {VAL_RISE_MAX}",
        not problems,
        "Training unstable: " + "; ".join(problems) if problems else "",
        "use the adaptive loss (it balances the weights)" if cfg.loss != "adaptive" else "halve the learning rate",
        flags,
        math.log1p(len(problems)),
    )


SPLIT_CHECKS = (
    no_locked_outputs,
    base_smoothness,
    residual_small,
    base_not_final,
    residual_near_objects,
    reconstruction,
)
DECOMPOSING_MODEL_CHECKS = ("base_smoothness", "residual_small", "base_not_final", "residual_near_objects")


NOT_MEASURED = "not measured (NaN): the split has no valid depth pixel at the training size, or a metric failed"


def run_checks(split: dict, history: dict, cfg, decomposes: bool) -> list[Check]:
    """Returns every check; a model without a residual (the baseline) gets only the ones that apply.
    A statistic that is NaN is unhealthy, its symptom saying it was not measured."""
    checks = [check(split, cfg) for check in SPLIT_CHECKS]
    for check in checks:
        if not math.isfinite(check.value):
            check.symptom = NOT_MEASURED
    if not decomposes:
        checks = [c for c in checks if c.name not in DECOMPOSING_MODEL_CHECKS]
    checks.append(training_stability(history, cfg))
    in_force = set(cfg.to_dict())  # advice in a setting of another component would be refused by `train`
    for c in checks:
        left_out = [name for name in c.flags if name not in in_force]
        c.flags = {name: value for name, value in c.flags.items() if name in in_force}
        if left_out:  # the prose names them: say they do not apply to this run
            kinds = {declared_settings()[name].kind for name in left_out}
            chosen = ", ".join(f"--{kind} {getattr(cfg, kind)}" for kind in sorted(kinds))
            c.advice += f" ({' and '.join(left_out)} {'does' if len(left_out) == 1 else 'do'} not apply to {chosen})"
    return checks
