"""Metrics: the evaluation protocol's depth metrics and the structure metrics."""

from .protocol import METRIC_KEYS, MIN_DEPTH_M, aggregate, depth_metrics, per_image_metrics
from .protocols import DEFAULT_PROTOCOL, PROTOCOLS, EvalProtocol, get_protocol, protocol_metrics, protocol_per_image
from .structure import (
    analysis_kernel,
    depth_edges,
    finish_structure,
    high_frequency_share,
    structure_sums,
)

__all__ = [
    "DEFAULT_PROTOCOL",
    "EvalProtocol",
    "PROTOCOLS",
    "get_protocol",
    "protocol_metrics",
    "protocol_per_image",
    "METRIC_KEYS",
    "MIN_DEPTH_M",
    "aggregate",
    "analysis_kernel",
    "depth_edges",
    "depth_metrics",
    "finish_structure",
    "high_frequency_share",
    "per_image_metrics",
    "structure_sums",
]
