import json
import math
import re

import pytest
import torch

from echodepth.compare import compare, depth_edges, finish_structure, high_frequency_share, plan_runs, structure_sums


def test_tiny_compare_writes_every_section_with_finite_numbers(tmp_path):
    out = tmp_path / "cmp"
    report = compare(out, preset="tiny", seeds=2, variants=["unet_baseline", "base_residual"], jobs=2, overrides={"cache_dir": str(tmp_path / "cache")}, progress=lambda *_: None)
    text = report.read_text()
    for section in ("## Verdict on the design guide's claims", "## Convergence", "## Final protocol metrics", "## Structure metrics", "## Base and residual magnitudes over training"):
        assert section in text, section
    for claim in ("Faster convergence", "Similar or better RMSE", "Better structure preservation", "Fewer artifacts", "Residual stays small", "Residual concentrates", "Base is smooth"):
        assert claim in text, claim
    assert (out / "val_rmse.png").stat().st_size > 5000 and (out / "magnitudes.png").stat().st_size > 5000
    rows = [line for line in text.splitlines() if line.startswith("| base_residual |") or line.startswith("| unet_baseline |")]
    assert len(rows) == 8  # convergence, metrics, structure, magnitudes tables
    numbers = [float(x) for row in rows for x in re.findall(r"-?\d+\.\d+", row)]
    assert numbers and all(math.isfinite(x) for x in numbers)
    results = json.loads((out / "results.json").read_text())["results"]
    assert len(results["base_residual"]["curves"]) == 2 and len(results["base_residual"]["curves"][0]) == 2
    # a second call finds every run finished and only rewrites the report
    messages = []
    compare(out, preset="tiny", seeds=2, variants=["unet_baseline", "base_residual"], jobs=2, overrides={"cache_dir": str(tmp_path / "cache")}, progress=messages.append)
    assert messages[0].startswith("4 of 4 runs already finished")


def test_plan_needs_baseline_and_known_variants(tmp_path):
    with pytest.raises(ValueError, match="unet_baseline"):
        plan_runs(tmp_path, "tiny", 1, ["base_residual"], {})
    with pytest.raises(ValueError, match="unknown variant"):
        plan_runs(tmp_path, "tiny", 1, ["unet_baseline", "base_residual", "bogus"], {})
    runs = plan_runs(tmp_path, "small", 3, ["unet_baseline", "base_residual", "lowpass_16"], {})
    assert len(runs) == 9 and {r.cfg.lowpass_kernel for r in runs if r.variant == "lowpass_16"} == {16}
    assert all(r.cfg.lambda_base == 0 for r in runs if r.variant == "unet_baseline")


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
