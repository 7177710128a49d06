"""Ideas written once: the batch contract, one recording reader for `predict` and
`audio-stats`, one flag formatter in the diagnosis, one first-line rule for library errors, one
size formatter, and a training run that leaves its configuration as it was given."""

import dataclasses
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from echodepth.audio.recordings import read_recording, recordings_in
from echodepth.audio.stats import path_stats
from echodepth.data import build_cache, build_dataset
from echodepth.data.batch import FEATURE_IMAGE, collate_batch, prepare_batch, with_feature_image
from echodepth.data.features import FeatureConfig
from echodepth.diagnose.checks import Check
from echodepth.diagnose.report import rerun_command, table
from echodepth.errors import DataError, first_line
from echodepth.runs.rundir import RunDir
from echodepth.runs.storage import format_bytes

from .helpers import SR, tiny_config

FEAT = FeatureConfig(image_size=(32, 32))


def test_every_loader_path_gives_one_batch_form(v2_root, tmp_path):
    """The cached, per-sample and waveform paths give the same keys, shapes and dtypes once
    prepared, and the same depth (the cache stores millimetres, rounded)."""
    per_sample = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT)
    waveforms = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT, waveforms=True)
    cached = build_cache(per_sample, tmp_path / "cache", progress=False)
    indices = list(range(len(per_sample)))
    batches = {
        "per_sample": collate_batch([per_sample[i] for i in indices]),
        "waveforms": with_feature_image(collate_batch([waveforms[i] for i in indices]), waveforms.feature_extractor),
        "cached": collate_batch(cached.__getitems__(indices)),
    }
    assert cached.feature_image.dtype == np.float16 and batches["cached"][FEATURE_IMAGE].dtype == torch.float16
    prepared = {name: prepare_batch(b, per_sample.max_depth_m) for name, b in batches.items()}
    for name, b in prepared.items():
        assert b[FEATURE_IMAGE].shape == (6, 2, 32, 32) and b[FEATURE_IMAGE].dtype == torch.float32, name
        assert b["depth_m"].shape == b["depth_norm"].shape == b["valid"].shape == (6, 1, 32, 32), name
        assert b["valid"].dtype == torch.bool and torch.equal(b["valid"], b["depth_m"] > 0), name
        assert torch.allclose(b["depth_norm"] * per_sample.max_depth_m, b["depth_m"]), name
        assert "waveform" not in b, name
    reference = prepared["per_sample"]
    assert torch.allclose(prepared["waveforms"][FEATURE_IMAGE], reference[FEATURE_IMAGE], rtol=1e-4, atol=1e-5)
    assert torch.allclose(prepared["cached"]["depth_m"], reference["depth_m"], atol=5e-4)  # millimetres
    assert torch.allclose(prepared["cached"][FEATURE_IMAGE], reference[FEATURE_IMAGE], rtol=2e-3, atol=2e-3)


def test_the_two_dataset_classes_name_their_contents_apart(v2_root, tmp_path):
    """One name, one meaning: the feature settings are `feature_config` and the cached arrays
    `feature_image`, never one `features` attribute of two types."""
    dataset = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT)
    cached = build_cache(dataset, tmp_path / "cache", progress=False)
    assert isinstance(dataset.feature_config, FeatureConfig) and cached.feature_image.shape == (6, 2, 32, 32)
    assert not hasattr(dataset, "features") and not hasattr(cached, "features")


def test_audio_stats_reads_what_predict_reads(tmp_path):
    """One reader: a (2, N) .npy array, an (N, 2) int16 one and a V1 ear pair give audio-stats
    the same statistics as the WAV file holding the same samples."""
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal((SR // 10, 2)) * 3000).astype(np.int16)
    sf.write(tmp_path / "x.wav", samples, SR, subtype="PCM_16")
    np.save(tmp_path / "arr.npy", samples.T.copy())
    np.save(tmp_path / "cols.npy", samples)
    np.save(tmp_path / "v1_left.npy", samples[:, 0].copy())
    np.save(tmp_path / "v1_right.npy", samples[:, 1].copy())
    expected = path_stats(tmp_path / "x.wav", SR)
    for name in ("arr.npy", "cols.npy", "v1_left.npy"):
        assert np.array_equal(read_recording(tmp_path / name, SR), read_recording(tmp_path / "x.wav", SR)), name
        stats = path_stats(tmp_path / name, SR)
        for key, value in expected.items():
            assert stats[key] == pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True), (name, key)


def test_one_rule_for_which_files_are_recordings(tmp_path):
    """A folder named directly holds .npy arrays as recordings; a walk through sub-folders (a
    dataset's tree, whose plain .npy files are depth maps) does not; a right ear never counts."""
    sub = tmp_path / "audio"
    sub.mkdir()
    wave = np.zeros((2, 100), np.float32)
    np.save(tmp_path / "pair.npy", wave)
    np.save(sub / "a_left.npy", wave[0])
    np.save(sub / "a_right.npy", wave[1])
    np.save(sub / "depth.npy", np.ones((4, 4)))
    sf.write(sub / "b.wav", wave.T, SR)
    assert [p.name for p in recordings_in(tmp_path)] == ["pair.npy"]
    assert [p.name for p in recordings_in(tmp_path, recursive=True)] == ["a_left.npy", "b.wav"]
    assert [p.name for p in recordings_in(sub)] == ["a_left.npy", "b.wav", "depth.npy"]


def test_audio_stats_refuses_what_the_reader_refuses(tmp_path):
    np.save(tmp_path / "lonely_left.npy", np.ones(1000, np.float32))  # no right ear beside it
    with pytest.raises(DataError, match="lonely_right.npy not found"):
        path_stats(tmp_path / "lonely_left.npy", SR)
    sf.write(tmp_path / "short.wav", np.zeros((1, 2)), SR)
    with pytest.raises(DataError, match="1 sample"):
        path_stats(tmp_path / "short.wav", SR)


def check(name: str, flags: dict) -> Check:
    return Check(name, "statistic", 1.0, "<= 0.5", False, "symptom", "advice", flags)


def test_the_table_and_the_rerun_command_write_flags_alike(tmp_path):
    flags = {"lambda_base": 2.0, "lowpass_kernel": 12, "use_adaptive_loss": True, "input_norm": "centre"}
    words = "--lambda_base 2 --lowpass_kernel 12 --use_adaptive_loss --input_norm centre"
    checks = [check("a", flags), check("b", {"lambda_base": 9.0})]  # the first check to name a flag decides
    command = rerun_command(RunDir(tmp_path / "run"), checks)
    assert command.endswith(f"--experiment_name run_tuned {words}")
    assert f"try {words}" in table(checks)
    assert rerun_command(RunDir(tmp_path / "run"), [dataclasses.replace(checks[0], healthy=True)]) is None


@pytest.mark.parametrize(
    "message, expected",
    [("bad file\nTraceback: ...\nmore", "bad file"), ("  \n  ", "OSError"), ("", "OSError"), ("  one  ", "one")],
)
def test_first_line_of_an_error(message, expected):
    assert first_line(OSError(message)) == expected


def test_format_bytes():
    assert format_bytes(512) == "0.5 KB"
    assert format_bytes(3 * 1024**2) == "3.0 MB"
    assert format_bytes(1536 * 1024**2) == "1,536.0 MB"


def test_training_leaves_the_given_configuration_as_it_was(synth_dir, tmp_path):
    """`train` fills in what the data decides (max depth, depth unit) and the
    precision used in config.yaml and the checkpoint, not in the caller's configuration."""
    from echodepth.runs.train import train
    from echodepth.settings.yaml_files import load_yaml

    cfg = tiny_config(synth_dir, tmp_path, max_depth_m=None, depth_unit=None, precision="auto")
    given = cfg.replace()
    result = train(cfg, progress=False)
    assert cfg == given
    written = load_yaml(cfg.run_dir.config)
    assert written["precision"] == "32-true" and written["depth_unit"] == "mm"
    assert math.isfinite(written["max_depth_m"])
    assert result["test"]["rmse"] > 0
