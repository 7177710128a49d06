"""The command line's error handling: one line for the user's mistakes, the traceback for bugs."""

import pytest

from echodepth.cli import main
from echodepth.runs import train as run


def test_user_error_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    args = ["train", "--dataset", "batvisionv2", "--data_dir", str(tmp_path / "missing")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing is not a folder" in err[0]
    with pytest.raises(ValueError, match="is not a folder"):
        main(["--debug", *args])
    with pytest.raises(ValueError, match="is not a folder"):
        main([*args, "--debug"])
    monkeypatch.setenv("ECHODEPTH_DEBUG", "1")
    with pytest.raises(ValueError, match="is not a folder"):
        main(args)


def test_our_bugs_keep_their_traceback(monkeypatch):
    def broken(cfg, progress=True):
        raise RuntimeError("a bug inside echodepth")

    monkeypatch.setattr(run, "train", broken)
    with pytest.raises(RuntimeError, match="a bug inside echodepth"):
        main(["train", "--epochs", "1"])


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ('batch_size: "16"\n', "batch_size must be int, got '16'"),
        ("image_size: 32.5\n", "image_size must be int, got 32.5"),
        ("use_wandb: 1\n", "use_wandb must be bool, got 1"),
        ("lowpass_kernel: true\n", "lowpass_kernel must be int, got True"),
        ("bogus: 1\n", "unknown setting(s) ['bogus']; allowed: ["),
    ],
)
def test_config_file_values_are_checked_by_type(tmp_path, capsys, yaml_text, message):
    path = tmp_path / "run.yaml"
    path.write_text(yaml_text)
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
