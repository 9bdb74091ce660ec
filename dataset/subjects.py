"""Which subjects (sessions) a generation run is for, and a fixed-size
descriptor of each subject that conditional baselines are conditioned on.

``--subject all`` means every session of the test split; otherwise each entry
is a session folder (``<root>/Data/<session>``) or a session id under
``--data-root``.

The subject descriptor is computed from the subject's own squat repetitions,
so it exists for subjects never seen in training (the split is by subject):
the per-coordinate mean and standard deviation over all frames of all the
subject's repetitions, in normalised units. ``(2 * 33,)`` float32.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from dataset.mcs import DatasetError, Session, discover, find_session, why_no_repetitions
from dataset.normalization import Normalizer
from dataset.repetitions import RepetitionSet, load_repetitions, select_sessions
from utils.constants import CLIP_LENGTH, N_COORDS
from utils.motion_io import MotionFileError

SUBJECT_FEATURES: int = 2 * N_COORDS
"""Length of a subject descriptor: per-coordinate mean then standard deviation."""


def resolve_subjects(
    root: str | os.PathLike,
    subjects: Sequence[str],
    split_file: str | os.PathLike | None = None,
    seed: int = 0,
) -> list[Session]:
    """Sessions named by ``subjects``: ``["all"]`` -> the test split of
    ``root``; otherwise session folders or session ids of ``root``, in the
    order given, duplicates dropped.

    Raises :class:`DatasetError` naming the entry that is neither an existing
    session folder with squat repetitions nor a session id of ``root``.
    """
    subjects = list(subjects)
    if not subjects:
        raise DatasetError("no subject given; pass --subject all or session folders / ids")
    if subjects == ["all"]:
        chosen = select_sessions(discover(root), "test", root, split_file, seed)
        if not chosen:
            raise DatasetError(f"{root}: the test split holds no session")
        return chosen
    if "all" in subjects:
        raise DatasetError("--subject all cannot be combined with named subjects")
    known: dict[str, Session] | None = None
    out: dict[str, Session] = {}
    for entry in subjects:
        path = Path(entry)
        if path.is_dir():
            session = find_session(path)
            if not session.repetitions():
                raise DatasetError(f"{path}: session folder has no squat repetition "
                                   f"({why_no_repetitions(path.resolve().parent, [session])})")
        else:
            if os.sep in entry or entry.startswith("."):
                raise DatasetError(f"{entry}: session folder does not exist")
            if known is None:
                known = {s.id: s for s in discover(root)}
            if entry not in known:
                raise DatasetError(f"{entry}: not a session folder and not a session id with squat data "
                                   f"under {root} ({len(known)} sessions found)")
            session = known[entry]
        out.setdefault(session.id, session)
    return list(out.values())


def session_repetitions(
    session: Session, length: int = CLIP_LENGTH, clip_mode: str = "resample",
) -> RepetitionSet:
    """All squat repetitions of one session folder (which must sit in a
    ``Data`` folder of an MCS layout). ``motions`` (n, length, 33)."""
    return load_repetitions(session.path.parent, sessions=[session.id], length=length, clip_mode=clip_mode)


def mean_repetition_duration(session: Session) -> float | None:
    """Mean real duration (s, first to last frame) of the session's squat
    repetitions: the time a generated motion of this subject is given. None
    when the session has no readable repetitions."""
    try:
        return session_repetitions(session).mean_duration(session.id)
    except (DatasetError, MotionFileError, ValueError):
        return None


def subject_descriptor(motions_norm: np.ndarray) -> np.ndarray:
    """Descriptor of one subject from its normalised repetitions.

    (n, T, 33) normalised -> (66,) float32: mean over all frames, then std.
    """
    x = np.asarray(motions_norm, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != N_COORDS or x.shape[0] < 1:
        raise ValueError(f"expected normalised repetitions (n>=1, T, {N_COORDS}), got shape {x.shape}")
    flat = x.reshape(-1, N_COORDS)
    return np.concatenate([flat.mean(0), flat.std(0)]).astype(np.float32)


def descriptors_by_session(reps: RepetitionSet, normalizer: Normalizer) -> dict[str, np.ndarray]:
    """``{session id: (66,) descriptor}`` for every session in ``reps``."""
    sessions = np.asarray(reps.sessions)
    norm = normalizer.normalize(reps.motions.astype(np.float64))
    return {sid: subject_descriptor(norm[sessions == sid]) for sid in dict.fromkeys(reps.sessions)}


def clip_descriptors(reps: RepetitionSet, normalizer: Normalizer) -> np.ndarray:
    """The descriptor of each clip's subject, row-aligned with ``reps.motions``.
    (N, 66) float32."""
    table = descriptors_by_session(reps, normalizer)
    return np.stack([table[s] for s in reps.sessions]).astype(np.float32)
