"""The loggers with their own writes wrapped: a full disk or an unwritable folder while TensorBoard
(or Weights & Biases) writes its files is our one-line error naming the folder, not TensorBoard's
misleading ValueError ("you tried to log 150.0 which is currently not supported")."""

from __future__ import annotations

from lightning.pytorch.loggers import TensorBoardLogger

from ..storage import writer_errors_as_user_error


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


def safe_wandb_logger(**kwargs):
    """Returns a WandbLogger whose writes (and `log_image`) are guarded (wandb is optional)."""
    from lightning.pytorch.loggers import WandbLogger

    class SafeWandbLogger(GuardedWrites, WandbLogger):
        files = "Weights & Biases' files"

        def log_image(self, *args, **kw):
            with self._guard():
                return super().log_image(*args, **kw)

    return SafeWandbLogger(**kwargs)
