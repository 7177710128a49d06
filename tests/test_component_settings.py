"""Settings owned by their components: every flag and YAML key of a model, loss, audio feature or
dataset layout comes from its `Settings` dataclass; a setting the user states that the chosen
component does not take is one line naming that component; presets, recipes, compare variants and
stored runs keep working; a new component with a new setting is one class plus its registration."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from echodepth.cli import build_parser, main
from echodepth.cli.flags import given_train_settings
from echodepth.compare import PRESETS, all_variants, plan_runs
from echodepth.diagnose.checks import run_checks
from echodepth.diagnose.report import table
from echodepth.errors import ConfigError
from echodepth.inference.predictor import Predictor, read_checkpoint, upgrade_metadata
from echodepth.losses import build_loss_for_training
from echodepth.models import MODELS, DepthModel, build_model_for_training
from echodepth.settings.config import TrainConfig
from echodepth.settings.sources import CPU_PRESET, resolve_config
from echodepth.settings.yaml_files import load_yaml, save_yaml

from .helpers import nan_split, one_line_error

OLD = Path(__file__).parent / "fixtures" / "flat_settings_run"  # a run's files with every setting flat (README there)


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--model", "unet_baseline", "--residual_scale", "0.3", "--no-bilinear"],
            "--bilinear and --residual_scale do not apply to --model unet_baseline "
            "(its settings: --base_channels, --input_norm)",
        ),
        (
            ["--loss", "frequency", "--lambda_sparse", "5", "--lowpass_kernel", "16"],
            "--lambda_sparse and --lowpass_kernel do not apply to --loss frequency",
        ),
        (["--loss", "htf", "--lambda_base", "0"], "--lambda_base does not apply to --loss htf (its settings: --hinge"),
        (["--model", "same_backbone", "--base_decoder", "narrow"], "--base_decoder does not apply to --model same_b"),
        (["--warmup_epochs", "3"], "--warmup_epochs does not apply to --loss standard"),
        (["--audio_format", "waveform", "--log_compression"], "--log_compression does not apply to --audio_format wav"),
        (
            ["--dataset", "batvisionv1", "--data_dir", "nowhere", "--location_blacklist", "a"],
            "--location_blacklist does not apply to --dataset batvisionv1 (it takes no settings of its own)",
        ),
    ],
)
def test_a_stated_setting_that_does_not_apply_is_one_line_naming_the_component(tmp_path, capsys, flags, message):
    assert main(["train", *flags, "--results_dir", str(tmp_path / "results"), "--cache_dir", str(tmp_path / "c")]) == 2
    assert one_line_error(capsys).startswith(f"echodepth train: error: {message}")
    assert not (tmp_path / "results").exists() and not (tmp_path / "c").exists()


def test_a_settings_file_the_user_wrote_is_checked_as_flags_are(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("model: unet_baseline\nresidual_scale: 0.3\n")
    assert main(["train", "--config", str(path), "--results_dir", str(tmp_path / "results")]) == 2
    assert one_line_error(capsys).startswith(
        f"echodepth train: error: in {path}: --residual_scale does not apply to --model unet_baseline"
    )
    # a flag that does not apply is reported first, as the flag's error
    assert main(["train", "--config", str(path), "--no-bilinear", "--results_dir", str(tmp_path / "results")]) == 2
    assert one_line_error(capsys).startswith(
        "echodepth train: error: --bilinear does not apply to --model unet_baseline"
    )
    # the file's setting overridden by a flag that applies: the file names the model, the flag the change
    path.write_text("residual_scale: 0.3\n")
    assert main(["train", "--config", str(path), "--model", "unet_baseline", "--results_dir", str(tmp_path)]) == 2
    assert f"in {path}: --residual_scale does not apply" in one_line_error(capsys)


def test_the_run_settings_flags_say_what_they_set_and_show_an_empty_default_as_none():
    help_text = " ".join(train_parser().format_help().split())
    assert "--input_size [INPUT_SIZE ...] feature image H W when not image_size square (default: none)" in help_text
    assert "--epochs EPOCHS training epochs (80: the dataset baseline's) (default: 80)" in help_text


def train_parser():
    """Returns the `train` sub-command's parser."""
    return build_parser(only="train")._subparsers._group_actions[0].choices["train"]


def train_settings(*flags: str) -> TrainConfig:
    """Returns the settings `echodepth train FLAGS` would run with (parsed as the command line does)."""
    return resolve_config({}, given_train_settings(build_parser(only="train").parse_args(["train", *flags])))


def test_the_frequency_losss_lambda_residual_is_set_from_flags_and_yaml(tmp_path):
    cfg = train_settings("--loss", "frequency", "--lambda_residual", "0.25")
    assert build_loss_for_training(cfg).lambda_residual == 0.25
    path = tmp_path / "run.yaml"
    path.write_text("loss: frequency\nlambda_residual: 0.75\nfreq_cutoff: 0.2\n")
    loss = build_loss_for_training(resolve_config(load_yaml(path), {}))
    assert (loss.lambda_residual, loss.freq_cutoff) == (0.75, 0.2)
    assert loss.weights()["lambda_residual"] == 0.75


GUIDE_COMMANDS = [  # shared/spec/base_residual_guide.md, "Usage" and "Configuration"
    ["--dataset", "batvisionv2", "--batch_size", "256", "--learning_rate", "0.002", "--experiment_name", "exp1"],
    ["--dataset", "batvisionv2", "--use_wandb", "--wandb_project", "batvision-base-residual"],
    ["--lambda_recon", "1.0", "--lambda_base", "0.5", "--lambda_sparse", "0.1", "--lowpass_kernel", "8"],
    ["--use_adaptive_loss", "--warmup_epochs", "20"],
    ["--lowpass_kernel", "16"],
    ["--base_channels", "64", "--no-bilinear"],
]


@pytest.mark.parametrize("flags", GUIDE_COMMANDS, ids=lambda flags: " ".join(flags[:2]))
def test_the_guides_flat_flags_still_work(flags):
    cfg = train_settings(*flags)
    given = given_train_settings(build_parser(only="train").parse_args(["train", *flags]))
    assert given and all(getattr(cfg, name) == value for name, value in given.items() if name != "use_adaptive_loss")
    if "--use_adaptive_loss" in flags:
        assert build_loss_for_training(cfg).warmup_epochs == 20 and cfg.loss == "adaptive"


def test_base_channels_is_the_baselines_declared_width():
    cfg = train_settings("--model", "unet_baseline", "--base_channels", "6", "--image_size", "32")
    network = build_model_for_training(cfg, 2)
    assert network.downs[0][0].out_channels == 6 and network.cfg.base_channels == 6
    help_text = next(a.help for a in train_parser()._actions if a.dest == "base_channels")
    assert "unet_baseline" in help_text and "ngf" in help_text


def test_choices_and_types_come_from_the_declarations(capsys):
    with pytest.raises(ConfigError, match=r"base_resolution 3 is not one of \[1, 2, 4, 8\]"):
        TrainConfig(base_resolution=3)
    with pytest.raises(ConfigError, match="residual_scale must be > 0, got -0.1"):
        TrainConfig(residual_scale=-0.1)
    with pytest.raises(ConfigError, match="lambda_residual must be float, got 'high'"):
        TrainConfig(loss="frequency", lambda_residual="high")
    assert TrainConfig(loss="frequency", lambda_residual=1).lambda_residual == 1.0  # an int where a float is declared
    with pytest.raises(SystemExit):
        build_parser(only="train").parse_args(["train", "--base_decoder", "tiny"])
    assert "invalid choice: 'tiny'" in capsys.readouterr().err


def test_presets_recipes_and_variants_leave_out_what_does_not_apply(tmp_path):
    cfg = resolve_config({}, {"model": "unet_baseline", "loss": "htf"})  # the CPU preset sets warmup_epochs, ...
    assert cfg.base_channels == CPU_PRESET["base_channels"]
    assert "warmup_epochs" not in cfg.to_dict() and "lambda_base" not in cfg.to_dict()
    recipe = load_yaml(Path(__file__).parents[1] / "src" / "echodepth" / "recipes" / "batvision_unet.yaml")
    cfg = resolve_config(recipe, {"loss": "htf"}, file_is_recipe=True)  # its lambda_base 0 is for the standard loss
    assert cfg.loss == "htf" and "lambda_base" not in cfg.to_dict()
    runs = plan_runs(tmp_path, "tiny", 1, list(all_variants()), overrides={"base_channels": 4})
    assert {run.cfg.model for run in runs} == set(MODELS.names()) and all(r.cfg.base_channels == 4 for r in runs)
    seed_fix = next(run.cfg for run in runs if run.variant == "seed_fix")
    tiny_warmup = PRESETS["tiny"]["warmup_epochs"]
    assert (seed_fix.loss, seed_fix.warmup_epochs, seed_fix.base_decoder) == ("adaptive", tiny_warmup, "seed")


@pytest.mark.parametrize("loss", ["htf", "frequency", "standard"])
def test_diagnose_advises_only_settings_the_run_takes(loss):
    history = {"stop_reason": None, "non_finite_epochs": [], "loss_spikes": [], "val_rise_from_best": float("nan")}
    cfg = TrainConfig(loss=loss)
    advised = {name for check in run_checks(nan_split(), history, cfg, decomposes=True) for name in check.flags}
    assert advised and advised <= set(cfg.to_dict())  # each unhealthy check's flags, only those `train` takes
    assert ("lambda_sparse" in advised) == (loss == "standard")
    smoothness = next(c for c in run_checks(nan_split(), history, cfg, decomposes=True) if c.name == "base_smoothness")
    assert smoothness.advice.startswith("raise lambda_base and lowpass_kernel")  # the guide's advice, as it reads
    not_taken = f" (lowpass_kernel does not apply to --loss {loss})"
    assert smoothness.advice.endswith(not_taken) == (loss == "frequency")  # htf takes neither
    if loss == "htf":  # no setting left to try: the table gives the advice alone
        assert "do not apply to --loss htf)\n" in table([smoothness]) + "\n" and "try" not in table([smoothness])


def test_a_run_writes_only_the_settings_in_force_and_reads_them_back(tmp_path):
    cfg = TrainConfig(model="same_backbone", loss="frequency", lambda_residual=0.2, base_channels=8)
    save_yaml(cfg, tmp_path / "config.yaml")
    values = load_yaml(tmp_path / "config.yaml")
    assert "residual_scale" not in values and "lambda_sparse" not in values and values["lambda_residual"] == 0.2
    assert TrainConfig(**values) == cfg  # every key applies: read back as stated settings


@pytest.mark.parametrize("name", ["unet_baseline_config.yaml", "frequency_config.yaml", "cpu_preset_unet_config.yaml"])
def test_config_files_written_by_0_3_still_load(name):
    values = load_yaml(OLD / name)
    cfg = resolve_config(values, {})
    for key, value in cfg.to_dict().items():
        assert key not in values or values[key] == value or isinstance(value, tuple), key
    assert set(values) - set(cfg.to_dict()) <= {"residual_scale", "bilinear", "base_decoder", "base_resolution",
                                                "lambda_sparse", "lowpass_kernel", "use_silog", "silog_lambda",
                                                "warmup_epochs", "freq_cutoff"}  # fmt: skip
    assert resolve_config(values, {"epochs": 3}).epochs == 3


def test_a_checkpoint_written_by_0_3_loads_with_its_settings():
    path = OLD / "unet_baseline_best.ckpt"
    stored = TrainConfig.from_dict(upgrade_metadata(read_checkpoint(path)["echodepth"])["config"])
    assert (stored.model, stored.base_channels, stored.loss) == ("unet_baseline", 4, "standard")
    predictor = Predictor.from_checkpoint(path, device="cpu")  # the weights load strictly into base_channels 4
    assert predictor.network.downs[0][0].out_channels == 4
    depth = predictor.network(torch.zeros(1, 2, 16, 16))[2]
    assert depth.shape == (1, 1, 16, 16) and torch.isfinite(depth).all()


# A new model with a new hyper-parameter: this class and its registration are all it takes.
@dataclass
class WobbleSettings:
    in_channels: int = 2
    image_size: tuple[int, int] = (16, 16)
    wobble: float = 0.5  # the new hyper-parameter: a constant added to the depth head's logits


class WobbleNet(DepthModel):
    """A 1x1 convolution whose logits are shifted by `wobble` (so a wrong value changes the output)."""

    Settings = WobbleSettings
    decomposes = False

    def __init__(self, **settings):
        super().__init__()
        self.cfg = self.Settings(**settings)  # its settings, as the run resolved them
        self.mix = nn.Conv2d(self.cfg.in_channels, 1, 1)

    def forward(self, features):
        """(B, C, F, T) -> (depth, 0, depth), each (B, 1, H, W)."""
        shifted = self.mix(nn.functional.interpolate(features, size=tuple(self.cfg.image_size))) + self.cfg.wobble
        return torch.sigmoid(shifted), torch.zeros_like(shifted), torch.sigmoid(shifted)


@pytest.fixture
def wobble_net():
    MODELS.register("wobble_test_net")(WobbleNet)
    yield
    MODELS.unregister("wobble_test_net")


def wobble_args(synth_dir, tmp_path, *extra):
    return ["train", "--dataset", "synthetic", "--data_dir", str(synth_dir), "--image_size", "16", "--batch_size", "8",
            "--epochs", "1", "--num_workers", "0", "--results_dir", str(tmp_path / "results"),
            "--cache_dir", str(tmp_path / "cache"), "--model", "wobble_test_net", *extra]  # fmt: skip


def test_a_new_model_with_a_new_setting_takes_it_from_flags_and_yaml(wobble_net, synth_dir, tmp_path, capsys):
    assert "--wobble" in train_parser().format_help()
    assert main(wobble_args(synth_dir, tmp_path, "--wobble", "0.25", "--experiment_name", "flag")) == 0
    assert Predictor.from_checkpoint(tmp_path / "results/flag/checkpoints/best.ckpt").network.cfg.wobble == 0.25
    path = tmp_path / "wobble.yaml"
    path.write_text("wobble: -1.5\nexperiment_name: yaml\n")
    assert main(wobble_args(synth_dir, tmp_path, "--config", str(path))) == 0
    assert Predictor.from_checkpoint(tmp_path / "results/yaml/checkpoints/best.ckpt").network.cfg.wobble == -1.5
    assert load_yaml(tmp_path / "results/yaml/config.yaml")["wobble"] == -1.5
    capsys.readouterr()
    assert main(["train", "--model", "base_residual", "--wobble", "1", "--results_dir", str(tmp_path / "r2")]) == 2
    assert "--wobble does not apply to --model base_residual" in one_line_error(capsys)
