import json
import math
import re

import pytest

from echodepth.compare import all_variants, compare, plan_runs
from echodepth.losses import LOSSES
from echodepth.models import MODELS


def tiny_compare(out, cache_dir, progress):
    variants = ["unet_baseline", "base_residual"]
    overrides = {"cache_dir": str(cache_dir)}
    return compare(out, preset="tiny", seeds=2, variants=variants, jobs=2, overrides=overrides, progress=progress)


def test_tiny_compare_writes_every_section_with_finite_numbers(tmp_path):
    out = tmp_path / "cmp"
    report = tiny_compare(out, tmp_path / "cache", lambda *_: None)
    text = report.read_text()
    for section in (
        "## Verdict on the design guide's claims",
        "## Convergence",
        "## Final protocol metrics",
        "## Structure metrics",
        "## Base and residual magnitudes over training",
    ):
        assert section in text, section
    for claim in (
        "Faster convergence",
        "Similar or better RMSE",
        "Better structure preservation",
        "Fewer artifacts",
        "Residual stays small",
        "Residual concentrates",
        "Base is smooth",
    ):
        assert claim in text, claim
    assert (out / "val_rmse.png").stat().st_size > 5000 and (out / "magnitudes.png").stat().st_size > 5000
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| base_residual |") or line.startswith("| unet_baseline |")
    ]
    assert len(rows) == 8  # convergence, metrics, structure, magnitudes tables
    numbers = [float(x) for row in rows for x in re.findall(r"-?\d+\.\d+", row)]
    assert numbers and all(math.isfinite(x) for x in numbers)
    results = json.loads((out / "results.json").read_text())["results"]
    assert len(results["base_residual"]["curves"]) == 2 and len(results["base_residual"]["curves"][0]) == 2
    # a second call finds every run finished and only rewrites the report
    messages = []
    tiny_compare(out, tmp_path / "cache", messages.append)
    assert messages[0].startswith("4 of 4 runs already finished")


def test_plan_needs_baseline_and_known_variants(tmp_path):
    with pytest.raises(ValueError, match="unet_baseline"):
        plan_runs(tmp_path, "tiny", 1, ["base_residual"], {})
    with pytest.raises(ValueError, match="unknown variant"):
        plan_runs(tmp_path, "tiny", 1, ["unet_baseline", "base_residual", "bogus"], {})
    runs = plan_runs(tmp_path, "small", 3, ["unet_baseline", "base_residual", "lowpass_16"], {})
    assert len(runs) == 9 and {r.cfg.lowpass_kernel for r in runs if r.variant == "lowpass_16"} == {16}
    assert all(r.cfg.lambda_base == 0 for r in runs if r.variant == "unet_baseline")


def test_variants_come_from_the_registries():
    names = all_variants()
    assert set(MODELS.names()) <= set(names) and {"adaptive", "frequency", "no_structural", "lowpass_16"} <= set(names)
    assert names["unet_baseline"] == {"model": "unet_baseline", "lambda_base": 0.0, "lambda_sparse": 0.0}
    assert names["no_sparsity"] == {"loss": "standard", "lambda_sparse": 0.0}
    assert "standard" not in names  # the default loss is the base_residual variant itself
    assert set(names) - set(MODELS.names()) - set(LOSSES.names()) == {
        "no_structural",
        "no_sparsity",
        "lowpass_4",
        "lowpass_16",
        "silog",
        "seed_defaults",
        "narrow_base",
        "residual_0.3",
        "adam",
    }
