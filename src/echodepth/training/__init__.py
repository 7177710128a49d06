"""Training's pieces on PyTorch Lightning: the data module, the model module and its outputs.

The `train()` entry that puts them together (and evaluates at the end) is `echodepth.runs.train.train`.
"""

from .checkpoints import AtomicCheckpointIO, LastCheckpoint, random_states, restore_random_states
from .datamodule import EchoDepthDataModule, default_synthetic_dir, synth_config_for
from .loggers import SafeTensorBoardLogger
from .module import DepthModule, checkpoint_metadata
from .outputs import write_epoch_outputs
from .sampler import EpochShuffleSampler

__all__ = [
    "AtomicCheckpointIO",
    "EpochShuffleSampler",
    "LastCheckpoint",
    "SafeTensorBoardLogger",
    "DepthModule",
    "EchoDepthDataModule",
    "checkpoint_metadata",
    "default_synthetic_dir",
    "random_states",
    "restore_random_states",
    "synth_config_for",
    "write_epoch_outputs",
]
