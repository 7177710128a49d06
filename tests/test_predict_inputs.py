"""predict and eval with the inputs people bring: folders, same-named files, integer arrays,
silent, clipped and broken files, another sample rate."""

import numpy as np
import pytest
import soundfile as sf

from echodepth.cli import main
from echodepth.synth import SynthConfig, generate_dataset

RATE = 44100


@pytest.fixture(scope="module")
def checkpoint(one_epoch_run):
    return str(one_epoch_run[1] / "checkpoints" / "best.ckpt")


@pytest.fixture(scope="module")
def good_wave(synth_dir):
    return sf.read(sorted(synth_dir.rglob("*.wav"))[0], dtype="float32")[0]  # (N, 2)


def predict(checkpoint, *args):
    return main(["predict", "--checkpoint", checkpoint, *map(str, args)])


def test_same_file_names_in_two_folders_keep_both_outputs(checkpoint, good_wave, tmp_path, capsys):
    for folder, gain in (("a", 1.0), ("b", 0.5)):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "x.wav", good_wave * gain, RATE, subtype="FLOAT")
    out = tmp_path / "out"
    assert predict(checkpoint, tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav", "--out_dir", out) == 0
    assert "predicted 2 of 2" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*_depth.npy")) == ["a_x_depth.npy", "b_x_depth.npy"]
    assert sorted(p.name for p in out.glob("*.png")) == ["a_x_decomposition.png", "b_x_decomposition.png"]


def test_a_folder_is_predicted_file_by_file_and_broken_npy_files_fail_alone(checkpoint, good_wave, tmp_path, capsys):
    folder = tmp_path / "recordings"
    folder.mkdir()
    sf.write(folder / "a_good.wav", good_wave, RATE)
    (folder / "b_text.npy").write_text("1 2 3\n")
    np.save(folder / "c_pickled.npy", np.array([None, {}], dtype=object), allow_pickle=True)
    np.save(folder / "d_truncated.npy", good_wave.T.copy())
    (folder / "d_truncated.npy").write_bytes((folder / "d_truncated.npy").read_bytes()[:500])
    np.save(folder / "e_int16.npy", np.round(good_wave.T * 32767).astype(np.int16))
    sf.write(folder / "f_silent.wav", np.zeros_like(good_wave), RATE)
    (folder / "notes.txt").write_text("not a recording")
    code = predict(checkpoint, folder, "--out_dir", tmp_path / "out")
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert code == 1 and "predicted 2 of 6 recording(s); 4 failed" in captured.out
    assert len(errors) == 4 and all(line.startswith("echodepth predict: error: ") for line in errors)
    for name, message in (
        ("b_text.npy", "not a NumPy .npy file"),
        ("c_pickled.npy", "holds Python objects (pickled)"),
        ("d_truncated.npy", "is truncated or damaged"),
        ("f_silent.wav", "silent recording (all zeros)"),
    ):
        assert any(name in line and message in line for line in errors), (name, errors)
    as_wav = np.load(tmp_path / "out" / "a_good_depth.npy")
    as_int16 = np.load(tmp_path / "out" / "e_int16_depth.npy")  # scaled: the same depth as the float file
    assert np.abs(as_wav - as_int16).max() < 0.05


def test_an_empty_folder_is_a_failed_input(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert predict(checkpoint, tmp_path / "empty", "--out_dir", tmp_path / "out") == 1
    assert "holds no recordings" in capsys.readouterr().err


def test_clipped_and_over_full_scale_recordings_are_predicted_with_a_warning(checkpoint, good_wave, tmp_path, capsys):
    loud = np.clip(good_wave * 1e4, -1, 1)
    sf.write(tmp_path / "clipped.wav", loud, RATE, subtype="FLOAT")
    np.save(tmp_path / "floats_of_ints.npy", (good_wave.T * 32767).astype(np.float32))
    assert predict(checkpoint, tmp_path / "clipped.wav", tmp_path / "floats_of_ints.npy", "--out_dir", tmp_path) == 0
    err = capsys.readouterr().err
    assert "echodepth predict: warning:" in err and "clipped.wav: clipped:" in err
    assert "floats_of_ints.npy: odd level: peak" in err and "integer samples stored as floats?" in err


def test_eval_refuses_another_sample_rate_like_predict(checkpoint, tmp_path, capsys):
    data = tmp_path / "synth48k"
    cfg = SynthConfig(n_rooms=3, samples_per_room=2, n_locations=1, image_size=(16, 16), sample_rate_hz=48000)
    generate_dataset(data, cfg, workers=1, progress=False)
    assert main(["eval", "--checkpoint", checkpoint, "--data_dir", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sampled at 48000 Hz, the model expects 44100 Hz" in err[0]


def test_one_place_names_every_output_and_no_two_are_the_same():
    from pathlib import Path

    from echodepth.inference.predict import output_stems

    cases = {
        ("a/x.wav", "b/x.wav", "c/y.wav"): ["a_x", "b_x", "y"],
        ("rec.wav", "rec.npy"): ["rec_wav", "rec_npy"],
        ("q/a/x.wav", "r/a/x.wav"): ["q_a_x", "r_a_x"],
        ("x_left.npy", "x.npy"): ["x_1", "x_2"],
    }
    for paths, expected in cases.items():
        assert output_stems([Path(p) for p in paths]) == expected


def test_int64_arrays_are_refused_naming_the_type_until_their_pcm_width_is_given(
    checkpoint, good_wave, tmp_path, capsys
):
    pcm = np.round(good_wave.T * 32767)
    np.save(tmp_path / "int64.npy", pcm.astype(np.int64))  # numpy's default integer
    np.save(tmp_path / "int16.npy", pcm.astype(np.int16))
    out = tmp_path / "out"
    assert predict(checkpoint, tmp_path / "int64.npy", tmp_path / "int16.npy", "--out_dir", out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "int64.npy: samples of type int64 hold no PCM width of their own" in err[0]
    assert "predict --pcm_bits 16" in err[0] and "silent" not in err[0]
    both = (tmp_path / "int64.npy", tmp_path / "int16.npy")
    assert predict(checkpoint, *both, "--out_dir", out, "--pcm_bits", "16") == 0
    assert "int64.npy" not in capsys.readouterr().err  # no warning: a proper level
    assert np.array_equal(np.load(out / "int64_depth.npy"), np.load(out / "int16_depth.npy"))
