"""Bad input gets one line naming it, the rest still runs, and the exit status says so."""

import errno
import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from echodepth.cli import main
from echodepth.evaluate import format_comparison
from echodepth.runs import storage

from .helpers import train_args


@pytest.fixture
def checkpoint(one_epoch_run):
    """The session's 1-epoch run's best checkpoint (read only)."""
    return one_epoch_run[1] / "checkpoints" / "best.ckpt"


def write_recordings(folder, good_wav):
    rate = 44100
    n = len(sf.read(good_wav)[0])
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, (n, 2))
    nan = wave.copy()
    nan[100, 0] = np.nan
    cases = {
        "nan.wav": (nan, rate, "FLOAT", "contains NaN or infinite samples"),
        "empty.wav": (np.zeros((0, 2)), rate, "PCM_16", "0 samples, the model needs at least 2594"),
        "ten.wav": (wave[:10], rate, "PCM_16", "10 samples, the model needs at least 2594"),
        "short.wav": (wave[:300], rate, "PCM_16", "300 samples, the model needs at least 2594"),
        "rate.wav": (wave, 48000, "PCM_16", "sampled at 48000 Hz, expected 44100 Hz"),
        "mono.wav": (wave[:, 0], rate, "PCM_16", "has 1 channel(s), expected 2"),
        "int32.wav": (wave, rate, "PCM_32", None),  # BatVision V2's own sample type
    }
    for name, (data, r, subtype, _) in cases.items():
        sf.write(folder / name, data, r, subtype=subtype)
    shutil.copy(good_wav, folder / "good.wav")
    return {name: expected for name, (*_, expected) in cases.items()}


def test_predict_names_each_bad_file_and_predicts_the_rest(checkpoint, synth_dir, tmp_path, capsys):
    expected = write_recordings(tmp_path, sorted(synth_dir.rglob("*.wav"))[0])
    files = [str(tmp_path / name) for name in (*expected, "good.wav")] + [str(tmp_path / "missing.wav")]
    assert main(["predict", "--checkpoint", str(checkpoint), *files, "--out_dir", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    bad = {name: message for name, message in expected.items() if message}
    assert len(errors) == len(bad) + 1 and "missing.wav not found" in errors[-1]
    for name, message in bad.items():
        assert any(name in line and message in line for line in errors), (name, errors)
    assert "predicted 2 of 9 recording(s); 7 failed" in captured.out
    for name in ("good", "int32"):
        depth = np.load(tmp_path / "out" / f"{name}_depth.npy")
        assert np.isfinite(depth).all()
    assert not (tmp_path / "out" / "nan_depth.npy").exists()


def test_eval_skips_bad_samples_names_them_and_fails(checkpoint, synth_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    broken = sorted(data.rglob("*.wav"))
    val_rows = (data / "location_00" / "val.csv").read_text().splitlines()[1:]
    victim = data / "location_00" / "audio" / val_rows[0].split(",")[3]
    sf.write(victim, np.zeros((300, 2)), 44100)
    assert broken
    flags = ["--split", "val", "--data_dir", str(data), "--out_dir", str(tmp_path / "eval")]
    code = main(["eval", "--checkpoint", str(checkpoint), *flags])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("echodepth")]  # not progress bars
    assert len(errors) == 1 and victim.name in errors[0] and "truncated audio, 300 samples" in errors[0]
    assert f"evaluated {len(val_rows) - 1} image(s) of the val split; 1 sample(s) failed" in captured.out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--image_size", "7"], "image_size 7 is too small for model base_residual: at least 16"),
        (["--image_size", "16", "--lowpass_kernel", "32"], "lowpass_kernel 32 must be at most image_size (16)"),
        (["--experiment_name", ".."], "experiment_name '..' must be a plain folder name"),
        (["--experiment_name", "a/b"], "experiment_name 'a/b' must be a plain folder name"),
    ],
)
def test_bad_settings_fail_before_any_data_is_prepared(tmp_path, capsys, flags, message):
    args = ["train", "--dataset", "synthetic", "--cache_dir", str(tmp_path / "cache"), "--results_dir", str(tmp_path)]
    assert main([*args, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "cache").exists()


def test_precision_actually_used_is_recorded(synth_dir, tmp_path):
    assert main(train_args(synth_dir, tmp_path, "--epochs", "1", "--precision", "16-mixed")) == 0
    saved = (tmp_path / "results" / "smoke" / "config.yaml").read_text()
    assert "precision: bf16-mixed" in saved  # fp16 autocast does not exist on a CPU


def test_resume_from_a_foreign_pickle_runs_no_code(synth_dir, tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("PWNED",))

    foreign = tmp_path / "foreign.ckpt"
    foreign.write_bytes(pickle.dumps({"state_dict": Payload()}))
    assert main(train_args(synth_dir, tmp_path, "--epochs", "1", "--resume", str(foreign))) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "foreign.ckpt is unreadable or not a plain weights file" in err[0]
    assert "PWNED" not in captured.out and "weights_only=False" not in captured.err


def test_test_split_equal_to_training_split_is_said_not_divided_by_zero():
    metrics = {"rmse": 0.5, "abs_rel": 0.1, "mae": 0.4, "delta1": 0.8, "log10": 0.05}
    exact = {**metrics, "rmse": 0.0}
    text = format_comparison(metrics, {"mean_depth": metrics, "per_pixel_mean_depth": exact})
    assert "matches every test depth map exactly" in text and "training split?" not in text


def test_full_disk_during_training_is_one_line_and_keeps_the_last_good_checkpoint(
    synth_dir, tmp_path, capsys, monkeypatch
):
    writes = {"n": 0}
    real_open = open

    def filling_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if ".ckpt.tmp-" in str(path):
            writes["n"] += 1
            if writes["n"] == 3:  # the third checkpoint: some bytes, then the disk is full
                handle.write(b"partial")
                handle.close()
                raise OSError(errno.ENOSPC, "No space left on device")
        return handle

    monkeypatch.setattr(storage, "open", filling_open, raising=False)
    assert main(train_args(synth_dir, tmp_path, "--epochs", "3")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("echodepth")]
    assert len(err) == 1 and "no space left on the device writing" in err[0] and ".ckpt (needs" in err[0]
    checkpoints = tmp_path / "results" / "smoke" / "checkpoints"
    assert not list(checkpoints.glob("*.tmp-*"))
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 0  # epoch 1's, intact


def test_full_disk_for_metrics_and_figures_is_one_line(tmp_path, monkeypatch):
    from echodepth.runs.rundir import RunDir

    monkeypatch.setattr(
        storage, "open", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")), raising=False
    )
    with pytest.raises(storage.DiskFullError, match="metrics.csv"):
        RunDir(tmp_path).append_metrics({"epoch": 1, "val/rmse": 1.0})
    assert list(tmp_path.iterdir()) == []
    from echodepth.viz import make_decomposition_figure, save_figure

    figure = make_decomposition_figure(*np.ones((4, 1, 8, 8)), max_depth_m=1.0)
    with pytest.raises(storage.DiskFullError, match="figure.png"):
        save_figure(figure, tmp_path / "figure.png", dpi=50)
    assert list(tmp_path.iterdir()) == []
