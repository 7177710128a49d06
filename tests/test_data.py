import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from echodepth.cli import main
from echodepth.data import (
    AudioFeatures,
    DataError,
    FeatureConfig,
    build_cache,
    build_dataset,
    collate_batch,
    cut_length,
    mel_filterbank,
    prepare_batch,
    with_feature_image,
)

from .helpers import SR, summed_error, write_csv

FEAT = FeatureConfig(image_size=(32, 32))


def test_v2_concatenates_locations_and_reads_both_subtypes(v2_root):
    ds = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT)
    assert len(ds) == 6 and {r.location for r in ds.refs} == {"A", "B"}
    item = ds[0]
    assert item["feature_image"].shape == (2, 32, 32) and item["depth_m"].shape == (1, 32, 32)
    assert torch.equal(item["valid"], item["depth_m"] > 0)
    assert len(build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT, location_blacklist=["B"])) == 3


def test_v2_depth_units_clip_and_normalisation(v2_root):
    raw = np.load(v2_root / "A/depth/train_0.npy")
    ds = build_dataset("batvisionv2", v2_root, "train", feature_config=FeatureConfig(image_size=raw.shape))
    depth = ds[0]["depth_m"][0].numpy()
    assert ds.max_depth_m == 30.0
    assert np.allclose(depth, np.minimum(raw / 1000.0, 30.0)) and depth[:4, :4].max() == 0
    norm = prepare_batch(collate_batch([ds[0]]), ds.max_depth_m)["depth_norm"][0, 0].numpy()
    assert np.allclose(norm, depth / 30.0) and norm.max() <= 1.0


def test_v1_nan_inf_are_invalid_and_max_depth_12(v1_root):
    ds = build_dataset("batvisionv1", v1_root, "val", feature_config=FeatureConfig(image_size=(40, 60)))
    item = ds[0]
    assert ds.max_depth_m == 12.0
    assert item["depth_m"][0, 0, :3].tolist() == [0.0, 0.0, 0.0]
    assert not item["valid"][0, 0, :3].any() and torch.isfinite(item["depth_m"]).all()
    assert item["depth_m"].max() <= 12.0


def test_depth_resize_invents_no_depth_and_keeps_invalid(v2_root):
    ds = build_dataset("batvisionv2", v2_root, "train", feature_config=FeatureConfig(image_size=(20, 30)))
    raw = np.minimum(np.load(v2_root / "A/depth/train_0.npy") / 1000.0, 30.0)
    out = ds[0]["depth_m"][0].numpy()
    assert set(np.round(out.ravel(), 4)) <= set(np.round(raw.ravel(), 4))
    assert out[0, 0] == 0  # the invalid corner stays invalid, not blended


def test_cut_length_and_features_ignore_audio_after_cut():
    g = torch.Generator().manual_seed(0)
    assert cut_length(30.0, SR) == 7782
    extractor = AudioFeatures(FeatureConfig(image_size=(32, 32)), max_depth_m=30.0)
    wave = torch.randn(2, 2, 9000, generator=g)
    changed = wave.clone()
    changed[..., 7782:] = 0
    assert torch.equal(extractor(wave), extractor(changed))
    changed[..., 7000] += 1
    assert not torch.equal(extractor(wave), extractor(changed))


def test_spectrogram_matches_baseline_settings():
    g = torch.Generator().manual_seed(1)
    n = 7782
    cfg = FeatureConfig(image_size=(257, 1 + n // 16))
    wave = torch.randn(1, 2, n, generator=g)
    out = AudioFeatures(cfg, 30.0)(wave)
    ref = torch.stft(wave[0, 1], 512, 16, 64, torch.hann_window(64), center=True, return_complex=True).abs()
    # float32: each bin sums 64 window taps of |x| up to ~4 (largest bin ~19 over seeds 0-9), so a kernel
    # that adds them in another order differs by summed_error(64, 19) = 1.8e-5; measured 0 (the same
    # torch.stft call) over seeds 0-9. the tolerance is 5x that (9e-5).
    assert out.shape == (1, 2, 257, 487) and torch.allclose(out[0, 1], ref, atol=5 * summed_error(64, 19.0))
    logged = AudioFeatures(FeatureConfig(image_size=(257, 487), log=True), 30.0)(wave)
    # one log1p of values up to log1p(19) = 3: a rounding step there is 3 x eps = 3.6e-7; measured 0
    assert torch.allclose(logged, torch.log1p(out), atol=1e-5)


def test_mel_and_waveform_formats():
    g = torch.Generator().manual_seed(2)
    fb = mel_filterbank(257, 32, SR, f_min=20.0, f_max=20000.0)
    assert fb.shape == (32, 257) and (fb.sum(1) > 0).all()
    assert (fb.argmax(1).diff() >= 0).all()
    wave = torch.randn(3, 2, 5000, generator=g)
    for fmt in ("mel", "waveform"):
        out = AudioFeatures(FeatureConfig(audio_format=fmt, image_size=(24, 40)), 10.0)(wave)
        assert out.shape == (3, 2, 24, 40) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="unknown audio feature 'mfcc'; expected one of"):
        FeatureConfig(audio_format="mfcc")


def test_cache_matches_per_sample_path(v2_root, tmp_path):
    ds = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT)
    cached = build_cache(ds, tmp_path / "cache", progress=False)
    loader = DataLoader(cached, batch_size=4, shuffle=True, collate_fn=collate_batch)
    seen = 0
    for batch in loader:
        batch = prepare_batch(batch, ds.max_depth_m)
        for row, i in enumerate(batch["index"].tolist()):
            ref = ds[i]
            assert torch.allclose(batch["feature_image"][row], ref["feature_image"], rtol=2e-3, atol=2e-3)
            assert torch.allclose(batch["depth_m"][row], ref["depth_m"], atol=0.0006)  # mm rounding
            assert torch.equal(batch["valid"][row], ref["valid"])
            seen += 1
    assert seen == len(ds)


def test_cache_is_keyed_by_settings_and_files(v2_root, tmp_path):
    root = tmp_path / "cache"
    a = build_cache(build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT), root, progress=False)
    again = build_cache(build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT), root, progress=False)
    assert again.folder == a.folder
    other = build_cache(
        build_dataset("batvisionv2", v2_root, "train", feature_config=FeatureConfig(image_size=(32, 32), log=True)),
        root,
        progress=False,
    )
    assert other.folder != a.folder
    np.save(v2_root / "A/depth/train_0.npy", np.full((48, 64), 2000.0, np.float32))
    changed = build_cache(build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT), root, progress=False)
    assert changed.folder not in (a.folder, other.folder)
    assert changed.depth_mm[0].max() == 2000


def test_partial_cache_is_never_used(v2_root, tmp_path):
    root = tmp_path / "cache"
    ds = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT)
    good = build_cache(ds, root, progress=False)
    partial = good.folder.with_name(good.folder.name + ".partial-999")
    shutil.move(good.folder, partial)
    (partial / "meta.json").unlink()  # as if killed before the end
    rebuilt = build_cache(ds, root, progress=False)
    assert rebuilt.folder == good.folder and (rebuilt.folder / "meta.json").exists()
    assert not partial.exists()


# --- bad data: each case gives a one-line error naming the CSV, the line and the file


def _break(root, how):
    audio = root / "A/audio/train_1.wav"
    depth = root / "A/depth/train_1.npy"
    if how == "missing file":
        audio.unlink()
    elif how == "unreadable audio":
        audio.write_bytes(b"RIFF\x00\x00garbage")
    elif how == "empty audio":
        sf.write(audio, np.zeros((0, 2)), SR)
    elif how == "truncated audio":
        sf.write(audio, np.zeros((1000, 2)), SR)
    elif how == "mono":
        sf.write(audio, np.zeros(9000), SR)
    elif how == "three channels":
        sf.write(audio, np.zeros((9000, 3)), SR)
    elif how == "wrong sample rate":
        sf.write(audio, np.zeros((9000, 2)), 48000)
    elif how == "depth wrong shape":
        np.save(depth, np.ones((2, 3, 4)))
    elif how == "depth all invalid":
        np.save(depth, np.zeros((48, 64)))
    elif how == "path escapes root":
        write_csv(
            root / "A/train.csv",
            ["depth path", "depth file name", "audio path", "audio file name"],
            [
                ["A/depth", "train_0.npy", "A/audio", "train_0.wav"],
                ["../../outside", "x.npy", "A/audio", "train_1.wav"],
                ["A/depth", "train_2.npy", "A/audio", "train_2.wav"],
            ],
        )
    return audio


BAD = {
    "missing file": "not found",
    "unreadable audio": "unreadable",
    "empty audio": "empty audio",
    "truncated audio": "truncated audio, 1000 samples, expected at least 7782",
    "mono": "1 channel",
    "three channels": "3 channel",
    "wrong sample rate": "48000 Hz, expected 44100 Hz",
    "depth wrong shape": "shape (2, 3, 4)",
    "depth all invalid": "no valid pixel",
    "path escapes root": "escapes the dataset root",
}


@pytest.mark.parametrize("how", sorted(BAD))
def test_bad_sample_errors_name_csv_line_and_file(v2_root, how, tmp_path):
    _break(v2_root, how)
    with pytest.raises(DataError) as info:
        ds = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT)
        for i in range(len(ds)):
            ds[i]
    message = str(info.value)
    assert "\n" not in message and BAD[how] in message
    assert "A/train.csv, line 3" in message
    if how != "path escapes root":
        assert "train_1" in message
    # with the skip option the bad sample is left out and listed, the rest is kept
    skipping = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT, on_error="skip")
    assert len(skipping) == 5 and len(skipping.skipped) == 1 and BAD[how] in skipping.skipped[0]
    cached = build_cache(skipping, tmp_path / "c", progress=False)
    assert len(cached) == 5 and cached.skipped == skipping.skipped


def test_csv_without_column_and_empty_split(v2_root):
    write_csv(
        v2_root / "A/val.csv", ["depth path", "audio path", "audio file name"], [["A/depth", "A/audio", "val_0.wav"]]
    )
    with pytest.raises(DataError, match=r"val.csv: missing column\(s\) \['depth file name'\]"):
        build_dataset("batvisionv2", v2_root, "val", feature_config=FEAT)
    for loc in ("A", "B"):
        write_csv(v2_root / loc / "test.csv", ["depth path", "depth file name", "audio path", "audio file name"], [])
    with pytest.raises(DataError, match="split 'test' .* has no samples"):
        build_dataset("batvisionv2", v2_root, "test", feature_config=FEAT)


def test_v1_bad_waveforms(v1_root):
    np.save(v1_root / "2019.08.26/audio/train1_right.npy", np.zeros((2, 4000)))
    with pytest.raises(DataError, match=r"train.csv, line 3: .*train1_right.npy has shape \(2, 4000\)"):
        ds = build_dataset("batvisionv1", v1_root, "train", feature_config=FEAT)
        [ds[i] for i in range(len(ds))]


def test_missing_root_and_unknown_dataset(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        build_dataset("batvisionv2", tmp_path / "nope", "train")
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("kitti", tmp_path, "train")


def test_check_data_summary_and_exit_status(v2_root, capsys):
    assert main(["check-data", "--dataset", "batvisionv2", "--data_dir", str(v2_root)]) == 0
    out = capsys.readouterr().out
    assert "train: 6 good, 0 bad" in out and "A 3, B 3" in out and "44100 Hz" in out and "invalid pixels" in out
    _break(v2_root, "mono")
    (v2_root / "B/audio/val_2.wav").unlink()
    assert main(["check-data", "--dataset", "batvisionv2", "--data_dir", str(v2_root)]) == 1
    out = capsys.readouterr().out
    bad_lines = [line for line in out.splitlines() if line.startswith("BAD")]
    assert len(bad_lines) == 2 and "FAILED: 2 bad sample(s)" in out
    assert any("train_1.wav has 1 channel" in line for line in bad_lines)
    assert any("val_2.wav not found" in line for line in bad_lines)


def test_an_empty_split_is_said_to_be_empty_not_counted_as_a_bad_sample(v2_root, capsys):
    for loc in ("A", "B"):
        write_csv(v2_root / loc / "test.csv", ["depth path", "depth file name", "audio path", "audio file name"], [])
    assert main(["check-data", "--dataset", "batvisionv2", "--data_dir", str(v2_root)]) == 1
    out = capsys.readouterr().out
    assert "EMPTY test: split 'test' of" in out and "has no samples: it is empty" in out
    assert not [line for line in out.splitlines() if line.startswith("BAD")]
    assert "FAILED: 0 bad sample(s), 0 repeated recording(s), 1 empty split(s) (test)" in out


def test_cache_rows_name_their_files_when_samples_are_skipped(v2_root, tmp_path):
    _break(v2_root, "truncated audio")
    lazy = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT, on_error="skip", check_samples=False)
    cached = build_cache(lazy, tmp_path / "c", progress=False)
    files = [cached.sample_files(i)["audio"] for i in range(len(cached))]
    assert len(files) == 5 and not any(f.endswith("A/audio/train_1.wav") for f in files)
    assert files[1].endswith("A/audio/train_2.wav")  # the row after the skipped one names its own file
    assert len(lazy.skipped) == 1 and "truncated audio" in lazy.skipped[0]


def test_waveform_items_give_the_per_sample_features_in_one_batch(v2_root):
    per_sample = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT)
    raw = build_dataset("batvisionv2", v2_root, "train", feature_config=FEAT, waveforms=True)
    batch = collate_batch([raw[i] for i in range(len(raw))])
    assert "feature_image" not in batch and batch["waveform"].shape == (6, 2, 7782)  # cut: 2 x 30 m / 340 m/s
    features = with_feature_image(batch, raw.feature_extractor)["feature_image"]
    expected = torch.stack([per_sample[i]["feature_image"] for i in range(len(per_sample))])
    assert torch.allclose(features, expected, rtol=1e-4, atol=1e-5)
