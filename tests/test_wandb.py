"""The Weights & Biases logger: without an API key (and not offline) `--use_wandb` is one line saying
how to log in or log offline, before any work; a run W&B cannot start is one line before training.
Nothing here reaches the network: no key, HOME in tmp_path (no netrc, no wandb settings), and the
W&B server set to a closed port on this machine."""

import pytest

from echodepth.cli import main
from echodepth.errors import ConfigError

from .helpers import train_args

wandb = pytest.importorskip("wandb", reason="the wandb extra is not installed (pip install 'echodepth[wandb]')")

SERVER = "http://127.0.0.1:9"  # the discard port: a request, if any were sent, is refused here


@pytest.fixture
def no_wandb_account(tmp_path, monkeypatch):
    """An environment with no W&B key anywhere and W&B online; wandb's settings re-read per test."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "NETRC", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_BASE_URL", SERVER)
    monkeypatch.chdir(tmp_path)  # no ./wandb/settings of the repository's
    wandb.teardown()
    yield home
    wandb.teardown()


def test_use_wandb_without_an_api_key_is_one_line_before_any_work(synth_dir, tmp_path, capsys, no_wandb_account):
    """(Offline, the same command trains: test_training's slow test_wandb_offline_logs_the_guide_names.)"""
    args = train_args(synth_dir, tmp_path, "--epochs", "1", "--use_wandb")
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        "echodepth train: error: --use_wandb: no Weights & Biases API key for 127.0.0.1 is set up here; log in with "
        "`wandb login` (or set WANDB_API_KEY), or log locally with WANDB_MODE=offline"
    ]
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_an_api_key_or_a_login_or_offline_mode_passes_the_check(no_wandb_account, monkeypatch):
    from echodepth.training.loggers import check_wandb_ready

    with pytest.raises(ConfigError, match="no Weights & Biases API key for 127.0.0.1"):
        check_wandb_ready()
    (no_wandb_account / ".netrc").write_text("machine 127.0.0.1\n  login user\n  password " + "k" * 40 + "\n")
    check_wandb_ready()  # `wandb login` wrote the key there
    (no_wandb_account / ".netrc").write_text("machine api.wandb.ai login user password x\n")
    with pytest.raises(ConfigError, match="no Weights & Biases API key"):
        check_wandb_ready()  # a key for another server
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    check_wandb_ready()
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("WANDB_MODE", "offline")
    wandb.teardown()
    check_wandb_ready()


def test_a_run_wandb_cannot_start_is_one_line_before_training(no_wandb_account):
    from echodepth.training.loggers import start_wandb_run

    class Unreachable:
        @property
        def experiment(self):
            raise wandb.errors.CommError(
                f'Timed out while retrying: Post "{SERVER}/graphql": connection refused\n'
                "Consider increasing the init_timeout setting:\n  wandb.init(settings=...)"
            )

    with pytest.raises(ConfigError) as refused:
        start_wandb_run(Unreachable())
    assert str(refused.value) == (
        f'--use_wandb: Weights & Biases could not start a run (Timed out while retrying: Post "{SERVER}/graphql": '
        "connection refused); log in with `wandb login` (or set WANDB_API_KEY), or log locally with WANDB_MODE=offline"
    )
