"""Write generated motions the way guidance writes them, so that the metric
scripts read baselines and BIGE alike.

Layout of one generation run (``<out-dir>/<exp-name>``)::

    run.log                                   options first, then progress
    <session>/entry_<k>_<exp-name>.mot        OpenSim-loadable, 33 canonical columns, degrees, real time
    <session>/entry_<k>_<exp-name>.npy        the same motion, (T, 33) float32, degrees / metres
    <session>/summary.json                    method, checkpoint, options, per-sample numbers

Real time: the ``.mot`` time column spans ``duration`` seconds, the mean
real duration of the subject's own squat repetitions
(:func:`dataset.subjects.mean_repetition_duration`), so the metrics compute
rates in seconds of real time; without a duration the clip is written at
``FRAME_RATE`` (60 Hz) and ``summary.json`` says so (``time_source``).

A subject folder is written completely in a hidden temporary sibling and
renamed into place, so it is never half written; an existing non-empty subject
folder is replaced only with ``overwrite=True`` (``--overwrite``), and
:func:`check_outputs` says so before any work starts.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from utils.constants import COORD_INDEX, COORDINATES, FRAME_RATE, N_COORDS, TRANSLATIONS
from utils.errors import UserError
from utils.fileio import OutputExistsError, atomic_save_npy, atomic_write_json, ensure_writable
from utils.motion_io import write_coordinates

SUMMARY_NAME = "summary.json"

SETTINGS_KEYS = ("method", "checkpoint", "vq_checkpoint", "surrogate_checkpoint", "muscles", "band", "num_runs",
                 "total_iter", "lr", "latent_unit", "floor_align", "schedule", "weights", "frames", "time_source",
                 "peak_window_s", "surrogate_lowpass_hz", "verify")
"""Keys of a subject's ``summary.json`` that must agree across the subjects
of one results folder: a folder mixing them (e.g. two activation bands after
``--overwrite`` on a subset of subjects) would be evaluated as one set. The
frame rate is not among them: each subject's clips span that subject's own
mean repetition duration (``time_source`` says so), so it differs by design."""


def entry_name(k: int, exp_name: str) -> str:
    """File stem of sample ``k``: ``entry_<k>_<exp-name>``."""
    return f"entry_{k}_{exp_name}"


def check_outputs(exp_dir: str | os.PathLike, session_ids: Iterable[str], overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` listing every subject folder of
    ``exp_dir`` that already holds results, unless ``overwrite``. Call it
    before generating anything."""
    if overwrite:
        return
    taken = []
    for sid in session_ids:
        try:
            ensure_writable(Path(exp_dir) / sid, overwrite=False)
        except OutputExistsError:
            taken.append(sid)
    if taken:
        raise OutputExistsError(
            f"{exp_dir}: results exist for {len(taken)} subject(s) ({', '.join(taken[:5])}"
            f"{', ...' if len(taken) > 5 else ''}); pass --overwrite to replace them or choose another --exp-name"
        )


def run_settings(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`SETTINGS_KEYS` of one summary, JSON-normalised (tuples as lists)."""
    return json.loads(json.dumps({k: summary[k] for k in SETTINGS_KEYS if k in summary}))


def check_uniform_settings(folder: str | os.PathLike, expected: Mapping[str, Any] | None = None,
                           skip: Iterable[str] = ()) -> None:
    """Raise :class:`UserError` if the subject folders of ``folder`` (except
    those in ``skip``) were generated with different settings, or with
    settings other than ``expected`` (only the keys ``expected`` holds are
    compared); the message names the two ``summary.json`` files and the keys."""
    folder = Path(folder)
    skipped = set(skip)
    summaries = sorted(p for p in folder.glob(f"*/{SUMMARY_NAME}") if p.parent.name not in skipped)
    reference_name, reference = "this run's options", None
    if expected is not None:
        reference = json.loads(json.dumps(dict(expected)))
    for path in summaries:
        try:
            settings = run_settings(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"{path}: unreadable summary ({err}); expected the JSON written with the samples") from None
        if reference is None:
            reference_name, reference = str(path), settings
            continue
        keys = [k for k in reference if k in settings and settings[k] != reference[k]]
        if keys:
            detail = "; ".join(f"{k}: {settings[k]!r} vs {reference[k]!r}" for k in keys[:3])
            raise UserError(f"{path}: generated with other settings than {reference_name} ({detail}); one results "
                            "folder must hold one setting: use another --exp-name, or regenerate every subject")


def sample_numbers(motion: np.ndarray) -> dict[str, float]:
    """Simple per-sample numbers of one motion (T, 33) in degrees / metres:
    squat depth (pelvis drop from the first frame, cm), peak knee and hip
    flexion (mean of both sides, degrees) and pelvis tilt range (degrees)."""
    ty = motion[:, COORD_INDEX["pelvis_ty"]]
    knee = motion[:, [COORD_INDEX["knee_angle_l"], COORD_INDEX["knee_angle_r"]]].mean(1)
    hip = motion[:, [COORD_INDEX["hip_flexion_l"], COORD_INDEX["hip_flexion_r"]]].mean(1)
    tilt = motion[:, COORD_INDEX["pelvis_tilt"]]
    return {
        "squat_depth_cm": float(100.0 * (ty[0] - ty.min())),
        "peak_knee_flexion_deg": float(knee.max()),
        "peak_hip_flexion_deg": float(hip.max()),
        "pelvis_tilt_range_deg": float(tilt.max() - tilt.min()),
    }


def write_subject_samples(
    exp_dir: str | os.PathLike,
    session_id: str,
    motions: np.ndarray,
    exp_name: str,
    overwrite: bool = False,
    info: Mapping[str, Any] | None = None,
    per_sample: Sequence[Mapping[str, Any]] | None = None,
    frame_rate: float = FRAME_RATE,
    duration: float | None = None,
) -> Path:
    """Write the generated motions of one subject into ``exp_dir/<session_id>``.

    ``motions`` (N, T, 33) canonical order, rotations in degrees, pelvis
    translations in metres. ``info`` goes into ``summary.json`` as is (method,
    checkpoint, sampler settings...); ``per_sample`` adds one dict per motion.
    ``duration`` (s, first to last frame) sets the time column of every
    ``.mot``; None writes them at ``frame_rate``.
    Returns the subject folder. Raises ``ValueError`` for a wrong shape or
    non-finite values (naming the subject and sample) before writing anything,
    :class:`OutputExistsError` if the folder holds results and not ``overwrite``.
    """
    motions = np.asarray(motions)
    if motions.ndim != 3 or motions.shape[2] != N_COORDS or motions.shape[0] < 1:
        raise ValueError(f"{session_id}: expected generated motions (N>=1, T, {N_COORDS}), got {motions.shape}")
    bad = np.flatnonzero(~np.isfinite(motions.reshape(len(motions), -1)).all(1))
    if len(bad):
        raise ValueError(f"{session_id}: generated sample(s) {bad.tolist()[:10]} hold NaN or infinite values")
    if per_sample is not None and len(per_sample) != len(motions):
        raise ValueError(f"{session_id}: {len(per_sample)} per-sample records for {len(motions)} motions")
    if duration is not None:
        if not (np.isfinite(duration) and duration > 0):
            raise ValueError(f"{session_id}: duration must be a positive number of seconds, got {duration}")
        frame_rate = (motions.shape[1] - 1) / float(duration)
    time_source = ("mean real duration of the subject's repetitions" if duration is not None
                   else f"assumed {frame_rate:g} Hz (no duration given)")
    exp_dir = Path(exp_dir)
    final = exp_dir / session_id
    ensure_writable(final, overwrite)
    exp_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{session_id}.", suffix=".tmp", dir=exp_dir))
    try:
        samples = []
        for k, motion in enumerate(motions):
            stem = entry_name(k, exp_name)
            write_coordinates(tmp / f"{stem}.mot", motion.astype(np.float64), frame_rate=frame_rate)
            atomic_save_npy(tmp / f"{stem}.npy", motion.astype(np.float32))
            record = {"index": k, "mot": f"{stem}.mot", "npy": f"{stem}.npy", **sample_numbers(motion)}
            if per_sample is not None:
                record.update(per_sample[k])
            samples.append(record)
        atomic_write_json(tmp / SUMMARY_NAME, {
            "session": session_id,
            "exp_name": exp_name,
            "num_samples": int(len(motions)),
            "frames": int(motions.shape[1]),
            "frame_rate": float(frame_rate),
            "duration_s": float((motions.shape[1] - 1) / frame_rate),
            "time_source": time_source,
            "coordinates": list(COORDINATES),
            "units": {"rotations": "degrees", "translations": "metres",
                      "translation_coordinates": sorted(TRANSLATIONS)},
            **dict(info or {}),
            "samples": samples,
        })
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished folder ``tmp`` to ``final``, replacing what is there."""
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
        old.rmdir()
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def read_subject_samples(folder: str | os.PathLike) -> np.ndarray:
    """The ``.npy`` samples of one subject folder in entry order. (N, T, 33)"""
    folder = Path(folder)
    files = sorted(folder.glob("entry_*.npy"), key=lambda p: int(p.stem.split("_")[1]))
    if not files:
        raise UserError(f"{folder}: no entry_*.npy samples")
    return np.stack([np.load(f) for f in files])

