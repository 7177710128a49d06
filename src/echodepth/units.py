"""Depth units. Networks work in normalised depth (`depth_norm` = depth / max depth, in [0, 1]);
everything a user sees is in metres (`*_m`). These two functions are the only conversions between
them; depth files are read in their own unit (`DEPTH_UNITS_PER_M`), checked by `check_depth_unit`."""

from __future__ import annotations

import math

from .errors import DataError

DEPTH_UNITS_PER_M = {"mm": 1000.0, "cm": 100.0, "m": 1.0}  # a depth file's values per metre
MIN_MEDIAN_DEPTH_M = 0.1  # a room seen from 10 cm away: a larger unit read as a smaller one
MAX_MEDIAN_DEPTH_RATIO = 3.0  # median beyond 3 x max depth: a smaller unit read as a larger one


def depth_norm_to_m(depth_norm, max_depth_m: float):
    """Returns normalised depth (a tensor or array) in metres."""
    return depth_norm * max_depth_m


def depth_m_to_norm(depth_m, max_depth_m: float):
    """Returns depth in metres (a tensor or array) as normalised depth."""
    return depth_m / max_depth_m


def check_depth_unit(median_m: float, unit: str, max_depth_m: float, name: str) -> None:
    """Raises a DataError naming `name`, with the unit that fits as a hint, when a depth map's
    median valid depth (metres, its values read as `unit`) is implausible: under
    MIN_MEDIAN_DEPTH_M or beyond MAX_MEDIAN_DEPTH_RATIO x max depth."""
    too_near = median_m < MIN_MEDIAN_DEPTH_M
    if not too_near and median_m <= MAX_MEDIAN_DEPTH_RATIO * max_depth_m:
        return
    value = median_m * DEPTH_UNITS_PER_M[unit]  # the median as stored in the file
    upper_m = MAX_MEDIAN_DEPTH_RATIO * max_depth_m
    fits = [u for u, per_m in DEPTH_UNITS_PER_M.items() if MIN_MEDIAN_DEPTH_M <= value / per_m <= upper_m]
    centre_m = math.sqrt(MIN_MEDIAN_DEPTH_M * upper_m)  # the likeliest unit puts the median nearest the middle
    fits.sort(key=lambda u: abs(math.log(value / DEPTH_UNITS_PER_M[u] / centre_m)))
    why = "too near for a room" if too_near else f"beyond {MAX_MEDIAN_DEPTH_RATIO:g} x max depth {max_depth_m:g} m"
    hint = f"if the file holds {fits[0]}, state it with --depth_unit {fits[0]}" if fits else "check the file's unit"
    raise DataError(f"{name}: median depth {median_m:.4g} m reading its values as {unit} ({why}); {hint}")
