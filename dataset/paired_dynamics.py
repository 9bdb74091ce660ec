"""Each training clip paired with its noise-free twin: the same repetition
read from the session's Dynamics files (the kinematics the activations were
simulated from), which the VQ-VAE's acceleration term can match instead of
the jittery motion capture (``train_vq.py --acc-target dynamics``).
"""
from __future__ import annotations

import numpy as np

from dataset.mcs import DatasetError
from dataset.repetitions import RepetitionSet, load_repetitions
from utils.constants import ROTATION_MASK

_ROTATIONS = np.asarray(ROTATION_MASK)

PAIR_TOLERANCE_DEG = 3.0
"""Largest mean absolute difference (degrees, over the rotational coordinates
and frames) between a clip and its Dynamics repetition for the pair to be
the same motion. The synthetic pairs differ by 0.2-0.6 deg (measurement
noise); an unrelated squat paired by index differs by ~12 deg (the real
OpenCap files of the test root)."""


def paired_dynamics(train: RepetitionSet, root, data_kw: dict) -> tuple[np.ndarray, int]:
    """The noise-free kinematics (from the Dynamics files) of each clip of
    ``train``, paired by (session, trial, repetition index), as an array
    shaped like ``train.motions``; a clip without a Dynamics repetition, or
    whose Dynamics repetition is not the same motion (differs by more than
    :data:`PAIR_TOLERANCE_DEG`: another segmentation, another squat), keeps
    its own motion. Also returns how many clips were paired (0 when the
    dataset has no Dynamics files)."""
    try:
        dyn = load_repetitions(root, source="dynamics", sessions=sorted(set(train.sessions)), **data_kw)
    except DatasetError:
        return train.motions.copy(), 0
    where = {(s, t, i): k for k, (s, t, i) in enumerate(zip(dyn.sessions, dyn.trials, dyn.indices))}
    clean = train.motions.copy()
    n = 0
    for k, key in enumerate(zip(train.sessions, train.trials, train.indices)):
        j = where.get(key)
        if j is not None and dyn.motions[j].shape == clean[k].shape and np.abs(
                dyn.motions[j][:, _ROTATIONS] - clean[k][:, _ROTATIONS]).mean() <= PAIR_TOLERANCE_DEG:
            clean[k] = dyn.motions[j]
            n += 1
    return clean, n
