import pytest
import torch

from echodepth.config import TrainConfig
from echodepth.errors import ConfigError
from echodepth.losses import (
    LOSSES,
    AdaptiveBaseResidualLoss,
    BaseResidualLoss,
    FrequencyAwareBaseResidualLoss,
    build_loss,
    build_loss_for_training,
    frequency_split,
    lowpass,
)


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
    cfg = TrainConfig(loss=name, lambda_recon=2.0, warmup_epochs=4)
    loss = build_loss_for_training(cfg)
    if name != "htf":  # HTF-EchoDepth's L1 term has no weight of its own
        # the adaptive curriculum starts (epoch 0) at recon_start = 0.1 of lambda_recon: 0.1 * 2.0
        expected = 0.1 * 2.0 if name == "adaptive" else 2.0
        assert loss.weights()["lambda_recon"] == pytest.approx(expected)
    base, residual, final, gt = _maps()
    out = loss(base, residual, final, gt)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
