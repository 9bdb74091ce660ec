"""Per-feature normalisation statistics, fitted on the training split only."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from utils.constants import COORDINATES
from utils.fileio import atomic_write_json


@dataclass
class Normalizer:
    """``(x - mean) / std`` per feature. ``mean``/``std`` have shape (C,)."""

    mean: np.ndarray
    std: np.ndarray
    names: tuple[str, ...] = COORDINATES

    @classmethod
    def fit(cls, x: np.ndarray, names: Sequence[str] = COORDINATES, min_std: float = 1e-3) -> "Normalizer":
        """Fit on (N, T, C) or (N, C) data."""
        flat = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        if flat.shape[-1] != len(names):
            raise ValueError(f"data has {flat.shape[-1]} features but {len(names)} names")
        return cls(flat.mean(0), np.maximum(flat.std(0), min_std), tuple(names))

    def normalize(self, x):
        """Works on numpy arrays and tensors of shape (..., C)."""
        mean, std = self._like(x)
        return (x - mean) / std

    def denormalize(self, x):
        mean, std = self._like(x)
        return x * std + mean

    def _like(self, x):
        if isinstance(x, torch.Tensor):
            return (torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.std, dtype=x.dtype, device=x.device))
        return self.mean, self.std

    def state_dict(self) -> dict:
        return {"mean": np.asarray(self.mean).tolist(), "std": np.asarray(self.std).tolist(),
                "names": list(self.names)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Normalizer":
        return cls(np.asarray(state["mean"], dtype=np.float64), np.asarray(state["std"], dtype=np.float64),
                   tuple(state["names"]))

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalizer":
        return cls.from_state_dict(json.loads(Path(path).read_text()))
