"""Depth maps with too little ground truth: named before training, no loss from zero pixels,
no NaN metric called healthy, no train/test overlap blamed without cause."""

import math
import shutil

import numpy as np
import pytest
import torch

from echodepth.cli import main
from echodepth.diagnose.checks import run_checks
from echodepth.errors import DataError
from echodepth.evaluate import format_comparison
from echodepth.losses import LOSSES
from echodepth.settings.config import TrainConfig
from echodepth.training.microbatch import accumulate_gradients

from .helpers import nan_split, train_args

NAN = math.nan


def test_sparse_depth_maps_are_named_before_training(synth_dir, tmp_path, capsys):
    data = tmp_path / "sparse"
    shutil.copytree(synth_dir, data)
    for depth in sorted(data.rglob("depth/*.npy")):
        sparse = np.zeros((64, 64), np.uint16)
        sparse[0, 0] = 2500  # one return, which a nearest resize of 64 x 64 to 16 x 16 does not sample
        np.save(depth, sparse)
    assert main(train_args(data, tmp_path, "--epochs", "1")) == 2
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.startswith("echodepth")]  # not progress bars
    assert len(err) == 1 and "survives the resize to 16 x 16" in err[0] and ".npy" in err[0]
    assert "outputs:" not in captured.out and not list(tmp_path.rglob("best.ckpt"))  # no training ran


@pytest.mark.parametrize("name", LOSSES.names())
def test_no_loss_value_from_zero_valid_pixels(name):
    g = torch.Generator().manual_seed(0)
    gt = torch.zeros(2, 1, 8, 8)  # no valid pixel
    pred = torch.rand(2, 1, 8, 8, generator=g)
    loss = LOSSES.get(name)()(pred, torch.zeros_like(pred), pred, gt)["loss"]
    assert not torch.isfinite(loss), f"{name} computed {loss.item()} from zero pixels"


def test_a_batch_without_valid_pixel_is_refused_by_name():
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Conv2d(2, 3, 1)
    features = torch.rand(4, 2, 8, 8, generator=g)

    def network(x):
        return model(x).split(1, dim=1)

    loss = LOSSES.get("standard")()
    with pytest.raises(DataError, match="no valid depth pixel"):
        accumulate_gradients(
            network,
            loss,
            feature_image=features,
            depth_norm=torch.zeros(4, 1, 8, 8),
            valid=torch.zeros(4, 1, 8, 8, dtype=torch.bool),
            micro_batch=2,
            backward=print,
        )
    valid = torch.zeros(4, 1, 8, 8, dtype=torch.bool)
    valid[3] = True  # micro-batches of 2: the first has no valid pixel and adds nothing
    depth = torch.rand(4, 1, 8, 8, generator=g) * valid
    parts = accumulate_gradients(
        network,
        loss,
        feature_image=features,
        depth_norm=depth,
        valid=valid,
        micro_batch=2,
        backward=lambda t: t.backward(),
    )
    assert torch.isfinite(parts["loss"]) and torch.isfinite(model.weight.grad).all()


def test_diagnose_never_calls_nan_healthy():
    history = {"stop_reason": None, "non_finite_epochs": [], "loss_spikes": [], "val_rise_from_best": NAN}
    checks = run_checks(nan_split(), history, TrainConfig(), decomposes=True)
    assert len(checks) == 7 and not any(c.healthy for c in checks)
    assert all("not measured" in c.symptom for c in checks if c.name != "training_stability")
    assert "validation RMSE not measured" in checks[-1].symptom


def test_nan_test_metrics_blame_no_train_test_overlap():
    nan = {k: NAN for k in ("rmse", "abs_rel", "mae", "delta1", "log10")}
    text = format_comparison(nan, {"mean_depth": nan, "per_pixel_mean_depth": nan})
    assert "no test metrics (NaN)" in text and "training split" not in text and "overlap" not in text
