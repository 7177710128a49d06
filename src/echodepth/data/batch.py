"""The batch contract: what a data loader yields, and what training, inference and evaluation read.

A loader over either dataset (`EchoDepthDataset` sample by sample, `CachedDataset` a whole batch
per read) yields a dict; `collate_batch` is its collate function. Keys as the loader yields them:

| key             | shape        | dtype                       | unit                                | from           |
|-----------------|--------------|-----------------------------|-------------------------------------|----------------|
| `feature_image` | (B, C, H, W) | float16 (cache) or float32  | feature values (e.g. STFT magnitude) | both          |
| `waveform`      | (B, 2, L)    | float32                     | full scale 1.0; the cut window      | uncached (1)   |
| `depth_mm`      | (B, 1, h, w) | uint16                      | millimetres, 0 = invalid            | the cache      |
| `depth_m`       | (B, 1, h, w) | float32                     | metres, 0 = invalid                 | uncached       |
| `valid`         | (B, 1, h, w) | bool                        | depth > 0                           | uncached       |
| `index`         | (B,)         | int64                       | the dataset's row (`sample_files`)  | both           |

(1) a dataset built with `waveforms=True` gives `waveform` instead of `feature_image`. (H, W) is
the feature image size (`FeatureConfig.image_size`), (h, w) the depth maps' (`depth_size`), the
training image size. Depth is clipped to the max depth. A consumer moves the batch to its device,
then calls `with_feature_image` (the waveforms' STFTs in one batched pass on that device) and
`prepare_batch`, which gives every batch one form whichever path made it: float32
`feature_image`, float32 `depth_m` (metres), float32 `depth_norm` (depth / max depth, in [0, 1]),
bool `valid` (depth_m > 0) and `index`; a `depth_mm` stays as it came.
"""

from __future__ import annotations

import torch

from ..units import depth_m_to_norm

FEATURE_IMAGE = "feature_image"  # the batch key of the network's input


def collate_batch(items):
    """Returns a batch (see the module docstring): a list of dataset items stacked by torch's
    `default_collate`, or a batch a `CachedDataset.__getitems__` already made, passed through."""
    if isinstance(items, dict):
        return items
    return torch.utils.data.default_collate(items)


def prepare_batch(batch: dict, max_depth_m: float) -> dict:
    """Returns the batch with float32 `feature_image`, `depth_m` (metres), `depth_norm` (depth / max
    depth) and a bool `valid` mask, whichever path (cached or per-sample) made it. A batch of
    waveforms (`with_feature_image` turns it into feature images) passes its `waveform` through.
    A batch with neither `depth_mm` nor `depth_m` raises KeyError (a bug of the caller)."""
    depth_m = batch["depth_mm"].float() / 1000.0 if "depth_mm" in batch else batch["depth_m"].float()
    return {
        **batch,
        **({FEATURE_IMAGE: batch[FEATURE_IMAGE].float()} if FEATURE_IMAGE in batch else {}),
        "depth_m": depth_m,
        "depth_norm": depth_m_to_norm(depth_m, max_depth_m),
        "valid": depth_m > 0,
    }


def with_feature_image(batch: dict, feature_extractor) -> dict:
    """Returns the batch with its (B, 2, L) `waveform` replaced by the (B, C, H, W) `feature_image`
    that `feature_extractor` (an `AudioFeatures`) makes of it, in one batched pass wherever the
    batch lies (the GPU for training); a batch without a waveform is returned as it is."""
    if "waveform" not in batch:
        return batch
    with torch.no_grad():
        feature_image = feature_extractor.image(batch["waveform"])  # the items hold windows already cut
    return {k: v for k, v in batch.items() if k != "waveform"} | {FEATURE_IMAGE: feature_image}
