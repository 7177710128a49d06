"""Re-implementations of the two published evaluations, written from their code, to hold echodepth's
`batvision` and `htf` protocols against (tests/test_published_protocols.py).

Each follows its source line by line in numpy (and torch where the source uses torchvision), one
image at a time, in the source's dtypes, with none of echodepth's code:
- BatVision: github.com/AmandineBtto/Batvision-Dataset, UNetSoundOnly/ at commit bfeef8d (test.py at
  bcfb2f3);
- HTF-EchoDepth: github.com/HTFEchoDepth/HTF-EchoDepth at daeb7fa (files unchanged up to e332aa4).

torchvision is not a dependency of echodepth: `to_tensor` and `torchvision_resize` restate the two
torchvision functions the loaders call, for a float numpy map and a float tensor
(torchvision/transforms/functional.py `to_tensor`; transforms/_functional_tensor.py `resize`, which
calls `torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=...)`).
They were checked once against the real torchvision: `Resize` on a tensor equals `antialias=False` in
torchvision 0.15.2 and `antialias=True` in 0.28.0, bit for bit, on a 720 x 1280 float32 map.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(pic: np.ndarray) -> torch.Tensor:
    """torchvision `ToTensor` for an (H, W) float array: (1, H, W), same dtype, no scaling (only uint8
    is divided by 255)."""
    if pic.ndim == 2:
        pic = pic[:, :, None]
    return torch.from_numpy(pic.transpose((2, 0, 1))).contiguous()


def torchvision_resize(img: torch.Tensor, size: int, antialias: bool) -> torch.Tensor:
    """torchvision `Resize((size, size))` of a (C, H, W) float tensor: bilinear, align_corners False.
    `antialias` is what the default resolves to: False before 0.17 ('warn' -> False in 0.15 / 0.16
    for a tensor), True from 0.17 on."""
    batch = img.unsqueeze(0)  # _cast_squeeze_in: NCHW; float32 / float64 kept
    out = F.interpolate(batch, size=[size, size], mode="bilinear", align_corners=False, antialias=antialias)
    return out.squeeze(0)


def min_max_norm(tensor: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """`MinMaxNorm` (BatVision dataloader/utils_dataset.py lines 31-47; HTF data/transforms.py lines
    9-23) of a 1-channel tensor: (x - min) / (max - min), bounds as float32 0-d tensors."""
    low_t, high_t = torch.tensor(low), torch.tensor(high)
    return (tensor - low_t) / (high_t - low_t)


@contextlib.contextmanager
def quiet_numpy():
    """Silences numpy's warnings (division by zero, the mean of an empty slice, an all-NaN nanmean):
    the published code runs with them on, and they change no value."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# --- BatVision dataset paper (IROS 2023), UNetSoundOnly/


def batvision_ground_truth(depth_file: np.ndarray, max_depth: float = 30.0, size: int = 256) -> np.ndarray:
    """The (1, size, size) float32 ground truth in metres that test.py scores, from a depth file's array
    in millimetres: dataloader/BatvisionV2_Dataset.py lines 45-51 (float32, / 1000, values above
    max_depth set to it), dataloader/utils_dataset.py lines 10-28 (ToTensor, Resize, MinMaxNorm),
    test.py lines 109-111 (x max_depth, in numpy). No torchvision pinned: Resize before 0.17."""
    depth = depth_file.astype(np.float32)
    depth = depth / 1000
    depth[depth > max_depth] = max_depth
    tensor = min_max_norm(torchvision_resize(to_tensor(depth), size, antialias=False), 0.0, max_depth)
    return tensor.numpy() * max_depth


def batvision_compute_errors(gt: np.ndarray, pred: np.ndarray) -> tuple[float, ...]:
    """utils_criterion.py lines 5-40, `compute_errors(gt, pred)`: over pixels with gt > 0, in the
    arrays' dtype (float32 in test.py), no clamp; rmse, deltas, abs_rel, log10 and mae that are NaN
    (`x != x`) become 0.0. Returns (abs_rel, rmse, a1, a2, a3, log_10, mae)."""
    counted = gt > 0
    g, p = gt[counted], pred[counted]
    with quiet_numpy():
        ratio = np.maximum(g / p, p / g)
        a1, a2, a3 = ((ratio < 1.25**k).mean() for k in (1, 2, 3))
        rmse = np.sqrt(((g - p) ** 2).mean())
        abs_rel = np.mean(np.abs(g - p) / g)
        log_10 = np.abs(np.log10(g) - np.log10(p)).mean()
        mae = np.abs(g - p).mean()
    values = [abs_rel, rmse, a1, a2, a3, log_10, mae]
    return tuple(0.0 if v != v else v for v in values)


def batvision_test(gts: list[np.ndarray], preds: list[np.ndarray]) -> dict[str, float]:
    """test.py lines 106-128 with batch size 1 (conf/mode/test.yaml): `compute_errors` per image, then
    `np.array(errors).mean(0)` over every image. Keys are echodepth's metric names."""
    errors = [batvision_compute_errors(g, p) for g, p in zip(gts, preds, strict=True)]
    means = np.array(errors).mean(0)
    return dict(zip(("abs_rel", "rmse", "delta1", "delta2", "delta3", "log10", "mae"), means.tolist(), strict=True))


# --- HTF-EchoDepth, htf_echodepth/ and scripts/

HTF_EPS = 1e-6  # htf_echodepth/metrics/depth_metrics.py line 9


def htf_ground_truth(depth_file: np.ndarray, max_depth: float = 30.0, size: int = 256) -> np.ndarray:
    """The (1, size, size) float32 ground truth in metres that eval_bv2.py scores, from a depth file's
    array in millimetres: data/bv2_dataset.py lines 111-115 (float32, / 1000.0, np.clip to [0, max]),
    lines 127-128 with data/transforms.py lines 30-39 (ToTensor, Resize, MinMaxNorm), then
    scripts/eval_bv2.py line 29 (the "depth" item x max_depth in numpy). torchvision >= 0.17 (the
    verified PyTorch 2.11 stack): Resize antialiases."""
    depth = np.clip(depth_file.astype(np.float32) / 1000.0, 0.0, max_depth)
    tensor = min_max_norm(torchvision_resize(to_tensor(depth), size, antialias=True), 0.0, max_depth)
    return tensor.numpy() * max_depth


def htf_evaluate_sample(gt: np.ndarray, pred: np.ndarray, valid_min_depth: float = 0.5) -> dict[str, float]:
    """depth_metrics.py lines 14-67, `evaluate_sample`: float64, pixels gt >= 0.5 m, an empty mask
    scores 0 everywhere, both depths clamped below at 1e-6, log10 a nanmean, non-finite -> 0. Adds
    `mae` (not in the published code) the way `rel` is computed."""
    g_all = np.asarray(gt, dtype=np.float64).squeeze()
    counted = g_all >= float(valid_min_depth)
    g = g_all[counted]
    p = np.asarray(pred, dtype=np.float64).squeeze()[counted]
    keys = ("rmse", "abs_rel", "log10", "delta1", "delta2", "delta3", "mae")
    if g.size == 0:
        return dict.fromkeys(keys, 0.0)
    g = np.maximum(g, HTF_EPS)
    p = np.maximum(p, HTF_EPS)
    with quiet_numpy():
        ratio = np.maximum(g / p, p / g)
        values = {
            "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
            "abs_rel": float(np.mean(np.abs(g - p) / g)),
            "log10": float(np.nanmean(np.abs(np.log10(g) - np.log10(p)))),
            "delta1": float((ratio < 1.25).mean()),
            "delta2": float((ratio < 1.25**2).mean()),
            "delta3": float((ratio < 1.25**3).mean()),
            "mae": float(np.mean(np.abs(g - p))),
        }
    return {k: v if np.isfinite(v) else 0.0 for k, v in values.items()}


def htf_aggregate(gts: list[np.ndarray], preds: list[np.ndarray]) -> dict[str, float]:
    """depth_metrics.py lines 70-79, `aggregate_samples`: the plain mean of each metric over every sample."""
    rows = [htf_evaluate_sample(g, p) for g, p in zip(gts, preds, strict=True)]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
