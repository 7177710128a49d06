"""A full disk and unwritable output places, on real small file systems (a tmpfs mount, which needs
root, as CI has; skipped with the reason elsewhere): train (checkpoints and TensorBoard's files),
eval, predict, export and compare end with one line naming the place, leave no partial or empty
file, and keep what was there."""

import re

from echodepth.cli import main

from .helpers import fill, train_args


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return re.findall(r"echodepth [\w-]+: error: [^\r\n]*", err)  # not the progress bars around them


def no_partial_or_empty_files(folder) -> None:
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != "filler"]
    assert not [p for p in files if ".tmp-" in p.name or ".verify-" in p.name], files
    assert not [p for p in files if p.stat().st_size == 0 and p.suffix in (".json", ".csv", ".npy", ".png")], files


def test_train_on_a_full_disk_for_checkpoints_keeps_the_last_good_one(synth_dir, tmp_path, small_fs, capsys):
    checkpoints = small_fs(tmp_path / "results" / "smoke" / "checkpoints", "4000k")  # two 1.6 MB checkpoints
    assert main(train_args(synth_dir, tmp_path, "--epochs", "3")) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "no space left on the device writing" in lines[0] and ".ckpt" in lines[0], lines
    no_partial_or_empty_files(checkpoints)
    from echodepth.inference.predictor import read_checkpoint

    assert read_checkpoint(checkpoints / "last.ckpt")["epoch"] == 0  # epoch 1's, whole


def test_train_on_a_full_disk_for_tensorboard_is_our_line(synth_dir, tmp_path, small_fs, capsys):
    small_fs(tmp_path / "results" / "smoke" / "tensorboard", "8k")  # the first figure does not fit
    assert main(train_args(synth_dir, tmp_path, "--epochs", "2")) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "no space left on the device writing TensorBoard's event files" in lines[0], lines


def test_eval_on_a_full_disk_is_one_line_and_leaves_no_empty_file(two_epoch_run, tmp_path, small_fs, capsys):
    _, run = two_epoch_run
    out = fill(small_fs(tmp_path / "full"))
    assert main(["eval", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--out_dir", str(out)]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and f"no space left on the device writing {out}" in lines[0], lines
    assert not (out / "test_metrics.json").exists()
    no_partial_or_empty_files(out)


def test_predict_on_a_full_disk_is_one_line(two_epoch_run, synth_dir, tmp_path, small_fs, capsys):
    _, run = two_epoch_run
    out = fill(small_fs(tmp_path / "full"))
    wav = next(synth_dir.rglob("*.wav"))
    code = main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), str(wav), "--out_dir", str(out)])
    lines = error_lines(capsys)
    assert code != 0 and lines and all("no space left on the device writing" in line for line in lines), lines
    no_partial_or_empty_files(out)


def test_export_on_a_full_disk_is_one_line_and_leaves_nothing(two_epoch_run, tmp_path, small_fs, capsys):
    _, run = two_epoch_run
    out = fill(small_fs(tmp_path / "full"))
    args = ["export", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--output", str(out / "m.onnx")]
    assert main(args) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "no space left on the device writing" in lines[0], lines
    assert not (out / "m.onnx").exists()
    no_partial_or_empty_files(out)


def read_only(small_fs, tmp_path):
    return small_fs(tmp_path / "ro", "64k", read_only=True)


def test_read_only_output_places_are_one_line(two_epoch_run, synth_dir, tmp_path, small_fs, capsys):
    _, run = two_epoch_run
    ro = read_only(small_fs, tmp_path)
    best = str(run / "checkpoints" / "best.ckpt")
    wav = str(next(synth_dir.rglob("*.wav")))
    commands = [
        train_args(synth_dir, tmp_path, "--epochs", "1", "--results_dir", str(ro / "results")),
        ["eval", "--checkpoint", best, "--out_dir", str(ro / "eval")],
        ["predict", "--checkpoint", best, wav, "--out_dir", str(ro / "pred")],
        ["export", "--checkpoint", best, "--output", str(ro / "m.onnx")],
        ["synth", str(ro / "data"), "--n_rooms", "3", "--quiet"],
        ["compare", "--out", str(ro / "cmp"), "--preset", "tiny"],
    ]
    for args in commands:
        assert main(args) == 2, args
        lines = error_lines(capsys)
        assert len(lines) == 1 and "read-only file system" in lines[0] and str(ro) in lines[0], (args, lines)


def test_a_file_where_an_output_folder_is_needed_is_one_line(two_epoch_run, synth_dir, tmp_path, capsys):
    _, run = two_epoch_run
    taken = tmp_path / "taken"
    taken.write_text("a file")
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    best = str(run / "checkpoints" / "best.ckpt")
    wav = str(next(synth_dir.rglob("*.wav")))
    commands = [
        (train_args(synth_dir, tmp_path, "--epochs", "1", "--results_dir", str(taken)), "is a file, not a folder"),
        (["eval", "--checkpoint", best, "--out_dir", str(taken)], "is a file, not a folder"),
        (["predict", "--checkpoint", best, wav, "--out_dir", str(taken)], "is a file, not a folder"),
        (["export", "--checkpoint", best, "--output", str(folder)], "is a folder; give a file name"),
        (["synth", str(taken), "--n_rooms", "3", "--quiet"], "is a file, not a folder"),
        (["compare", "--out", str(taken), "--preset", "tiny"], "is a file, not a folder"),
    ]
    for args, message in commands:
        assert main(args) == 2, args
        lines = error_lines(capsys)
        assert len(lines) == 1 and message in lines[0], (args, lines)
    assert taken.read_text() == "a file"
