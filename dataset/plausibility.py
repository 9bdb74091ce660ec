"""Refuse kinematics whose numbers cannot be a squat in the stated units:
radians labelled as degrees, millimetres or centimetres read as metres,
absurd angles. Such files parse cleanly and would train a model on the wrong
scale without any error, so they are stopped where they are read."""
from __future__ import annotations

import math
import os

import numpy as np

from utils.constants import (COORDINATES, KNEE_COORDINATES, MAX_ABS_ROTATION_DEG, MAX_ABS_TRANSLATION_M,
                             MIN_SQUAT_KNEE_RANGE_DEG, TRANSLATIONS)
from utils.motion_io import MotionFileError


def check_plausible(coords: np.ndarray, path: str | os.PathLike, names: tuple[str, ...] = COORDINATES) -> None:
    """Raise :class:`MotionFileError` naming ``path`` and the column when the
    squat kinematics ``coords`` (T, 33; degrees / metres, as read) are out of
    any plausible range. Non-finite values are refused too."""
    coords = np.asarray(coords, dtype=np.float64)
    bad = ~np.isfinite(coords)
    if bad.any():
        frame, col = map(int, np.argwhere(bad)[0])
        raise MotionFileError(path, f"column {names[col]}: non-finite value at frame {frame}")
    rot = [i for i, n in enumerate(names) if n not in TRANSLATIONS]
    trans = [i for i, n in enumerate(names) if n in TRANSLATIONS]
    peak = np.abs(coords).max(axis=0)
    for i in trans:
        if peak[i] > MAX_ABS_TRANSLATION_M:
            raise MotionFileError(
                path, f"column {names[i]} reaches {peak[i]:.4g}, over {MAX_ABS_TRANSLATION_M:g} m: expected metres "
                      "(a file in millimetres or centimetres needs its header to say so)")
    for i in rot:
        if peak[i] > MAX_ABS_ROTATION_DEG:
            raise MotionFileError(
                path, f"column {names[i]} reaches {peak[i]:.4g} deg, over {MAX_ABS_ROTATION_DEG:g}: expected an angle "
                      "in degrees")
    radians = radians_as_degrees(coords, names)
    if radians is not None:
        raise MotionFileError(path, f"{radians} (set inDegrees=no in the header)")


def radians_as_degrees(coords: np.ndarray, names: tuple[str, ...] = COORDINATES,
                       moving: bool = False) -> str | None:
    """Why squat kinematics ``coords`` (T, 33, read as degrees / metres) look
    like radians labelled as degrees (no rotation exceeds pi and the knees
    move less than a squat's :data:`MIN_SQUAT_KNEE_RANGE_DEG`), else None.
    With ``moving`` (for any motion, not only squats: a pose held still says
    nothing about units), only when the knees, read as radians, move that much."""
    coords = np.asarray(coords, dtype=np.float64)
    rot = [i for i, n in enumerate(names) if n not in TRANSLATIONS]
    knees = [names.index(k) for k in KNEE_COORDINATES if k in names]
    if len(coords) < 2 or not knees or not rot or np.abs(coords[:, rot]).max() > math.pi + 1e-6:
        return None
    knee_range = max(float(np.ptp(coords[:, k])) for k in knees)
    if knee_range >= MIN_SQUAT_KNEE_RANGE_DEG or (moving and knee_range < math.radians(MIN_SQUAT_KNEE_RANGE_DEG)):
        return None
    return (f"column {names[knees[0]]} spans {knee_range:.3g} deg and no angle exceeds pi: these are radians "
            "labelled as degrees")
