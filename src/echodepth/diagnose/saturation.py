"""Saturated or input-layout-locked outputs: per depth-map pixel, how each head's output spreads
across recordings and how close it sits to the head's bound.

A bounded head (sigmoid base, tanh residual) pushed to its bound gets almost no gradient; a pixel
fed the same input in every recording (the direct sound's fixed place in the feature image) can get
pushed there and stay, whatever the recording (a demo run's top-left residual sat at -5.00 m, std
below 0.005 m over 200 recordings, holding half of all |residual|).
"""

from __future__ import annotations

import math

import torch

NEAR_BOUND = 0.01  # "at its bound": within 1% of the head's range of a bound
LOCK_NEAR = 0.05  # a locked pixel's mean lies within 5% of the range of a bound ...
LOCK_STD = 0.01  # ... and its std across recordings is below 1% of the range


class PixelSpread:
    """Accumulates, per head and pixel, the sum and sum of squares over recordings, and the number of
    values within NEAR_BOUND of a bound. `bounds`: head name -> (low, high) in metres."""

    def __init__(self, bounds: dict[str, tuple[float, float]]):
        self.bounds = bounds
        self.sums: dict[str, list] = {}
        self.n = 0

    @classmethod
    def for_predictor(cls, predictor) -> PixelSpread:
        """Returns an empty spread over a predictor's heads, bounds in metres (`head_bounds()` of the
        network in normalised depth times max depth; a network without it: the sigmoid base's [0, 1])."""
        bounds = getattr(predictor.network, "head_bounds", lambda: {"base": (0.0, 1.0)})()
        return cls({k: (lo * predictor.max_depth_m, hi * predictor.max_depth_m) for k, (lo, hi) in bounds.items()})

    def add(self, maps: dict[str, torch.Tensor]) -> None:
        """Adds a batch: head name -> (B, 1, H, W) metres (heads without bounds are ignored)."""
        for name, (low, high) in self.bounds.items():
            x = maps[name].double()
            margin = NEAR_BOUND * (high - low)
            near = ((x <= low + margin) | (x >= high - margin)).double()
            batch_sums = [x.sum(0)[0], (x * x).sum(0)[0], near.sum(0)[0]]  # each (H, W)
            old = self.sums.get(name)
            self.sums[name] = batch_sums if old is None else [a + b for a, b in zip(old, batch_sums)]
        self.n += len(next(iter(maps.values())))

    def summary(self) -> dict:
        """Returns per head: the share of output values within 1% of a bound, the share of pixels
        saturated across recordings (their mean over the recordings within 1% of the range of a bound;
        target 0), and the locked pixels (mean within 5% of the range of
        a bound, std across recordings below 1% of it) as [row, column, mean metres, std metres];
        `pixels`: H * W."""
        out: dict = {"recordings": self.n, "heads": {}}
        for name, (total, squares, near) in self.sums.items():
            low, high = self.bounds[name]
            span = high - low
            mean = total / self.n
            std = (squares / self.n - mean * mean).clamp(min=0).sqrt()
            distance = torch.minimum(mean - low, high - mean)
            at_bound = distance <= LOCK_NEAR * span
            locked = (at_bound & (std <= LOCK_STD * span)).nonzero().tolist()
            out["pixels"] = mean.numel()
            out["heads"][name] = {
                "bounds_m": [low, high],
                "share_within_1pct_of_bound": float(near.sum() / (self.n * mean.numel())),
                "share_of_pixels_saturated": float((distance <= NEAR_BOUND * span).double().mean()),
                "locked": [[r, c, float(mean[r, c]), float(std[r, c])] for r, c in locked],
            }
        return out


def saturation_shares(summary: dict) -> dict[str, float]:
    """Returns, from `PixelSpread.summary()`, the largest share over heads of pixels saturated across
    recordings (`saturated_pixel_share`) and the share of pixels where some head is locked
    (`locked_pixel_share`); NaN for both when no recording was measured."""
    locked, _ = locked_summary(summary)
    heads = summary.get("heads", {}).values()
    saturated = max((h["share_of_pixels_saturated"] for h in heads), default=math.nan)
    return {"saturated_pixel_share": saturated if summary.get("recordings") else math.nan, "locked_pixel_share": locked}


def locked_summary(saturation: dict) -> tuple[float, str]:
    """Returns (share of depth-map pixels where some head is locked, a description of the first few);
    the share is NaN when no recording was measured."""
    if not saturation.get("recordings"):
        return math.nan, "no recording measured"
    pixels = {(r, c) for head in saturation["heads"].values() for r, c, _, _ in head["locked"]}
    words = []
    for name, head in saturation["heads"].items():
        if head["locked"]:
            r, c, mean, std = head["locked"][0]
            words.append(
                f"{name} locked at {len(head['locked'])} pixel(s), e.g. row {r}, column {c}: {mean:+.2f} m "
                f"(std {std:.3f} m over {saturation['recordings']} recordings, bounds {head['bounds_m'][0]:+.2f} "
                f"to {head['bounds_m'][1]:+.2f} m)"
            )
    return len(pixels) / max(saturation.get("pixels", 1), 1), "; ".join(words)
