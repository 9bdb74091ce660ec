"""Batches drawn from tensors held in memory on the training device, with
their own generator whose state goes into checkpoints (so that a resumed run
draws the same batches): no ``DataLoader``, no worker processes.

``InMemoryBatches`` draws random batches (with replacement, optional random
windows); ``EpochBatches`` walks a fresh permutation of the data each epoch.
"""
from __future__ import annotations

import math

import torch


class InMemoryBatches:
    """Random batches of (B, window, C) drawn from tensors held on ``device``.

    With ``world_size > 1`` each rank draws only from its own shard of the
    clips (rank r takes clips r, r + world_size, ...), like a distributed
    sampler. ``window`` < T crops a random window per clip.
    """

    def __init__(self, x: torch.Tensor, batch_size: int, *extra: torch.Tensor,
                 window: int | None = None, seed: int = 0, rank: int = 0, world_size: int = 1,
                 device: torch.device | str = "cpu"):
        idx = torch.arange(rank, len(x), world_size)
        if len(idx) == 0:
            raise ValueError(f"rank {rank} of {world_size} has no clips (dataset of {len(x)})")
        self.tensors = [t[idx].to(device) for t in (x, *extra)]
        self.batch_size = batch_size
        self.window = window if window and window < x.shape[1] else None
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed * 1000 + rank)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def next(self):
        """One batch: a tensor, or a tuple of tensors if ``extra`` was given."""
        n, length = self.tensors[0].shape[:2]
        pick = torch.randint(0, n, (self.batch_size,), generator=self.generator)
        if self.window:
            start = torch.randint(0, length - self.window + 1, (self.batch_size,), generator=self.generator)
            steps = start[:, None] + torch.arange(self.window)[None]
            out = [t[pick[:, None].to(t.device), steps.to(t.device)] for t in self.tensors]
        else:
            out = [t[pick.to(t.device)] for t in self.tensors]
        return out[0] if len(out) == 1 else tuple(out)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class EpochBatches:
    """Batches of ``tensors`` (same first dimension) in a fresh random order
    each epoch: ``ceil(N / batch_size)`` batches per epoch, the last one
    smaller. The permutation is drawn from :attr:`generator` (on the CPU) at
    the start of each epoch; callers may draw more from the same generator
    (noise augmentation) so that one state describes all the randomness."""

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0):
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("EpochBatches needs tensors with one common first dimension")
        if len(tensors[0]) == 0:
            raise ValueError("EpochBatches: no data")
        self.tensors = tensors
        self.batch_size = int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.order: torch.Tensor | None = None
        self.position = 0

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.tensors[0]) / self.batch_size)

    def next(self):
        """The next batch: a tuple with one slice of each tensor."""
        n = len(self.tensors[0])
        if self.order is None or self.position >= n:
            self.order, self.position = torch.randperm(n, generator=self.generator), 0
        idx = self.order[self.position:self.position + self.batch_size]
        self.position += len(idx)
        return tuple(t[idx.to(t.device)] for t in self.tensors)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position = state["order"], int(state["position"])
