"""The published evaluation protocol of the BIGE paper, reproduced.

The paper aggregates per **subject folder**: every number is computed once
for the motions of one subject (one session) and the table reports the mean
and the standard deviation over folders (population, ``ddof=0``). This module
does that, from the published definitions; the project's own protocol
(per motion, mean ± std over motions, ``metrics.guidance`` and
``metrics.distribution``) is unchanged. See docs/metrics.md, "Protocols".

What differs from the project protocol (the scripts choose the inputs):

* fidelity: the published W2^2 (:func:`metrics.distribution.published_w2`)
  of each folder against the reference set, the test sessions' muscle-driven
  (Dynamics) kinematics fitted to the clip length by tiling; mean ± std over
  folders;
* entropy: the mean over all motions of the per-sample entropy (as the
  project), ± the standard deviation over folders of the folder means;
* guidance: per folder one RMS over its motions and frames (asymmetry,
  angular velocity, pelvis velocity and acceleration) or over its motions
  (violation), the mean over its motions (pelvis tilt at peak activation,
  peak activation); angular velocity over the 7
  ``PUBLISHED_OMEGA_COORDINATES`` only.

Two defects of the original code are **not** reproduced: pelvis tilt at
peak is taken at each motion's own peak (the original indexed a batch of
frames with the vector of peak frames and so averaged every motion's tilt at
every motion's peak), and the motion-capture row is one evaluation of the
test sessions (the original averaged the numbers of cumulative prefixes of
the session list). ``bench/bench_published.py`` measures both.

Rates are in real time: ``dt`` is the seconds between two frames of each
motion (``metrics.motion_sets.MotionSet.time_steps``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from metrics.distribution import published_w2, sample_entropies
from metrics.guidance import time_steps
from utils.constants import COORD_INDEX, PUBLISHED_OMEGA_COORDINATES, SYMMETRIC_PAIRS

PROTOCOLS = ("project", "published")
"""``project``: this project's per-motion metrics (the default);
``published``: the paper's per-folder aggregation, reference set and clip fitting."""

PUBLISHED_CLIP_MODE = "tile"
"""How the published protocol brings a repetition to the clip length."""

_OMEGA = [COORD_INDEX[c] for c in PUBLISHED_OMEGA_COORDINATES]
_LEFT = [COORD_INDEX[lft] for lft, _ in SYMMETRIC_PAIRS]
_RIGHT = [COORD_INDEX[rgt] for _, rgt in SYMMETRIC_PAIRS]
_TRANS = [COORD_INDEX[n] for n in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]
_TILT = COORD_INDEX["pelvis_tilt"]


def folders_of(subjects: Sequence[str]) -> dict[str, np.ndarray]:
    """Indices of the motions of each subject folder, folders sorted. {folder: (k,) int}"""
    labels = np.asarray(list(subjects), dtype=object)
    return {f: np.flatnonzero(labels == f) for f in sorted(set(labels.tolist()))}


def _over_folders(values: dict[str, float]) -> tuple[float, float]:
    v = np.asarray(list(values.values()), dtype=np.float64)
    return float(v.mean()), float(v.std())


def published_fidelity(motions: np.ndarray, subjects: Sequence[str], reference: np.ndarray) -> dict:
    """Published W2^2 of each folder against ``reference``, mean ± std over
    folders, and the entropy. (N, T, 33), N folder names, (M, T, 33) ->
    ``{"w2sq", "w2sq_std", "entropy", "entropy_std", "folders", "per_folder": {folder: {...}}}``."""
    groups = folders_of(subjects)
    ent = sample_entropies(np.asarray(motions, dtype=np.float64))
    per = {}
    for f, idx in groups.items():
        per[f] = {"n": int(len(idx)), "w2sq": published_w2(motions[idx], reference)["w2_squared"],
                  "entropy": float(ent[idx].mean())}
    w2sq, w2sq_std = _over_folders({f: r["w2sq"] for f, r in per.items()})
    _, ent_std = _over_folders({f: r["entropy"] for f, r in per.items()})
    return {"w2sq": w2sq, "w2sq_std": w2sq_std, "entropy": float(ent.mean()), "entropy_std": ent_std,
            "folders": len(groups), "per_folder": per}


def published_guidance_per_folder(
    motions: np.ndarray, subjects: Sequence[str], dt: float | np.ndarray,
    activations: np.ndarray | None = None, low: float = 0.35, high: float = 0.45,
) -> dict[str, dict[str, float]]:
    """The published guidance numbers of each subject folder.

    ``motions`` (N, T, 33) degrees / metres, ``subjects`` N folder names,
    ``dt`` seconds between frames (scalar or (N,)), ``activations`` (N, T, G)
    of the guided muscles or None. Per folder:

    - ``asymmetry_deg``: RMS over its motions, frames and the hip/knee/ankle
      flexion pairs of (left - right);
    - ``angular_velocity_rms_deg_s``: RMS over its motions, frames and the 7
      published coordinates of the forward difference / dt;
    - ``pelvis_velocity_rms_m_s`` / ``pelvis_acceleration_rms_m_s2``: RMS
      over its motions and frames of the norm of the pelvis translation's
      first / second forward difference in real time;
    - with activations: ``activation_peak`` (mean over motions of the peak,
      mean over guided muscles), ``pelvis_tilt_at_peak_deg`` (mean over
      motions of ``pelvis_tilt`` at that motion's own frame of peak mean
      activation), ``violation`` (RMS over motions and guided muscles of the
      hinge ``max(peak - high, low - peak, 0)``).

    -> ``{folder: {"n": k, name: value}}``, folders sorted.
    """
    x = np.asarray(motions, dtype=np.float64)
    step = time_steps(dt, len(x))[:, None, None]
    diff_lr = x[:, :, _LEFT] - x[:, :, _RIGHT]
    omega = np.diff(x[:, :, _OMEGA], axis=1) / step
    vel = np.diff(x[:, :, _TRANS], axis=1) / step
    acc = np.diff(x[:, :, _TRANS], n=2, axis=1) / step ** 2
    # per-motion mean squares; every motion has the same frame count, so the
    # folder RMS is the root of their mean
    sq = {
        "asymmetry_deg": np.square(diff_lr).mean(axis=(1, 2)),
        "angular_velocity_rms_deg_s": np.square(omega).mean(axis=(1, 2)),
        "pelvis_velocity_rms_m_s": np.square(vel).sum(axis=2).mean(axis=1),
        "pelvis_acceleration_rms_m_s2": np.square(acc).sum(axis=2).mean(axis=1),
    }
    means = {}
    if activations is not None:
        a = np.asarray(activations, dtype=np.float64)
        if a.ndim != 3 or a.shape[:2] != x.shape[:2]:
            raise ValueError(f"activations {a.shape} do not match motions {x.shape[:2]} (N, T, G)")
        if low > high:
            raise ValueError(f"band is empty: low={low} > high={high}")
        peaks = a.max(axis=1)
        hinge = np.maximum(np.maximum(peaks - high, low - peaks), 0.0)
        peak_frame = a.mean(axis=2).argmax(axis=1)
        sq["violation"] = np.square(hinge).mean(axis=1)
        means["activation_peak"] = peaks.mean(axis=1)
        means["pelvis_tilt_at_peak_deg"] = x[np.arange(len(x)), peak_frame, _TILT]
    out = {}
    for f, idx in folders_of(subjects).items():
        row = {"n": int(len(idx))}
        row.update({k: float(np.sqrt(v[idx].mean())) for k, v in sq.items()})
        row.update({k: float(v[idx].mean()) for k, v in means.items()})
        out[f] = row
    return out


def published_summary(per_folder: dict[str, dict[str, float]], label: str) -> dict:
    """Mean and (population) standard deviation over folders of every number
    of :func:`published_guidance_per_folder`. -> ``{"subject": label, "n",
    "folders", name, name + "_std", ...}``"""
    if not per_folder:
        raise ValueError(f"{label}: no subject folders to summarise")
    names = [k for k in next(iter(per_folder.values())) if k != "n"]
    row: dict = {"subject": label, "n": int(sum(r["n"] for r in per_folder.values())),
                 "folders": len(per_folder)}
    for name in names:
        row[name], row[f"{name}_std"] = _over_folders({f: r[name] for f, r in per_folder.items()})
    return row
