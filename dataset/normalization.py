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


CENTRED: tuple[str, ...] = ("pelvis_tx", "pelvis_tz", "pelvis_rotation")
"""Coordinates that only say where the subject stands and faces in the laboratory."""


def clip_means(x, columns: Sequence[int]):
    """The clip mean (over frames, axis -2) of ``columns``, zero elsewhere.
    (..., T, C) numpy or torch -> (..., 1, C), same type."""
    if isinstance(x, torch.Tensor):
        mask = torch.zeros(x.shape[-1], dtype=x.dtype, device=x.device)
        mask[list(columns)] = 1.0
        return mask * x.mean(dim=-2, keepdim=True)
    x = np.asarray(x)
    out = np.zeros((*x.shape[:-2], 1, x.shape[-1]), dtype=np.result_type(x.dtype, np.float32))
    if len(columns):
        out[..., list(columns)] = x[..., list(columns)].mean(axis=-2, keepdims=True)
    return out


def centre_horizontal(x, coordinates: Sequence[str] = COORDINATES):
    """Subtract the clip mean of :data:`CENTRED` coordinates. (..., T, 33) numpy or torch -> same shape.

    The motion is otherwise unchanged (same units); differentiable for tensors.
    """
    cols = [list(coordinates).index(c) for c in CENTRED if c in coordinates]
    return x - clip_means(x, cols)


@dataclass
class Normalizer:
    """``(x - mean) / std`` per feature. ``mean``/``std`` have shape (C,).

    With ``centred`` feature names (for the generators :data:`CENTRED`: where
    the subject stands and faces), :meth:`normalize` first takes those
    features relative to their clip mean, so its input must then be clips
    (..., T, C); :meth:`denormalize` cannot know the removed means and gives
    motions centred on them (:meth:`clip_offset` returns what was removed).
    """

    mean: np.ndarray
    std: np.ndarray
    names: tuple[str, ...] = COORDINATES
    centred: tuple[str, ...] = ()

    @classmethod
    def fit(cls, x: np.ndarray, names: Sequence[str] = COORDINATES,
            min_std: float | np.ndarray | None = None, centred: Sequence[str] = ()) -> "Normalizer":
        """Fit on (N, T, C) or (N, C) data ((N, T, C) clips when ``centred``).

        The std of each feature is at least ``min_std`` (default
        :func:`std_floor`: 1 degree / 1 cm for coordinates).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != len(names):
            raise ValueError(f"data has {x.shape[-1]} features but {len(names)} names")
        unknown = [c for c in centred if c not in names]
        if unknown:
            raise ValueError(f"centred feature(s) {unknown} are not among the names")
        if centred and x.ndim < 3:
            raise ValueError(f"centring needs clips (N, T, C), got shape {x.shape}")
        norm = cls(np.zeros(len(names)), np.ones(len(names)), tuple(names), tuple(centred))
        flat = norm.centre(x).reshape(-1, x.shape[-1])
        floor = std_floor(names) if min_std is None else min_std
        norm.mean, norm.std = flat.mean(0), np.maximum(flat.std(0), floor)
        return norm

    def _centred_columns(self) -> list[int]:
        return [self.names.index(c) for c in self.centred]

    def clip_offset(self, x):
        """What :meth:`normalize` removes before scaling: the clip mean of the
        centred features, zero elsewhere. (..., T, C) -> (..., 1, C)."""
        return clip_means(x, self._centred_columns())

    def centre(self, x):
        """``x`` with the centred features taken relative to their clip mean
        (``x`` itself when nothing is centred). (..., T, C) -> same."""
        return x - self.clip_offset(x) if self.centred else x

    def normalize(self, x):
        """Works on numpy arrays and tensors of shape (..., C) ((..., T, C) when centring)."""
        mean, std = self._like(x)
        return (self.centre(x) - mean) / std

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
                "names": list(self.names), "centred": list(self.centred)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Normalizer":
        return cls(np.asarray(state["mean"], dtype=np.float64), np.asarray(state["std"], dtype=np.float64),
                   tuple(state["names"]), tuple(state.get("centred", ())))

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Normalizer":
        return cls.from_state_dict(json.loads(Path(path).read_text()))
