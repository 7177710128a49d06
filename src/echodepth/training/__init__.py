"""Training's pieces on PyTorch Lightning: the data module, the model module and its outputs.

The `train()` entry that puts them together (and evaluates at the end) is `echodepth.run.train`.
"""

from .datamodule import EchoDepthDataModule, default_synthetic_dir, synth_config_for
from .module import DepthModule, checkpoint_metadata
from .outputs import AtomicCheckpointIO, write_epoch_outputs

__all__ = [
    "AtomicCheckpointIO",
    "DepthModule",
    "EchoDepthDataModule",
    "checkpoint_metadata",
    "default_synthetic_dir",
    "synth_config_for",
    "write_epoch_outputs",
]
