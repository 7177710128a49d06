"""Datasets (BatVision V1, V2, synthetic), audio features, the batch contract, the feature cache and data checks.

Importing this package registers the built-in dataset layouts and audio features.
"""

from ..errors import DataError
from .batch import FEATURE_IMAGE, collate_batch, prepare_batch, with_feature_image
from .binaural import EAR_SPACING_M, GccPhat, InterauralLevelPhase
from .cache import CachedDataset, build_cache
from .cache_files import in_use_lock
from .check import check_dataset
from .datasets import DATASETS, EchoDepthDataset, build_dataset
from .features import FEATURES, AudioFeature, AudioFeatures, FeatureConfig, cut_length, mel_filterbank
from .layouts import BatvisionV1, BatvisionV2, SyntheticDataset

__all__ = [
    "DATASETS",
    "EAR_SPACING_M",
    "FEATURE_IMAGE",
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
    "with_feature_image",
    "cut_length",
    "mel_filterbank",
]
