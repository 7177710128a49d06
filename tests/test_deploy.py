"""Deployment: the exportable feature extraction, ONNX and TorchScript export verified against
PyTorch, `predict --model` without torch, and long recordings with many chirps."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from echodepth.cli import main
from echodepth.data import FEATURES, AudioFeatures, FeatureConfig
from echodepth.deploy.frontend import LinearFrontend
from echodepth.errors import ConfigError
from echodepth.inference.predictor import Predictor

from .helpers import tiny_config

RATE = 44100


@pytest.fixture(scope="module")
def trained(one_epoch_run):
    return one_epoch_run[1] / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def onnx_model(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", "--checkpoint", str(trained), "--output", str(path)]) == 0
    return path


def clips(synth_dir, n):
    return sorted(synth_dir.glob("*/audio/*.wav"))[:n]


@pytest.mark.parametrize("audio_format", FEATURES.names())
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("image_size", [(16, 16), (128, 128), (64, 200)])
def test_linear_frontend_equals_the_training_features(audio_format, log, image_size):
    features = AudioFeatures(FeatureConfig(audio_format=audio_format, log=log, image_size=image_size), 10.0)
    wave = torch.randn(3, 2, 3000, generator=torch.Generator().manual_seed(3)) * 0.3
    reference = features(wave)
    mine = LinearFrontend(features, 3000)(wave)
    assert mine.shape == reference.shape
    # Both paths run in float32 (eps 1.2e-7) and sum in another order: the STFT over 64 window taps,
    # then a separable resize over up to ~30 taps per axis, about sqrt(64) x 30 x eps = 3e-5 of the
    # image's largest value where rounding errors add up. The binaural cues divide by |STFT| + 1e-3
    # (binaural.MAGNITUDE_FLOOR), which lifts a bin's absolute error by up to 1e3 where |STFT| is
    # small. Measured worst over seeds 0-4: 1.1e-5 (AMD EPYC), 2.1e-5 (Intel Xeon with AMX, whose
    # oneDNN kernels sum in another order). 1e-4 holds both; a wrong window offset, padding or
    # resize is off by 1e-2 or more.
    assert float((mine - reference).abs().max() / reference.abs().max()) < 1e-4


def test_onnx_export_then_predict_reproduces_pytorch(trained, onnx_model, synth_dir, tmp_path):
    import onnx

    meta = json.loads({p.key: p.value for p in onnx.load(str(onnx_model)).metadata_props}["echodepth"])
    predictor = Predictor.from_checkpoint(trained, device="cpu")
    assert meta["max_depth_m"] == predictor.max_depth_m and meta["sample_rate_hz"] == RATE
    assert meta["input"]["shape"] == ["batch", 2, predictor.min_samples] and meta["version"]
    assert meta["features"] == predictor.meta["features"] and meta["emission"]["chirp"]
    audio = clips(synth_dir, 5)
    assert main(["predict", "--model", str(onnx_model), *map(str, audio), "--out_dir", str(tmp_path / "onnx")]) == 0
    for path in audio:
        expected = predictor.predict(sf.read(path, dtype="float32")[0].T, RATE).final_m[0, 0].numpy()
        got = np.load(tmp_path / "onnx" / f"{path.stem}_depth.npy")
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4
    from echodepth.deploy import load_model

    batch = np.stack([sf.read(p, dtype="float32")[0].T for p in audio])  # dynamic batch size: 5
    exported = load_model(onnx_model).predict(batch, RATE)
    assert exported.final_m.shape[0] == 5
    np.testing.assert_allclose(exported.final_m, predictor.predict(batch, RATE).final_m.numpy(), atol=1e-4)
    np.testing.assert_allclose(exported.base_m + exported.residual_m, exported.final_m, atol=1e-5)


def test_torchscript_export_then_predict_reproduces_pytorch(trained, synth_dir, tmp_path):
    model = tmp_path / "model.pt"
    assert main(["export", "--checkpoint", str(trained), "--output", str(model)]) == 0
    audio = clips(synth_dir, 2)
    assert main(["predict", "--model", str(model), *map(str, audio), "--out_dir", str(tmp_path / "ts")]) == 0
    assert main(["predict", "--checkpoint", str(trained), *map(str, audio), "--out_dir", str(tmp_path / "pt")]) == 0
    for path in audio:
        a, b = (np.load(tmp_path / d / f"{path.stem}_depth.npy") for d in ("ts", "pt"))
        assert np.abs(a - b).max() < 1e-4


def test_predict_with_an_onnx_model_never_imports_torch(onnx_model, synth_dir, tmp_path):
    audio = [str(p) for p in clips(synth_dir, 2)]
    script = (
        "import sys\n"
        "class NoTorch:\n"  # any `import torch` now raises ImportError
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from echodepth.cli import main\n"
        f"code = main(['predict', '--model', {str(onnx_model)!r}, *{audio!r}, '--out_dir', {str(tmp_path)!r}])\n"
        "assert 'torch' not in sys.modules\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(tmp_path.glob("*_depth.npy"))) == 2


def test_export_fails_and_writes_nothing_above_the_tolerance(trained, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    code = main(["export", "--checkpoint", str(trained), "--output", str(out), "--tolerance_m", "1e-12"])
    err = capsys.readouterr().err
    assert code == 2 and "differs from PyTorch by" in err and "nothing written" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_predict_model_rejects_foreign_files_and_bad_recordings(onnx_model, tmp_path, capsys):
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"not a model")
    assert main(["predict", "--model", str(fake), "x.wav"]) == 2
    assert "is not a readable ONNX file" in capsys.readouterr().err
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((2, 5000), np.nan, dtype=np.float32))
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros((100, 2), np.float32), RATE)
    code = main(["predict", "--model", str(onnx_model), str(nan), str(short), "--out_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "contains NaN" in err and "100 samples, the model needs at least" in err


def long_recording(synth_dir, path: Path, n_clips: int = 6, seed: int = 1):
    """Writes synthetic clips one after another, silence or noise between; returns the onsets."""
    rng = np.random.default_rng(seed)
    parts, onsets, position = [], [], 0
    for i, clip_path in enumerate(clips(synth_dir, n_clips)):
        gap = int(rng.integers(2000, 9000))
        noise = rng.standard_normal((gap, 2)) * 0.003 if i % 2 else np.zeros((gap, 2))
        parts.append(noise.astype(np.float32))
        position += gap
        clip = sf.read(clip_path, dtype="float32")[0]
        parts.append(clip)
        onsets.append(position)
        position += len(clip)
    parts.append(np.zeros((4000, 2), np.float32))
    sf.write(path, np.concatenate(parts), RATE, subtype="PCM_32")
    return np.array(onsets)


@pytest.mark.parametrize("source", ["checkpoint", "model"])
def test_long_recording_finds_every_chirp_and_predicts_each_like_its_clip(
    source, trained, onnx_model, synth_dir, tmp_path
):
    recording = tmp_path / "long.wav"
    onsets = long_recording(synth_dir, recording)
    flag = ["--checkpoint", str(trained)] if source == "checkpoint" else ["--model", str(onnx_model)]
    assert main(["predict", *flag, str(recording), "--chirps", "--out_dir", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "long_onsets.csv")))
    found = np.array([float(r["onset_s"]) for r in rows])
    assert len(found) == len(onsets)  # no chirp missed, no false one
    errors_ms = np.abs(found - onsets / RATE) * 1000
    assert errors_ms.max() < 1.0
    depth = np.load(tmp_path / "out" / "long_depth.npy")
    predictor = Predictor.from_checkpoint(trained, device="cpu")
    alone = np.stack(
        [predictor.predict(sf.read(p, dtype="float32")[0].T, RATE).final_m[0, 0].numpy() for p in clips(synth_dir, 6)]
    )
    assert depth.shape == alone.shape and np.abs(depth - alone).max() < 1e-4
    from PIL import Image

    gif = Image.open(tmp_path / "out" / "long_decomposition.gif")
    assert gif.n_frames == len(onsets)


def test_long_recording_needs_a_chirp_and_reports_none_found(trained, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((20000, 2), np.float32), RATE)
    code = main(["predict", "--checkpoint", str(trained), str(silent), "--chirps", "--out_dir", str(tmp_path)])
    assert code == 1 and "no chirp found" in capsys.readouterr().err
    from echodepth.inference.predict import chirp_settings

    predictor = Predictor.from_checkpoint(trained, device="cpu")
    predictor.meta = {**predictor.meta, "emission": None}
    with pytest.raises(ConfigError, match="give --chirp FILE"):
        chirp_settings(predictor)
    chirp = tmp_path / "chirp.wav"
    sf.write(chirp, np.sin(np.linspace(0, 300, 132)).astype(np.float32), 22050)
    with pytest.raises(Exception, match="sampled at 22050 Hz, the model expects 44100 Hz"):
        chirp_settings(predictor, chirp_file=chirp)


def test_white_noise_holds_no_chirp(trained, tmp_path, capsys):
    noise = tmp_path / "noise.wav"
    sf.write(noise, np.random.default_rng(0).standard_normal((2 * RATE, 2)) * 0.1, RATE, subtype="FLOAT")
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(trained), str(noise), "--chirps", "--out_dir", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and "noise.wav: no chirp found" in captured.err and "above the noise floor" in captured.err
    assert "predicted 0 of 1 recording(s); 1 failed" in captured.out and not list(out.glob("*_depth.npy"))


def test_predictor_reports_clipping_and_silence(trained):
    predictor = Predictor.from_checkpoint(trained, device="cpu")
    loud = np.clip(np.random.default_rng(0).standard_normal((2, 4000)) * 3, -1, 1).astype(np.float32)
    quiet = np.full((2, 4000), 1e-5, np.float32)
    prediction = predictor.predict(np.stack([loud, quiet]), RATE)
    assert prediction.report[0]["clipped_fraction"] > 0.1 and "clipped" in prediction.report[0]["warnings"][0]
    assert prediction.report[1]["warnings"] == ["nearly silent: RMS -100 dBFS"]
    assert prediction.report[0]["samples_used"] == predictor.min_samples


def test_non_square_inputs_train_predict_and_export(synth_dir, tmp_path):
    from echodepth.runs.train import train

    result = train(tiny_config(synth_dir, tmp_path, input_size=[16, 48]), progress=False)
    predictor = Predictor.from_checkpoint(result["best_checkpoint"], device="cpu")
    assert predictor.meta["input_shape"] == [2, 16, 48]  # the feature image keeps 48 time columns
    wave = sf.read(clips(synth_dir, 1)[0], dtype="float32")[0].T
    assert predictor.predict(wave, RATE).final_m.shape == (1, 1, 16, 16)  # depth at image_size
    model = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", result["best_checkpoint"], "--output", str(model)]) == 0
    from echodepth.deploy import load_model

    exported = load_model(model).predict(wave, RATE).final_m
    np.testing.assert_allclose(exported, predictor.predict(wave, RATE).final_m.numpy(), atol=1e-4)
    bf16 = Predictor.from_checkpoint(result["best_checkpoint"], device="cpu", precision="bf16")
    assert np.abs(bf16.predict(wave, RATE).final_m.numpy() - exported).max() < 0.2  # bf16 shrink path runs


def exit_status(argv: list[str]) -> int:
    """Returns the exit status of `echodepth ARGV`, a usage error found by argparse included."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def test_a_training_checkpoint_or_a_folder_given_as_model_says_what_it_is(trained, tmp_path, capsys):
    renamed = tmp_path / "model.pt"
    renamed.write_bytes(trained.read_bytes())  # a Lightning .ckpt renamed .pt
    assert main(["predict", "--model", str(renamed), "x.wav", "--out_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"model {renamed} is a training checkpoint (torch.save), not a model written by" in err[0]
    assert f"predict from it with --checkpoint {renamed}" in err[0] and "corrupt" not in err[0]
    run_dir = trained.parent.parent
    assert main(["predict", "--model", str(run_dir), "x.wav", "--out_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"model {run_dir} is a folder, expected a file written by echodepth export" in err[0]
    assert f"holds {trained} and " in err[0] and err[0].endswith("predict from one with --checkpoint")
    assert main(["eval", "--checkpoint", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"checkpoint {run_dir} is a folder" in err[0] and str(trained) in err[0]
    torch.save({"weights": torch.zeros(2)}, tmp_path / "weights.pt")
    from echodepth.deploy import load_model
    from echodepth.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"weights.pt is a PyTorch file \(torch.save\), not a model written by"):
        load_model(tmp_path / "weights.pt")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--device", "cuda"], "--device cuda does not apply to --model: an exported model runs on the CPU"),
        (["--precision", "bf16"], "--precision bf16 does not apply to --model"),
        (["--threads", "0"], "argument --threads: '0': expected a whole number above 0"),
        (["--pcm_bits", "12"], "argument --pcm_bits: '12': expected the integer samples' PCM width in bits"),
        (["--threshold", "0.5"], "--threshold 0.5 applies to long recordings: give --chirps too"),
        (["--lead_ms", "3", "--chirp", "c.wav"], "--chirp c.wav and --lead_ms 3.0 applies to long recordings"),
    ],
)
def test_predict_refuses_flags_that_do_not_apply_to_its_mode(onnx_model, synth_dir, tmp_path, capsys, flags, message):
    audio = str(clips(synth_dir, 1)[0])
    assert exit_status(["predict", "--model", str(onnx_model), audio, "--out_dir", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_checkpoint_flags_are_refused_with_the_other_source(trained, synth_dir, tmp_path, capsys, monkeypatch):
    audio = str(clips(synth_dir, 1)[0])
    predict = ["predict", "--checkpoint", str(trained), audio, "--out_dir", str(tmp_path)]
    assert main([*predict, "--threads", "2"]) == 2
    assert "--threads 2 applies to --model (onnxruntime's threads), not to --checkpoint" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*predict, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["echodepth predict: error: device 'cuda': CUDA is not available on this machine; use cpu or auto"]
    assert main([*predict, "--device", "CPU"]) == 0


def test_export_refuses_flags_that_have_no_effect(trained, tmp_path, capsys):
    predictor = Predictor.from_checkpoint(trained, device="cpu")
    cut = predictor.min_samples
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(trained), "--output", str(out), "--samples", str(cut + 5000)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--samples {cut + 5000} does not apply: this model reads the first {cut} " in err[0]
    assert main(["export", "--checkpoint", str(trained), "--output", str(tmp_path / "m.pt"), "--opset", "13"]) == 2
    assert "--opset 13 applies to ONNX exports; a TorchScript export has no opset" in capsys.readouterr().err
    assert exit_status(["export", "--checkpoint", str(trained), "--output", str(out), "--samples", "0"]) == 2
    assert "argument --samples: '0': expected a whole number above 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_predict_on_a_long_recording_says_how_much_it_read_and_points_to_chirps(trained, synth_dir, tmp_path, capsys):
    recording = tmp_path / "long.wav"
    long_recording(synth_dir, recording, n_clips=6)  # about 2 s holding 6 chirps, silence first
    first = sf.read(clips(synth_dir, 1)[0], dtype="float32")[0]
    sf.write(recording, np.concatenate([first, sf.read(recording, dtype="float32")[0]]), RATE, subtype="FLOAT")
    assert main(["predict", "--checkpoint", str(trained), str(recording), "--out_dir", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    window_ms = 1000 * Predictor.from_checkpoint(trained, device="cpu").min_samples / RATE
    assert re.search(rf"long.wav: read only the first {window_ms:.0f} ms of \d\.\d s \(the model's window\)", err)
    assert "echodepth predict --chirps" in err
    clip = str(clips(synth_dir, 1)[0])
    assert main(["predict", "--checkpoint", str(trained), clip, "--out_dir", str(tmp_path / "one")]) == 0
    assert "read only" not in capsys.readouterr().err  # a recording as long as the training ones: nothing to say
