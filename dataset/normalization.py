"""Per-feature normalisation statistics, fitted on the training split only."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from utils.constants import COORDINATES, TRANSLATIONS
from utils.fileio import atomic_write_json

ROTATION_STD_FLOOR = 1.0
"""Smallest normalisation std of a rotation, degrees."""
TRANSLATION_STD_FLOOR = 0.01
"""Smallest normalisation std of a pelvis translation, metres."""
OTHER_STD_FLOOR = 1e-3
"""Smallest normalisation std of any other feature (e.g. activations)."""
STATIC_FRACTION = 1e-3
"""A feature whose std is below this fraction of its floor never moves in the data."""


def std_floor(names: Sequence[str]) -> np.ndarray:
    """Per-feature lower bound of the normalisation std, shape (C,).

    A coordinate that barely moves in the training data (a locked joint, a
    coordinate the data fixes at zero) would otherwise get a tiny std, and any
    later deviation, such as measurement noise or a generator's error of a
    fraction of a degree, would become a huge normalised input. The floor is
    1 degree for rotations and 1 cm for the pelvis translations.
    """
    coords = set(COORDINATES)
    return np.array([TRANSLATION_STD_FLOOR if n in TRANSLATIONS else
                     ROTATION_STD_FLOOR if n in coords else OTHER_STD_FLOOR for n in names])


def static_features(x: np.ndarray, names: Sequence[str] = COORDINATES) -> np.ndarray:
    """Boolean (C,) mask of features that do not move in (N, T, C) or (N, C) data.

    Static means a std below :data:`STATIC_FRACTION` of :func:`std_floor`
    (0.001 degree, 10 micrometres): such a feature carries no information, and
    a model fitted on the data should ignore it.
    """
    flat = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
    if flat.shape[-1] != len(names):
        raise ValueError(f"data has {flat.shape[-1]} features but {len(names)} names")
    return flat.std(0) < STATIC_FRACTION * std_floor(names)


@dataclass
class Normalizer:
    """``(x - mean) / std`` per feature. ``mean``/``std`` have shape (C,)."""

    mean: np.ndarray
    std: np.ndarray
    names: tuple[str, ...] = COORDINATES

    @classmethod
    def fit(cls, x: np.ndarray, names: Sequence[str] = COORDINATES,
            min_std: float | np.ndarray | None = None) -> "Normalizer":
        """Fit on (N, T, C) or (N, C) data.

        The std of each feature is at least ``min_std`` (default
        :func:`std_floor`: 1 degree / 1 cm for coordinates).
        """
        flat = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        if flat.shape[-1] != len(names):
            raise ValueError(f"data has {flat.shape[-1]} features but {len(names)} names")
        floor = std_floor(names) if min_std is None else min_std
        return cls(flat.mean(0), np.maximum(flat.std(0), floor), tuple(names))

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
