"""Depth units. Networks work in normalised depth (`depth_norm` = depth / max depth, in [0, 1]);
everything a user sees is in metres (`*_m`). These two functions are the only conversions."""

from __future__ import annotations


def depth_norm_to_m(depth_norm, max_depth_m: float):
    """Returns normalised depth (a tensor or array) in metres."""
    return depth_norm * max_depth_m


def depth_m_to_norm(depth_m, max_depth_m: float):
    """Returns depth in metres (a tensor or array) as normalised depth."""
    return depth_m / max_depth_m
