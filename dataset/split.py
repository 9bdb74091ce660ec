"""Subject-level train/test split.

Order of precedence: an explicit split file; ``<root>/split.json``; the 21
published MCS evaluation sessions when the dataset has any of them; otherwise a
seeded fraction of sessions.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from dataset.mcs import DatasetError
from utils.constants import TEST_SESSIONS

SPLIT_FILE_NAME = "split.json"


def read_split_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``{"train": [...], "test": [...]}``; raises DatasetError on a bad file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: cannot read split file ({err})") from None
    if not isinstance(obj, dict) or "test" not in obj:
        raise DatasetError(f"{path}: expected a JSON object with a 'test' list (and optionally 'train')")
    return {k: [str(s) for s in v] for k, v in obj.items() if k in ("train", "test")}


def split_sessions(
    session_ids: Sequence[str],
    root: str | os.PathLike | None = None,
    split_file: str | os.PathLike | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[list[str], list[str]]:
    """Split session ids into (train, test), both sorted."""
    ids = sorted(session_ids)
    test: set[str]
    if split_file is None and root is not None and (Path(root) / SPLIT_FILE_NAME).is_file():
        split_file = Path(root) / SPLIT_FILE_NAME
    if split_file is not None:
        spec = read_split_file(split_file)
        test = set(spec["test"]) & set(ids)
        if "train" in spec:
            train = sorted(set(spec["train"]) & set(ids))
            return train, sorted(test)
    elif set(TEST_SESSIONS) & set(ids):
        test = set(TEST_SESSIONS) & set(ids)
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        rng = np.random.default_rng(seed)
        n_test = max(1, int(round(test_fraction * len(ids)))) if len(ids) > 1 else 0
        test = set(rng.permutation(ids)[:n_test].tolist())
    train = [s for s in ids if s not in test]
    return train, sorted(test)
