"""The TensorBoard logger with its own writes wrapped: a full disk or an unwritable folder while it
writes its event files or hparams.yaml is our one-line error naming the folder, not TensorBoard's
misleading ValueError ("you tried to log 150.0 which is currently not supported")."""

from __future__ import annotations

from lightning.pytorch.loggers import TensorBoardLogger

from ..storage import writer_errors_as_user_error


class SafeTensorBoardLogger(TensorBoardLogger):
    """TensorBoardLogger whose writes raise DiskFullError / UnwritableError (storage) on a full or
    unwritable disk; `add_image` sends an image through the same path."""

    def _guard(self):
        return writer_errors_as_user_error(self.log_dir, "TensorBoard's event files")

    def log_metrics(self, metrics, step=None):
        with self._guard():
            return super().log_metrics(metrics, step)

    def log_hyperparams(self, params, metrics=None, **kwargs):
        with self._guard():
            return super().log_hyperparams(params, metrics, **kwargs)

    def save(self):
        with self._guard():
            return super().save()

    def finalize(self, status):
        with self._guard():
            return super().finalize(status)

    def add_image(self, tag: str, image, step: int) -> None:
        """Logs an (H, W, 3) image."""
        with self._guard():
            self.experiment.add_image(tag, image, step, dataformats="HWC")
            self.experiment.flush()
