"""Load a set of motions to evaluate: a folder of generated motions (``.mot``
or ``.npy``, searched recursively) or the motion-capture repetitions of an
MCS-layout root.

Generated folders are laid out as guidance writes them, one sub-folder per
subject: ``<folder>/<session>/entry_<k>_<exp>.mot``. A ``.npy`` file holds one
motion (T, 33) or a stack (N, T, 33), canonical coordinate order, rotations in
degrees, translations in metres. The subject of a file is the first
session-like id (UUID) in its path below the folder, else its first
sub-folder, else the folder's own name.

Nothing is dropped silently: a file (or one motion of a stack) that cannot be
used is listed in :attr:`MotionSet.skipped` with the reason, and motions of
another length are brought to the clip length with
:func:`dataset.clips.fit_length` and listed in :attr:`MotionSet.refitted`.

Real time: every motion carries the seconds between two of its stored frames
(:attr:`MotionSet.time_steps`), taken from the ``.mot`` file's time column
(for a ``.npy``, from its ``.mot`` twin) and from the repetition's real
duration for motion capture, so rates are never computed at an assumed
60 Hz for a clip whose time was stretched. A ``.npy`` without a twin has no
time column: 60 Hz is assumed and a warning says so.

:func:`as_written` gives the motions and time steps this module reads back
from the files the project's writer makes of given motions (guidance's
``--verify`` simulates those, so its simulations are the ones a metric script
reading the results folder would run, and share its simulation cache).
"""
from __future__ import annotations

import os
import re
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dataset.clips import clip_time_step, fit_length
from dataset.mcs import DatasetError, is_mcs_root
from dataset.repetitions import load_repetitions
from utils.constants import CLIP_LENGTH, COORDINATES, FRAME_RATE, ROTATION_MASK
from utils.errors import BigeError, UserError
from utils.generation_output import check_uniform_settings, entry_name, write_subject_samples
from utils.motion_io import MotionFileError, read_motion

FILE_TYPES = ("mot", "npy")
KINDS = ("mocap", "mot", "npy")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ROT = np.array(ROTATION_MASK)


class MotionSetError(BigeError, ValueError):
    """A set of motions cannot be evaluated; the message names the folder or files."""


@dataclass
class MotionSet:
    """Motions ready for the metrics.

    ``motions`` (N, length, 33) float32, canonical order, degrees / metres;
    ``subjects`` and ``files`` one entry per motion (a motion from a stack is
    named ``file.npy[k]``, a mocap repetition ``file#trial-index``);
    ``skipped`` (path, reason) for every unusable file or motion; ``refitted``
    (path, original frame count) for every motion brought to ``length``;
    ``activations`` (N, length, M) for ``muscles`` when the source has them
    (mocap muscle-driven simulations); ``time_steps`` (N,) seconds between
    two stored frames of each motion (real time, see the module docstring).
    """

    motions: np.ndarray
    subjects: list[str]
    files: list[str]
    kind: str
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    refitted: list[tuple[str, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    activations: np.ndarray | None = None
    muscles: tuple[str, ...] = ()
    time_steps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.motions)

    def describe(self) -> str:
        """One line: counts of motions, subjects, skipped and refitted files."""
        text = (f"{self.source} ({self.kind}): {len(self)} motions from {len(set(self.subjects))} subject(s)")
        if self.refitted:
            text += f", {len(self.refitted)} brought to {self.motions.shape[1]} frames"
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        return text

    def report_lines(self, limit: int = 20) -> list[str]:
        """Human-readable lines listing skipped and refitted files and warnings."""
        lines = [self.describe()]
        for path, reason in self.skipped[:limit]:
            lines.append(f"  skipped {path}: {reason}")
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more skipped (all listed in the JSON output)")
        for path, frames in self.refitted[:limit]:
            lines.append(f"  {path}: {frames} frames, brought to {self.motions.shape[1]}")
        if len(self.refitted) > limit:
            lines.append(f"  ... and {len(self.refitted) - limit} more brought to {self.motions.shape[1]} frames")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return lines

    def select(self, mask: Sequence[bool] | np.ndarray) -> "MotionSet":
        """The motions where ``mask`` is true (skipped/refitted lists kept)."""
        keep = np.flatnonzero(np.asarray(mask, dtype=bool))
        return MotionSet(
            motions=self.motions[keep], subjects=[self.subjects[i] for i in keep],
            files=[self.files[i] for i in keep], kind=self.kind, source=self.source,
            skipped=list(self.skipped), refitted=list(self.refitted), warnings=list(self.warnings),
            activations=None if self.activations is None else self.activations[keep], muscles=self.muscles,
            time_steps=None if self.time_steps is None else self.time_steps[keep],
        )

    def frame_times(self) -> np.ndarray:
        """Seconds between two stored frames of each motion; 1/60 s where unknown. (N,)"""
        if self.time_steps is None:
            return np.full(len(self), 1.0 / FRAME_RATE)
        return np.asarray(self.time_steps, dtype=np.float64)


# ----------------------------------------------------------------------------- folder layout


def subject_of(path: Path, folder: Path) -> str:
    """Subject id of a motion file: the first UUID in its path below
    ``folder``, else its first sub-folder, else ``folder``'s name."""
    rel = path.relative_to(folder)
    for part in rel.parts:
        match = _UUID.search(part)
        if match:
            return match.group(0)
    return rel.parts[0] if len(rel.parts) > 1 else folder.resolve().name


def find_motion_files(folder: str | os.PathLike, file_type: str) -> list[Path]:
    """Every ``.<file_type>`` file below ``folder`` (recursive, sorted, hidden
    files and folders ignored). Raises :class:`MotionSetError` if the folder
    does not exist."""
    if file_type not in FILE_TYPES:
        raise MotionSetError(f"unknown file type {file_type!r}; expected one of {FILE_TYPES}")
    folder = Path(folder)
    if not folder.is_dir():
        raise MotionSetError(f"{folder}: folder does not exist")
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(f".{file_type}"):
                found.append(Path(dirpath) / name)
    return found


def detect_kind(path: str | os.PathLike) -> str:
    """``mocap`` for an MCS root, else ``mot`` or ``npy`` by the files found
    (``npy`` when every ``.mot`` has an ``.npy`` twin of the same name)."""
    path = Path(path)
    if not path.is_dir():
        raise MotionSetError(f"{path}: folder does not exist")
    if is_mcs_root(path):
        return "mocap"
    found = {t: find_motion_files(path, t) for t in FILE_TYPES}
    present = [t for t, files in found.items() if files]
    if not present:
        raise MotionSetError(f"{path}: no .mot or .npy files found (searched recursively)")
    if len(present) > 1:
        stems = {t: {f.with_suffix("") for f in files} for t, files in found.items()}
        if stems["mot"] == stems["npy"]:
            return "npy"  # twins, as guidance writes them: the arrays are exact and fast to read
        raise MotionSetError(f"{path}: holds both .mot ({len(found['mot'])}) and .npy ({len(found['npy'])}) "
                             "files that are not twins; say which to use with --file_type")
    return present[0]


# ----------------------------------------------------------------------------- reading


_Read = tuple[list[np.ndarray], list[tuple[str, str]], bool, float | None]
"""Motions (T, 33) of one file, (path, reason) of its problems, whether it is
a stack, and the real duration (s) from its first to its last frame (None: no
time column)."""


def _read_mot(path: Path) -> _Read:
    try:
        motion = read_motion(path)
        duration = float(motion.times[-1] - motion.times[0]) if motion.n_frames > 1 else None
        return [motion.coordinates(COORDINATES, degrees=True)], [], False, duration
    except MotionFileError as err:
        where = f"{path}:{err.line}" if err.line is not None else f"{path}"
        reason = str(err).removeprefix(where).removeprefix(": ") or "unreadable"
        return [], [(str(path), f"line {err.line}: {reason}" if err.line is not None else reason)], False, None


def _twin_duration(path: Path, frames: int) -> float | None:
    """Real duration (s) of a ``.npy`` motion from its ``.mot`` twin's time
    column, when the twin exists, reads and has the same frame count."""
    twin = path.with_suffix(".mot")
    if not twin.is_file():
        return None
    try:
        times = read_motion(twin).times
    except MotionFileError:
        return None
    return float(times[-1] - times[0]) if len(times) == frames and frames > 1 else None


def _read_npy(path: Path) -> _Read:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        return [], [(str(path), f"cannot read as a numeric .npy array ({err})")], False, None
    if not np.issubdtype(arr.dtype, np.number):
        return [], [(str(path), f"dtype {arr.dtype} is not numeric")], False, None
    stacked, shape = arr.ndim == 3, arr.shape
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[2] != len(COORDINATES):
        return [], [(str(path), f"shape {shape}: expected (T, {len(COORDINATES)}) or (N, T, "
                                f"{len(COORDINATES)}) in canonical coordinate order")], False, None
    if arr.shape[0] == 0:
        return [], [(str(path), f"shape {arr.shape}: an empty stack")], True, None
    duration = None if stacked else _twin_duration(path, arr.shape[1])
    return [a for a in arr.astype(np.float64)], [], stacked, duration


def _read_one(args: tuple[Path, str]) -> _Read:
    path, file_type = args
    return _read_mot(path) if file_type == "mot" else _read_npy(path)


def _check_motion(x: np.ndarray) -> str | None:
    """Why motion ``x`` (T, 33) is unusable, or None."""
    if x.shape[0] < 2:
        return f"{x.shape[0]} frame(s); need at least 2"
    bad = ~np.isfinite(x)
    if bad.any():
        frame, col = np.argwhere(bad)[0]
        return (f"{int(bad.sum())} non-finite value(s), first at frame {frame} "
                f"({COORDINATES[col]} = {x[frame, col]})")
    return None


def load_folder(
    folder: str | os.PathLike, file_type: str = "mot", length: int = CLIP_LENGTH,
    clip_mode: str = "resample", workers: int = 1, strict: bool = False, progress: bool = True,
) -> MotionSet:
    """Every motion in ``.<file_type>`` files below ``folder``.

    Unusable files (unreadable, missing coordinates, wrong shape, NaN, fewer
    than 2 frames) are skipped and listed; with ``strict`` any such file is
    an error. Raises :class:`MotionSetError` when nothing usable remains.
    """
    folder = Path(folder)
    paths = find_motion_files(folder, file_type)
    if not paths:
        other = [t for t in FILE_TYPES if t != file_type and find_motion_files(folder, t)]
        hint = f" (it holds .{other[0]} files: use --file_type {other[0]})" if other else ""
        raise MotionSetError(f"{folder}: no .{file_type} files found (searched recursively){hint}")
    jobs = [(p, file_type) for p in paths]
    if workers > 1 and len(paths) >= 4 * workers:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(_progress(pool.map(_read_one, jobs, chunksize=max(1, len(jobs) // (8 * workers))),
                                     len(jobs), progress, f"reading {folder.name}"))
    else:
        results = [_read_one(j) for j in _progress(jobs, len(jobs), progress, f"reading {folder.name}")]

    motions, subjects, files, skipped, refitted, steps, untimed = [], [], [], [], [], [], []
    for path, (arrays, errors, stacked, duration) in zip(paths, results):
        skipped.extend(errors)
        for k, x in enumerate(arrays):
            name = f"{path}[{k}]" if stacked else str(path)
            reason = _check_motion(x)
            if reason:
                skipped.append((name, reason))
                continue
            if duration is None or not duration > 0:
                untimed.append(name)
                duration = (x.shape[0] - 1) / FRAME_RATE
            steps.append(clip_time_step(duration, x.shape[0], length, clip_mode))
            if x.shape[0] != length:
                refitted.append((name, int(x.shape[0])))
                x = fit_length(x, length, clip_mode)
            motions.append(x)
            subjects.append(subject_of(path, folder))
            files.append(name)
    if strict and skipped:
        listing = "\n".join(f"  {p}: {r}" for p, r in skipped)
        raise MotionSetError(f"{folder}: {len(skipped)} unusable file(s) (--strict):\n{listing}")
    if not motions:
        listing = "\n".join(f"  {p}: {r}" for p, r in skipped[:20])
        raise MotionSetError(f"{folder}: none of the {len(paths)} .{file_type} file(s) is usable:\n{listing}")
    result = MotionSet(np.stack(motions).astype(np.float32), subjects, files, file_type, str(folder),
                       skipped, refitted, time_steps=np.asarray(steps))
    result.warnings.extend(_unit_warnings(result.motions))
    if untimed:
        result.warnings.append(f"{len(untimed)} motion(s) without a time column (e.g. {untimed[0]}): "
                               f"{FRAME_RATE:g} Hz assumed for their rates")
    return result


def _unit_warnings(motions: np.ndarray) -> list[str]:
    rot = np.abs(motions[..., _ROT])
    if rot.size and rot.max() <= np.pi + 1e-3:
        return [f"every rotation lies within +-{rot.max():.3f}: the motions look like radians, "
                "but degrees are expected (.npy files must hold degrees)"]
    return []


def _progress(iterable, total: int, enabled: bool, desc: str):
    if not enabled or total < 50:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="file", leave=False)


def load_mocap(
    root: str | os.PathLike, split: str = "test", length: int = CLIP_LENGTH, clip_mode: str = "resample",
    split_file: str | os.PathLike | None = None, with_activations: bool = False,
) -> MotionSet:
    """The segmented motion-capture repetitions of ``split`` (test/train/all)
    of an MCS root (``<root>`` or ``<root>/Data``), via
    :func:`dataset.repetitions.load_repetitions`.

    With ``with_activations`` the repetitions come from the muscle-driven
    simulation files, which carry activations (kinematics then come from
    those files too).
    """
    try:
        reps = load_repetitions(root, split=split, source="dynamics" if with_activations else "kinematics",
                                length=length, clip_mode=clip_mode, split_file=split_file)
    except (DatasetError, MotionFileError) as err:
        raise MotionSetError(f"{root}: cannot load the {split} motion-capture repetitions: {err}") from None
    files = [f"{f}#{t}-{i}" for f, t, i in zip(reps.files, reps.trials, reps.indices)]
    result = MotionSet(np.asarray(reps.motions, dtype=np.float32), list(reps.sessions), files, "mocap",
                       str(root), activations=reps.activations, muscles=tuple(reps.muscles),
                       time_steps=reps.time_steps())
    bad = ~np.isfinite(result.motions).reshape(len(result), -1).all(axis=1)
    if bad.any():
        result.skipped.extend((files[i], "non-finite values") for i in np.flatnonzero(bad))
        result = result.select(~bad)
        if not len(result):
            raise MotionSetError(f"{root}: every {split} repetition holds non-finite values")
    return result


def load_motion_set(
    path: str | os.PathLike, kind: str = "auto", split: str = "test", length: int = CLIP_LENGTH,
    clip_mode: str = "resample", split_file: str | os.PathLike | None = None, workers: int = 1,
    strict: bool = False, with_activations: bool = False, progress: bool = True,
) -> MotionSet:
    """A folder of generated motions or an MCS root, its ``kind`` detected
    (``auto``) or given (``mocap`` | ``mot`` | ``npy``)."""
    if kind == "auto":
        kind = detect_kind(path)
    if kind not in KINDS:
        raise MotionSetError(f"unknown kind {kind!r}; expected auto or one of {KINDS}")
    if kind == "mocap":
        if not is_mcs_root(path):
            raise MotionSetError(f"{path}: not an MCS dataset root (expected <root>/Data/<session>/OpenSimData)")
        return load_mocap(path, split, length, clip_mode, split_file, with_activations)

    try:
        check_uniform_settings(path)  # a folder mixing settings is not one set of motions
    except UserError as err:
        raise MotionSetError(str(err)) from None
    return load_folder(path, kind, length, clip_mode, workers, strict, progress)


# ----------------------------------------------------------------------------- as the files hold them

_ROUND_TRIP_SUBJECT, _ROUND_TRIP_EXP = "written", "as_written"
"""Subject folder and experiment name of the temporary files :func:`as_written` writes."""


def as_written(motions: np.ndarray, duration: float | None = None, frame_rate: float = FRAME_RATE,
               kind: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The motions and time steps :func:`load_motion_set` reads back from the
    files :func:`utils.generation_output.write_subject_samples` writes of
    ``motions`` with ``duration`` / ``frame_rate`` (the writer's own
    arguments), at their own length: what a metric script reading the results
    folder evaluates, and the exact inputs its simulation cache is keyed by.

    The files are written to a temporary folder and read with ``kind``
    (``auto``: the ``.npy`` twins and the ``.mot`` time column, as for a
    results folder), so the writer's and the reader's rounding (float32
    samples, the time column's printed digits) are those of real files.
    Motions holding NaN or infinite values cannot be written: they come back
    as they are, with a NaN time step (a simulation refuses them).
    (N, T, 33) degrees / metres -> ((N, T, 33) float32, (N,) seconds between frames)
    """
    x = np.asarray(motions)
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"expected motions (N>=1, T, {len(COORDINATES)}), got shape {x.shape}")
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    out, steps = x.astype(np.float32), np.full(len(x), np.nan)
    if not finite.any():
        return out, steps
    with tempfile.TemporaryDirectory(prefix="as_written.") as tmp:
        write_subject_samples(tmp, _ROUND_TRIP_SUBJECT, x[finite], _ROUND_TRIP_EXP, duration=duration,
                              frame_rate=frame_rate)
        mset = load_motion_set(tmp, kind, length=x.shape[1], progress=False)
    index = {entry_name(k, _ROUND_TRIP_EXP): k for k in range(int(finite.sum()))}
    order = [index[Path(f).stem] for f in mset.files]  # files come in name order: entry_10 before entry_2
    if len(mset) != len(index) or sorted(order) != list(range(len(index))):
        raise MotionSetError(f"{len(index)} motions written, {len(mset)} read back: {mset.skipped[:3]}")
    rows = np.flatnonzero(finite)[order]
    out[rows], steps[rows] = mset.motions, mset.frame_times()
    return out, steps
