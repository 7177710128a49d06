"""The inference path without a training run: a tiny network, its checkpoint written as training
writes it, and what `Predictor` and `read_checkpoint` make of it (and of files that are not one)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from echodepth.data.features import FeatureConfig, cut_length
from echodepth.errors import CheckpointError, ConfigError, DataError, MissingFileError
from echodepth.inference.predictor import (
    Predictor,
    check_accelerator,
    exported_format,
    read_checkpoint,
    resolve_device,
    unpickling_error,
    upgrade_metadata,
)
from echodepth.models import build_model_for_training
from echodepth.settings.config import TrainConfig
from echodepth.training.module import checkpoint_metadata

MAX_DEPTH_M = 3.0  # the cut: 2 * 3 m / 340 m/s at 44.1 kHz = 778 samples
SR = 44100


def tiny(**settings):
    """Returns (network, config, metadata) of an untrained 16 x 16 base + residual network."""
    torch.manual_seed(0)
    cfg = TrainConfig(image_size=16, base_channels=4, max_depth_m=MAX_DEPTH_M, **settings)
    features = FeatureConfig(image_size=(16, 16))
    network = build_model_for_training(cfg, features.n_channels).eval()
    return (
        network,
        cfg,
        checkpoint_metadata(cfg, max_depth_m=MAX_DEPTH_M, feature_config=features, in_channels=features.n_channels),
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint as `echodepth train` writes it: the LightningModule's state_dict ("model." keys)."""
    network, _, meta = tiny()
    path = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    state = {f"model.{k}": v for k, v in network.state_dict().items()}
    torch.save({"echodepth": meta, "state_dict": {**state, "criterion.unused": torch.zeros(1)}}, path)
    return path, network


def waves(n=2, samples=1000, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 2, samples)).astype(np.float32)


def test_auto_is_cuda_only_where_there_is_one(monkeypatch):
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_device_names_are_taken_in_any_case_and_a_missing_device_is_named(monkeypatch):
    for name in ("cpu", "CPU", " Cpu ", "cpu:0", "AUTO"):
        assert resolve_device(name) == "cpu", name  # this machine: no CUDA in CI
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "CUDA:0", "cuda:1"):
        with pytest.raises(ConfigError, match=rf"^device '{name}': CUDA is not available on this machine; use cpu"):
            resolve_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("CUDA") == "cuda" and resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(ConfigError, match=r"^device 'cuda:1': this machine has 1 CUDA device\(s\), cuda:0 to cuda:0$"):
        resolve_device("cuda:1")  # the first index past the last
    for name in ("gpu", "cpu:1", "cuda:x", "", "tpu:0"):
        with pytest.raises(ConfigError, match=rf"^device '{name}': expected auto, cpu, cuda, cuda:N .* or mps$"):
            resolve_device(name)
    with pytest.raises(ConfigError, match=r"^device 0 \(int\): expected a device name"):
        resolve_device(0)


def test_mps_is_taken_where_the_machine_has_it_and_named_where_it_lacks_it(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("MPS") == "mps" and resolve_device("mps:0") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^device 'mps': MPS \(an Apple GPU\) is not available on this machine; use"):
        resolve_device("mps")


def test_an_accelerator_is_checked_as_its_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_accelerator("auto") is None and check_accelerator("cpu") is None  # nothing raised
    for name in ("gpu", "cuda"):
        with pytest.raises(
            ConfigError, match=rf"^accelerator '{name}': CUDA is not available on this machine; use cpu or auto$"
        ):
            check_accelerator(name)
    with pytest.raises(
        ConfigError, match=r"^accelerator 'tpu': expected one of \['auto', 'cpu', 'gpu', 'cuda', 'mps'\]$"
    ):
        check_accelerator("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    check_accelerator("gpu")


def test_the_api_refuses_a_device_or_batch_size_before_reading_the_checkpoint(checkpoint, monkeypatch, tmp_path):
    path = checkpoint[0]
    assert Predictor.from_checkpoint(path, device="CPU").device == "cpu"
    assert Predictor.from_checkpoint(path, device="cpu:0").device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^device 'cuda': CUDA is not available on this machine"):
        Predictor.from_checkpoint(path, device="cuda")
    with pytest.raises(ConfigError, match=r"^device 'cuda': CUDA is not available"):  # the device, not the file
        Predictor.from_checkpoint(tmp_path / "nope.ckpt", device="cuda")
    for size in (0, -1, 2.5, True, "many", None):
        with pytest.raises(ConfigError, match=rf"^batch_size {size!r}.*: expected a whole number above 0$"):
            Predictor.from_checkpoint(path, device="cpu", batch_size=size)
    network, cfg, meta = tiny()
    with pytest.raises(ConfigError, match=r"^batch_size 0: expected a whole number above 0$"):
        Predictor(network, cfg, meta, batch_size=0)
    assert Predictor.from_checkpoint(path, device="cpu", batch_size=np.int64(3)).batch_size == 3


def test_sample_rates_are_numbers_or_numeric_strings_and_other_types_are_named(checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu")
    reference = predictor.predict(waves(1), SR).final_m
    for rate in ("44100", np.int32(SR), 44100.0, " 44100 "):
        assert torch.equal(predictor.predict(waves(1), rate).final_m, reference), rate
    for rate, shown in (("44.1k", r"'44.1k' \(str\)"), (None, r"None \(NoneType\)"), ([SR], r"\[44100\] \(list\)")):
        with pytest.raises(ConfigError, match=rf"^sample_rate_hz {shown}: expected a sample rate in Hz"):
            predictor.predict(waves(1), rate)
    for rate in (0, -44100, 44100.5, float("nan")):
        with pytest.raises(ConfigError, match=r"^sample_rate_hz .*: expected a sample rate in Hz, a whole number"):
            predictor.predict(waves(1), rate)
    with pytest.raises(DataError, match=r"^waveform: sampled at 48000 Hz, the model expects 44100 Hz$"):
        predictor.predict(waves(1), "48000")


def test_integer_arrays_are_scaled_by_their_declared_pcm_width(checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu")
    batch = waves(1)
    reference = predictor.predict(batch, SR).final_m
    pcm16 = np.round(batch * 32767).astype(np.int64)  # numpy's default integer holding 16-bit PCM
    with pytest.raises(DataError, match=r"^rec: samples of type int64 hold no PCM width of their own: declare it"):
        predictor.predict(pcm16, SR, name="rec")
    with pytest.raises(DataError, match=r"^waveform: samples of type int64 hold no PCM width"):
        predictor.predict(torch.from_numpy(pcm16), SR)  # torch's int64 tensors alike
    scaled = predictor.predict(pcm16, SR, pcm_bits=16).final_m
    assert torch.allclose(scaled, reference, atol=1e-3)  # 16-bit quantisation of the same recording
    assert torch.allclose(predictor.predict(pcm16.astype(np.int16), SR).final_m, scaled, atol=1e-6)  # int16: 16 bits
    pcm24 = np.round(batch * 2**23).astype(np.int32)  # 24-bit PCM in 32-bit integers
    assert torch.allclose(predictor.predict(pcm24, SR, pcm_bits=24).final_m, reference, atol=1e-4)
    with pytest.raises(DataError, match=r"^waveform: int64 samples from -?\d+ to \d+ do not fit 8-bit PCM$"):
        predictor.predict(pcm16, SR, pcm_bits=8)
    with pytest.raises(ConfigError, match=r"^pcm_bits 12: expected the integer samples' PCM width in bits"):
        predictor.predict(pcm16, SR, pcm_bits=12)
    with pytest.raises(DataError, match=r"^waveform: pcm_bits 16 applies to integer samples; these are float32$"):
        predictor.predict(batch, SR, pcm_bits=16)
    with pytest.raises(DataError, match=r"^waveform: samples of type uint16 hold no PCM width"):
        predictor.predict(pcm16.astype(np.uint16), SR)


def test_a_recording_much_longer_than_the_window_says_how_much_was_read(checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu")
    long = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 60 * SR)).astype(np.float32)  # 60 s
    warnings = predictor.predict(long, SR).report[0]["warnings"]
    assert warnings == [
        "read only the first 18 ms of 60.0 s (the model's window); for a recording of many chirps, "
        "`echodepth predict --chirps` predicts one depth map per chirp"
    ]
    assert predictor.predict(long[:, : SR // 2], SR).report[0]["warnings"] == []  # 0.45 s, like BatVision V2's


def test_exported_models_are_told_apart_from_checkpoints(tmp_path, checkpoint):
    script = tmp_path / "model.pt"
    torch.jit.script(torch.nn.Linear(2, 1)).save(str(script))
    assert exported_format(script) == "TorchScript"
    with zipfile.ZipFile(tmp_path / "constants.zip", "w") as archive:  # an archive without code/ but its constants
        archive.writestr("m/constants.pkl", b"")
    assert exported_format(tmp_path / "constants.zip") == "TorchScript"
    with zipfile.ZipFile(tmp_path / "code.zip", "w") as archive:  # code/ without constants
        archive.writestr("m/code/__torch__/model.py", b"")
    assert exported_format(tmp_path / "code.zip") == "TorchScript"
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("m/data.pkl", b"")
    assert exported_format(tmp_path / "other.zip") is None
    assert exported_format(checkpoint[0]) is None  # torch.save's zip holds data.pkl, no code/
    onnx_head = bytes([0x08, 0x07, 0x12, 0x07]) + b"pytorch"  # ir_version 7, producer_name "pytorch"
    for name, head, expected in (
        ("a.onnx", b"anything", "ONNX"),  # named .onnx
        ("a.bin", onnx_head, "ONNX"),  # ONNX by its first protobuf fields
        ("b.bin", bytes([0x08, 0x07, 0x13, 0x07]), None),  # field 2 of another type
        ("c.bin", bytes([0x09, 0x07, 0x12]), None),
        ("d.bin", bytes([0x08, 0x07]), None),  # too short to tell
        ("e.bin", b"", None),
    ):
        (tmp_path / name).write_bytes(head)
        assert exported_format(tmp_path / name) == expected, name


def test_unpickling_errors_are_one_plain_line():
    assert unpickling_error(ValueError("")) == "ValueError"
    assert unpickling_error(RuntimeError("  \n ")) == "RuntimeError"
    assert unpickling_error(RuntimeError("  bad zip header\nsecond line")) == "bad zip header"
    advice = "it holds more than tensors and plain values"
    assert unpickling_error(RuntimeError("Weights only load failed. This file can still be loaded\nmore")) == advice
    assert unpickling_error(RuntimeError("set weights_only=False to load it\nmore")) == advice
    assert unpickling_error(RuntimeError("only if you got the file from a trusted source")) == advice


class NotAWeight:
    pass


def test_read_checkpoint_errors_name_the_file_and_what_is_wrong(tmp_path, checkpoint):
    assert set(read_checkpoint(checkpoint[0])) == {"echodepth", "state_dict"}
    with pytest.raises(MissingFileError, match=r"^checkpoint \S*nope.ckpt not found$"):
        read_checkpoint(tmp_path / "nope.ckpt")
    with pytest.raises(CheckpointError, match=r"^checkpoint \S+ is a folder, expected a .ckpt file written by"):
        read_checkpoint(tmp_path)  # a folder is not a checkpoint file
    script = tmp_path / "model.pt"
    torch.jit.script(torch.nn.Linear(2, 1)).save(str(script))
    with pytest.raises(CheckpointError, match=r"model.pt is an exported TorchScript model, not a training checkpoint"):
        read_checkpoint(script)
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07\x12")
    tail = r"echodepth predict --model`; train --resume, eval and export take a .ckpt from results/\*/checkpoints/$"
    with pytest.raises(CheckpointError, match=r"exported ONNX model.*" + tail):
        read_checkpoint(tmp_path / "m.onnx")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(
        CheckpointError, match=r"^checkpoint \S*garbage.ckpt is unreadable or not a plain weights file \("
    ):
        read_checkpoint(tmp_path / "garbage.ckpt")
    torch.save({"echodepth": NotAWeight()}, tmp_path / "code.ckpt")  # pickled code: refused, never run
    with pytest.raises(CheckpointError, match=r"\(it holds more than tensors and plain values\)$") as refused:
        read_checkpoint(tmp_path / "code.ckpt")
    assert "trust" not in str(refused.value)  # no advice to load it unsafely
    for i, foreign in enumerate(({"state_dict": {}}, [1, 2])):
        torch.save(foreign, tmp_path / f"foreign{i}.ckpt")
        with pytest.raises(
            CheckpointError, match=r"foreign\d.ckpt was not written by echodepth train \(no 'echodepth'"
        ):
            read_checkpoint(tmp_path / f"foreign{i}.ckpt")


def test_metadata_of_older_versions_reads_in_todays_terms():
    old = {"config": {"max_depth": 12.0, "image_size": 64, "audio_format": "mel", "log_compression": True}}
    meta = upgrade_metadata(old)
    assert meta["config"]["max_depth_m"] == 12.0 and "max_depth" not in meta["config"]
    assert meta["config"]["input_norm"] == "none"
    features = FeatureConfig(**meta["features"])
    assert (features.audio_format, features.log, features.image_size) == ("mel", True, (64, 64))
    assert features.sample_rate_hz == 44100 and features.n_fft == 512  # 0.1: the baseline's settings
    assert "max_depth" in old["config"]  # the stored metadata is not changed in place
    bare = upgrade_metadata({"config": {"image_size": 32}})
    assert FeatureConfig(**bare["features"]).audio_format == "spectrogram"
    assert FeatureConfig(**bare["features"]).log is False
    stored = FeatureConfig(n_fft=256, win_length=32, image_size=(8, 8)).to_dict()
    current = {"config": {"max_depth_m": 5.0, "input_norm": "dataset", "image_size": 8}, "features": stored, "x": 1}
    assert upgrade_metadata(current) == current  # a current checkpoint's metadata passes unchanged


def test_a_checkpoint_predicts_what_its_network_gives_in_metres(checkpoint):
    path, network = checkpoint
    predictor = Predictor.from_checkpoint(path, device="cpu", batch_size=3)
    assert predictor.checkpoint_path == path and predictor.device == "cpu" and predictor.batch_size == 3
    assert predictor.max_depth_m == MAX_DEPTH_M and predictor.sample_rate_hz == SR
    assert predictor.min_samples == cut_length(MAX_DEPTH_M, SR) == 778 and predictor.emission is None
    assert not predictor.network.training
    batch = waves(5)
    prediction = predictor.predict(batch, SR)
    with torch.no_grad():
        base, residual, final = network(predictor.feature_extractor(torch.from_numpy(batch)))
    for got, norm in zip((prediction.base_m, prediction.residual_m, prediction.final_m), (base, residual, final)):
        assert got.shape == (5, 1, 16, 16) and got.dtype == torch.float32
        assert torch.allclose(got, norm * MAX_DEPTH_M, atol=1e-6)  # normalised depth x max depth
    assert [r["samples_used"] for r in prediction.report] == [778] * 5
    assert [r["samples"] for r in prediction.report] == [1000] * 5


def test_predict_takes_one_recording_torch_tensors_and_integer_pcm(checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu")
    batch = waves(2)
    reference = predictor.predict(batch, SR).final_m
    one = predictor.predict(batch[1], SR).final_m  # (2, N): one recording
    assert one.shape == (1, 1, 16, 16) and torch.allclose(one[0], reference[1], atol=1e-6)
    tensor = predictor.predict(torch.from_numpy(batch).double().requires_grad_(), SR).final_m
    assert torch.allclose(tensor, reference, atol=1e-6)
    pcm = np.round(batch * 32768).astype(np.int16)
    from_pcm = predictor.predict(torch.from_numpy(pcm), SR).final_m  # int16 scaled by 1 / 32768
    assert torch.allclose(from_pcm, predictor.predict(pcm.astype(np.float32) / 32768, SR).final_m, atol=1e-6)


def test_recordings_that_cannot_be_predicted_are_one_line_errors_naming_them(checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu")
    with pytest.raises(DataError, match=r"^rec.wav: sampled at 48000 Hz, the model expects 44100 Hz$"):
        predictor.predict(waves(1), 48000, name="rec.wav")
    with pytest.raises(DataError, match=r"^rec: 700 samples, the model needs at least 778 \(18 ms: the echo of 3 m\)"):
        predictor.predict(waves(1, 700), SR, name="rec")
    silent_after_window = waves(1, 2000)
    silent_after_window[..., :778] = 0  # sound only beyond the samples the features read
    with pytest.raises(DataError, match="^waveform"):
        predictor.predict(silent_after_window, SR)
    loud_late = waves(1, 2000)
    loud_late[..., 1000:] = 0.99  # clipping after the window: not what the model reads
    assert predictor.predict(loud_late, SR).report[0]["clipped_fraction"] == 0.0


def test_predict_feature_image_goes_batch_size_at_a_time_with_the_same_result(checkpoint):
    g = torch.Generator().manual_seed(0)
    path, network = checkpoint
    features = torch.rand(5, 2, 16, 16, generator=g)
    one_pass = Predictor.from_checkpoint(path, device="cpu", batch_size=64).predict_feature_image(features)
    calls = []
    handle = network.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    try:
        chunked = Predictor(network, *tiny()[1:], device="cpu", batch_size=2).predict_feature_image(features)
    finally:
        handle.remove()
    assert calls == [2, 2, 1]
    # float32 depths up to MAX_DEPTH_M = 3 m, where a rounding step is 3 x eps = 3.6e-7: batches of 2 and
    # of 5 may take other convolution kernels; measured at most 1.2e-7 over seeds 0-9, 1e-6 is ~3 steps
    assert torch.allclose(chunked.final_m, one_pass.final_m, atol=1e-6)
    assert torch.allclose(chunked.final_m, chunked.base_m + chunked.residual_m, atol=1e-5)


def test_bf16_runs_the_network_in_bfloat16_channels_last_and_returns_float32_metres(checkpoint):
    g = torch.Generator().manual_seed(1)
    path, _ = checkpoint
    with pytest.raises(ConfigError, match=r"^precision 'fp16': expected one of \['fp32', 'bf16'\]$"):
        Predictor.from_checkpoint(path, device="cpu", precision="fp16")
    fp32 = Predictor.from_checkpoint(path, device="cpu")
    bf16 = Predictor.from_checkpoint(path, device="cpu", precision="bf16")
    conv = next(m for m in bf16.network.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    handle = conv.register_forward_hook(lambda module, args, out: seen.append((out.dtype, args[0].dtype)))
    try:
        features = torch.rand(3, 2, 16, 16, generator=g)
        low, full = bf16.predict_feature_image(features), fp32.predict_feature_image(features)
    finally:
        handle.remove()
    assert seen and all(dtype == torch.bfloat16 for dtype, _ in seen)  # autocast: bfloat16 convolutions
    assert low.final_m.dtype == torch.float32
    assert torch.allclose(low.final_m, full.final_m, atol=0.05 * MAX_DEPTH_M)
    assert not torch.equal(low.final_m, full.final_m)
    fp32_conv = next(m for m in fp32.network.modules() if isinstance(m, torch.nn.Conv2d))
    assert not fp32_conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_predict_loader_prepares_each_batch_and_predicts_it(checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu")
    window = predictor.feature_extractor.window(torch.from_numpy(waves(3)))
    depth_mm = torch.full((3, 1, 16, 16), 1500, dtype=torch.int32)
    depth_mm[:, :, 0, 0] = 0
    files = ["a.wav", "b.wav", "c.wav"]  # what a collated batch holds besides tensors passes through
    loader = [{"waveform": window, "depth_mm": depth_mm, "index": torch.arange(3), "files": files}]
    (batch, prediction), *rest = list(predictor.predict_loader(loader))
    assert rest == [] and "waveform" not in batch
    assert torch.allclose(batch["feature_image"], predictor.feature_extractor.image(window))
    assert torch.equal(batch["depth_m"], depth_mm.float() / 1000)
    assert torch.allclose(batch["depth_norm"], batch["depth_m"] / MAX_DEPTH_M)
    assert batch["valid"].sum() == 3 * 255 and torch.equal(batch["index"], torch.arange(3))
    assert batch["files"] == files
    assert torch.allclose(prediction.final_m, predictor.predict_feature_image(batch["feature_image"]).final_m)


def test_the_predictors_defaults(checkpoint):
    network, cfg, meta = tiny()
    direct = Predictor(network, cfg, meta)
    assert (direct.device, direct.batch_size, direct.precision, direct.checkpoint_path) == ("cpu", 64, "fp32", None)
    assert direct.cfg is cfg and direct.meta is meta
    loaded = Predictor.from_checkpoint(checkpoint[0])  # device "auto": the CPU here
    assert (loaded.device, loaded.batch_size, loaded.precision) == (resolve_device("auto"), 64, "fp32")
    assert loaded.cfg.base_channels == 4 and loaded.cfg.max_depth_m == MAX_DEPTH_M


def test_the_silence_check_reads_the_window_the_features_read(checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint[0], device="cpu")
    lead_in = np.zeros((1, 2, 2000), np.float32)
    lead_in[..., 100:700] = waves(1, 600)  # silent first samples, sound inside the 778-sample window
    predictor.check_waveform(lead_in, SR)
    assert predictor.predict(lead_in, SR).final_m.shape == (1, 1, 16, 16)
    late = np.zeros((1, 2, 2000), np.float32)
    late[..., 900:] = waves(1, 1100)  # sound only after the window
    with pytest.raises(DataError, match=r"^waveform: silent recording \(all zeros\)"):
        predictor.check_waveform(late, SR)
    with pytest.raises(DataError, match=r"^waveform: shape \(\), expected \(2, N\) or \(B, 2, N\)"):
        predictor.predict(np.float32(0.5), SR)  # a single number: a one-line error, not a traceback


def test_checkpoints_are_loaded_with_weights_only_on_every_supported_torch(checkpoint, monkeypatch):
    # torch 2.6+ defaults to weights_only=True, torch 2.2 to 2.5 (which pyproject allows) to False:
    # the project's rule holds only if the flag is passed explicitly
    calls = []
    real_load = torch.load

    def recorded_load(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recorded_load)
    read_checkpoint(checkpoint[0])
    assert calls == [{"map_location": "cpu", "weights_only": True}]


def test_a_run_folder_given_as_a_checkpoint_points_at_the_checkpoints_inside(checkpoint, tmp_path):
    run = tmp_path / "results" / "exp1"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("best.ckpt", "last.ckpt"):
        (run / "checkpoints" / name).write_bytes(checkpoint[0].read_bytes())
    best, last = run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt"
    for folder in (run, run / "checkpoints"):
        with pytest.raises(CheckpointError) as refused:
            Predictor.from_checkpoint(folder, device="cpu")
        message = str(refused.value)
        assert message == (
            f"checkpoint {folder} is a folder, expected a .ckpt file written by echodepth train; "
            f"this run folder holds {best} and {last}: give one of those"
        )
