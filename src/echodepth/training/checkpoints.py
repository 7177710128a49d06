"""Checkpoints: written whole or not at all, last.ckpt after every epoch, random states inside.

`last.ckpt` is saved at the end of every epoch, after `best.ckpt` (when the validation RMSE
improved) and after the epoch's row of metrics.csv, so that resuming from it continues exactly
where the run stood. The random states of Python, NumPy and torch travel in the checkpoint and
are restored on resume; the training order comes from `EpochShuffleSampler` (seed, epoch).
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import CheckpointError
from ..inference.predictor import unpickling_error
from ..runs.storage import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialises a checkpoint in memory, then writes it through a temporary file and a rename:
    a run killed while saving, or a full disk, keeps its previous checkpoint intact. Loads with
    weights_only=True (no pickled code runs); an unreadable or foreign file is a one-line error."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        """Writes `checkpoint` to `path` atomically and durably (fsync before the rename)."""
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue(), durable=True)

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None):
        """Returns the checkpoint at `path`, always loaded with weights_only=True; raises a one-line
        CheckpointError for an unreadable or foreign file."""
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except Exception as err:
            reason = unpickling_error(err)  # never advice to load unsafely
            raise CheckpointError(f"checkpoint {path} is unreadable or not a plain weights file ({reason})") from None


class LastCheckpoint(Checkpoint):
    """Saves `path` at the end of every training epoch, after the best-checkpoint callback
    (Lightning keeps checkpoint callbacks last, in the order given): last.ckpt then holds the
    best-checkpoint state that includes its own epoch."""

    def __init__(self, path: Path, every_n_epochs: int = 1):
        self.path = Path(path)
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Saves the full training state every `every_n_epochs` epochs and after the last one."""
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs == 0 or epoch >= trainer.max_epochs:
            trainer.save_checkpoint(self.path, weights_only=False)  # the full state, to resume from


def random_states() -> dict:
    """Returns the random states of Python, NumPy and torch in types weights_only loading accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }


def restore_random_states(states: dict) -> None:
    """Restores the states saved by `random_states`."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
