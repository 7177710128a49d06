"""The named evaluation protocols: hand-computed values where they disagree (pixels between 0.1 and
0.5 m, a NaN-producing prediction, a 256 x 256 map at 128 x 128), and `eval` reporting every one."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from echodepth.cli import main
from echodepth.data import build_dataset
from echodepth.errors import ConfigError
from echodepth.evaluate import ProtocolGroundTruth, format_comparison
from echodepth.metrics import PROTOCOLS, EvalProtocol, get_protocol, protocol_metrics, protocol_per_image
from echodepth.metrics.protocols import on_grid
from echodepth.runs.rundir import RunDir

from .helpers import make_v2, tiny_config
from .published_reference import batvision_ground_truth, htf_ground_truth


def maps(*rows):
    """(B, 1, 1, N) depth maps in metres from per-image lists."""
    return torch.tensor(rows, dtype=torch.float64)[:, None, None, :]


def test_pixels_between_0_1_and_0_5_m_count_under_some_protocols_only():
    gt = maps([0.05, 0.3, 1.0, 2.0])
    pred = maps([1.05, 0.6, 1.0, 1.0])  # errors 1.0, 0.3, 0, 1.0; ratios 21, 2, 1, 2
    every = protocol_metrics(pred, gt, get_protocol("batvision"))  # gt > 0: all four
    assert every["mae"] == pytest.approx(2.3 / 4)
    assert every["rmse"] == pytest.approx(math.sqrt(2.09 / 4))
    assert every["abs_rel"] == pytest.approx((20 + 1 + 0 + 0.5) / 4)
    assert every["delta1"] == pytest.approx(1 / 4)
    echogeom = protocol_metrics(pred, gt, get_protocol("echogeom"))  # gt > 0.1 m: 0.3, 1, 2
    assert echogeom["mae"] == pytest.approx(1.3 / 3)
    assert echogeom["rmse"] == pytest.approx(math.sqrt(1.09 / 3))
    assert echogeom["abs_rel"] == pytest.approx(0.5)
    assert echogeom["delta1"] == pytest.approx(1 / 3)
    htf = protocol_metrics(pred, gt, get_protocol("htf"))  # gt >= 0.5 m: 1, 2
    assert htf["mae"] == pytest.approx(0.5)
    assert htf["rmse"] == pytest.approx(math.sqrt(0.5))
    assert htf["abs_rel"] == pytest.approx(0.25)
    assert htf["delta1"] == pytest.approx(0.5)


def test_htf_counts_a_pixel_at_exactly_0_5_m_and_protocols_clip_to_30_m():
    gt, pred = maps([0.5, 1.0, 40.0]), maps([1.0, 1.0, 30.0])  # 40 m ground truth counts as 30 m
    assert protocol_metrics(pred, gt, get_protocol("htf"))["mae"] == pytest.approx(0.5 / 3)
    assert protocol_metrics(pred, gt, get_protocol("echogeom"))["mae"] == pytest.approx(0.5 / 3)
    assert protocol_metrics(pred, gt, get_protocol("echodepth"))["mae"] == pytest.approx(10.5 / 3)  # no clip of its own


def test_a_negative_prediction_is_nan_under_the_published_code_and_replaced_by_0():
    gt = maps([1.0, 2.0], [1.0, 1.0])
    pred = maps([-1.0, 2.0], [1.0, 1.0])  # image 1: log10(-1) is NaN; its ratio -1 counts inside delta1
    published = protocol_metrics(pred, gt, get_protocol("batvision"))
    assert published["log10"] == 0.0 and published["n_nan_replaced"] == 1
    assert published["delta1"] == pytest.approx(1.0)  # the published code's quirk, kept
    assert published["rmse"] == pytest.approx(math.sqrt(2) / 2)  # image 1: sqrt(4 / 2); image 2: 0
    strict = protocol_metrics(pred, gt, get_protocol("batvision_strict"))  # clamped to 1 mm
    assert strict["log10"] == pytest.approx(3 / 2 / 2)
    assert strict["delta1"] == pytest.approx(0.75)
    assert strict["rmse"] == pytest.approx(0.999 / math.sqrt(2) / 2)
    assert "n_nan_replaced" not in strict


def test_a_nan_prediction_scores_0_as_published_and_nan_under_echodepth():
    gt = maps([1.0, 2.0], [1.0, 1.0], [0.0, 0.0])  # image 3: no valid pixel
    pred = maps([math.nan, math.nan], [2.0, 2.0], [1.0, 1.0])
    published = protocol_metrics(pred, gt, get_protocol("batvision"))
    assert published["rmse"] == pytest.approx(1.0 / 3)  # NaN image and empty image count as 0
    # NaN image: abs_rel, rmse, log10, mae are NaN (a NaN ratio is simply not < 1.25: deltas 0, as in
    # numpy); the empty image: all 7
    assert published["n_images"] == 3 and published["n_nan_replaced"] == 4 + 7
    own = protocol_metrics(pred, gt, get_protocol("echodepth"))
    assert math.isnan(own["rmse"]) and own["n_images"] == 2 and own["n_skipped"] == 1


def test_a_256_map_at_128_is_resized_and_its_ground_truth_read_on_the_protocol_grid(tmp_path):
    pred = torch.full((1, 1, 256, 256), 2.0)
    pred[..., 128:] = 4.0
    gt = torch.full((1, 1, 128, 128), 3.0)
    m = protocol_metrics(pred, gt, get_protocol("echogeom"))
    # antialiased bilinear halving: weights 1/8, 3/8, 3/8, 1/8; columns 63 and 64 straddle the step
    # (2.25 and 3.75 m, error 0.75), every other column is off by 1 m
    assert m["mae"] == pytest.approx((126 + 2 * 0.75) / 128)
    assert m["rmse"] == pytest.approx(math.sqrt((126 + 2 * 0.5625) / 128))
    # ground truth from a 256 x 256 file: nearest-neighbour to 128 x 128, clipped to the protocol's 30 m
    root = make_v2(tmp_path / "v2", n_per_split=1, depth_shape=(256, 256))
    depth = np.full((256, 256), 1000.0, dtype=np.float32)
    depth[:, 128:] = 40000.0  # 40 m
    for path in root.glob("*/depth/test_0.npy"):
        np.save(path, depth)
    raw = build_dataset("batvisionv2", root, "test", max_depth_m=50.0)
    grids = ProtocolGroundTruth(raw).grids([str(ref.depth) for ref in raw.refs], [get_protocol("echogeom")])
    assert grids["echogeom"].shape == (2, 1, 128, 128)
    assert float(grids["echogeom"][0, 0, 5, 5]) == pytest.approx(1.0) and float(grids["echogeom"][0, 0, 5, 100]) == 30.0
    clipped = protocol_metrics(torch.full((2, 1, 256, 256), 30.0), grids["echogeom"], get_protocol("echogeom"))
    assert clipped["mae"] == pytest.approx(29.0 / 2)  # left half 29 m off, right half 40 -> 30 m: exact


@pytest.fixture(scope="module")
def trained(synth_dir, tmp_path_factory):
    from echodepth.runs.train import train

    root = tmp_path_factory.mktemp("protocols")
    return train(tiny_config(synth_dir, root, protocol="echogeom"), progress=False)


def test_train_reports_every_protocol_with_its_own_headline(trained):
    test = json.loads(RunDir(trained["out_dir"]).test_metrics.read_text())["model"]
    assert test["headline"] == "echogeom"
    assert set(test["protocols"]) == set(PROTOCOLS)
    assert test["rmse"] == test["protocols"]["echogeom"]["metrics"]["rmse"]
    assert test["protocols"]["htf"]["resolution"] == "256 x 256"
    assert test["protocols"]["htf"]["pixels"] == "gt >= 0.5 m"
    assert test["protocols"]["echogeom"]["depth_range_m"] == [0.0, 30.0]
    assert "replaced by 0" in test["protocols"]["batvision"]["nan_handling"]
    lines = format_comparison(trained["test"], trained["baselines"]).splitlines()
    assert next(line for line in lines if line.startswith("echogeom ")).endswith("(headline)")


def test_the_end_of_training_table_holds_the_model_against_the_mean_depth_under_echodepths_protocol():
    def metrics(rmse):
        return {"rmse": rmse, "abs_rel": 0.1, "mae": 0.4, "delta1": 0.8, "log10": 0.05}

    entry = {"resolution": "256 x 256", "depth_range_m": [0.0, 30.0], "pixels": "gt >= 0.5 m"}
    test = {**metrics(9.0), "headline": "htf"}  # the headline (htf) at the top level
    test["protocols"] = {"echodepth": {**entry, "metrics": metrics(0.5)}, "htf": {**entry, "metrics": metrics(9.0)}}
    lines = format_comparison(test, {"mean_depth": metrics(1.0), "per_pixel_mean_depth": metrics(0.8)}).splitlines()
    assert lines[1].split()[3] == "0.5000"  # echodepth's, the protocol the mean-depth predictors use
    assert "RMSE 37.5% lower than the better mean-depth predictor" in lines
    assert lines[-1].startswith("htf") and lines[-1].endswith("(headline)")


def test_eval_prints_the_headline_and_writes_every_protocol(trained, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", trained["best_checkpoint"], "--protocol", "htf", "--out_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "headline protocol htf" in printed
    assert all(name in printed for name in PROTOCOLS)
    written = json.loads((out / "test_metrics.json").read_text())
    assert written["headline"] == "htf" and written["rmse"] == written["protocols"]["htf"]["metrics"]["rmse"]
    header = (out / "test_per_image.csv").read_text().splitlines()[0].split(",")
    assert {"rmse", "htf/rmse", "batvision/rmse", "echogeom/n_valid"} <= set(header)
    # where a protocol departs from its paper, eval says so, in print and in the JSON
    assert "htf departs from its paper: the published requirements ask torchvision >= 0.15" in printed
    assert "echodepth departs" not in printed and written["protocols"]["echodepth"]["departures"] == []
    assert any("16 x 16" in d for d in written["protocols"]["batvision"]["departures"])  # the model's grid
    # each protocol scored the ground truth its paper's loader makes from the full-resolution file
    row = next(csv.DictReader(io.StringIO((out / "test_per_image.csv").read_text())))
    depth_mm = np.load(row["depth"])
    assert float(row["batvision/n_valid"]) == int((batvision_ground_truth(depth_mm) > 0).sum())
    assert float(row["htf/n_valid"]) == int((htf_ground_truth(depth_mm) >= 0.5).sum())
    # without --protocol, the checkpoint's own setting is the headline
    assert main(["eval", "--checkpoint", trained["best_checkpoint"], "--out_dir", str(out)]) == 0
    assert json.loads((out / "test_metrics.json").read_text())["headline"] == "echogeom"


def test_each_protocol_states_its_grid_range_pixels_and_nan_handling():
    htf = get_protocol("htf").describe(model_side=64, model_max_depth_m=12.0)
    assert htf["resolution"] == "256 x 256" and htf["depth_range_m"] == [0.0, 30.0]
    assert htf["pixels"] == "gt >= 0.5 m" and htf["source"] == "HTF-EchoDepth (V2 test RMSE 2.187 m)"
    assert htf["definition"]["min_gt_m"] == 0.5 and htf["definition"]["inclusive"] is True
    assert htf["nan_handling"].startswith("published: gt and predictions clamped below at 1e-6 m; NaN pixels left")
    assert "antialiasing" in htf["gt_resize"] and "torchvision >= 0.17" in htf["departures"][0]
    assert htf["departures"][-1].startswith("the model predicts at 64 x 64: its prediction is resized bilinearly")
    assert len(get_protocol("htf").describe(model_side=256)["departures"]) == len(htf["departures"]) - 1
    assert "without antialiasing" in get_protocol("batvision").describe()["gt_resize"]
    own = get_protocol("echodepth").describe(model_side=64, model_max_depth_m=12.0)
    assert own["resolution"] == "64 x 64" and own["depth_range_m"] == [0.0, 12.0] and own["pixels"] == "gt > 0 m"
    assert own["departures"] == [] and own["nan_handling"].startswith("echodepth: predictions clamped to 1 mm;")
    assert get_protocol("echodepth").describe()["resolution"] == "the model's"
    assert get_protocol("echogeom").pixels == "gt > 0.1 m"
    assert get_protocol("batvision").nan_handling.startswith("published: predictions not clamped; an image's NaN")
    with pytest.raises(ConfigError, match=r"^unknown evaluation protocol 'kitti'; expected one of \['echodepth', "):
        get_protocol("kitti")


def test_predictions_are_resized_to_the_protocols_grid_antialiased_and_left_alone_at_its_size():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 1, 8, 8, dtype=torch.float64, generator=g)
    assert on_grid(pred, (8, 8)) is pred
    shrunk = on_grid(pred, (2, 2))
    expected = torch.nn.functional.interpolate(pred.float(), size=(2, 2), mode="bilinear", antialias=True)
    assert shrunk.dtype == torch.float32 and torch.allclose(shrunk, expected)
    flat = on_grid(torch.full((1, 1, 3, 5), 4.0), (6, 10))  # a flat map stays flat, borders included
    assert flat.shape == (1, 1, 6, 10) and torch.allclose(flat, torch.tensor(4.0))


def test_ground_truth_is_clipped_to_the_protocols_max_depth_and_infinite_depth_stays_invalid():
    gt = maps([40.0, math.inf, 2.0])
    pred = maps([30.0, 30.0, 2.0])
    per_image = protocol_per_image(pred, gt, get_protocol("echogeom"))  # 30 m
    assert per_image["n_valid"].tolist() == [2.0] and per_image["mae"].item() == 0.0
    assert protocol_per_image(pred, gt, get_protocol("echodepth"))["mae"].item() == pytest.approx(5.0)  # no clip


class FlatTruth(EvalProtocol):
    """A throwaway protocol with behaviour of its own: an 8 x 8 grid whose ground truth is the file's
    median valid depth everywhere, so that every pixel counts."""

    name = "tmp_flat_truth"
    image_size = 8
    max_depth_m = 5.0
    source = "a test"

    def ground_truth(self, depth_m, model_side=None):
        depth = torch.as_tensor(depth_m)
        median = depth[torch.isfinite(depth) & (depth > 0)].median().clamp(max=self.max_depth_m)
        return torch.full((1, *self.grid()), float(median))


def test_a_protocol_is_one_class_and_its_registration_and_reaches_eval(trained, tmp_path):
    PROTOCOLS.register("tmp_flat_truth")(FlatTruth)
    try:
        assert "tmp_flat_truth" in list(PROTOCOLS) and isinstance(get_protocol("tmp_flat_truth"), FlatTruth)
        out = tmp_path / "eval"
        argv = ["eval", "--checkpoint", trained["best_checkpoint"], "--protocol", "tmp_flat_truth"]
        assert main([*argv, "--out_dir", str(out)]) == 0
        written = json.loads((out / "test_metrics.json").read_text())
        assert (
            written["headline"] == "tmp_flat_truth" and written["protocols"]["tmp_flat_truth"]["resolution"] == "8 x 8"
        )
        rows = list(csv.DictReader(io.StringIO((out / "test_per_image.csv").read_text())))
        assert {float(r["tmp_flat_truth/n_valid"]) for r in rows} == {64.0}  # its own ground truth: all valid
    finally:
        PROTOCOLS.unregister("tmp_flat_truth")
    assert "tmp_flat_truth" not in PROTOCOLS


def test_protocols_name_the_shapes_they_refuse():
    one, other = torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 3)
    for name in ("htf", "batvision"):
        with pytest.raises(ValueError, match=r"^prediction shape \(1, 1, 2, 2\) differs from ground truth shape \(1, "):
            get_protocol(name).image_metrics(one, other)
        with pytest.raises(ValueError, match=r"^expected an \(H, W\) depth map, got shape \(2, 3, 4\)$"):
            get_protocol(name).ground_truth(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"^protocol 'echodepth' evaluates on the model's grid: give its side$"):
        get_protocol("echodepth").grid()
    with pytest.raises(ConfigError, match="inclusive"):
        get_protocol("htf", inclusive=False)  # a protocol takes no settings: its class attributes are its definition


def test_the_default_ground_truth_keeps_measured_depths_nearest_exact_and_zeroes_the_rest():
    depth = np.arange(1.0, 17.0, dtype=np.float32).reshape(4, 4)
    depth[0, 1], depth[0, 3], depth[2, 1], depth[2, 3] = np.nan, np.inf, -2.0, 0.0  # beside the picked pixels
    assert get_protocol("echodepth").ground_truth(depth, model_side=2).tolist() == [[[6.0, 8.0], [14.0, 16.0]]]
    depth[1, 1], depth[1, 3], depth[3, 1] = np.inf, -np.inf, -2.0  # now the picked ones
    assert get_protocol("echodepth").ground_truth(torch.from_numpy(depth), 2).tolist() == [[[0.0, 0.0], [0.0, 16.0]]]


class ArrayLike:
    """A depth map that only numpy's array protocol reads (as an image library's or a lazy file's object)."""

    def __init__(self, array):
        self.array = array

    def __array__(self, dtype=None, copy=None):
        return self.array


def test_a_depth_map_is_read_from_any_array_like_and_from_a_tensor_numpy_cannot_hold():
    depth = np.float32([[1.0, 2.0], [3.0, 4.0]])
    for given in (ArrayLike(depth), depth.tolist(), torch.from_numpy(depth).to(torch.bfloat16)):
        made = get_protocol("batvision").ground_truth(given)  # bfloat16: numpy has no such dtype
        assert made.dtype == torch.float32 and made.shape == (1, 256, 256) and float(made.max()) == 4.0


def test_a_protocol_counting_from_its_bound_inclusive_counts_a_pixel_at_it():
    class FromHalfAMetre(EvalProtocol):
        min_gt_m = 0.5
        inclusive = True

    per_image = FromHalfAMetre().image_metrics(maps([0.5, 1.0, 0.4]), maps([0.5, 1.0, 0.4]))
    assert per_image["n_valid"].tolist() == [2.0]


def test_the_definition_is_the_protocols_class_attributes_and_a_name_stands_for_its_protocol():
    assert get_protocol("echogeom").definition() == {
        "name": "echogeom",
        "image_size": 128,
        "max_depth_m": 30.0,
        "min_gt_m": 0.1,
        "inclusive": False,
        "class": "echodepth.metrics.protocols.echogeom.EchoGeom",
    }
    described = get_protocol("echogeom").describe(model_side=64)["departures"][-1]
    assert described.endswith("to 128 x 128, where the paper's model predicts")
    gt, pred = maps([1.0, 2.0, 0.3]), maps([1.5, 2.0, 0.3])
    assert protocol_metrics(pred, gt, "htf") == protocol_metrics(pred, gt, get_protocol("htf"))
    assert protocol_per_image(pred, gt, "htf")["n_valid"].tolist() == [2.0]


def test_htf_counts_empty_images_and_replaced_values_apart():
    gt = maps([1.0, 1.0, 2.0], [0.1, 0.2, 0.3], [1.0, 0.1, 0.1])
    pred = maps([math.nan, 2.0, 4.0], [1.0, 1.0, 1.0], [math.nan, 1.0, 1.0])
    htf = protocol_metrics(pred, gt, "htf")
    # image 1: no pixel at 0.5 m or more (scored 0, counted as empty, nothing replaced); image 0: rmse, abs_rel
    # and mae non-finite (its log10 leaves the NaN pixel out); image 2, one valid pixel: those and log10
    assert (htf["n_images"], htf["n_empty"], htf["n_nonfinite_replaced"]) == (3, 1, 3 + 0 + 4)
    nothing = get_protocol("htf").aggregate(get_protocol("htf").per_image(maps([1.0])[:0], maps([1.0])[:0]))
    assert nothing["n_images"] == 0 and all(math.isnan(nothing[k]) for k in ("rmse", "delta1"))  # numpy's mean of []
