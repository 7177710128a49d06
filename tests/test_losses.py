import math

import pytest
import torch

from echodepth.errors import ConfigError
from echodepth.losses import (
    LOSSES,
    AdaptiveBaseResidualLoss,
    BaseResidualLoss,
    DepthLoss,
    FrequencyAwareBaseResidualLoss,
    StandardLossSettings,
    build_loss,
    build_loss_for_training,
    frequency_split,
    lowpass,
    masked_l1,
    masked_mean,
    silog,
    valid_mask,
)
from echodepth.settings.config import TrainConfig


def _maps(seed=0, shape=(2, 1, 24, 20)):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(shape, generator=g) * 5 + 0.5
    gt[:, :, :5, :7] = 0  # a hole of invalid pixels
    base = torch.rand(shape, generator=g) * 5
    residual = torch.randn(shape, generator=g)
    return base, residual, base + residual, gt


def test_zero_for_perfect_prediction():
    _, _, _, gt = _maps()
    out = BaseResidualLoss(lowpass_kernel=1, lambda_sparse=0.0)(gt, torch.zeros_like(gt), gt, gt)
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-6)


def test_frequency_loss_zero_for_perfect_decomposition():
    _, _, _, gt = _maps()
    low, high = frequency_split(gt, (gt > 0).float(), 0.1)
    out = FrequencyAwareBaseResidualLoss(freq_cutoff=0.1)(low, high, low + high, gt)
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-5)
    assert FrequencyAwareBaseResidualLoss()(gt, torch.zeros_like(gt), gt, gt)["loss"].item() > 0.01


def test_perfect_decomposition_gives_zero_standard_loss():
    _, _, _, gt = _maps()
    loss = BaseResidualLoss()
    target_low, _ = lowpass(gt, (gt > 0).float(), 8)
    out = loss(target_low, gt - target_low, gt, gt)
    assert out["loss_recon"].item() == pytest.approx(0, abs=1e-6)
    assert out["loss_base"].item() == pytest.approx(0, abs=1e-6)
    assert out["loss_sparse"].item() > 0


@pytest.mark.parametrize("loss", [BaseResidualLoss(), AdaptiveBaseResidualLoss(), FrequencyAwareBaseResidualLoss()])
def test_masked_pixels_change_nothing(loss):
    base, residual, final, gt = _maps()
    ref = loss(base, residual, final, gt)
    invalid = gt == 0
    base2, residual2 = base.clone(), residual.clone()
    base2[invalid] = 123.0
    residual2[invalid] = -77.0
    out = loss(base2, residual2, base2 + residual2, gt)
    for key in ref:
        assert out[key].item() == pytest.approx(ref[key].item(), rel=1e-5), key


def test_nan_at_invalid_ground_truth_is_ignored():
    base, residual, final, gt = _maps()
    gt_nan = gt.clone()
    gt_nan[gt == 0] = float("nan")
    a = BaseResidualLoss()(base, residual, final, gt)
    b = BaseResidualLoss()(base, residual, final, gt_nan)
    assert torch.isfinite(b["loss"]) and b["loss"].item() == pytest.approx(a["loss"].item(), rel=1e-6)


@pytest.mark.parametrize("kernel", [3, 4, 8, 16])
def test_lowpass_of_constant_is_constant_including_borders(kernel):
    gt = torch.full((1, 1, 20, 17), 3.5)
    gt[0, 0, 8:11, 5:9] = 0  # invalid pixels must not pull the average down either
    mask = (gt > 0).float()
    low, support = lowpass(gt, mask, kernel)
    assert torch.allclose(low[mask > 0], torch.tensor(3.5), atol=1e-5)
    assert low[0, 0, 0, 0].item() == pytest.approx(3.5, abs=1e-5)
    assert low[0, 0, -1, -1].item() == pytest.approx(3.5, abs=1e-5)


def test_lowpass_differs_from_plain_average_pool_at_borders():
    gt = torch.full((1, 1, 16, 16), 2.0)
    plain = torch.nn.functional.avg_pool2d(gt, 9, stride=1, padding=4)
    low, _ = lowpass(gt, torch.ones_like(gt), 9)
    assert plain[0, 0, 0, 0] < 1.5 and low[0, 0, 0, 0].item() == pytest.approx(2.0)


def test_structural_target_is_smooth():
    gt = torch.ones(1, 1, 32, 32)
    gt[..., 16:] = 5.0  # a step
    low, _ = lowpass(gt, torch.ones_like(gt), 8)
    row = low[0, 0, 10]
    assert 1.0 < row[15].item() < 5.0 and row[0].item() == pytest.approx(1.0) and row[-1].item() == pytest.approx(5.0)


def test_sparsity_term_is_mean_abs_residual_over_valid_pixels():
    base, residual, final, gt = _maps()
    out = BaseResidualLoss()(base, residual, final, gt)
    valid = gt > 0
    assert out["loss_sparse"].item() == pytest.approx(residual[valid].abs().mean().item(), rel=1e-6)
    assert out["loss_recon"].item() == pytest.approx((final - gt)[valid].abs().mean().item(), rel=1e-6)


def test_total_is_weighted_sum():
    base, residual, final, gt = _maps()
    loss = BaseResidualLoss(lambda_recon=2.0, lambda_base=0.3, lambda_sparse=0.7)
    out = loss(base, residual, final, gt)
    expected = 2.0 * out["loss_recon"] + 0.3 * out["loss_base"] + 0.7 * out["loss_sparse"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_adaptive_schedule_moves_weights():
    loss = AdaptiveBaseResidualLoss(warmup_epochs=10, lambda_recon=1.0, lambda_base=0.5, lambda_sparse=0.1)
    loss.set_epoch(0)
    start = loss.weights()
    assert start["lambda_base"] == pytest.approx(2.0) and start["lambda_recon"] == pytest.approx(0.1)
    loss.set_epoch(5)
    mid = loss.weights()
    assert 0.5 < mid["lambda_base"] < 2.0 and 0.1 < mid["lambda_recon"] < 1.0
    loss.set_epoch(30)
    assert loss.weights() == {"lambda_recon": 1.0, "lambda_base": 0.5, "lambda_sparse": 0.1}


def test_frequency_split_sums_and_is_smooth():
    _, _, _, gt = _maps(shape=(1, 1, 32, 32))
    mask = (gt > 0).float()
    low, high = frequency_split(gt, mask, 0.1)
    filled = low + high
    assert torch.allclose(filled[mask > 0], gt[mask > 0], atol=1e-5)
    assert (filled[mask == 0] > 0).all()  # holes filled, not left at 0
    assert low.diff(dim=-1).abs().mean() < 0.2 * high.diff(dim=-1).abs().mean()


def test_build_loss_by_name_refuses_foreign_settings():
    assert build_loss("adaptive", warmup_epochs=3).warmup_epochs == 3
    assert build_loss("frequency", freq_cutoff=0.2).freq_cutoff == 0.2
    with pytest.raises(ConfigError, match=r"loss 'frequency' takes no setting\(s\) \['lambda_sparse'\]; allowed: \["):
        build_loss("frequency", freq_cutoff=0.2, lambda_sparse=1)
    with pytest.raises(
        ConfigError, match=r"unknown loss 'bogus'; expected one of \['standard', 'adaptive', 'frequency'"
    ):
        build_loss("bogus")


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_registered_loss_builds_from_training_settings(name):
    cfg = TrainConfig.from_dict({"loss": name, "lambda_recon": 2.0, "warmup_epochs": 4})  # left out where not taken
    loss = build_loss_for_training(cfg)
    if name != "htf":  # HTF-EchoDepth's L1 term has no weight of its own
        # the adaptive curriculum starts (epoch 0) at recon_start = 0.1 of lambda_recon: 0.1 * 2.0
        expected = 0.1 * 2.0 if name == "adaptive" else 2.0
        assert loss.weights()["lambda_recon"] == pytest.approx(expected)
    base, residual, final, gt = _maps()
    out = loss(base, residual, final, gt)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0


def test_the_adaptive_curriculum_by_hand_with_the_guides_defaults():
    # lambda_base 0.5 x (4 + (1 - 4) t), lambda_recon 1.0 x (0.1 + 0.9 t), t = min(epoch / 20, 1)
    loss = build_loss("adaptive")
    expected = {0: (2.0, 0.1), 5: (1.625, 0.325), 10: (1.25, 0.55), 20: (0.5, 1.0), 45: (0.5, 1.0)}
    for epoch, (base, recon) in expected.items():
        loss.set_epoch(epoch)
        weights = loss.weights()
        assert weights["lambda_base"] == pytest.approx(base) and weights["lambda_recon"] == pytest.approx(recon)
        assert weights["lambda_sparse"] == pytest.approx(0.1)
    loss.set_epoch(3.7)  # a float epoch counts as its whole epochs
    assert loss.weights()["lambda_recon"] == pytest.approx(0.1 + 0.9 * 3 / 20)
    no_warmup = build_loss("adaptive", warmup_epochs=0)  # no warm-up: the final weights from the first epoch
    no_warmup.set_epoch(0)
    assert no_warmup.weights() == {"lambda_recon": 1.0, "lambda_base": 0.5, "lambda_sparse": 0.1}
    with pytest.raises(ConfigError, match="warmup_epochs must be >= 0, got -5"):
        build_loss("adaptive", warmup_epochs=-5)
    base, residual, final, gt = _maps()
    loss.set_epoch(0)
    out = loss(base, residual, final, gt)  # the total uses the weights in force
    assert out["loss"].item() == pytest.approx(
        (0.1 * out["loss_recon"] + 2.0 * out["loss_base"] + 0.1 * out["loss_sparse"]).item(), rel=1e-6
    )


def test_the_frequency_loss_weighs_its_three_terms():
    loss = build_loss("frequency", lambda_recon=2.0, lambda_base=0.3, lambda_residual=0.7)
    assert loss.weights() == {"lambda_recon": 2.0, "lambda_base": 0.3, "lambda_residual": 0.7}
    assert build_loss("frequency").weights() == {"lambda_recon": 1.0, "lambda_base": 0.5, "lambda_residual": 0.5}
    base, residual, final, gt = _maps()
    out = loss(base, residual, final, gt)
    assert set(out) == {"loss", "loss_recon", "loss_base", "loss_residual_hf"}
    total = 2.0 * out["loss_recon"] + 0.3 * out["loss_base"] + 0.7 * out["loss_residual_hf"]
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-6)
    valid = gt > 0
    low, high = frequency_split(gt, valid.float(), 0.1)
    assert out["loss_base"].item() == pytest.approx((base - low)[valid].abs().mean().item(), rel=1e-5)
    assert out["loss_residual_hf"].item() == pytest.approx((residual - high)[valid].abs().mean().item(), rel=1e-5)
    for cutoff in (0.0, -0.1, 1.01):
        with pytest.raises(
            ConfigError, match=rf"^freq_cutoff must be in \(0, 1\] \(a fraction of Nyquist\), got {cutoff}$"
        ):
            build_loss("frequency", freq_cutoff=cutoff)
    assert build_loss("frequency", freq_cutoff=1.0).freq_cutoff == 1.0


def test_the_htf_loss_by_hand():
    # normalised depth (depth / max depth): gt 0.4; final 0.6: L1 0.2, |ln(0.6 / 0.4)| = ln 1.5 is
    # beyond ln 1.25 by ln 1.2; final 0.44 (ratio 1.1): inside the band
    gt = torch.full((1, 1, 2, 2), 0.4)
    gt[0, 0, 0, 0] = float("nan")  # an invalid pixel takes no part, even as NaN
    loss = build_loss("htf", hinge_weight=2.0)
    out = loss(None, None, torch.full_like(gt, 0.6), gt)
    assert out["loss_l1"].item() == pytest.approx(0.2, rel=1e-5)
    assert out["loss_log_hinge"].item() == pytest.approx(math.log(1.2), rel=1e-4)
    assert out["loss"].item() == pytest.approx(0.2 + 2.0 * math.log(1.2), rel=1e-4)
    inside = loss(None, None, torch.full_like(gt, 0.44), gt)
    assert inside["loss_log_hinge"].item() == 0 and inside["loss"].item() == pytest.approx(0.04, rel=1e-4)
    near = build_loss("htf")(None, None, torch.zeros_like(gt), gt)  # depth 0: clamped at 1e-3
    assert near["loss_log_hinge"].item() == pytest.approx(math.log(0.4 / 1e-3) - math.log(1.25), rel=1e-5)
    assert near["loss"].item() == pytest.approx(0.4 + 0.003 * near["loss_log_hinge"].item(), rel=1e-6)
    tiny_gt = torch.full((1, 1, 1, 2), 5e-4)  # a ground truth under 1e-3 is clamped as well
    assert build_loss("htf")(None, None, torch.full_like(tiny_gt, 1e-3), tiny_gt)["loss_log_hinge"].item() == 0


def test_silog_by_hand_with_its_floors():
    target = torch.tensor([[[[2.0, 1.0, 0.0]]]])  # the third pixel invalid
    mask = (target > 0).float()
    pred = torch.tensor([[[[4.0, 1.0, 7.0]]]])  # d = ln 2 and 0
    d = math.log(2.0)
    for lam in (0.0, 0.5, 1.0):
        assert float(silog(pred, target, mask, lam=lam)) == pytest.approx(
            math.sqrt(d * d / 2 - lam * d * d / 4), rel=1e-5
        )
    nan_target = target.clone()
    nan_target[0, 0, 0, 2] = float("nan")
    assert float(silog(pred, nan_target, mask, lam=0.5)) == pytest.approx(float(silog(pred, target, mask, lam=0.5)))
    zero = torch.tensor([[[[0.0, 1.0]]]])  # a prediction of 0 is clamped at 1e-3 (normalised depth)
    assert float(silog(zero, torch.ones_like(zero), torch.ones_like(zero), lam=0.0)) == pytest.approx(
        math.sqrt(math.log(1e-3) ** 2 / 2), rel=1e-5
    )
    perfect = target.clone().requires_grad_()
    value = silog(perfect, target, mask, lam=0.5)
    value.backward()
    assert float(value.detach()) == pytest.approx(1e-4)  # sqrt of the 1e-8 floor: finite gradients at a perfect fit
    assert torch.isfinite(perfect.grad).all()
    assert torch.isnan(silog(pred, target, torch.zeros_like(mask), lam=0.5))  # no valid pixel: NaN, never 0


def test_means_over_no_valid_pixel_are_nan_and_the_valid_mask_drops_every_non_measurement():
    gt = torch.tensor([[[[1.5, 0.0, -2.0, float("inf"), float("nan")]]]], dtype=torch.float64)
    mask = valid_mask(gt)
    assert mask.dtype == torch.float64 and mask.tolist() == [[[[1.0, 0.0, 0.0, 0.0, 0.0]]]]
    none = torch.zeros(1, 1, 2, 2)
    assert torch.isnan(masked_mean(torch.ones(1, 1, 2, 2), none))
    assert torch.isnan(masked_l1(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), none))
    pred = torch.tensor([[[[1.0, 5.0, 9.0, 9.0, 9.0]]]], dtype=torch.float64)
    assert masked_l1(pred, gt, mask).item() == pytest.approx(0.5)
    assert masked_mean(pred, mask).item() == pytest.approx(1.0)


@pytest.mark.parametrize("kernel, columns", [(1, {3: 1.0}), (2, {3: 0.5, 4: 0.5}), (3, {2: 1 / 3, 3: 1 / 3, 4: 1 / 3})])
def test_the_lowpass_window_spans_k_over_2_before_and_the_rest_after(kernel, columns):
    impulse = torch.zeros(1, 1, 1, 8)
    impulse[0, 0, 0, 3] = 3.0
    low, support = lowpass(impulse, torch.ones_like(impulse), kernel)
    # every window holds `kernel` pixels of the row (inside the 8 columns); the impulse counts in `kernel` of them
    expected = torch.zeros(8)
    for column, share in columns.items():
        expected[column] = 3.0 * share * (kernel if kernel > 1 else 1) / kernel
    inside = slice(kernel // 2, 8 - (kernel - 1 - kernel // 2))
    assert torch.allclose(low[0, 0, 0, inside], expected[inside], atol=1e-6) and support.eq(1).all()


def test_the_lowpass_is_zero_with_no_support_where_the_window_holds_no_valid_pixel():
    depth = torch.full((1, 1, 12, 12), 2.0)
    mask = torch.ones_like(depth)
    mask[..., 2:10, 2:10] = 0  # an 8 x 8 hole: a 3 x 3 window at its centre sees none
    depth[mask == 0] = 99.0  # whatever the invalid pixels hold
    low, support = lowpass(depth, mask, 3)
    assert support[0, 0, 5, 5] == 0 and low[0, 0, 5, 5] == 0 and support.dtype == depth.dtype
    assert support[0, 0, 2, 2] == 1 and low[0, 0, 2, 2].item() == pytest.approx(2.0)
    assert torch.allclose(low[support > 0], torch.tensor(2.0))
    plain, plain_support = lowpass(depth, mask, 1)  # kernel 1: the valid depth itself, 0 elsewhere
    assert torch.equal(plain, torch.where(mask > 0, depth, torch.zeros_like(depth))) and torch.equal(
        plain_support, mask
    )
    with pytest.raises(ConfigError, match="^lowpass_kernel must be > 0, got 0$"):
        build_loss("standard", lowpass_kernel=0)


def test_the_frequency_split_puts_a_tone_below_the_cutoff_in_low_and_above_it_in_high():
    x = torch.arange(32, dtype=torch.float32)

    def tone(k):  # k / 32 cycles per pixel along the rows, around 3 m
        return (3.0 + torch.cos(2 * math.pi * k * x / 32)).expand(1, 1, 32, 32)

    ones = torch.ones(1, 1, 32, 32)
    # freq_cutoff 0.5 of Nyquist: 0.25 cycles per pixel; k = 6 is 0.1875, k = 10 is 0.3125, k = 8 exactly 0.25
    # float32 FFT there and back of a 32 x 32 map with values up to 4: each output sums 1024 terms in
    # log2(1024) = 10 rounding stages, about 10 x eps x 4 = 4.8e-6; measured 1.2e-6. 1e-4 leaves 20x; a tone
    # on the wrong side of the cutoff is off by its amplitude, 1.
    for k, goes_low in ((6, True), (8, True), (10, False)):
        low, high = frequency_split(tone(k), ones, 0.5)
        wave = tone(k) - 3.0
        assert torch.allclose(low, 3.0 + (wave if goes_low else torch.zeros_like(wave)), atol=1e-4), k
        assert torch.allclose(high, wave if not goes_low else torch.zeros_like(wave), atol=1e-4), k
    assert torch.allclose(frequency_split(tone(10).transpose(-1, -2), ones, 0.5)[0], torch.tensor(3.0), atol=1e-4)


def test_holes_beyond_the_fill_window_take_each_images_mean_valid_depth():
    depth = torch.stack([torch.full((1, 24, 24), 2.0), torch.full((1, 24, 24), 5.0)])
    depth[1, 0, :12] = 7.0  # image 2: mean valid depth (7 + 5) / 2 outside its hole
    mask = torch.ones_like(depth)
    mask[..., 6:18, 6:18] = 0  # a 12 x 12 hole: the 8 x 8 fill window at its centre sees no valid pixel
    depth[mask == 0] = 0.0
    low, high = frequency_split(depth, mask, 1.0)  # cutoff 1: everything in low
    filled = low + high
    centre_mean = float(depth[1][mask[1] > 0].mean())
    assert filled[0, 0, 12, 12].item() == pytest.approx(2.0, abs=1e-5)
    assert filled[1, 0, 12, 12].item() == pytest.approx(centre_mean, abs=1e-5) and centre_mean != 5.0
    # the fill window is 8 pixels (rows and columns i - 4 .. i + 3): at (14, 14) it holds no valid pixel
    # yet (the hole ends at 17), one pixel further it would (5.0 at row and column 18)
    assert filled[1, 0, 14, 14].item() == pytest.approx(centre_mean, abs=1e-5)
    assert torch.allclose(filled[mask > 0], depth[mask > 0], atol=1e-5)
    empty_low, empty_high = frequency_split(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), 0.5)
    assert torch.isfinite(empty_low).all() and not (empty_low + empty_high).any()  # no valid pixel: zeros


def test_the_frequency_split_by_direction_odd_sizes_and_double_precision():
    y = torch.arange(32, dtype=torch.float64)[:, None]
    below = (3.0 + torch.cos(2 * math.pi * 6 * y / 32)).expand(1, 1, 32, 31)  # 0.1875 cycles per pixel down the columns
    low, high = frequency_split(below, torch.ones_like(below), 0.5)  # cutoff 0.25 cycles per pixel
    assert low.dtype == torch.float64 and low.shape == (1, 1, 32, 31)  # an odd width keeps its size
    assert torch.allclose(low, below, atol=1e-5) and high.abs().max() < 1e-5
    half = below.to(torch.bfloat16)  # the FFT runs in float32; the split comes back in the maps' dtype
    low, high = frequency_split(half, torch.ones_like(half), 0.5)
    assert low.dtype == high.dtype == torch.bfloat16


def test_holes_take_the_local_average_where_the_window_holds_valid_pixels_and_one_pixel_is_a_mean():
    depth = torch.full((1, 1, 16, 16), 2.0)
    depth[..., :, 8:] = 6.0
    mask = torch.ones_like(depth)
    mask[..., 4:6, 4:6] = 0  # a small hole near valid 2.0 pixels only
    low, high = frequency_split(depth * mask, mask, 1.0)
    assert (low + high)[0, 0, 4, 4].item() == pytest.approx(2.0, abs=1e-5)  # local, not the image's 4.0
    single = torch.zeros(1, 1, 24, 24)
    single_mask = torch.zeros_like(single)
    single[0, 0, 0, 0], single_mask[0, 0, 0, 0] = 4.0, 1.0  # one valid pixel: the mean is its depth
    low, high = frequency_split(single, single_mask, 1.0)
    assert (low + high)[0, 0, 20, 20].item() == pytest.approx(4.0, abs=1e-5)


def test_use_silog_defaults_to_lambda_one_half():
    base, residual, final, gt = _maps()
    mask = (gt > 0).float()
    recon = build_loss("standard", use_silog=True).parts(base, residual, final, gt)["loss_recon"]
    assert recon.item() == pytest.approx(silog(final, gt, mask, lam=0.5).item(), rel=1e-6)


def test_silog_lambda_takes_its_whole_closed_range_and_refuses_the_rest():
    for edge in (0.0, 1.0):  # 0: plain log RMSE, 1: fully scale-invariant
        assert TrainConfig(use_silog=True, silog_lambda=edge).silog_lambda == edge
    for outside in (-0.1, 1.1):
        with pytest.raises(ConfigError, match=rf"^silog_lambda must be between 0 and 1, got {outside}$"):
            TrainConfig(use_silog=True, silog_lambda=outside)


def test_a_loss_takes_its_weight_names_from_its_settings_unless_it_declares_them():
    class Declared(DepthLoss):
        Settings = StandardLossSettings
        weight_names = ("lambda_recon",)

    class Plain(DepthLoss):
        pass

    class Computed(DepthLoss):  # made here, so that the names are computed while the test runs
        Settings = StandardLossSettings

    assert Declared.weight_names == ("lambda_recon",) and Plain.weight_names == ()
    assert Computed.weight_names == BaseResidualLoss.weight_names == ("lambda_recon", "lambda_base", "lambda_sparse")
