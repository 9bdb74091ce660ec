"""PyTorch views of a :class:`~dataset.repetitions.RepetitionSet`.

``ClipDataset`` is a map-style ``Dataset`` for code that wants a ``DataLoader``.
``InMemoryBatches`` keeps the whole (small) dataset as one tensor on the
training device and draws random batches from it with its own generator,
GPU-style: no worker processes, no per-epoch restarts, and its state can be
saved in a checkpoint so that a resumed run draws the same batches.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from dataset.normalization import Normalizer
from dataset.repetitions import RepetitionSet


class ClipDataset(Dataset):
    """Normalised kinematics clips (T, 33), with activations (T, M) when present."""

    def __init__(self, reps: RepetitionSet, normalizer: Normalizer):
        self.x = torch.as_tensor(normalizer.normalize(reps.motions), dtype=torch.float32)
        self.y = None if reps.activations is None else torch.as_tensor(reps.activations, dtype=torch.float32)
        # real time of each clip (s between frames), for rates; None for hand-built sets
        self.time_steps = None if reps.durations is None else torch.as_tensor(reps.time_steps())

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i] if self.y is None else (self.x[i], self.y[i])


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
