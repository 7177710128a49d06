"""The loggers with their own writes wrapped: a full disk or an unwritable folder while TensorBoard
(or Weights & Biases) writes its files is our one-line error naming the folder, not TensorBoard's
misleading ValueError ("you tried to log 150.0 which is currently not supported"). Weights & Biases
without an API key or a network is one line saying how to log in or log offline, before training."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import TensorBoardLogger

from ..errors import ConfigError, first_line
from ..runs.storage import writer_errors_as_user_error

WANDB_LOCAL_MODES = ("offline", "disabled", "dryrun")  # modes that need no account and no network
WANDB_HOW = "log in with `wandb login` (or set WANDB_API_KEY), or log locally with WANDB_MODE=offline"


class GuardedWrites:
    """Mixin for a Lightning logger: every method that writes raises DiskFullError /
    UnwritableError (storage) when the disk is full or the folder cannot be written."""

    files = "the logger's files"

    def _guard(self):
        return writer_errors_as_user_error(getattr(self, "log_dir", None) or self.save_dir, self.files)

    def log_metrics(self, metrics, step=None):
        """Logs `metrics` at `step`; a failed write is a one-line user error naming the folder."""
        with self._guard():
            return super().log_metrics(metrics, step)

    def log_hyperparams(self, params, *args, **kwargs):
        """Logs the run's settings; a failed write is a one-line user error naming the folder."""
        with self._guard():
            return super().log_hyperparams(params, *args, **kwargs)

    def save(self):
        """Flushes the logger's files; a failed write is a one-line user error naming the folder."""
        with self._guard():
            return super().save()

    def finalize(self, status):
        """Closes the logger's files; a failed write is a one-line user error naming the folder."""
        with self._guard():
            return super().finalize(status)


class SafeTensorBoardLogger(GuardedWrites, TensorBoardLogger):
    """TensorBoardLogger whose writes are guarded; `log_rgb_image` sends an image the same way."""

    files = "TensorBoard's event files"

    def log_rgb_image(self, tag: str, image, step: int) -> None:
        """Logs an (H, W, 3) image."""
        with self._guard():
            self.experiment.add_image(tag, image, step, dataformats="HWC")
            self.experiment.flush()


def _netrc_has(host: str) -> bool:
    """Whether the netrc file (NETRC, else ~/.netrc) has an entry for `host`, as `wandb login` writes."""
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        tokens = path.read_text(errors="replace").split()
    except OSError:
        return False
    return any(word == "machine" and name == host for word, name in zip(tokens, tokens[1:]))


def check_wandb_ready() -> None:
    """Raises ConfigError (one line, before any work) when --use_wandb cannot log: the wandb package is
    missing, or W&B would log online (WANDB_MODE or `wandb offline` not set) and has no API key (in
    WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, its settings, or the netrc entry of its server). Reads
    only local settings: nothing is sent."""
    try:
        import wandb
    except ImportError:
        raise ConfigError("--use_wandb needs the wandb package: pip install 'echodepth[wandb]'") from None
    settings = wandb.setup().settings  # the environment and wandb's settings files, as wandb.init reads them
    if settings.mode in WANDB_LOCAL_MODES:
        return
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE") or settings.api_key:
        return
    host = urlparse(settings.base_url).hostname or settings.base_url
    if not _netrc_has(host):
        raise ConfigError(f"--use_wandb: no Weights & Biases API key for {host} is set up here; {WANDB_HOW}")


def start_wandb_run(logger) -> None:
    """Starts the logger's W&B run now, before training, so that a run W&B cannot start (no network,
    a key the server refuses) is one line (ConfigError) rather than a traceback in the first step."""
    import wandb

    try:
        logger.experiment  # noqa: B018 (wandb.init)
    except wandb.errors.Error as err:
        raise ConfigError(
            f"--use_wandb: Weights & Biases could not start a run ({first_line(err)}); {WANDB_HOW}"
        ) from None


def safe_wandb_logger(**kwargs):
    """Returns a WandbLogger whose writes (and `log_image`) are guarded (wandb is optional)."""
    from lightning.pytorch.loggers import WandbLogger

    class SafeWandbLogger(GuardedWrites, WandbLogger):
        files = "Weights & Biases' files"

        def log_image(self, *args, **kw):
            with self._guard():
                return super().log_image(*args, **kw)

    return SafeWandbLogger(**kwargs)
