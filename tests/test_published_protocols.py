"""echodepth's `batvision` and `htf` protocols against re-implementations of the published code
(tests/published_reference.py, which names the files and lines it follows): the ground truth made
from a full-resolution depth file, and every metric on seeded random arrays with the edge cases
(images without a valid pixel, zero, negative, NaN and infinite predictions, NaN ground truth,
depths beyond 30 m, tiny values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from echodepth.data import build_dataset
from echodepth.evaluate import ProtocolGroundTruth
from echodepth.metrics import METRIC_KEYS, get_protocol, protocol_metrics

from .helpers import make_v2
from .published_reference import (
    batvision_compute_errors,
    batvision_ground_truth,
    batvision_test,
    htf_aggregate,
    htf_evaluate_sample,
    htf_ground_truth,
)

SIDE = 64  # metric arrays: 4 images of 64 x 64 (the metrics do not depend on the grid's size)
N_PIXELS = SIDE * SIDE


def mean_rtol(dtype) -> float:
    """Relative tolerance between a per-image mean computed by numpy and by torch: numpy sums pairwise
    and torch in another order, each within about log2(n) roundings of the exact sum; a few more for
    the per-pixel operations (division, log10 within an ulp in either library)."""
    return (math.log2(N_PIXELS) + 4) * float(np.finfo(dtype).eps)


def depths(rng: np.random.Generator, shape, low=0.05, high=30.0) -> np.ndarray:
    """Returns float32 depths in metres drawn log-uniformly in [low, high]."""
    return np.exp(rng.uniform(np.log(low), np.log(high), shape)).astype(np.float32)


def scenario(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (gt, pred): (4, 1, SIDE, SIDE) float32 metres for one named case, from a local generator.
    The ground truth is what a loader could hand over (zeros for invalid pixels) before its clip."""
    rng = np.random.default_rng(seed)
    shape = (4, 1, SIDE, SIDE)
    gt = depths(rng, shape)
    gt[rng.random(shape) < 0.22] = 0.0  # about 22% invalid, as in BatVision V2's maps
    pred = (gt * np.exp(rng.normal(0.0, 0.3, shape))).astype(np.float32)  # mostly within the deltas' range
    pred[gt == 0] = depths(rng, int((gt == 0).sum()))
    if name == "empty images":
        gt[1] = 0.0  # no valid pixel under either protocol
        gt[3] = rng.uniform(0.01, 0.49, gt[3].shape)  # valid for batvision (gt > 0), none for htf (gt >= 0.5)
    elif name == "zero and negative predictions":
        pick = rng.random(shape)
        pred[pick < 0.1] = 0.0
        pred[(pick >= 0.1) & (pick < 0.2)] = -rng.uniform(0.01, 5.0, int(((pick >= 0.1) & (pick < 0.2)).sum()))
        pred[2] = -1.0  # an image predicted wholly negative
    elif name == "NaN predictions":
        pred[rng.random(shape) < 0.05] = np.nan
        pred[1] = np.nan  # an image predicted wholly NaN
    elif name == "infinite predictions":
        pick = rng.random(shape)
        pred[pick < 0.03] = np.inf
        pred[pick > 0.97] = -np.inf
        pred[0, 0, 0, 0] = np.inf
    elif name == "NaN ground truth":
        gt[rng.random(shape) < 0.05] = np.nan
        gt[2] = np.nan  # a map without one number
    elif name == "ground truth beyond 30 m and infinite":
        gt[rng.random(shape) < 0.1] = 45.0
        gt[rng.random(shape) < 0.02] = np.inf
        gt[rng.random(shape) < 0.02] = -np.inf
        gt[rng.random(shape) < 0.02] = -2.0
    elif name == "tiny values":
        tiny = rng.random(shape) < 0.5
        gt[tiny] = np.exp(rng.uniform(np.log(1e-8), np.log(1e-3), int(tiny.sum())))
        pred[tiny] = np.exp(rng.uniform(np.log(1e-9), np.log(1e-3), int(tiny.sum())))
        gt[0] = np.exp(rng.uniform(np.log(1e-8), np.log(1e-6), gt[0].shape))  # below htf's 1e-6 clamp
        pred[0] = 0.5e-6
    elif name == "thresholds":
        # ground truth exactly at htf's 0.5 m and at 30 m; predictions 1.25, 1.25^2 times the ground truth
        # rounded to float32, whose ratio falls on either side of a delta threshold depending on the
        # dtype it is computed in (the published float32 or float64)
        pick = rng.random(shape)
        gt[pick < 0.1] = 0.5
        gt[pick > 0.95] = 30.0
        scale = rng.choice(np.float32([1.25, 1 / 1.25, 1.25**2, 1.25**3]), shape)
        near = (rng.random(shape) < 0.4) & (gt > 0)
        pred[near] = (gt * scale)[near]
    elif name != "random":
        raise ValueError(name)
    return gt, pred


SCENARIOS = [
    "random",
    "empty images",
    "zero and negative predictions",
    "NaN predictions",
    "infinite predictions",
    "NaN ground truth",
    "ground truth beyond 30 m and infinite",
    "tiny values",
    "thresholds",
]


def batvision_loader_clip(gt: np.ndarray) -> np.ndarray:
    """BatvisionV2_Dataset.py lines 47-48 on a copy: values above 30 m set to 30 m."""
    gt = gt.copy()
    gt[gt > 30.0] = 30.0
    return gt


def htf_loader_clip(gt: np.ndarray) -> np.ndarray:
    """bv2_dataset.py line 114: np.clip to [0, 30] m."""
    return np.clip(gt, 0.0, 30.0)


def assert_close(ours: float, ref: float, rtol: float, what: str) -> None:
    """Equal within rtol (infinities of one sign equal; a NaN never passes)."""
    assert not math.isnan(ours) and not math.isnan(ref), what
    if math.isinf(ref):
        assert ours == ref, what
    else:
        assert ours == pytest.approx(ref, rel=rtol, abs=0.0), what


def assert_metrics_match(ours: dict, ref: dict, dtype, what: str) -> None:
    """Every metric of `ref` matched by `ours`. Deltas exactly: both count ratios computed by the same
    correctly rounded division in the same dtype; the others within `mean_rtol(dtype)`."""
    for key in METRIC_KEYS:
        if key.startswith("delta"):
            assert ours[key] == ref[key], f"{what}: {key}"
        else:
            assert_close(float(ours[key]), float(ref[key]), mean_rtol(dtype), f"{what}: {key}")


@pytest.mark.parametrize("name", SCENARIOS)
def test_batvision_metrics_are_the_published_codes(name):
    gt, pred = scenario(name, seed=SCENARIOS.index(name))
    loader_gt = batvision_loader_clip(gt)
    per_image = get_protocol("batvision").per_image(torch.from_numpy(pred), torch.from_numpy(gt))
    for i in range(len(gt)):
        ref = dict(zip(METRIC_KEYS, batvision_compute_errors(loader_gt[i, 0], pred[i, 0]), strict=True))
        ours = {k: float(v[i]) for k, v in per_image.items()}
        ours = {k: 0.0 if math.isnan(v) else v for k, v in ours.items()}  # the published NaN -> 0, per image
        # compute_errors runs in float32 (test.py hands it float32 arrays)
        assert_metrics_match(ours, ref, np.float32, f"{name}, image {i}")
    ours = protocol_metrics(torch.from_numpy(pred), torch.from_numpy(gt), get_protocol("batvision"))
    ref = batvision_test(list(loader_gt[:, 0]), list(pred[:, 0]))
    assert_metrics_match(ours, ref, np.float32, f"{name}, mean over images")
    assert ours["n_images"] == len(gt)


@pytest.mark.parametrize("name", SCENARIOS)
def test_htf_metrics_are_the_published_codes(name):
    gt, pred = scenario(name, seed=100 + SCENARIOS.index(name))
    loader_gt = htf_loader_clip(gt)
    per_image = get_protocol("htf").per_image(torch.from_numpy(pred), torch.from_numpy(gt))
    for i in range(len(gt)):
        ref = htf_evaluate_sample(loader_gt[i], pred[i])
        ours = {k: float(v[i]) for k, v in per_image.items()}
        # evaluate_sample casts both to float64 (depth_metrics.py lines 30-31)
        assert_metrics_match(ours, ref, np.float64, f"{name}, image {i}")
    ours = protocol_metrics(torch.from_numpy(pred), torch.from_numpy(gt), get_protocol("htf"))
    ref = htf_aggregate(list(loader_gt), list(pred))
    assert_metrics_match(ours, ref, np.float64, f"{name}, mean over images")
    assert ours["n_images"] == len(gt) and ours["n_skipped"] == 0


def test_the_edge_cases_are_the_published_ones():
    """What the scenarios above hold both sides to, stated: an empty image counts as 0 and is averaged
    in (both); htf clamps at 1e-6 and leaves NaN pixels out of log10; batvision keeps an infinite log10."""
    gt, pred = scenario("empty images", seed=1)
    htf = protocol_metrics(torch.from_numpy(pred), torch.from_numpy(gt), get_protocol("htf"))
    assert htf["n_empty"] == 2 and htf["n_images"] == 4
    per_image = get_protocol("htf").per_image(torch.from_numpy(pred), torch.from_numpy(gt))
    assert per_image["rmse"][1] == 0.0 and htf["rmse"] == pytest.approx(float(per_image["rmse"].sum()) / 4)
    nan_pred = torch.tensor([[[[np.nan, 2.0, 4.0]]]])
    gt_row = torch.tensor([[[[1.0, 1.0, 2.0]]]])
    nan_htf = get_protocol("htf").per_image(nan_pred, gt_row)
    assert float(nan_htf["log10"][0]) == pytest.approx(math.log10(2))  # the NaN pixel left out (nanmean)
    assert float(nan_htf["rmse"][0]) == 0.0 and float(nan_htf["n_replaced"][0]) == 3  # rmse, abs_rel, mae
    tiny = get_protocol("htf").per_image(torch.tensor([[[[0.0, -1.0]]]]), torch.tensor([[[[1.0, 1.0]]]]))
    assert float(tiny["log10"][0]) == pytest.approx(6.0)  # both predictions clamped to 1e-6 m
    zero = protocol_metrics(torch.tensor([[[[0.0, 1.0]]]]), torch.tensor([[[[1.0, 1.0]]]]), get_protocol("batvision"))
    assert zero["log10"] == math.inf


@pytest.fixture(scope="module")
def full_resolution_maps(tmp_path_factory):
    """A BatVision V2 fixture whose two test depth files are V2-sized maps (720 x 1280, millimetres,
    seeded): about 22% invalid zeros in patches and single pixels, depths up to 40 m; the second map
    also holds NaN, +-inf and negative values. Returns (the test split's dataset, [its maps])."""
    rng = np.random.default_rng(2024)
    root = make_v2(tmp_path_factory.mktemp("bv2_full"), n_per_split=1, depth_shape=(16, 16))
    raw = build_dataset("batvisionv2", root, "test", max_depth_m=30.0)
    maps = []
    for i, ref in enumerate(raw.refs):
        depth = np.exp(rng.uniform(np.log(300.0), np.log(40000.0), (720, 1280))).astype(np.float32)
        depth[rng.random(depth.shape) < 0.12] = 0.0  # scattered dropouts
        for _ in range(40):  # and patches of no return (glass, far walls), about 10% of the map
            r, c = rng.integers(0, 720 - 60), rng.integers(0, 1280 - 60)
            depth[r : r + 60, c : c + 60] = 0.0
        if i == 1:
            pick = rng.random(depth.shape)
            depth[pick < 0.01] = np.nan
            depth[(pick >= 0.01) & (pick < 0.015)] = np.inf
            depth[(pick >= 0.015) & (pick < 0.02)] = -np.inf
            depth[(pick >= 0.02) & (pick < 0.03)] = -500.0
        np.save(ref.depth, depth)
        maps.append(depth)
    assert len(maps) == 2
    return raw, maps


def test_about_22_percent_of_the_full_resolution_maps_are_invalid_zeros(full_resolution_maps):
    _, maps = full_resolution_maps
    assert 0.18 < float((maps[0] == 0).mean()) < 0.26


@pytest.mark.parametrize(
    ("name", "reference"), [("batvision", batvision_ground_truth), ("htf", htf_ground_truth)], ids=["batvision", "htf"]
)
def test_the_ground_truth_on_the_grid_is_the_published_loaders(full_resolution_maps, name, reference):
    """Read from the depth files through evaluation's own path, resized by the protocol; bit for bit
    the published loader's: the same float32 operations in the same order (clip, bilinear resize with or
    without antialiasing, / 30, x 30), so no tolerance."""
    raw, maps = full_resolution_maps
    protocol = get_protocol(name)
    grid = ProtocolGroundTruth(raw).grids([str(ref.depth) for ref in raw.refs], [protocol])[name]
    assert grid.shape == (2, 1, 256, 256) and grid.dtype == torch.float32
    for i, depth_mm in enumerate(maps):
        expected = reference(depth_mm)
        assert np.array_equal(grid[i].numpy(), expected, equal_nan=True), f"map {i}"
    # what bilinear resizing does to the invalid zeros: blended depths between 0 and the valid ones
    blended = (grid[0] > 0) & (grid[0] < 0.3)  # every valid depth of the file is >= 0.3 m
    assert int(blended.sum()) > 100


def test_one_prediction_scored_on_the_published_ground_truth(full_resolution_maps):
    """The whole published evaluation of one prediction: loader, then metrics, for both protocols."""
    raw, maps = full_resolution_maps
    files = [str(ref.depth) for ref in raw.refs]
    rng = np.random.default_rng(7)
    pred = depths(rng, (2, 1, 256, 256), low=0.3)
    for name, gt_ref, metrics_ref, dtype in (
        ("batvision", batvision_ground_truth, batvision_test, np.float32),
        ("htf", htf_ground_truth, htf_aggregate, np.float64),
    ):
        grid = ProtocolGroundTruth(raw).grids(files, [get_protocol(name)])[name]
        ours = protocol_metrics(torch.from_numpy(pred), grid, get_protocol(name))
        ref = metrics_ref([gt_ref(m)[0] for m in maps], list(pred[:, 0]))
        assert_metrics_match(ours, ref, dtype, name)
