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
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise DatasetError(f"{path}: cannot read split file ({reason})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg}); expected "
                           '{"train": [...], "test": [...]}') from None
    if not isinstance(obj, dict) or "test" not in obj:
        raise DatasetError(f"{path}: expected a JSON object with a 'test' list (and optionally 'train')")
    out = {}
    for key in ("train", "test"):
        if key in obj:
            if not isinstance(obj[key], list) or not all(isinstance(v, str) for v in obj[key]):
                raise DatasetError(f"{path}: '{key}' must be a list of session ids (strings)")
            out[key] = list(obj[key])
    overlap = sorted(set(out.get("train", [])) & set(out["test"]))
    if overlap:
        raise DatasetError(f"{path}: session(s) in both 'train' and 'test': {', '.join(overlap[:5])}")
    return out


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
        listed = set(spec["test"]) | set(spec.get("train", []))
        unknown = sorted(listed - set(ids))
        if unknown:
            raise DatasetError(
                f"{split_file}: {len(unknown)} session id(s) match no session with squat repetitions in the dataset: "
                f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}; fix the ids or the --data-root")
        test = set(spec["test"])
        if not test and len(ids) > 1:
            raise DatasetError(f"{split_file}: the 'test' list is empty; expected the held-out session ids")
        if "train" in spec:
            train = sorted(spec["train"])
            if not train:
                raise DatasetError(f"{split_file}: the 'train' list is empty; expected the training session ids")
            return train, sorted(test)
    elif set(TEST_SESSIONS) & set(ids):
        test = set(TEST_SESSIONS) & set(ids)
    else:
        if not 0.0 < test_fraction < 1.0:
            raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction}")
        rng = np.random.default_rng(seed)
        n_test = max(1, int(round(test_fraction * len(ids)))) if len(ids) > 1 else 0
        test = set(rng.permutation(ids)[:n_test].tolist())
    train = [s for s in ids if s not in test]
    return train, sorted(test)


def hold_out_sessions(session_ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Hold out a seeded ``fraction`` of whole sessions (at least one, never
    all) for validation: (kept, held out), both sorted. Needs two sessions."""
    ids = sorted(set(session_ids))
    if len(ids) < 2:
        raise DatasetError(f"need at least 2 training sessions to hold one out for validation, found {len(ids)}")
    n_val = min(len(ids) - 1, max(1, int(round(fraction * len(ids)))))
    held = sorted(np.random.default_rng(seed).permutation(ids)[:n_val].tolist())
    return [s for s in ids if s not in set(held)], held
