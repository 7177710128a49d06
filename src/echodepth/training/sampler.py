"""The training order: a permutation that depends only on (seed, epoch), so a resumed run sees
the same batches as an uninterrupted one without any sampler state to save."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """Shuffles n indices with a generator seeded by (seed, epoch); Lightning calls `set_epoch`
    at the start of each epoch (and wraps it for DDP, giving each rank its share)."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch (0-based) whose shuffle `__iter__` gives next."""
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n
