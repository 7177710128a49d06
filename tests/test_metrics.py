import math

import pytest
import torch

from echodepth.metrics import (
    METRIC_KEYS,
    MIN_DEPTH_M,
    aggregate,
    analysis_kernel,
    depth_edges,
    depth_metrics,
    finish_structure,
    high_frequency_share,
    per_image_metrics,
    structure_sums,
)
from echodepth.metrics.structure import high_frequency_energy


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
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(4, 1, 8, 8, generator=g) * 5 + 0.1
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
    g = torch.Generator().manual_seed(1)
    gt = torch.full((1, 1, 16, 16), 2.0)
    gt[..., 8:] = 4.0  # one vertical depth edge
    edges = depth_edges(gt, gt > 0)
    assert edges[0, 0, :, 6:10].all() and not edges[0, 0, :, :6].any() and not edges[0, 0, :, 10:].any()
    perfect = finish_structure(structure_sums(gt, torch.zeros_like(gt), gt, gt, kernel=4))
    assert perfect["lowpass_mae"] == 0 and perfect["highpass_mae"] == 0 and perfect["smooth_roughness_excess"] == 0
    noisy = gt + 0.3 * torch.randn(gt.shape, generator=g)
    bumpy = finish_structure(structure_sums(gt, noisy - gt, noisy, gt, kernel=4))
    assert bumpy["smooth_roughness_excess"] > 0.1 and bumpy["residual_share"] > 0
    smooth_map = torch.linspace(0, 1, 32).expand(1, 32, 32)
    assert high_frequency_share(smooth_map, 0.25) < high_frequency_share(torch.randn(1, 32, 32, generator=g), 0.25)


def test_depth_edges_are_steps_over_the_relative_jump_between_valid_neighbours_widened_by_one_pixel():
    columns = torch.full((1, 1, 8, 8), 2.0)
    columns[..., 4:] = 4.0  # a step between columns 3 and 4
    edges = depth_edges(columns, columns > 0)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:, 2:6] = True  # the two step pixels and one pixel either side
    assert torch.equal(edges[0, 0], expected)
    assert torch.equal(depth_edges(columns.transpose(-1, -2), columns.transpose(-1, -2) > 0)[0, 0], expected.T)
    # the jump is relative to the nearer depth: 2.0 -> 2.25 is 12.5 % (an edge at 10 %), 2.0 -> 2.15 is 7.5 %
    near = torch.full((1, 1, 8, 8), 2.0)
    near[..., 4:] = 2.25
    assert depth_edges(near, near > 0).sum() == 32 and not depth_edges(near, near > 0, jump=0.2).any()
    near[..., 4:] = 2.15
    assert not depth_edges(near, near > 0).any()
    near[..., 4:] = 2.25  # exactly 12.5 %: not beyond a jump of 12.5 %
    assert not depth_edges(near, near > 0, jump=0.125).any() and depth_edges(near, near > 0, jump=0.12).any()
    close = torch.full((1, 1, 8, 8), 0.5)
    close[..., 4:] = 0.8  # a step under 1 m is a step too
    assert torch.equal(depth_edges(close, close > 0)[0, 0], expected)
    rows = columns.transpose(-1, -2)[:, 0]  # (B, H, W) maps: a step between rows 3 and 4
    assert torch.equal(depth_edges(rows, rows > 0)[0], expected.T)
    holes = torch.full((1, 1, 8, 8), 2.0)
    holes[..., 4:] = 0.0  # no measurement is not a depth step
    assert not depth_edges(holes, holes > 0).any() and not depth_edges(holes.flip(-1), holes.flip(-1) > 0).any()
    assert not depth_edges(columns, torch.zeros_like(columns, dtype=torch.bool)).any()


def test_structure_metrics_of_one_spike_on_a_flat_wall_by_hand():
    # gt 2 m everywhere (8 x 8, no edge); the prediction adds a spike of s at (4, 4) through the residual
    s = 1.6
    gt = torch.full((1, 1, 8, 8), 2.0)
    spike = torch.zeros_like(gt)
    spike[0, 0, 4, 4] = s
    sums = structure_sums(gt, spike, gt + spike, gt, kernel=4)
    metrics = finish_structure(sums)
    assert (sums["valid"], sums["edges"], sums["smooth"], sums["smooth_inner"], sums["images"]) == (64, 0, 64, 49, 1)
    # the 4 x 4 low-pass spreads s over the 16 windows holding the spike (all inside the map): s / 16 each
    assert metrics["lowpass_mae"] == pytest.approx(s / 64, rel=1e-5)
    # high-pass |d - LowPass(d)|: s - s/16 at the spike, s/16 at the 15 other pixels of its windows
    assert metrics["highpass_mae"] == pytest.approx((15 * s / 16 + 15 * s / 16) / 64, rel=1e-5)
    assert metrics["smooth_mae"] == pytest.approx(s / 64, rel=1e-6) and math.isnan(metrics["edge_mae"])
    # |dx| + |dy| on the 7 x 7 inner grid: 2s at the spike, s left of it, s above it
    assert metrics["smooth_roughness_excess"] == pytest.approx(4 * s / 49, rel=1e-6)
    assert metrics["residual_share"] == pytest.approx(s / (64 * 2.0 + s), rel=1e-6)
    assert math.isnan(metrics["residual_edge_to_smooth"])  # no edge pixel to compare with
    assert metrics["base_hf_share"] == 0 and metrics["gt_hf_share"] == 0  # flat maps hold no energy
    assert 0.5 < metrics["final_hf_share"] < 1 and math.isnan(metrics["base_hf_to_gt"])


def test_structure_metrics_near_edges_by_hand():
    gt = torch.full((1, 1, 8, 8), 2.0)
    gt[..., 4:] = 4.0  # edge pixels: columns 2-5 (32), smooth: columns 0, 1, 6, 7 (32)
    gt[0, 0, 0, 0] = 0.0  # an invalid pixel: counted nowhere
    edge_cols = torch.zeros_like(gt, dtype=torch.bool)
    edge_cols[..., 2:6] = True
    residual = torch.where(edge_cols, 1.0, 0.25)
    final = gt + torch.where(edge_cols, 0.5, 0.0)
    metrics = finish_structure(structure_sums(gt, residual, final, gt, kernel=4))
    assert metrics["edge_mae"] == pytest.approx(0.5) and metrics["smooth_mae"] == 0
    # mean |residual| 1 near the edge, 0.25 (31 valid pixels) elsewhere
    assert metrics["residual_edge_to_smooth"] == pytest.approx(1.0 / 0.25)
    valid = gt > 0
    expected_share = float(residual[valid].sum() / final[valid].abs().sum())
    assert metrics["residual_share"] == pytest.approx(expected_share, rel=1e-6)
    # a residual near the edge only: no smooth residual to compare with, NaN (not a division by zero)
    edge_only = finish_structure(structure_sums(gt, torch.where(edge_cols, 1.0, 0.0), final, gt, kernel=4))
    assert math.isnan(edge_only["residual_edge_to_smooth"]) and edge_only["residual_share"] > 0


def test_high_frequency_share_splits_at_the_cutoff_whatever_the_orientation_or_mean():
    # cos(pi k (x + 1/2) / 16), mirrored to 32 columns, is one tone of k / 32 cycles per pixel
    x = torch.arange(16, dtype=torch.float64)

    def tone(k):
        return torch.cos(math.pi * k * (x + 0.5) / 16).expand(1, 16, 16)

    assert high_frequency_share(tone(10), 0.25).item() == pytest.approx(1.0)  # 0.3125 > 0.25
    assert high_frequency_share(tone(6), 0.25).item() == pytest.approx(0.0, abs=1e-12)
    assert high_frequency_share(tone(8), 0.25).item() == pytest.approx(0.0, abs=1e-12)  # at the cutoff: low
    assert high_frequency_share(tone(10).transpose(-1, -2) + 5.0, 0.25).item() == pytest.approx(1.0)
    mixed = 0.3 * tone(10) + 0.3 * tone(4).transpose(-1, -2)  # equal energy above and below the cutoff
    assert high_frequency_share(mixed, 0.25).item() == pytest.approx(0.5)
    assert high_frequency_share(mixed.transpose(-1, -2), 0.25).item() == pytest.approx(0.5)
    # a ramp mirrored has no false edge at the border: almost all its energy is at low frequencies
    ramp = torch.linspace(0, 1, 16, dtype=torch.float64).expand(1, 16, 16)
    assert high_frequency_share(ramp, 0.25) < 1e-3 and high_frequency_share(ramp.transpose(-1, -2), 0.25) < 1e-3
    assert high_frequency_share(torch.full((1, 16, 16), 3.0), 0.25).item() == 0  # no energy: share 0


def test_high_frequency_energy_is_the_mean_square_per_pixel():
    x = torch.arange(16, dtype=torch.float64)
    tone = 0.3 * torch.cos(math.pi * 10 * (x + 0.5) / 16).expand(1, 16, 16)
    for maps in (tone, tone.transpose(-1, -2)):
        high, total = high_frequency_energy(maps + 2.0, 0.25)
        assert high.item() == pytest.approx(0.3**2 / 2) and total.item() == pytest.approx(0.3**2 / 2)
    noise = torch.randn(2, 12, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    centred = noise - noise.mean(dim=(-2, -1), keepdim=True)
    high, total = high_frequency_energy(noise, 0.1)
    assert torch.allclose(total, (centred**2).mean(dim=(-2, -1)))  # Parseval
    assert high.shape == (2,) and (high < total).all() and (high > 0).all()


def test_a_base_at_half_the_ground_truths_contrast_has_a_quarter_of_its_high_frequency_energy():
    gt = 2.0 + torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    base = 2.5 + 0.5 * (gt - 2.0)  # half the contrast, another mean
    metrics = finish_structure(structure_sums(base, gt - base, gt, gt, kernel=4))
    assert metrics["base_hf_to_gt"] == pytest.approx(0.25, rel=1e-5)
    assert metrics["base_hf_share"] == pytest.approx(metrics["gt_hf_share"], rel=1e-5)
    assert metrics["final_hf_share"] == pytest.approx(metrics["gt_hf_share"], rel=1e-6)
    assert metrics["lowpass_mae"] == 0 and metrics["highpass_mae"] == 0
    # per image, then averaged: two images of the same map give one image's shares
    one = finish_structure(structure_sums(base[:1], (gt - base)[:1], gt[:1], gt[:1], kernel=4))
    doubled = torch.cat([gt[:1], gt[:1]])
    two = finish_structure(
        structure_sums(torch.cat([base[:1]] * 2), doubled - torch.cat([base[:1]] * 2), doubled, doubled, kernel=4)
    )
    assert two["gt_hf_share"] == pytest.approx(one["gt_hf_share"], rel=1e-6)


def test_the_analysis_kernel_is_an_eighth_of_the_image_side_and_at_least_3():
    assert [analysis_kernel(side) for side in (8, 16, 24, 32, 64, 128, 256)] == [3, 3, 3, 4, 8, 16, 32]
    assert all(type(analysis_kernel(side)) is int for side in (8, 64, 100))  # a pooling window size


def test_a_prediction_where_the_ground_truth_has_a_hole_counts_in_no_structure_metric():
    # 0.5 m everywhere (under 1 m is a depth too) but a hole at (0, 0), where the prediction says 3 m
    gt = torch.full((1, 1, 8, 8), 0.5)
    gt[0, 0, 0, 0] = 0.0
    final = gt.clone()
    final[0, 0, 0, 0] = 3.0
    residual = torch.zeros_like(gt)
    residual[0, 0, 0, 0] = 1.0
    sums = structure_sums(final, residual, final, gt, kernel=4)
    assert (sums["valid"], sums["edges"], sums["smooth"], sums["smooth_inner"]) == (63, 0, 63, 48)
    metrics = finish_structure(sums)
    for key in ("lowpass_mae", "highpass_mae", "smooth_mae", "smooth_roughness_excess", "residual_share"):
        assert metrics[key] == 0, key


def test_smooth_roughness_is_the_gradient_the_prediction_adds_dips_and_ramps_included():
    # a dip of 0.2 m at (4, 4) of a flat 0.5 m wall: |dx| + |dy| of 0.2 at four places of the 7 x 7 inner grid
    gt = torch.full((1, 1, 8, 8), 0.5)
    final = gt.clone()
    final[0, 0, 4, 4] = 0.3
    dip = finish_structure(structure_sums(final, final - gt, final, gt, kernel=4))
    assert dip["smooth_roughness_excess"] == pytest.approx(4 * 0.2 / 49, rel=1e-5)
    # a ramp of 2.5 % a column (no depth edge) predicted exactly adds no roughness
    ramp = 2.0 * 1.025 ** torch.arange(8.0).expand(1, 1, 8, 8)
    exact = finish_structure(structure_sums(ramp, torch.zeros_like(ramp), ramp, ramp, kernel=4))
    assert exact["smooth_roughness_excess"] == 0 and exact["edge_mae"] != exact["edge_mae"]  # NaN: no edge


def test_the_delta_thresholds_are_strict_powers_of_1_25():
    gt = torch.ones(1, 1, 1, 4, dtype=torch.float64)
    pred = torch.tensor([[[[1.25, 1.5625, 1.953125, 0.8]]]], dtype=torch.float64)  # 1.25, 1.25^2, 1.25^3, 1 / 1.25
    m = per_image_metrics(pred, gt)
    assert m["delta1"].item() == 0.0  # a ratio of exactly 1.25 is not below 1.25 (0.8 gives 1 / 0.8 = 1.25)
    assert m["delta2"].item() == pytest.approx(2 / 4) and m["delta3"].item() == pytest.approx(3 / 4)


def test_counted_pixels_follow_min_gt_and_inclusive_and_clamping_can_be_switched_off():
    gt = torch.tensor([[[0.5, 0.4, 2.0, float("inf")]]])  # (B, H, W) works as well as (B, 1, H, W)
    pred = torch.tensor([[[0.5, 0.4, -1.0, 1.0]]])
    assert per_image_metrics(pred, gt)["n_valid"].tolist() == [3.0]  # gt > 0, finite
    assert per_image_metrics(pred, gt, min_gt_m=0.5)["n_valid"].tolist() == [1.0]  # gt > 0.5
    assert per_image_metrics(pred, gt, min_gt_m=0.5, inclusive=True)["n_valid"].tolist() == [2.0]  # gt >= 0.5
    clamped = per_image_metrics(pred, gt, min_gt_m=1.0)  # pred -1 clamped to 1 mm: |0.001 - 2|
    assert clamped["mae"].item() == pytest.approx(2.0 - MIN_DEPTH_M) and clamped["abs_rel"].item() == pytest.approx(
        (2.0 - MIN_DEPTH_M) / 2.0
    )
    published = per_image_metrics(pred, gt, min_depth=None, min_gt_m=1.0)  # not clamped: |-1 - 2| = 3
    assert published["mae"].item() == pytest.approx(3.0) and math.isnan(published["log10"].item())
    assert published["delta1"].item() == 1.0  # a negative ratio counts inside every threshold, as published
    with pytest.raises(ValueError, match=r"^prediction shape \(1, 1, 4\) differs from ground truth shape \(1, 1, 3\)$"):
        per_image_metrics(pred, gt[..., :3])


def test_aggregate_averages_images_and_says_what_it_left_out_or_replaced():
    per_image = {k: torch.tensor([1.0, float("nan"), 3.0]) for k in ("abs_rel", "rmse", "delta1", "delta2", "delta3")}
    per_image |= {"log10": torch.tensor([float("inf"), float("nan"), 1.0]), "mae": torch.tensor([2.0, 5.0, 4.0])}
    per_image["n_valid"] = torch.tensor([4.0, 0.0, 2.0])
    ours = aggregate(per_image)
    assert ours["rmse"] == 2.0 and ours["mae"] == 3.0 and ours["log10"] == math.inf  # image 2 left out
    assert (ours["n_images"], ours["n_skipped"]) == (2, 1) and "n_nan_replaced" not in ours
    published = aggregate(per_image, nan_to_zero=True)
    assert published["rmse"] == pytest.approx(4 / 3) and published["mae"] == pytest.approx(11 / 3)
    assert published["log10"] == math.inf  # only NaN is replaced
    assert (published["n_images"], published["n_skipped"], published["n_nan_replaced"]) == (3, 0, 6)
    nothing = aggregate({**per_image, "n_valid": torch.zeros(3)})
    assert math.isnan(nothing["rmse"]) and (nothing["n_images"], nothing["n_skipped"]) == (0, 3)
    assert set(ours) == {*METRIC_KEYS, "n_images", "n_skipped"}
    assert depth_metrics(torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1), min_depth=0.5)["mae"] == 0.5
