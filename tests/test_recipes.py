"""The published recipes and the demo's, shipped as settings files; the htf loss; the learning-rate warm-up."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from echodepth.cli import main
from echodepth.compare.variants import all_variants
from echodepth.losses import build_loss
from echodepth.recipes import recipe_names, resolve_config_path
from echodepth.runs.rundir import RunDir
from echodepth.settings.config import TrainConfig
from echodepth.settings.sources import CPU_PRESET, resolve_config
from echodepth.settings.yaml_files import load_yaml
from echodepth.training.schedule import warmup_factor

# the published values (shared/spec/batvision_format.md, the design guide); the papers' U-Net takes
# the spectrogram as it is (input_norm none), not echodepth's default input centring
PUBLISHED = {
    "batvision_unet": {"model": "unet_baseline", "optimizer": "AdamW", "learning_rate": 1e-3, "batch_size": 128,
                       "epochs": 80, "lambda_base": 0.0, "lambda_sparse": 0.0, "image_size": 256, "input_norm": "none"},
    "htf": {"model": "unet_baseline", "loss": "htf", "optimizer": "AdamW", "learning_rate": 3e-4,
            "weight_decay": 1e-2, "lr_schedule": "cosine", "batch_size": 32, "epochs": 80, "image_size": 256,
            "input_norm": "none"},
    "guide_defaults": {"model": "base_residual", "loss": "standard", "batch_size": 256, "learning_rate": 0.002,
                       "lambda_recon": 1.0, "lambda_base": 0.5, "lambda_sparse": 0.1, "lowpass_kernel": 8,
                       "base_channels": 64},
}  # fmt: skip


def test_the_published_recipes_are_shipped_with_their_values():
    assert recipe_names() == sorted([*PUBLISHED, "tuned", "tuned_medium"])
    for name, values in PUBLISHED.items():
        cfg = resolve_config(load_yaml(resolve_config_path(name)), {})
        assert {k: getattr(cfg, k) for k in values} == values, name
        assert cfg.dataset == "batvisionv2"
    assert resolve_config(load_yaml(resolve_config_path("htf")), {}).lr_warmup_epochs > 0
    assert resolve_config(load_yaml(resolve_config_path("batvision_unet")), {}).protocol == "batvision"


def test_the_demo_recipe_is_the_tuned_variant_at_the_cpu_size():
    """`make demo` trains the recipe `tuned`: the compare variant's values over the CPU preset (it names no
    dataset), and a dataset given as a flag keeps its weights at the guide's sizes."""
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert "echodepth train --config tuned --overwrite" in makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    values = load_yaml(resolve_config_path("tuned"))
    assert values == all_variants()["tuned"] and "dataset" not in values
    demo = resolve_config(values, {})
    assert {k: getattr(demo, k) for k in values} == values
    assert (demo.dataset, demo.image_size, demo.base_channels) == ("synthetic", CPU_PRESET["image_size"], 12)
    guide = resolve_config(values, {"dataset": "batvisionv2"})
    assert (guide.image_size, guide.base_channels, guide.lambda_sparse) == (256, 64, values["lambda_sparse"])


def test_recipes_are_listed_by_the_command_and_train_help(capsys):
    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in PUBLISHED) and "AdamW, learning rate 3e-4" in listed
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    helped = " ".join(capsys.readouterr().out.split())  # as wrapped at any terminal width
    assert all(name in helped for name in PUBLISHED), helped


def test_an_unknown_recipe_or_missing_file_is_one_line(capsys):
    assert main(["train", "--config", "htf_v2"]) == 2
    expected = (
        "neither a file nor a recipe; recipes: ['batvision_unet', 'guide_defaults', 'htf', 'tuned', 'tuned_medium']"
    )
    assert expected in capsys.readouterr().err
    assert main(["train", "--config", "nowhere/recipe.yaml"]) == 2
    assert "config file nowhere/recipe.yaml not found" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", sorted(PUBLISHED))
def test_each_recipe_trains_through_config(recipe, synth_dir, tmp_path, capsys):
    flags = ["--dataset", "synthetic", "--data_dir", str(synth_dir), "--image_size", "16", "--base_channels", "4"]
    flags += ["--batch_size", "8", "--epochs", "2", "--num_workers", "0", "--results_dir", str(tmp_path)]
    flags += ["--cache_dir", str(tmp_path / "cache")]
    if recipe == "htf":
        flags += ["--lr_warmup_epochs", "1"]  # the recipe's 5 must stay below --epochs
    assert main(["train", "--config", recipe, *flags]) == 0
    run = RunDir(tmp_path / recipe)  # each recipe names its experiment
    saved = load_yaml(run.config)
    for key, value in PUBLISHED[recipe].items():
        if key not in ("batch_size", "epochs", "image_size", "base_channels"):
            assert saved[key] == value, key
    headline = json.loads(run.test_metrics.read_text())["model"]["headline"]
    assert headline == {"batvision_unet": "batvision", "htf": "htf", "guide_defaults": "echodepth"}[recipe]


def test_htf_loss_is_l1_plus_a_hinge_on_the_log_ratio():
    loss = build_loss("htf")
    final = torch.tensor([1.0, 2.0, 1.1, 5.0]).reshape(1, 1, 2, 2)
    gt = torch.tensor([1.0, 1.0, 1.0, 0.0]).reshape(1, 1, 2, 2)  # the last pixel is invalid
    parts = loss(final, torch.zeros_like(final), final, gt)
    # L1 over valid pixels: (0 + 1 + 0.1) / 3; hinge: only ln 2 exceeds ln 1.25 (ln 1.1 does not)
    assert float(parts["loss_l1"]) == pytest.approx(1.1 / 3)
    assert float(parts["loss_log_hinge"]) == pytest.approx((math.log(2) - math.log(1.25)) / 3)
    assert float(parts["loss"]) == pytest.approx(1.1 / 3 + 0.003 * (math.log(2) - math.log(1.25)) / 3)


def test_warm_up_then_cosine_or_constant():
    assert [warmup_factor(e, 2, 6, cosine=True) for e in range(6)] == pytest.approx(
        [0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))]
    )
    assert [warmup_factor(e, 3, 5, cosine=False) for e in range(5)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 1])
    with pytest.raises(Exception, match="lr_warmup_epochs must be >= 0 and below epochs"):
        TrainConfig(lr_warmup_epochs=80, epochs=80)


def test_the_warm_up_is_the_rate_each_epoch_trains_with(synth_dir, tmp_path):
    from echodepth.runs.train import train

    from .helpers import tiny_config

    cfg = tiny_config(synth_dir, tmp_path, epochs=3, lr_warmup_epochs=2, learning_rate=0.001)
    result = train(cfg, progress=False)
    rates = [row["lr"] for row in RunDir(result["out_dir"]).read_metrics()]
    assert rates == pytest.approx([0.0005, 0.001, 0.001])
