import math

import pytest
import torch

from echodepth.metrics import (
    MIN_DEPTH_M,
    depth_edges,
    depth_metrics,
    finish_structure,
    high_frequency_share,
    per_image_metrics,
    structure_sums,
)


def test_hand_computed_values_with_invalid_pixels():
    gt = torch.tensor([[[[2.0, 4.0], [0.0, 1.0]]]])
    pred = torch.tensor([[[[1.0, 4.0], [9.0, 2.0]]]])
    m = depth_metrics(pred, gt)
    # valid pixels: (2,1), (4,4), (1,2)
    assert m["abs_rel"] == pytest.approx((0.5 + 0 + 1.0) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 1) / 3))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["delta1"] == pytest.approx(1 / 3)
    assert m["delta2"] == pytest.approx(1 / 3)  # ratio 2 > 1.5625
    assert m["delta3"] == pytest.approx(1 / 3)  # ratio 2 > 1.25**3 = 1.953
    assert m["log10"] == pytest.approx(2 * math.log10(2) / 3)
    assert m["n_images"] == 1 and m["n_skipped"] == 0


def test_delta3_threshold():
    gt = torch.tensor([[[[1.0, 1.0]]]])
    pred = torch.tensor([[[[1.9, 2.0]]]])
    assert depth_metrics(pred, gt)["delta3"] == pytest.approx(0.5)


def test_perfect_prediction():
    gt = torch.rand(4, 1, 8, 8) * 5 + 0.1
    m = depth_metrics(gt.clone(), gt)
    assert m["rmse"] == 0 and m["delta1"] == 1 and m["abs_rel"] == 0 and m["log10"] == 0


def test_mean_over_images_not_pixels():
    gt = torch.zeros(2, 1, 2, 2)
    gt[0] = 1.0  # 4 valid pixels, error 1 each
    gt[1, 0, 0, 0] = 1.0  # 1 valid pixel, error 3
    pred = torch.stack([torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), 4.0)])
    m = depth_metrics(pred, gt)
    assert m["mae"] == pytest.approx((1 + 3) / 2)  # per-pixel mean would give 7/5


def test_images_without_valid_pixels_are_skipped_and_reported():
    gt = torch.ones(3, 1, 4, 4)
    gt[1] = 0
    m = depth_metrics(torch.ones(3, 1, 4, 4), gt)
    assert m["n_images"] == 2 and m["n_skipped"] == 1 and m["rmse"] == 0
    assert math.isnan(per_image_metrics(torch.ones(3, 1, 4, 4), gt)["rmse"][1])


def test_non_positive_predictions_are_clamped_not_undefined():
    gt = torch.ones(1, 1, 1, 2)
    pred = torch.tensor([[[[0.0, -3.0]]]])
    m = depth_metrics(pred, gt)
    assert math.isfinite(m["log10"]) and m["log10"] == pytest.approx(-math.log10(MIN_DEPTH_M))
    assert m["delta1"] == 0


def test_nan_prediction_is_never_hidden():
    gt = torch.ones(1, 1, 2, 2)
    pred = torch.ones(1, 1, 2, 2)
    pred[0, 0, 0, 0] = float("nan")
    m = depth_metrics(pred, gt)
    assert math.isnan(m["rmse"]) and math.isnan(m["abs_rel"])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 3))


def test_structure_metrics_on_known_maps():
    gt = torch.full((1, 1, 16, 16), 2.0)
    gt[..., 8:] = 4.0  # one vertical depth edge
    edges = depth_edges(gt, gt > 0)
    assert edges[0, 0, :, 6:10].all() and not edges[0, 0, :, :6].any() and not edges[0, 0, :, 10:].any()
    perfect = finish_structure(structure_sums(gt, torch.zeros_like(gt), gt, gt, 4))
    assert perfect["lowpass_mae"] == 0 and perfect["highpass_mae"] == 0 and perfect["smooth_roughness_excess"] == 0
    noisy = gt + 0.3 * torch.randn_like(gt)
    bumpy = finish_structure(structure_sums(gt, noisy - gt, noisy, gt, 4))
    assert bumpy["smooth_roughness_excess"] > 0.1 and bumpy["residual_share"] > 0
    smooth_map = torch.linspace(0, 1, 32).expand(1, 32, 32)
    assert high_frequency_share(smooth_map, 0.25) < high_frequency_share(torch.randn(1, 32, 32), 0.25)
