"""Complete, self-describing checkpoints and exact resume.

A checkpoint is a dict saved atomically with ``torch.save``. Besides weights it
holds optimiser, scheduler, step, RNG states, the options used, the
normalisation statistics and the coordinate / muscle order the model expects;
:func:`check_compatible` verifies the last two on load.
"""
from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from utils.errors import BigeError
from utils.fileio import atomic_torch_save


class CheckpointError(BigeError, ValueError):
    """A checkpoint is missing, unreadable or does not fit the data."""


def rng_state() -> dict:
    """Snapshot of Python, NumPy and torch (CPU and CUDA) random states, as
    plain containers and tensors only (loadable with ``weights_only=True``)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                            "pos": int(numpy_state["state"]["pos"])}
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"])
    if isinstance(numpy_state, dict) and "bit_generator" in numpy_state:
        inner = numpy_state["state"]
        numpy_state["state"] = {"key": np.asarray(inner["key"], dtype=np.uint32), "pos": int(inner["pos"])}
        np.random.set_state(numpy_state)
    else:
        np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def plain(obj: Any) -> Any:
    """``obj`` with NumPy arrays turned into tensors, NumPy scalars into Python
    numbers and paths into strings, so that ``torch.load(weights_only=True)``
    (which unpickles only tensors and plain containers) can read it."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def save_checkpoint(path: str | os.PathLike, **content: Any) -> Path:
    """Save ``content`` (plus RNG states) atomically, as tensors and plain
    containers only (see :func:`plain`)."""
    content.setdefault("rng", rng_state())
    return atomic_torch_save(plain(content), path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint; raises :class:`CheckpointError` naming the file.

    Only tensors and plain containers are unpickled (``weights_only=True``):
    a checkpoint can never run code."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path}: expected a checkpoint file, found a folder")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r"(?:unsupported )?GLOBAL ([\w.]+)", text, re.IGNORECASE)
        if found:
            raise CheckpointError(f"{path}: refused: it asks to load {found.group(1)}; a checkpoint may hold only "
                                  "tensors and plain containers (loading anything else could run code)") from None
        detail = next((ln.strip() for ln in text.splitlines()[::-1] if ln.strip() and "documentation" not in ln), "")
        raise CheckpointError(f"{path}: cannot read checkpoint (not a PyTorch checkpoint: {detail[:120]})") from None
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({err.strerror or err})") from None
    except EOFError:
        raise CheckpointError(f"{path}: cannot read checkpoint (the file is empty or cut short)") from None
    except (RuntimeError, ValueError, KeyError, IndexError) as err:  # torch's errors for corrupt files
        raise CheckpointError(f"{path}: cannot read checkpoint (not a PyTorch checkpoint: {type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found {type(ckpt).__name__}")
    return ckpt


def check_kind(ckpt: dict, path: str | os.PathLike, kind: str, writer: str) -> None:
    """Refuse a checkpoint another trainer wrote: its ``kind`` (``method`` in
    checkpoints written before the one schema) must be ``kind``."""
    found = ckpt.get("kind", ckpt.get("method"))
    if found != kind:
        raise CheckpointError(f"{path}: not a {writer} checkpoint (kind={found!r})")


def check_compatible(ckpt: dict, path: str | os.PathLike, key: str, expected: Sequence[str]) -> None:
    """Check that ``ckpt[key]`` (e.g. ``coordinates``, ``muscles``) matches ``expected``."""
    found = list(ckpt.get(key, []))
    if found != list(expected):
        missing = [n for n in expected if n not in found]
        raise CheckpointError(
            f"{path}: checkpoint {key} do not match: expected {len(expected)} {key}, found {len(found)}"
            + (f"; missing {', '.join(missing[:10])}" if missing else "; order differs")
        )
