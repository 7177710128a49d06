import pytest
import torch

from echodepth.models import MODELS, build_model, parameter_counts

SMALL = {"base_residual": {"base_channels": 8}, "unet_baseline": {"ngf": 8}}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("input_hw", [(32, 32), (257, 45)])
def test_forward_backward_shapes(name, input_hw):
    torch.manual_seed(0)
    model = build_model(name, image_size=(32, 48), max_depth=10.0, **SMALL[name])
    audio = torch.randn(3, 2, *input_hw)
    base, residual, final = model(audio)
    for t in (base, residual, final):
        assert t.shape == (3, 1, 32, 48)
        assert torch.isfinite(t).all()
    assert torch.equal(final, base + residual)
    assert (base >= 0).all() and (base <= 10.0).all()
    final.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_residual_bounds_and_transposed_mode():
    model = build_model("base_residual", base_channels=8, image_size=(16, 16), bilinear=False, max_depth=2.0, residual_scale=0.25)
    _, residual, _ = model(torch.randn(2, 2, 16, 16) * 100)
    assert residual.abs().max() < 0.5 + 1e-6
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())


def test_baseline_has_zero_residual():
    model = build_model("unet_baseline", ngf=8, image_size=(32, 32))
    base, residual, final = model(torch.randn(2, 2, 40, 40))
    assert torch.count_nonzero(residual) == 0
    assert torch.equal(base, final)


def test_parameter_count_near_30m():
    counts = parameter_counts(build_model("base_residual", base_channels=64))
    assert abs(counts["total"] - 30e6) / 30e6 < 0.15
    assert counts["total"] == counts["encoder"] + counts["base_decoder"] + counts["residual_decoder"]


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="nope"):
        build_model("nope")


def test_baseline_rejects_bad_input_size():
    with pytest.raises(ValueError, match="power of two"):
        build_model("unet_baseline", input_size=(48, 48))
