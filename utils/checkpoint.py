"""Complete, self-describing checkpoints and exact resume.

A checkpoint is a dict saved atomically with ``torch.save``. Besides weights it
holds optimiser, scheduler, step, RNG states, the options used, the
normalisation statistics and the coordinate / muscle order the model expects;
:func:`check_compatible` verifies the last two on load.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from utils.fileio import atomic_torch_save


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not fit the data."""


def rng_state() -> dict:
    """Snapshot of Python, NumPy and torch (CPU and CUDA) random states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(path: str | os.PathLike, **content: Any) -> Path:
    """Save ``content`` (plus RNG states) atomically."""
    content.setdefault("rng", rng_state())
    return atomic_torch_save(content, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint; raises :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: cannot read checkpoint ({err})") from None


def check_compatible(ckpt: dict, path: str | os.PathLike, key: str, expected: Sequence[str]) -> None:
    """Check that ``ckpt[key]`` (e.g. ``coordinates``, ``muscles``) matches ``expected``."""
    found = list(ckpt.get(key, []))
    if found != list(expected):
        missing = [n for n in expected if n not in found]
        raise CheckpointError(
            f"{path}: checkpoint {key} do not match: expected {len(expected)} {key}, found {len(found)}"
            + (f"; missing {', '.join(missing[:10])}" if missing else "; order differs")
        )
