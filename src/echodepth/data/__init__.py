"""Datasets (BatVision V1, V2, synthetic), audio features, the feature cache and data checks.

Importing this package registers the built-in dataset layouts and audio features.
"""

from ..errors import DataError
from .binaural import EAR_SPACING_M, GccPhat, InterauralLevelPhase
from .cache import CachedDataset, build_cache, collate_batch, prepare_batch, with_features
from .cache_files import in_use_lock
from .check import check_dataset
from .datasets import DATASETS, EchoDepthDataset, build_dataset
from .features import FEATURES, AudioFeature, AudioFeatures, FeatureConfig, cut_length, mel_filterbank
from .layouts import BatvisionV1, BatvisionV2, SyntheticDataset

__all__ = [
    "DATASETS",
    "EAR_SPACING_M",
    "FEATURES",
    "AudioFeature",
    "AudioFeatures",
    "BatvisionV1",
    "BatvisionV2",
    "CachedDataset",
    "DataError",
    "EchoDepthDataset",
    "FeatureConfig",
    "GccPhat",
    "InterauralLevelPhase",
    "SyntheticDataset",
    "build_cache",
    "in_use_lock",
    "build_dataset",
    "check_dataset",
    "collate_batch",
    "prepare_batch",
    "with_features",
    "cut_length",
    "mel_filterbank",
]
