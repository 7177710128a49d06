import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from echodepth.cli import main
from echodepth.settings.config import TrainConfig
from echodepth.settings.sources import CPU_PRESET, resolve_config
from echodepth.training import module as training_module
from echodepth.viz import make_decomposition_figure

from .helpers import rows, train_args

GUIDE_LOG_NAMES = (
    "train/loss",
    "train/loss_recon",
    "train/loss_base",
    "train/loss_sparse",
    "val/rmse",
    "val/abs_rel",
    "val/delta1",
    "val/mean_abs_base",
    "val/mean_abs_residual",
    "train/lambda_base",
)


def test_smoke_training_writes_every_output(two_epoch_run):
    _, out = two_epoch_run
    assert (out / "config.yaml").exists()
    metrics = rows(out / "metrics.csv")
    assert [int(r["epoch"]) for r in metrics] == [1, 2]
    for key in GUIDE_LOG_NAMES:
        assert all(np.isfinite(float(r[key])) for r in metrics), key
    for epoch in (1, 2):
        assert (out / f"epoch_{epoch:04d}_decomposition.png").stat().st_size > 10_000
    assert list((out / "tensorboard").rglob("events.out.tfevents*"))
    test = json.loads((out / "test_metrics.json").read_text())
    assert np.isfinite(test["model"]["rmse"]) and "per_pixel_mean_depth" in test


@pytest.mark.parametrize("name", ["last.ckpt", "best.ckpt"])
def test_checkpoints_are_self_describing_and_weights_only(two_epoch_run, name):
    _, out = two_epoch_run
    ckpt = torch.load(out / "checkpoints" / name, weights_only=True)
    meta = ckpt["echodepth"]
    assert meta["config"]["base_channels"] == 4 and meta["input_shape"] == [2, 16, 16] and meta["max_depth_m"] == 10.0
    assert "optimizer_states" in ckpt and ckpt["epoch"] >= 0


def test_figure_has_four_columns_with_shared_scale():
    rng = np.random.default_rng(0)
    maps = [rng.random((3, 8, 8)) * 5 for _ in range(4)]
    maps[1] -= 2.5
    maps[3][0, :2, :2] = 0
    fig = make_decomposition_figure(*maps, max_depth_m=10.0)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 12
    assert [ax.get_title() for ax in images[:4]] == [
        "Base depth",
        "Residual",
        "Final = base + residual",
        "Ground truth",
    ]
    depth_limits = {ax.images[0].get_clim() for i, ax in enumerate(images) if i % 4 != 1}
    gt = maps[3]
    assert len(depth_limits) == 1  # one scale for base, final and ground truth: the data's
    assert list(depth_limits)[0] == pytest.approx((0.0, np.percentile(gt[gt > 0], 99)))
    lo, hi = images[1].images[0].get_clim()
    assert lo == -hi  # residual centred at 0
    assert np.ma.is_masked(images[3].images[0].get_array())  # invalid ground truth shown as such
    assert len(fig.axes) == 12 + 2  # two colour bars
    fig.canvas.draw()
    bars = [ax for ax in fig.axes if not ax.images]
    grid = [ax.get_position() for ax in images]
    right, bottom = max(b.x1 for b in grid), min(b.y0 for b in grid)
    # no colour bar inside the grid: the depth bar right of it, the residual bar below it
    assert all(bar.get_position().x0 >= right - 1e-6 or bar.get_position().y1 <= bottom + 1e-6 for bar in bars)
    fixed = make_decomposition_figure(*maps, max_depth_m=10.0, depth_max=10.0)
    fixed_images = [ax for ax in fixed.axes if ax.images]
    assert {ax.images[0].get_clim() for i, ax in enumerate(fixed_images) if i % 4 != 1} == {(0.0, 10.0)}


def test_resume_continues_epoch_count(synth_dir, two_epoch_run_copy):
    tmp_path, out = two_epoch_run_copy  # the shared run stays at 2 epochs for the other tests
    assert main(train_args(synth_dir, tmp_path, "--epochs", "3", "--log_compression", "--resume", "last")) == 0
    assert [int(r["epoch"]) for r in rows(out / "metrics.csv")] == [1, 2, 3]
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 3 * 3  # 24 training samples, batch 8


def test_eval_reproduces_validation_metrics(two_epoch_run, tmp_path, capsys):
    _, out = two_epoch_run
    metrics = rows(out / "metrics.csv")
    best = min(metrics, key=lambda r: float(r["val/rmse"]))
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(out / "checkpoints" / "best.ckpt"),
                "--split",
                "val",
                "--out_dir",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "eval" / "val_metrics.json").read_text())
    assert json.loads(printed[printed.index("{") : printed.rindex("}") + 1])["rmse"] == result["rmse"]
    for key in ("rmse", "abs_rel", "delta1", "mae", "log10"):
        assert result[key] == pytest.approx(float(best[f"val/{key}"]), rel=1e-4, abs=1e-6), key
    per_image = rows(tmp_path / "eval" / "val_per_image.csv")
    assert len(per_image) == result["n_images"] and per_image[0]["audio"].endswith(".wav")


def test_predict_writes_depth_and_figure(two_epoch_run, synth_dir, tmp_path):
    _, out = two_epoch_run
    wav = sorted(synth_dir.rglob("*.wav"))[0]
    assert (
        main(["predict", "--checkpoint", str(out / "checkpoints" / "best.ckpt"), str(wav), "--out_dir", str(tmp_path)])
        == 0
    )
    depth = np.load(tmp_path / f"{wav.stem}_depth.npy")
    assert depth.shape == (16, 16) and np.isfinite(depth).all() and depth.max() > 0
    assert (tmp_path / f"{wav.stem}_decomposition.png").exists()


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(synth_dir, tmp_path, monkeypatch, capsys):
    real = training_module.build_loss_for_training

    def poisoned(*args, **kwargs):
        loss = real(*args, **kwargs)
        forward = loss.forward

        def nan_in_epoch_2(base, residual, final, gt):
            out = forward(base, residual, final, gt)
            if getattr(loss, "epoch_seen", 0) >= 1:
                out["loss"] = out["loss"] * float("nan")
            return out

        loss.forward = nan_in_epoch_2
        loss.set_epoch = lambda e: setattr(loss, "epoch_seen", e)
        return loss

    monkeypatch.setattr(training_module, "build_loss_for_training", poisoned)
    code = main(train_args(synth_dir, tmp_path, "--epochs", "3", "--experiment_name", "nan"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "non-finite loss at epoch 2" in err[-1] and "last good checkpoint" in err[-1]
    ckpt = torch.load(tmp_path / "results" / "nan" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 0 and all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )


def test_bad_flag_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--batch_sizee", "3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "--batch_sizee" in err[0]
    assert main(["train", "--batch_size", "0"]) == 2
    assert "batch_size must be > 0" in capsys.readouterr().err


def test_wrong_data_dir_is_one_line(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--dataset",
                "batvisionv2",
                "--data_dir",
                str(tmp_path / "missing"),
                "--results_dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "not a folder" in err[0]
    assert main(["train", "--dataset", "batvisionv2"]) == 2
    assert "--data_dir is required" in capsys.readouterr().err


def test_config_precedence(tmp_path):
    assert resolve_config({}, {}).image_size == CPU_PRESET["image_size"]  # nothing named: CPU preset
    guide = resolve_config({}, {"dataset": "batvisionv2"})
    assert (guide.batch_size, guide.learning_rate, guide.base_channels, guide.image_size, guide.lowpass_kernel) == (
        256,
        0.002,
        64,
        256,
        8,
    )
    both = resolve_config({"dataset": "batvisionv1", "batch_size": 64, "lambda_base": 1.5}, {"batch_size": 16})
    assert (both.batch_size, both.lambda_base, both.epochs) == (16, 1.5, 80)
    assert resolve_config({}, {"use_adaptive_loss": True}).loss == "adaptive"
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig.from_dict({"bogus": 1})


def test_yaml_config_file_and_guide_script(tmp_path, synth_dir):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("dataset: synthetic\nepochs: 1\nbatch_size: 99\n")
    result = subprocess.run(
        [
            sys.executable,
            "train_base_residual.py",
            "--config",
            str(cfg_file),
            *train_args(synth_dir, tmp_path)[1:],
            "--experiment_name",
            "guide",
            "--lambda_sparse",
            "0.05",
        ],
        capture_output=True,
        text=True,
        cwd=str(__import__("pathlib").Path(__file__).parents[1]),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    saved = (tmp_path / "results" / "guide" / "config.yaml").read_text()
    assert "batch_size: 8" in saved and "epochs: 1" in saved and "lambda_sparse: 0.05" in saved


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(synth_dir, tmp_path):
    args = train_args(
        synth_dir, tmp_path, "--epochs", "1", "--devices", "2", "--accelerator", "cpu", "--experiment_name", "ddp"
    )
    result = subprocess.run([sys.executable, "-m", "echodepth.cli", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "world_size=2" in result.stderr + result.stdout or "distributed_backend=gloo" in result.stderr + result.stdout
    )
    assert (tmp_path / "results" / "ddp" / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_wandb_offline_logs_the_guide_names(synth_dir, tmp_path, monkeypatch):
    import wandb  # noqa: F401  (installed by `make test-slow`)

    monkeypatch.setenv("WANDB_MODE", "offline")
    assert (
        main(
            train_args(
                synth_dir, tmp_path, "--epochs", "2", "--use_wandb", "--use_adaptive_loss", "--experiment_name", "wb"
            )
        )
        == 0
    )
    runs = list((tmp_path / "results" / "wb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    blob = runs[0].read_bytes()
    for key in (*GUIDE_LOG_NAMES, "train/lambda_recon", "val/decomposition"):
        assert key.encode() in blob, key
    assert list(runs[0].parent.glob("files/media/images/val/decomposition_*.png"))


def test_bf16_mixed_precision_trains(synth_dir, tmp_path):
    conv_output_dtypes = set()  # what the network's convolutions computed in, seen from inside the model

    def record(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d) and torch.is_grad_enabled():  # training steps only
            conv_output_dtypes.add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        args = train_args(
            synth_dir, tmp_path, "--epochs", "1", "--precision", "bf16-mixed", "--experiment_name", "bf16"
        )
        assert main(args) == 0
    finally:
        hook.remove()
    metrics = rows(tmp_path / "results" / "bf16" / "metrics.csv")
    assert np.isfinite(float(metrics[0]["val/rmse"]))
    assert conv_output_dtypes == {torch.bfloat16}  # autocast ran every training convolution in bfloat16


def test_predict_reads_v1_pairs_and_rejects_bad_audio(two_epoch_run, tmp_path, capsys):
    _, out = two_epoch_run
    ckpt = str(out / "checkpoints" / "best.ckpt")
    wave = np.random.default_rng(0).standard_normal((2, 4000)).astype(np.float32) * 0.1
    np.save(tmp_path / "rec_left.npy", wave[0])
    np.save(tmp_path / "rec_right.npy", wave[1])
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                ckpt,
                str(tmp_path / "rec_left.npy"),
                str(tmp_path / "rec_right.npy"),
                "--out_dir",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "p" / "rec_depth.npy").shape == (16, 16)
    import soundfile as sf

    sf.write(tmp_path / "mono.wav", wave[0], 44100)
    assert main(["predict", "--checkpoint", ckpt, str(tmp_path / "mono.wav"), "--out_dir", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mono.wav has 1 channel(s), expected 2" in err[0]
    assert main(["eval", "--checkpoint", str(tmp_path / "nope.ckpt")]) == 2
    assert "nope.ckpt not found" in capsys.readouterr().err


def test_uncached_training_makes_features_on_the_device_in_batches(synth_dir, tmp_path, monkeypatch):
    from echodepth.data.features import AudioFeatures

    image_batches = []  # (batch size, device) of every call that turns cut windows into feature images
    make_images = AudioFeatures.image

    def recorded_image(self, window):
        image_batches.append((window.shape[0], window.device))
        return make_images(self, window)

    monkeypatch.setattr(AudioFeatures, "image", recorded_image)
    assert main(train_args(synth_dir, tmp_path, "--epochs", "1", "--no-cache", "--experiment_name", "raw")) == 0
    # the data loader hands over waveforms: the features are made a whole batch (--batch_size 8) at a
    # time after the batch reached the training device, never one sample at a time in the dataset
    assert (8, torch.device("cpu")) in image_batches
    assert all(size > 1 for size, _ in image_batches)
    metrics = rows(tmp_path / "results" / "raw" / "metrics.csv")
    assert np.isfinite(float(metrics[0]["val/rmse"])) and not (tmp_path / "cache").exists()
    test = json.loads((tmp_path / "results" / "raw" / "test_metrics.json").read_text())
    assert np.isfinite(test["model"]["rmse"])


def test_a_checkpoint_of_version_0_1_still_predicts(two_epoch_run, tmp_path):
    _, out = two_epoch_run
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    old = {**ckpt["echodepth"], "version": "0.1.0"}
    old["config"] = {("max_depth" if k == "max_depth_m" else k): v for k, v in old["config"].items()}
    for key in ("micro_batch_size", "channels_last", "cudnn_benchmark", "compile", "checkpoint_every", "overwrite"):
        old["config"].pop(key)  # settings 0.1 did not have
    del old["features"]
    torch.save({**ckpt, "echodepth": old}, tmp_path / "old.ckpt")
    from echodepth import Predictor

    wave = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 4000)).astype(np.float32)
    new, legacy = (
        Predictor.from_checkpoint(out / "checkpoints" / "best.ckpt"),
        Predictor.from_checkpoint(tmp_path / "old.ckpt"),
    )
    assert legacy.cfg.max_depth_m == new.cfg.max_depth_m and legacy.feature_config == new.feature_config
    assert torch.equal(new.predict(wave, 44100).final_m, legacy.predict(wave, 44100).final_m)
