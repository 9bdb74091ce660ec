"""Find the squat repetitions of an IK trial from its knee flexion, and write
the ``squat-segmentation-data/<session>.npy`` files an MCS-layout root needs.

    python -m dataset.segment <root>                 # every session without a segmentation file
    python -m dataset.segment <root> --dry-run       # print what would be written
    python -m dataset.segment <root> --overwrite     # replace existing files

The MCS dataset ships its segmentation; plain OpenCap sessions do not. A
repetition is a stretch where the mean knee flexion of both legs (smoothed
over ``--smooth`` seconds) rises above ``--core`` of the trial's squat range
(standing: the 5th percentile; deepest: the 99th), grown on both sides to
where it falls back below ``--onset`` of that range or to the lowest flexion
between it and its neighbour (a subject may not stand up fully between
repetitions), plus ``--margin`` seconds on each side, never overlapping the
next one. Stretches whose knees
flex less than ``--min-depth`` degrees above standing, or that last less than
``--min-duration`` seconds, are not repetitions. Frames are those of the
Kinematics file, ``end`` exclusive, as :func:`dataset.mcs.load_segmentation`
reads them.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset.mcs import DatasetError, data_dir, find_session, save_segmentation
from utils.constants import KNEE_COORDINATES
from utils.errors import UserError
from utils.motion_io import read_motion


@dataclass(frozen=True)
class SegmentConfig:
    """Thresholds of :func:`find_repetitions` (defaults: the ``python -m dataset.segment`` flags)."""

    min_depth_deg: float = 20.0
    core: float = 0.35
    onset: float = 0.03
    margin_s: float = 0.2
    smooth_s: float = 0.1
    min_duration_s: float = 0.4

    def __post_init__(self) -> None:
        if not (self.min_depth_deg > 0 and 0 < self.onset < self.core < 1 and self.margin_s >= 0
                and self.smooth_s >= 0 and self.min_duration_s >= 0):
            raise UserError(f"segmentation needs min depth > 0, 0 < onset < core < 1 and non-negative times; "
                            f"got {self}")


def find_repetitions(knee_deg: np.ndarray, times: np.ndarray,
                     config: SegmentConfig = SegmentConfig()) -> list[tuple[int, int]]:
    """Squat repetitions of one trial: ``[(start, end), ...]`` frame ranges,
    ``end`` exclusive, in time order. ``knee_deg`` (T,) mean knee flexion in
    degrees, ``times`` (T,) seconds (any rate)."""
    knee = np.asarray(knee_deg, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if knee.ndim != 1 or t.shape != knee.shape or len(knee) < 3:
        raise ValueError(f"need (T,) knee angles and times of the same length >= 3; got {knee.shape}, {t.shape}")
    dt = float(np.median(np.diff(t)))
    width = max(1, int(round(config.smooth_s / dt)))
    smooth = np.convolve(np.pad(knee, (width // 2, width - 1 - width // 2), mode="edge"),
                         np.ones(width) / width, mode="valid")
    standing = float(np.percentile(smooth, 5))
    squat = float(np.percentile(smooth, 99)) - standing
    if squat < config.min_depth_deg:
        return []
    cores = [(a, b) for a, b in _runs(smooth > standing + config.core * squat)
             if smooth[a:b].max() - standing >= config.min_depth_deg]
    low = smooth < standing + config.onset * squat
    margin = int(round(config.margin_s / dt))
    out: list[tuple[int, int]] = []
    for k, (a, b) in enumerate(cores):
        # neighbours split at the lowest knee flexion between them (the subject may not stand up fully)
        left = cores[k - 1][1] + int(np.argmin(smooth[cores[k - 1][1]:a])) if k else 0
        right = b + int(np.argmin(smooth[b:cores[k + 1][0]])) if k + 1 < len(cores) else len(smooth)
        start, end = a, b
        while start > left and not low[start - 1]:
            start -= 1
        while end < right and not low[end]:
            end += 1
        if t[end - 1] - t[start] < config.min_duration_s:
            continue
        out.append((max(left, start - margin), min(right, end + margin)))
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` of the True runs of a (T,) boolean mask, end exclusive."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def segment_trial(path: str | Path, config: SegmentConfig = SegmentConfig()
                  ) -> tuple[list[tuple[int, int]], np.ndarray]:
    """:func:`find_repetitions` of an IK file (``.mot`` / ``.sto``; needs both
    knee angles), and the file's times (s)."""
    motion = read_motion(path)
    knees = motion.coordinates(KNEE_COORDINATES, degrees=True)
    return find_repetitions(knees.mean(axis=1), motion.times, config), motion.times


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="MCS-layout root (<root>/Data/<session>/OpenSimData/Kinematics/*sqt*.mot|.sto)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing squat-segmentation-data/<session>.npy files (default: keep them)")
    p.add_argument("--dry-run", action="store_true", help="print the repetitions found, write nothing")
    d = SegmentConfig()
    p.add_argument("--min-depth", type=float, default=d.min_depth_deg,
                   help="least knee flexion above standing, degrees, for a repetition")
    p.add_argument("--core", type=float, default=d.core,
                   help="a repetition is found where the smoothed knee flexion exceeds this fraction of the trial's "
                        "squat range above standing")
    p.add_argument("--onset", type=float, default=d.onset,
                   help="a repetition starts and ends where the smoothed knee flexion crosses this fraction of "
                        "the trial's squat range above standing")
    p.add_argument("--margin", type=float, default=d.margin_s,
                   help="seconds of standing kept before and after each repetition")
    p.add_argument("--smooth", type=float, default=d.smooth_s, help="moving-average window on the knee angle, s")
    p.add_argument("--min-duration", type=float, default=d.min_duration_s,
                   help="shortest repetition, seconds (shorter flexions are not squats)")
    return p


def main(args: argparse.Namespace) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """Segment every squat trial of every session of ``args.root``; write one
    file per session that has repetitions. Returns {session: {trial: ranges}}."""
    config = SegmentConfig(args.min_depth, args.core, args.onset, args.margin, args.smooth, args.min_duration)
    base = data_dir(args.root)
    seg_dir = base.parent / "squat-segmentation-data"
    found: dict[str, dict[str, list[tuple[int, int]]]] = {}
    kept = 0
    for folder in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
        session = find_session(folder)
        target = seg_dir / f"{session.id}.npy"
        if target.exists() and not (args.overwrite or args.dry_run):
            print(f"{session.id}: {target} exists, kept (--overwrite replaces it)")
            kept += 1
            continue
        trials = {}
        for trial, path in sorted(session.trials.items()):
            reps, times = segment_trial(path, config)
            if reps:
                trials[trial] = reps
                spans = ", ".join(f"{times[a]:.2f}-{times[b - 1]:.2f} s" for a, b in reps)
                print(f"{session.id}: {trial}: {len(reps)} repetition(s): {spans}")
        if not trials:
            print(f"{session.id}: no squat repetition found in "
                  + (", ".join(p.name for p in session.trials.values()) or "no *sqt* Kinematics file"))
            continue
        found[session.id] = trials
        if not args.dry_run:
            save_segmentation(target, trials)
            print(f"  wrote {target}")
    if not found and not kept:
        raise DatasetError(f"{base}: no squat repetition found in any session")
    return found


if __name__ == "__main__":
    from utils.cli import run

    run(main, get_args_parser(), prog="python -m dataset.segment")
