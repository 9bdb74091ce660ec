"""Per-motion guidance metrics: what the guided muscles do, how deep and how
symmetric the squat is, how smooth, and whether the feet slide or go through
the floor. Then per-subject and pooled summaries.

Inputs are arrays, never files: motions (N, T, 33) in canonical order
(degrees / metres), activations (N, T, G) in [0, 1] for the guided muscles,
foot-point positions (N, T, P, 3) in metres with y up. Every per-motion
function returns ``{metric_name: (N,) float64}``; the metric names carry their
unit (``_deg``, ``_cm``, ``_deg_s``, ``_m_s``, ``_m_s2``).

Rates are in seconds of real time: every motion comes with ``dt``, the
seconds between two of its frames (scalar, or (N,) one per motion), taken
from its file's time column or its repetition's real duration
(``metrics.motion_sets.MotionSet.time_steps``), never an assumed 60 Hz for a
clip whose time was stretched to 196 frames. Finite differences are forward
differences: velocity ``(x[t+1] - x[t]) / dt``, acceleration
``(x[t+2] - 2 x[t+1] + x[t]) / dt^2``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from utils.constants import COORD_INDEX, COORDINATES, FRAME_RATE, ROTATION_MASK, SYMMETRIC_PAIRS

_ROT = np.array(ROTATION_MASK)
_TRANS = [COORD_INDEX[n] for n in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]
_TY = COORD_INDEX["pelvis_ty"]
_TILT = COORD_INDEX["pelvis_tilt"]
_KNEES = [COORD_INDEX["knee_angle_l"], COORD_INDEX["knee_angle_r"]]

FOOT_POINT_KEYS = ("heel", "toe", "met1", "met5", "calcn", "mtp")
"""Substrings naming foot points among forward-kinematics point names."""


def _rms(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x), axis=axes))


def time_steps(dt: float | np.ndarray, n: int) -> np.ndarray:
    """``dt`` (s between frames; scalar or one per motion) as (N,) positive floats."""
    out = np.asarray(dt, dtype=np.float64)
    if out.ndim == 0:
        out = np.full(n, float(out))
    if out.shape != (n,) or not (np.isfinite(out) & (out > 0)).all():
        raise ValueError(f"expected a positive finite time step for each of {n} motions, got shape "
                         f"{out.shape}, min {out.min() if out.size else 'n/a'}")
    return out


def kinematic_metrics(motions: np.ndarray, dt: float | np.ndarray = 1.0 / FRAME_RATE) -> dict[str, np.ndarray]:
    """Depth, symmetry and smoothness of each motion. (N, T, 33), ``dt``
    seconds between frames (scalar or (N,)) -> {name: (N,)}

    - ``depth_cm``: pelvis drop, ``pelvis_ty`` of the first (standing) frame
      minus its lowest value, cm (as in the generation summaries);
    - ``knee_flexion_peak_deg``: peak over frames of the mean of both knee angles;
    - ``pelvis_tilt_at_depth_deg``: ``pelvis_tilt`` at the lowest pelvis frame;
    - ``asymmetry_deg``: RMS over frames and ``SYMMETRIC_PAIRS`` of left - right;
    - ``angular_velocity_rms_deg_s``: RMS over frames and the 30 rotations;
    - ``pelvis_velocity_rms_m_s`` / ``pelvis_acceleration_rms_m_s2``: RMS over
      frames of the norm of the pelvis translation's velocity / acceleration.
    """
    x = np.asarray(motions, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != len(COORDINATES) or x.shape[1] < 3:
        raise ValueError(f"expected motions (N, T>=3, {len(COORDINATES)}), got shape {x.shape}")
    n = len(x)
    step = time_steps(dt, n)[:, None, None]
    ty = x[:, :, _TY]
    lowest = ty.argmin(axis=1)
    left = x[:, :, [COORD_INDEX[lft] for lft, _ in SYMMETRIC_PAIRS]]
    right = x[:, :, [COORD_INDEX[rgt] for _, rgt in SYMMETRIC_PAIRS]]
    trans = x[:, :, _TRANS]
    vel = np.diff(trans, axis=1) / step
    acc = np.diff(trans, n=2, axis=1) / step ** 2
    ang_vel = np.diff(x[:, :, _ROT], axis=1) / step
    return {
        "depth_cm": (ty[:, 0] - ty.min(axis=1)) * 100.0,
        "knee_flexion_peak_deg": x[:, :, _KNEES].mean(axis=2).max(axis=1),
        "pelvis_tilt_at_depth_deg": x[np.arange(n), lowest, _TILT],
        "asymmetry_deg": _rms(left - right, (1, 2)),
        "angular_velocity_rms_deg_s": _rms(ang_vel, (1, 2)),
        "pelvis_velocity_rms_m_s": np.sqrt(np.square(vel).sum(axis=2).mean(axis=1)),
        "pelvis_acceleration_rms_m_s2": np.sqrt(np.square(acc).sum(axis=2).mean(axis=1)),
    }


def lowpass_motions(motions: np.ndarray, dt: float | np.ndarray, cutoff: float, order: int = 4) -> np.ndarray:
    """Zero-lag Butterworth low-pass (``order``, forwards and backwards) of
    every motion at ``cutoff`` Hz with its own time step ``dt`` (s; scalar or
    (N,)); a motion whose Nyquist rate is at or below the cut-off is left as
    is. (N, T, C) -> (N, T, C)"""
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(motions, dtype=np.float64)
    out = x.copy()
    for i, step in enumerate(time_steps(dt, len(x))):
        nyquist = 0.5 / step
        if 0 < cutoff < nyquist:
            sos = butter(order, cutoff / nyquist, output="sos")
            out[i] = sosfiltfilt(sos, x[i], axis=0, padtype="even", padlen=min(x.shape[1] - 1, 3 * 60))
    return out


def peak_activation_frame(activations: np.ndarray) -> np.ndarray:
    """Frame of the highest mean activation of the guided muscles. (N, T, G) -> (N,) int"""
    return np.asarray(activations).mean(axis=2).argmax(axis=1)


def window_frames(window_s: float, dt: float | np.ndarray, n: int) -> np.ndarray:
    """Frames of a ``window_s``-second moving window for each of ``n`` motions
    at ``dt`` seconds per frame (scalar or (N,)), at least 1. -> (N,) int"""
    if window_s < 0:
        raise ValueError(f"peak window must be >= 0 seconds, got {window_s}")
    return np.maximum(1, np.rint(window_s / time_steps(dt, n))).astype(int)


def windowed_peaks(activations: np.ndarray, frames: int | np.ndarray) -> np.ndarray:
    """Peak over time of each muscle's moving average over ``frames``
    consecutive frames (one count, or one per motion; clipped to T; 1 = the
    raw peak). (N, T, G) -> (N, G)"""
    a = np.asarray(activations, dtype=np.float64)
    w = np.broadcast_to(np.asarray(frames, dtype=int), (len(a),))
    out = np.empty((len(a), a.shape[2]))
    for i, k in enumerate(np.minimum(w, a.shape[1])):
        c = np.concatenate([np.zeros((1, a.shape[2])), np.cumsum(a[i], axis=0)])
        out[i] = ((c[k:] - c[:-k]) / k).max(axis=0)
    return out


def _band(peaks: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    hinge = np.maximum(np.maximum(peaks - high, low - peaks), 0.0).mean(axis=1)
    inside = ((peaks >= low) & (peaks <= high)).all(axis=1).astype(np.float64)
    return inside, hinge


def activation_metrics(
    activations: np.ndarray, muscles: Sequence[str], low: float = 0.35, high: float = 0.45,
    window_s: float = 0.0, dt: float | np.ndarray = 1.0 / FRAME_RATE, prefix: str = "",
) -> dict[str, np.ndarray]:
    """The guidance constraint on each motion. (N, T, G) activations of the
    guided ``muscles``, ``dt`` seconds between frames -> {name: (N,)}

    For every guided muscle its peak over frames ``p_m``; then
    - ``activation_peak``: mean over muscles of ``p_m`` (and ``activation_peak_<muscle>``);
    - ``in_band``: 1 if every ``p_m`` lies in ``[low, high]``, else 0;
    - ``violation``: mean over muscles of the hinge ``max(p_m - high, low - p_m, 0)``
      (activation units, 0 inside the band);
    - ``violating``: 1 - ``in_band`` (some guided muscle outside the band);
    - ``activation_peak_windowed``, ``in_band_windowed``,
      ``violation_windowed``: the same on the peak of each muscle's moving
      average over ``window_s`` seconds of real time (each motion's own ``dt``):
      a sustained activation, not a spike.

    Every name is prefixed with ``prefix`` (e.g. ``sim_`` for simulated activations).
    """
    a = np.asarray(activations, dtype=np.float64)
    if a.ndim != 3 or a.shape[2] != len(muscles):
        raise ValueError(f"expected activations (N, T, {len(muscles)}) for {list(muscles)}, got {a.shape}")
    if low > high:
        raise ValueError(f"band is empty: low={low} > high={high}")
    peaks = a.max(axis=1)  # (N, G)
    inside, hinge = _band(peaks, low, high)
    out = {"activation_peak": peaks.mean(axis=1)}
    for k, name in enumerate(muscles):
        out[f"activation_peak_{name}"] = peaks[:, k]
    out.update({"in_band": inside, "violation": hinge,
                "violating": 1.0 - inside})
    wpeaks = windowed_peaks(a, window_frames(window_s, dt, len(a)))
    w_inside, w_hinge = _band(wpeaks, low, high)
    out.update({"activation_peak_windowed": wpeaks.mean(axis=1), "in_band_windowed": w_inside,
                "violation_windowed": w_hinge})
    return {prefix + k: v for k, v in out.items()}


def pelvis_tilt_at(motions: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``pelvis_tilt`` (deg) of each motion at the given frame. (N, T, 33), (N,) -> (N,)"""
    x = np.asarray(motions)
    return x[np.arange(len(x)), np.asarray(frames), _TILT].astype(np.float64)


def foot_point_indices(point_names: Sequence[str]) -> list[int]:
    """Indices of the foot contact points (heel / toe / calcaneus / toes)
    among forward-kinematics ``point_names``; raises if there are none."""
    idx = [i for i, name in enumerate(point_names) if any(k in name.lower() for k in FOOT_POINT_KEYS)]
    if not idx:
        raise ValueError(f"no foot points (names containing {FOOT_POINT_KEYS}) among {list(point_names)}")
    return idx


def foot_metrics(
    points: np.ndarray, floor_height: float | np.ndarray = 0.0, contact_height: float = 0.03,
    dt: float | np.ndarray = 1.0 / FRAME_RATE,
) -> dict[str, np.ndarray]:
    """Foot sliding and floor penetration. (N, T, P, 3) foot points, metres,
    y up, the floor at ``floor_height`` metres (scalar or (N,), one per
    motion), ``dt`` seconds between frames (scalar or (N,)) -> {name: (N,)}

    - ``foot_slide_cm``: horizontal (x-z) path length of a foot point over the
      frame steps where it stays within ``contact_height`` of the floor at both
      ends, cm, mean over the P points;
    - ``foot_slide_speed_cm_s``: the same path divided by the time in contact
      (0 when never in contact), cm/s, mean over points;
    - ``floor_penetration_cm``: deepest point below the floor over the motion, cm;
    - ``foot_height_min_cm``: lowest foot point relative to the floor, cm.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 4 or p.shape[3] != 3:
        raise ValueError(f"expected foot points (N, T, P, 3), got shape {p.shape}")
    floor = np.asarray(floor_height, dtype=np.float64)
    height = p[..., 1] - (floor[:, None, None] if floor.ndim else floor)  # (N, T, P)
    near = height < contact_height
    contact = near[:, 1:] & near[:, :-1]  # (N, T-1, P)
    step = np.linalg.norm(np.diff(p[..., [0, 2]], axis=1), axis=-1)  # (N, T-1, P)
    path = (step * contact).sum(axis=1)  # (N, P)
    time_in_contact = contact.sum(axis=1) * time_steps(dt, len(p))[:, None]
    speed = np.divide(path, time_in_contact, out=np.zeros_like(path), where=time_in_contact > 0)
    lowest = height.min(axis=(1, 2))
    return {
        "foot_slide_cm": path.mean(axis=1) * 100.0,
        "foot_slide_speed_cm_s": speed.mean(axis=1) * 100.0,
        "floor_penetration_cm": np.maximum(-lowest, 0.0) * 100.0,
        "foot_height_min_cm": lowest * 100.0,
    }


def subject_floors(feet: np.ndarray, subjects: Sequence[str]) -> dict[str, float]:
    """Floor height per subject (m): the median over all frames of its motions
    of the lowest foot point, as guidance estimates a subject's floor (in a
    squat the feet stay down). (N, T, P, 3) foot points, N subject ids."""
    low = np.asarray(feet, dtype=np.float64)[..., 1].min(axis=-1)  # (N, T)
    ids = np.asarray(list(subjects), dtype=object)
    return {sid: float(np.median(low[ids == sid])) for sid in sorted(set(ids.tolist()))}


def floor_contact_warning(label: str, foot_height_min_cm: np.ndarray, floor_height: float | str,
                          contact_height: float) -> str | None:
    """A warning when motions of a set never bring a foot point within
    ``contact_height`` (m) of the floor at ``floor_height`` (m, or words
    saying where it is): their foot
    sliding reads 0 because nothing was in contact, not because nothing slid
    (typically feet from a model that is not the subject's, or a floor
    elsewhere). ``foot_height_min_cm`` is :func:`foot_metrics`' (N,) column;
    None when every motion touches the floor."""
    low = np.asarray(foot_height_min_cm, dtype=np.float64)
    above = low > contact_height * 100.0
    if not above.any():
        return None
    where = floor_height if isinstance(floor_height, str) else f"the floor at y = {floor_height} m"
    return (f"{label}: WARNING {int(above.sum())} of {len(low)} motions never bring a foot point within "
            f"{contact_height} m of {where} (lowest foot point "
            f"{low[above].min():.1f}-{low[above].max():.1f} cm above it): their foot sliding reads 0 because "
            "nothing is in contact; check that the feet come from the subject's scaled model, or set "
            "--floor-height")


def surrogate_simulation_agreement(surrogate: np.ndarray, simulated: np.ndarray) -> dict[str, float]:
    """How well the surrogate's peaks follow the simulation's over a set of
    motions. (N,), (N,) peak activations (NaN where not simulated) ->
    ``surrogate_sim_mad`` (mean absolute difference), ``surrogate_sim_bias``
    (mean of surrogate - simulation), ``surrogate_sim_spearman`` (Spearman
    rank correlation; NaN with fewer than 3 motions or a constant set)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(surrogate, dtype=np.float64), np.asarray(simulated, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size == 0:
        return {"surrogate_sim_mad": float("nan"), "surrogate_sim_bias": float("nan"),
                "surrogate_sim_spearman": float("nan")}
    rho = float("nan")
    if a.size >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0:
        rho = float(spearmanr(a, b).statistic)
    return {"surrogate_sim_mad": float(np.abs(a - b).mean()), "surrogate_sim_bias": float((a - b).mean()),
            "surrogate_sim_spearman": rho}


def summarise(per_motion: dict[str, np.ndarray], groups: Sequence[str], pooled: str = "all") -> list[dict]:
    """Mean and standard deviation of every metric per group and over all
    motions. ``per_motion`` {name: (N,)}, ``groups`` N labels -> rows
    ``{"subject", "n", name, name + "_std", ...}``, groups sorted, pooled last."""
    groups = list(groups)
    names = list(per_motion)
    for name in names:
        if len(per_motion[name]) != len(groups):
            raise ValueError(f"metric {name!r} has {len(per_motion[name])} values for {len(groups)} motions")
    labels = np.asarray(groups, dtype=object)

    def row(label: str, mask: np.ndarray) -> dict:
        out: dict = {"subject": label, "n": int(mask.sum())}
        for name in names:
            v = np.asarray(per_motion[name], dtype=np.float64)[mask]
            v = v[np.isfinite(v)]  # NaN: not measured for that motion (e.g. its simulation failed)
            out[name] = float(v.mean()) if v.size else float("nan")
            out[f"{name}_std"] = float(v.std()) if v.size else float("nan")
        return out

    rows = [row(g, labels == g) for g in sorted(set(groups))]
    rows.append(row(pooled, np.ones(len(groups), dtype=bool)))
    return rows
