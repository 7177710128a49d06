"""Recordings, depth maps and CSV files as people save them: scaled, checked and named."""

import os
import pickle

import numpy as np
import pytest
import soundfile as sf

from echodepth.audio.recordings import read_recording
from echodepth.cli import main
from echodepth.data import build_dataset, check_dataset
from echodepth.data.files import resolve_inside
from echodepth.errors import DataError

from .helpers import SR, make_v1, make_v2, write_csv


def test_integer_npy_is_scaled_as_soundfile_scales_the_same_samples_in_a_wav(tmp_path):
    from echodepth.audio.recordings import pcm_to_float

    samples = np.random.default_rng(0).integers(-32768, 32767, (4000, 2)).astype(np.int16)
    sf.write(tmp_path / "x.wav", samples, SR, subtype="PCM_16")
    np.save(tmp_path / "x.npy", samples.T.copy())
    from_wav = read_recording(tmp_path / "x.wav", SR)
    from_npy = read_recording(tmp_path / "x.npy", SR)
    assert np.array_equal(from_wav, from_npy) and np.abs(from_npy).max() <= 1.0
    for dtype, bits in ((np.int32, 32), (np.int8, 8)):
        assert pcm_to_float(np.array([-(2 ** (bits - 1)), 0], dtype), "x").tolist() == [-1.0, 0.0]
    assert pcm_to_float(np.array([0, 128, 255], np.uint8), "x").tolist() == [-1.0, 0.0, 127 / 128]


def test_integer_v1_ears_are_scaled(tmp_path):
    np.save(tmp_path / "a_left.npy", np.full(3000, 16384, np.int16))
    np.save(tmp_path / "a_right.npy", np.full(3000, -16384, np.int16))
    wave = read_recording(tmp_path / "a_left.npy", SR)
    assert wave.dtype == np.float32 and wave[0, 0] == 0.5 and wave[1, 0] == -0.5


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("text", "is not a NumPy .npy file"),
        ("pickled", "holds Python objects (pickled)"),
        ("truncated", "is truncated or damaged"),
        ("png", "is a PNG image, expected an array written by numpy.save"),
        ("folder", "is a folder, expected a .npy file"),
        ("empty", "is an empty file"),
        ("npz", "is a zip archive (.npz?)"),
        ("complex", "holds complex128 values, expected numbers"),
    ],
)
def test_npy_files_that_are_not_numeric_arrays_are_named(tmp_path, kind, expected):
    from echodepth.audio.recordings import load_npy

    path = tmp_path / "x.npy"
    if kind == "text":
        path.write_text("0.1, 0.2\n0.3, 0.4\n")
    elif kind == "pickled":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif kind == "truncated":
        np.save(path, np.zeros((2, 5000), np.float32))
        path.write_bytes(path.read_bytes()[:1000])
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    elif kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "npz":
        with open(path, "wb") as f:
            np.savez(f, a=np.zeros(3))
    elif kind == "complex":
        np.save(path, np.zeros((2, 10), complex))
    with pytest.raises(DataError) as err:
        load_npy(path, "audio file")
    assert expected in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_predict_style_reading_of_pickled_recording_is_one_line(tmp_path):
    path = tmp_path / "p.npy"
    path.write_bytes(pickle.dumps(np.zeros((2, 100))))
    with pytest.raises(DataError, match="p.npy is not a NumPy .npy file"):
        read_recording(path, SR)


def test_depth_in_metres_is_named_with_the_unit_hint_and_accepted_when_stated(tmp_path, capsys):
    root = make_v2(tmp_path / "v2", n_per_split=2)
    for depth in root.rglob("depth/*.npy"):
        np.save(depth, np.load(depth) / 1000.0)  # metres, as many people save them
    assert check_dataset("batvisionv2", root, splits=("train",)) > 0
    out = capsys.readouterr().out
    assert "median depth" in out and "if the file holds m, state it with --depth_unit m" in out
    assert check_dataset("batvisionv2", root, splits=("train",), depth_unit="m") == 0
    ds = build_dataset("batvisionv2", root, "train", depth_unit="m")
    assert 0.5 <= float(ds[0]["depth_m"].max()) <= 30.0
    code = main(["check-data", "--dataset", "batvisionv2", "--data_dir", str(root), "--depth_unit", "m"])
    assert code == 0


def test_depth_in_millimetres_stated_as_metres_is_named(tmp_path):
    root = make_v2(tmp_path / "v2", n_per_split=1)
    with pytest.raises(DataError, match=r"beyond 3 x max depth 30 m\); if the file holds mm, state it"):
        build_dataset("batvisionv2", root, "train", depth_unit="m")[0]


def test_silent_recording_is_a_bad_sample(v2_root, capsys):
    victim = v2_root / "A" / "audio" / "train_0.wav"
    sf.write(victim, np.zeros((9000, 2)), SR, subtype="PCM_16")
    assert check_dataset("batvisionv2", v2_root, splits=("train",)) == 1
    assert "train_0.wav: silent recording (all zeros)" in capsys.readouterr().out


def test_sparse_depth_without_valid_pixel_at_the_training_size_is_named(v2_root, capsys):
    sparse = np.zeros((48, 64), np.float32)
    sparse[1, 1] = 3000.0  # one LiDAR-like return, lost by a nearest resize to 8 x 8
    np.save(v2_root / "A" / "depth" / "train_1.npy", sparse)
    assert check_dataset("batvisionv2", v2_root, splits=("train",), depth_size=(8, 8)) == 1
    out = capsys.readouterr().out
    assert "train_1.npy: none of its 1 valid pixel(s) of 3072 survives the resize to 8 x 8" in out
    assert check_dataset("batvisionv2", v2_root, splits=("train",), depth_size=(48, 64)) == 0


def test_csv_with_byte_order_mark_and_spaces_in_the_header_is_read(v2_root):
    csv_path = v2_root / "A" / "train.csv"
    text = csv_path.read_text().replace("depth path,", " depth path ,", 1)
    csv_path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert len(build_dataset("batvisionv2", v2_root, "train")) == 6


def test_rows_with_missing_fields_or_pointing_at_folders_are_named(v2_root, capsys):
    csv_path = v2_root / "A" / "train.csv"
    lines = csv_path.read_text().splitlines()
    lines[1] = "A/depth"  # one field
    lines[2] = "A/depth,train_1.npy,A/audio,"  # the audio file name left empty: a folder
    csv_path.write_text("\n".join(lines) + "\n")
    assert check_dataset("batvisionv2", v2_root, splits=("train",)) == 2
    out = capsys.readouterr().out
    assert f"{csv_path}, line 2: 1 field(s), expected 4" in out
    assert f"{csv_path}, line 3" in out and "is a folder, expected an audio file" in out


def test_not_utf8_csv_is_one_line(v2_root):
    (v2_root / "A" / "train.csv").write_bytes("depth path,d\u00e9pth\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text"):
        build_dataset("batvisionv2", v2_root, "train")


def test_check_data_reports_duplicate_rows_and_samples_shared_between_splits(v2_root, capsys):
    train = v2_root / "A" / "train.csv"
    lines = train.read_text().splitlines()
    train.write_text("\n".join([*lines, lines[1]]) + "\n")  # a duplicate row
    test = v2_root / "B" / "test.csv"
    b_train = (v2_root / "B" / "train.csv").read_text().splitlines()
    test.write_text(test.read_text() + b_train[2] + "\n")  # a training sample in the test split
    assert main(["check-data", "--dataset", "batvisionv2", "--data_dir", str(v2_root)]) == 1
    out = capsys.readouterr().out
    assert "DUPLICATE row in train: recording" in out and "train_0.wav" in out
    assert "SHARED between train and test: recording" in out and "B/audio/train_1.wav" in out
    assert "FAILED: 0 bad sample(s), 2 repeated recording(s)" in out


def test_symlinked_sub_folder_is_inside_the_root_but_dot_dot_is_not(tmp_path):
    other_disk = make_v1(tmp_path / "other_disk")
    root = tmp_path / "v1"
    root.mkdir()
    os.symlink(other_disk / "2019.08.26", root / "2019.08.26")
    for split in ("train", "val", "test"):
        (root / f"{split}.csv").write_text((other_disk / f"{split}.csv").read_text())
    assert len(build_dataset("batvisionv1", root, "train")) == 3
    with pytest.raises(DataError, match="escapes the dataset root"):
        resolve_inside(root, "2019.08.26/../../other_disk/train.csv", "row")
    with pytest.raises(DataError, match="escapes the dataset root"):
        resolve_inside(root, str(other_disk / "train.csv"), "row")


def test_depth_given_as_png_is_named_in_check_data(v1_root, capsys):
    rows = (v1_root / "train.csv").read_text().splitlines()
    png = v1_root / "2019.08.26" / "depth" / "train0.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    rows[1] = rows[1].replace("depth/train0.npy", "depth/train0.png")
    write_csv(v1_root / "train.csv", rows[0].split(","), [r.split(",") for r in rows[1:]])
    assert check_dataset("batvisionv1", v1_root, splits=("train",)) == 1
    out = capsys.readouterr().out
    assert "train0.png is a PNG image" in out and "allow_pickle" not in out
