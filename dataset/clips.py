"""Bring a repetition of any length to a fixed number of frames."""
from __future__ import annotations

import numpy as np

from utils.constants import CLIP_LENGTH

CLIP_MODES = ("resample", "tile")


def fit_length(x: np.ndarray, length: int = CLIP_LENGTH, mode: str = "resample",
               times: np.ndarray | None = None) -> np.ndarray:
    """(T, C) -> (length, C).

    ``resample``: linear time normalisation, first and last frames kept. With
    ``times`` (T,), the clip's own time column, the ``length`` output frames
    are evenly spaced in time, so a file sampled on an uneven mesh (OpenCap's
    muscle-driven simulations) or at any frame rate is resampled by its
    clock, not by its row index.
    ``tile``: the original BIGE behaviour; a short clip is repeated end to end
    and cut at ``length``, a long one is cut.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"expected a (T>=2, C) clip, got shape {x.shape}")
    if times is not None:
        times = np.asarray(times, dtype=np.float64)
        if times.shape != (x.shape[0],) or not np.all(np.diff(times) > 0):
            raise ValueError(f"times must be {x.shape[0]} increasing values, got shape {times.shape}")
    if mode == "resample":
        if times is None:
            src = np.linspace(0.0, 1.0, x.shape[0])
        else:
            src = (times - times[0]) / (times[-1] - times[0])
        dst = np.linspace(0.0, 1.0, length)
        idx = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, x.shape[0] - 2)
        w = ((dst - src[idx]) / (src[idx + 1] - src[idx]))[:, None]
        return (1.0 - w) * x[idx] + w * x[idx + 1]
    if mode == "tile":
        reps = -(-length // x.shape[0])
        return np.tile(x, (reps, 1))[:length]
    raise ValueError(f"unknown clip mode {mode!r}; expected one of {CLIP_MODES}")


def clip_time_step(duration: float, source_frames: int, length: int = CLIP_LENGTH, mode: str = "resample") -> float:
    """Seconds between two frames of a clip fitted by :func:`fit_length`.

    ``duration`` is the source's real time from its first to its last frame
    and ``source_frames`` its frame count. ``resample`` spreads that duration
    over ``length`` frames (``duration / (length - 1)``); ``tile`` keeps the
    source's interval (``duration / (source_frames - 1)``); a clip that already
    has ``length`` frames is left as it is by either mode.
    """
    if source_frames < 2 or not duration > 0:
        raise ValueError(f"need >= 2 source frames spanning a positive duration, got {source_frames} "
                         f"frames over {duration} s")
    if mode == "tile" or source_frames == length:
        return float(duration) / (source_frames - 1)
    if mode == "resample":
        return float(duration) / (length - 1)
    raise ValueError(f"unknown clip mode {mode!r}; expected one of {CLIP_MODES}")
