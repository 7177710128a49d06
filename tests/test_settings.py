"""Every setting checked before anything is written or prepared, in one line: YAML files (numbers
such as 1e-3, keys given twice, files that are not text), --val_every against --epochs, synth's
range and size flags, STFT windows against the recording's cut, compare's numbers, the metadata of
an exported model. Also: a missing test split is one line and a bad test sample is not swallowed;
`cache clear` leaves the folders a run uses alone."""

import io
import re
import shutil

import pytest
import torch

from echodepth.cli import main
from echodepth.data import FeatureConfig
from echodepth.errors import ConfigError
from echodepth.settings.config import TrainConfig
from echodepth.settings.sources import resolve_config
from echodepth.settings.yaml_files import load_yaml
from echodepth.training import EchoDepthDataModule

from .helpers import one_line_error, tiny_config, train_args


def test_numbers_like_1e_3_in_yaml_are_numbers(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 1e-3\nweight_decay: 5E-4\nexperiment_name: e5\n")
    values = load_yaml(path)
    assert values == {"learning_rate": 0.001, "weight_decay": 0.0005, "experiment_name": "e5"}
    assert resolve_config(values, {}).learning_rate == 0.001


@pytest.mark.parametrize(
    "content, message",
    [
        (
            b"learning_rate: 0.01\nbatch_size: 8\nlearning_rate: 0.1\n",
            "setting 'learning_rate' is given twice (line 3)",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "is not a YAML text file"),
    ],
)
def test_a_config_file_that_is_not_plain_settings_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "run.yaml"
    path.write_bytes(content)
    assert main(["train", "--config", str(path), "--results_dir", str(tmp_path / "results")]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "results").exists()


def test_val_every_beyond_epochs_is_refused_before_anything_is_written(synth_dir, tmp_path, capsys):
    assert main(train_args(synth_dir, tmp_path, "--epochs", "2", "--val_every", "3")) == 2
    assert "val_every 3 is more than epochs 2" in one_line_error(capsys)
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


SMALL_SYNTH = ["--n_rooms", "3", "--samples_per_room", "1", "--n_locations", "1", "--scatter_rays", "64"]
SMALL_SYNTH += ["--tail_max_order", "1", "--quiet", "--workers", "1"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--image_size", "32"], "synth setting image_size takes 2 values, got [32]"),
        (["--room_size_m", "3"], "synth setting room_size_m takes 2 values, got [3.0]"),
        (["--max_depth_m", "0.01"], "max_depth_m 0.01 keeps 2 samples of each recording"),
        (["--gain", "0.5", "2"], "synth setting gain [0.5, 2.0]: each value must be in [1e-06, 1.0]"),
        (["--room_size_m", "0.8", "2"], "the smallest room must be wider than twice wall_clearance_m"),
        (["--chirp_f1_hz", "30000"], "expected f0 < f1 <= half the sample rate"),
    ],
)
def test_synth_flags_are_checked_before_anything_is_written(tmp_path, capsys, flags, message):
    out = tmp_path / "data"
    assert main(["synth", str(out), *SMALL_SYNTH, *flags]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_the_corrected_synth_command_then_runs(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["synth", str(out), *SMALL_SYNTH, "--image_size", "8"]) == 2
    assert main(["synth", str(out), *SMALL_SYNTH, "--image_size", "8", "8"]) == 0


def test_stft_windows_are_checked_against_the_cut():
    with pytest.raises(ConfigError, match="expected 1 <= win_length <= n_fft"):
        FeatureConfig(win_length=1024)
    with pytest.raises(ConfigError, match="give max_depth_m of at least 0.99"):
        FeatureConfig().check_cut(0.5)
    FeatureConfig().check_cut(1.0)
    FeatureConfig(cut=False).check_cut(0.01)  # whole recordings: no cut to check


def test_a_max_depth_too_short_for_the_stft_is_one_line_before_the_cache(synth_dir, tmp_path, capsys):
    assert main(train_args(synth_dir, tmp_path, "--epochs", "1", "--max_depth_m", "0.01")) == 2
    assert "max_depth_m 0.01 keeps 2 samples" in one_line_error(capsys)
    assert not list((tmp_path / "cache").glob("*-train-*"))


@pytest.mark.parametrize("flags, message", [(["--seeds", "0"], "--seeds must be > 0"), (["--jobs", "0"], "--jobs")])
def test_compare_numbers_are_checked_before_anything_is_written(tmp_path, capsys, flags, message):
    assert main(["compare", "--out", str(tmp_path / "cmp"), "--preset", "tiny", *flags]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize(
    "metadata, message",
    [
        ("{not json", "metadata is damaged (not JSON"),
        ("[1, 2]", "metadata is damaged (not a JSON object)"),
        ('{"sample_rate_hz": 44100}', "metadata is damaged (a field missing or of the wrong type: 'max_depth_m')"),
        ('{"sample_rate_hz": -1, "max_depth_m": 10, "input": {"shape": ["b", 2, 100]}}', "['sample_rate_hz']"),
    ],
)
def test_damaged_metadata_of_an_exported_model_is_one_line(tmp_path, capsys, metadata, message):
    onnx = pytest.importorskip("onnx")

    class Twice(torch.nn.Module):
        def forward(self, x):
            return 2 * x

    buffer = io.BytesIO()
    torch.onnx.export(Twice(), (torch.ones(1, 2, 100),), buffer, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    model.metadata_props.add(key="echodepth", value=metadata)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    (tmp_path / "a.wav").write_bytes(b"")
    assert main(["predict", "--model", str(path), str(tmp_path / "a.wav"), "--out_dir", str(tmp_path / "p")]) == 2
    line = one_line_error(capsys)
    assert f"model {path}: its echodepth metadata is damaged" in line and message in line


def without_test_split(synth_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    for csv_file in data.glob("*/test.csv"):
        csv_file.unlink()
    return data


def test_a_missing_test_split_is_said_in_one_line(synth_dir, tmp_path, capsys):
    data = without_test_split(synth_dir, tmp_path)
    args = train_args(synth_dir, tmp_path, "--epochs", "1")
    args[args.index("--data_dir") + 1] = str(data)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"no test evaluation: {data} has no test split (no test.csv)" in out


def test_a_bad_test_sample_is_not_taken_for_a_missing_test_split(synth_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    first = (data / "location_00" / "test.csv").read_text().splitlines()[1].split(",")
    audio = data / first[2] / first[3]
    audio.write_bytes(b"RIFF broken")
    args = train_args(synth_dir, tmp_path, "--epochs", "1")
    args[args.index("--data_dir") + 1] = str(data)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "no test evaluation" not in captured.out
    err = re.findall(r"echodepth [\w-]+: error: [^\r\n]*", captured.err)  # not the progress bars
    assert len(err) == 1 and audio.name in err[0], err


def test_cache_clear_leaves_folders_in_use_alone(synth_dir, tmp_path, capsys):
    cfg = tiny_config(synth_dir, tmp_path)
    user = EchoDepthDataModule(cfg, progress=False)
    user.prepare_data()  # builds and holds the train and val caches
    folders = sorted(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert len(folders) == 2
    capsys.readouterr()
    assert main(["cache", "clear", "--cache_dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert out.count("alone: in use by a running echodepth process") == 2 and "2 in use left alone" in out
    assert all(f.is_dir() for f in folders)
    for lock in user._in_use:  # the run ends
        lock.release()
    assert main(["cache", "clear", "--cache_dir", str(tmp_path / "cache")]) == 0
    assert not any(f.exists() for f in folders)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tolerance_m", "0"], "--tolerance_m 0: expected a difference in metres above 0"),
        (["--samples", "-5"], "argument --samples: '-5': expected a whole number above 0"),
        (["--opset", "99"], "--opset 99: the exporter writes opsets 7 to 20"),
    ],
)
def test_export_flags_are_checked_before_the_checkpoint_is_read(tmp_path, capsys, flags, message):
    args = ["export", "--checkpoint", str(tmp_path / "missing.ckpt"), "--output", str(tmp_path / "m.onnx")]
    try:
        status = main([*args, *flags])
    except SystemExit as stop:  # a flag's type checked by argparse: its usage line, then the error
        status = stop.code
    assert status == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


# --- ranges: every weight, rate, size and sample rate checked before any work


def refused_train(tmp_path, capsys, flags) -> str:
    """Runs `echodepth train FLAGS` (the CPU preset, outputs under tmp_path); returns its one-line error
    after checking the exit status of a usage error and that nothing was written or built. The data
    folder does not exist: a setting accepted by mistake ends there, naming the data, not the setting."""
    places = ["--results_dir", str(tmp_path / "results"), "--cache_dir", str(tmp_path / "cache")]
    places += ["--data_dir", str(tmp_path / "no_data")]
    assert main(["train", *places, *flags]) == 2
    line = one_line_error(capsys)
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()
    return line


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lambda_base", "-0.5"], "lambda_base must be >= 0, got -0.5"),
        (["--loss", "frequency", "--lambda_residual", "-1"], "lambda_residual must be >= 0, got -1.0"),
        (["--loss", "htf", "--hinge_weight", "-0.1"], "hinge_weight must be >= 0, got -0.1"),
        (
            ["--lambda_recon", "0", "--lambda_base", "0", "--lambda_sparse", "0"],
            "lambda_recon, lambda_base and lambda_sparse are all 0: the loss would be 0 and nothing would train; "
            "expected at least one weight > 0",
        ),
        (["--learning_rate", "inf"], "learning_rate must be a finite number > 0, got inf"),
        (["--weight_decay", "nan"], "weight_decay must be a finite number >= 0, got nan"),
        (["--window_start_ms=-inf"], "window_start_ms must be a finite number, got -inf"),
        (["--residual_scale", "inf"], "residual_scale must be a finite number > 0, got inf"),
        (["--num_workers", "-1"], "num_workers must be >= 0, got -1"),
        (["--seed", "-1"], "seed must be between 0 and 4294967295 (the seeds NumPy accepts), got -1"),
        (["--input_size", "0", "16"], "input_size must be >= 1, got [0, 16]"),
        (["--synth_image_size", "100000"], "synth_image_size must be between 2 and 4096, got 100000"),
    ],
)
def test_settings_out_of_range_are_one_line_before_any_work(tmp_path, capsys, flags, message):
    assert message in refused_train(tmp_path, capsys, flags)


def test_the_python_api_refuses_the_same_values_with_the_same_value_error():
    """`echodepth.runs.train.train` takes a TrainConfig: a bad value cannot reach it."""
    from echodepth.settings.config import TrainConfig

    with pytest.raises(ValueError, match="^learning_rate must be a finite number > 0, got inf$"):
        TrainConfig(learning_rate=float("inf"))
    with pytest.raises(ValueError, match="^lambda_sparse must be >= 0, got -0.1$"):
        resolve_config({}, {"lambda_sparse": -0.1})
    with pytest.raises(ValueError, match="^lambda_base must be >= 0, got -1.0$"):
        TrainConfig().replace(lambda_base=-1.0)


def test_losses_built_directly_refuse_negative_and_all_zero_weights():
    from echodepth.losses import BaseResidualLoss, build_loss

    with pytest.raises(ConfigError, match="^lambda_recon must be >= 0, got -1.0$"):
        build_loss("standard", lambda_recon=-1.0)
    with pytest.raises(ConfigError, match="lambda_recon, lambda_base and lambda_residual are all 0"):
        build_loss("frequency", lambda_recon=0.0, lambda_base=0.0, lambda_residual=0.0)
    with pytest.raises(ConfigError, match="^lambda_sparse must be a finite number >= 0, got nan$"):
        BaseResidualLoss(lambda_sparse=float("nan"))
    assert build_loss("htf", hinge_weight=0.0).hinge_weight == 0.0  # its L1 term is unweighted: plain L1
    assert build_loss("standard", lambda_base=0.0, lambda_sparse=0.0).weights()["lambda_recon"] == 1.0


def float_settings() -> list[tuple[dict, str]]:
    """Returns (the component choices that take it, name) for every float training setting: the run's
    and every registered component's (a setting added later is in this list)."""
    import typing

    from echodepth.registry import without_none
    from echodepth.settings.components import declared_settings
    from echodepth.settings.config import RunSettings

    hints = typing.get_type_hints(RunSettings)
    cases = [({}, name) for name, hint in hints.items() if without_none(hint) is float]
    for name, declared in declared_settings().items():
        if without_none(declared.hint) is float:
            cases.append(({declared.kind: next(iter(declared.defaults))}, name))
    return cases


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_every_float_setting_refuses_non_finite_numbers(value):
    from echodepth.settings.config import TrainConfig

    cases = float_settings()
    assert {"learning_rate", "weight_decay", "lambda_base", "freq_cutoff", "hinge_weight"} <= {n for _, n in cases}
    for choices, name in cases:
        with pytest.raises(ConfigError, match=rf"^{name} must be a finite number.*, got {value}$"):
            TrainConfig(**choices, **{name: value})


def test_searched_ranges_lie_inside_the_accepted_values():
    """`echodepth tune` must never sample a value the settings refuse."""
    import dataclasses

    from echodepth.settings.bounds import bounds_of
    from echodepth.settings.components import KINDS, own_fields
    from echodepth.settings.config import RunSettings

    fields = list(dataclasses.fields(RunSettings))
    fields += [f for registry in KINDS.values() for name in registry.names() for f in own_fields(registry.get(name))]
    searched = [f for f in fields if "search" in f.metadata and not f.metadata["search"].choices]
    assert {f.name for f in searched} >= {"learning_rate", "lambda_base", "lowpass_kernel"}
    for f in searched:
        search = f.metadata["search"]
        assert bounds_of(f).contains(search.low) and bounds_of(f).contains(search.high), f.name


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--sample_rate_hz", "10000000"],
            "synth setting sample_rate_hz must be between 8000 and 1000000 (the rates the renderer is made for), "
            "got 10000000",
        ),
        (["--chirp_duration_s", "inf"], "synth setting chirp_duration_s must be a finite number, got inf"),
        (["--snr_db", "nan", "30"], "synth setting snr_db must be a finite number, got [nan, 30.0]"),
    ],
)
def test_synth_rates_and_non_finite_numbers_are_refused_before_anything_is_written(tmp_path, capsys, flags, message):
    out = tmp_path / "data"
    assert main(["synth", str(out), *SMALL_SYNTH, *flags]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("image_size, factor", [(16, None), (32, None), (64, "4.0x"), (1000, "62.5x")])
def test_an_image_size_far_above_the_depth_maps_is_warned_with_the_factor_before_the_cache(
    synth_dir, tmp_path, capsys, monkeypatch, image_size, factor
):
    from echodepth.training import datamodule

    class CacheBuilt(Exception):
        pass

    def build_cache(*args, **kwargs):
        raise CacheBuilt

    monkeypatch.setattr(datamodule, "build_cache", build_cache)
    module = EchoDepthDataModule(tiny_config(synth_dir, tmp_path, image_size=image_size), progress=False)
    with pytest.raises(CacheBuilt):  # the warning, if any, is said before the cache is built
        module.prepare_data()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    if factor is None:
        assert err == []
    else:
        assert len(err) == 1 and f"--image_size {image_size} is {factor} the data's depth maps (16 x 16" in err[0]
        assert "--image_size 16 or less keeps their resolution" in err[0]


def train_warnings(tmp_path, capsys, *flags) -> list[str]:
    """Returns the warning lines of `echodepth train FLAGS`, stopped by a missing data folder right after
    its settings are resolved (nothing trains)."""
    places = ["--results_dir", str(tmp_path / "results"), "--cache_dir", str(tmp_path / "cache")]
    assert main(["train", *flags, *places, "--data_dir", str(tmp_path / "no_data")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "is not a folder" in err[-1]
    return [line for line in err if "warning:" in line]


def test_a_recipe_given_another_model_or_loss_says_which_settings_are_not_its_sources(tmp_path, capsys):
    (line,) = train_warnings(tmp_path, capsys, "--config", "htf", "--model", "base_residual")
    assert line == (
        "echodepth train: warning: recipe htf was made for --model unet_baseline: with --model base_residual, these "
        "settings do not come from its source: base_channels 64, bilinear True, residual_scale 0.5, base_decoder "
        "wide and base_resolution 1 are base_residual's defaults; input_norm none is the recipe's choice for "
        "unet_baseline"
    )
    (line,) = train_warnings(tmp_path, capsys, "--config", "guide_defaults", "--model", "unet_baseline")
    assert "made for --model base_residual: with --model unet_baseline" in line
    assert "bilinear left out (unet_baseline does not take it)" in line
    (line,) = train_warnings(tmp_path, capsys, "--config", "htf", "--loss", "standard", "--lambda_base", "0.2")
    assert "made for --loss htf: with --loss standard" in line and "lambda_recon 1.0, lambda_sparse 0.1" in line
    assert "lambda_base" not in line  # given as a flag: the user's, not the recipe's
    # the recipe's own model and loss, named again or not: no notice
    assert train_warnings(tmp_path, capsys, "--config", "htf", "--model", "unet_baseline", "--epochs", "6") == []
    assert train_warnings(tmp_path, capsys, "--config", "batvision_unet", "--dataset", "synthetic") == []


def test_the_settings_reference_says_what_each_number_setting_accepts():
    from .test_docs import load_hook

    rows = {line.split("`")[1]: line for line in load_hook().settings_markdown().splitlines() if line.startswith("| `")}
    assert "| finite, > 0 |" in rows["learning_rate"] and "| >= 1 |" in rows["input_size"]
    assert "| finite, >= 0, a loss weight: not all 0 |" in rows["lambda_base"]
    assert "| finite, in (0, 1] |" in rows["freq_cutoff"]


@pytest.mark.parametrize(
    "accelerator, message",
    [
        ("cuda", "accelerator 'cuda': CUDA is not available on this machine; use cpu or auto"),
        ("gpu", "accelerator 'gpu': CUDA is not available on this machine; use cpu or auto"),
        ("banana", "accelerator 'banana': expected one of ['auto', 'cpu', 'gpu', 'cuda', 'mps']"),
    ],
)
def test_an_accelerator_the_machine_lacks_is_one_line_before_any_work(
    accelerator, message, tmp_path, capsys, monkeypatch
):
    """`train --accelerator cuda` on a machine without CUDA ended in Lightning's 30-line traceback."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    assert message in refused_train(tmp_path, capsys, ["--accelerator", accelerator])


@pytest.mark.parametrize("minutes", ["0", "-1", "nan"])
def test_compare_refuses_a_time_limit_that_can_never_finish_a_run(minutes, tmp_path, capsys):
    """`compare --time_limit_min 0` started every run and stopped it at once, on every re-run."""
    assert main(["compare", "--preset", "tiny", "--out", str(tmp_path / "cmp"), "--time_limit_min", minutes]) == 2
    assert f"--time_limit_min must be above 0 minutes, got {float(minutes):g}" in one_line_error(capsys)
    assert not (tmp_path / "cmp").exists()


def test_settings_are_resolved_once_and_then_immutable():
    cfg = TrainConfig(epochs=2, lambda_base=0.7)
    for name, value in (("epochs", 3), ("lambda_base", 1.0), ("anything_new", 1)):
        with pytest.raises(AttributeError, match=rf"TrainConfig is immutable: cfg.replace\({name}=...\)"):
            setattr(cfg, name, value)
    assert cfg.epochs == 2 and cfg.lambda_base == 0.7
    changed = cfg.replace(epochs=3, lambda_base=1.0)
    assert (changed.epochs, changed.lambda_base, cfg.epochs, cfg.lambda_base) == (3, 1.0, 2, 0.7)
