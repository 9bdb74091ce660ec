"""Extract fixed-length squat repetitions from an MCS-layout root into arrays.

Kinematics come either from the whole-trial inverse-kinematics files cut by the
segmentation (``source="kinematics"``) or from the muscle-driven Dynamics
files, which also carry activations (``source="dynamics"``). Parsed results are
cached as ``.npz`` keyed by the reader version, the options, the sessions and
every input file (trials, segmentation, Dynamics, split), so a second run does
not re-parse text and a corrected file is never shadowed by an old result.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dataset.clips import clip_time_step, fit_length
from dataset.mcs import DatasetError, Repetition, Session, dataset_root, discover
from dataset.plausibility import check_plausible
from dataset.split import split_sessions
from utils.constants import CLIP_LENGTH, COORD_INDEX, COORDINATES, MUSCLES, READER_VERSION
from utils.errors import UserError
from utils.fileio import atomic_save_npz
from utils.motion_io import Motion, MotionFileError, read_motion

_LOG = logging.getLogger(__name__)

SOURCES = ("kinematics", "dynamics")
SPLITS = ("train", "test", "all")


@dataclass
class RepetitionSet:
    """Repetitions as arrays.

    ``motions`` (N, T, 33) float32, canonical coordinate order, rotations in
    degrees, translations in metres. ``activations`` (N, T, M) float32 in
    [0, 1] for ``muscles`` (only with ``source="dynamics"``).

    Physical time: ``durations`` (N,) seconds from the first to the last
    frame of each repetition in its source file, and ``frame_rates`` (N,) the
    source's sampling rate, Hz (from the file's time column). ``clip_mode``
    says how the clips were brought to T frames, so :meth:`time_steps` gives
    the seconds between two frames of each stored clip. ``None`` when
    unknown (sets built by hand).
    """

    motions: np.ndarray
    sessions: list[str]
    trials: list[str]
    indices: list[int]
    activations: np.ndarray | None = None
    muscles: tuple[str, ...] = ()
    coordinates: tuple[str, ...] = COORDINATES
    files: list[str] = field(default_factory=list)
    durations: np.ndarray | None = None
    frame_rates: np.ndarray | None = None
    clip_mode: str = "resample"

    def __len__(self) -> int:
        return len(self.motions)

    def select(self, mask: np.ndarray | Sequence[bool]) -> "RepetitionSet":
        """The repetitions where ``mask`` is true."""
        keep = np.flatnonzero(np.asarray(mask, dtype=bool))
        return RepetitionSet(
            motions=self.motions[keep],
            sessions=[self.sessions[i] for i in keep],
            trials=[self.trials[i] for i in keep],
            indices=[self.indices[i] for i in keep],
            activations=None if self.activations is None else self.activations[keep],
            muscles=self.muscles, coordinates=self.coordinates,
            files=[self.files[i] for i in keep] if self.files else [],
            durations=None if self.durations is None else self.durations[keep],
            frame_rates=None if self.frame_rates is None else self.frame_rates[keep],
            clip_mode=self.clip_mode,
        )

    def time_steps(self) -> np.ndarray:
        """Seconds between two consecutive frames of each stored clip. (N,)

        ``resample`` spreads the repetition's real duration over the T frames
        (``duration / (T - 1)``); ``tile`` keeps the source's frame interval
        (``1 / frame_rate``). Raises ``ValueError`` when the set carries no
        time information."""
        if self.durations is None or self.frame_rates is None:
            raise ValueError("this repetition set carries no durations (built without dataset.repetitions)")
        n_source = np.rint(np.asarray(self.durations) * np.asarray(self.frame_rates)).astype(int) + 1
        return np.array([clip_time_step(d, n, self.motions.shape[1], self.clip_mode)
                         for d, n in zip(self.durations, n_source)])

    def mean_duration(self, session: str) -> float:
        """Mean real duration (s) of the repetitions of ``session``."""
        if self.durations is None:
            raise ValueError("this repetition set carries no durations (built without dataset.repetitions)")
        mine = [d for s, d in zip(self.sessions, self.durations) if s == session]
        if not mine:
            raise ValueError(f"no repetitions of session {session}")
        return float(np.mean(mine))

    def of_sessions(self, session_ids: Sequence[str]) -> "RepetitionSet":
        wanted = set(session_ids)
        return self.select([s in wanted for s in self.sessions])


def cache_dir(root: str | os.PathLike) -> Path:
    """``$BIGE_CACHE_DIR``, else ``<root>/.bige_cache`` if writable, else ``~/.cache/bige``."""
    env = os.environ.get("BIGE_CACHE_DIR")
    if env:
        return Path(env)
    local = dataset_root(root) / ".bige_cache"
    if os.access(local.parent, os.W_OK):
        return local
    return Path.home() / ".cache" / "bige"


def select_sessions(
    sessions: list[Session], split: str, root: str | os.PathLike,
    split_file: str | os.PathLike | None = None, seed: int = 0,
) -> list[Session]:
    """The sessions of ``split`` (train/test/all)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {SPLITS}")
    if split == "all":
        return sessions
    train, test = split_sessions([s.id for s in sessions], root=dataset_root(root),
                                 split_file=split_file, seed=seed)
    wanted = set(train if split == "train" else test)
    return [s for s in sessions if s.id in wanted]


def load_repetitions(
    root: str | os.PathLike,
    split: str = "train",
    source: str = "kinematics",
    length: int = CLIP_LENGTH,
    clip_mode: str = "resample",
    split_file: str | os.PathLike | None = None,
    seed: int = 0,
    sessions: Sequence[str] | None = None,
    use_cache: bool = True,
) -> RepetitionSet:
    """Load every squat repetition of ``split`` (or of the named ``sessions``)."""
    if source not in SOURCES:
        raise UserError(f"unknown source {source!r}; expected one of {SOURCES}")
    found = discover(root)
    if sessions is not None:
        wanted = set(sessions)
        unknown = wanted - {s.id for s in found}
        if unknown:
            raise DatasetError(f"{root}: no squat data for session(s) {', '.join(sorted(unknown))}")
        chosen = [s for s in found if s.id in wanted]
    else:
        chosen = select_sessions(found, split, root, split_file, seed)
    by_id = {s.id: s for s in chosen}
    reps = [r for s in chosen for r in s.repetitions()]
    if source == "dynamics":
        reps = [r for r in reps if r.dynamics is not None]
    else:
        reps = _without_unsegmented_of_segmented_trials(reps, by_id)
    if not reps:
        raise DatasetError(f"{root}: no {source} repetitions in split {split!r}")
    inputs = sorted({str(p) for p in _input_files(reps, by_id, source)})
    key = _cache_key(inputs, source, length, clip_mode, _key_files(root, chosen, reps, split_file),
                     [s.id for s in chosen])
    cache_path = cache_dir(root) / f"reps_{key}.npz"
    if use_cache and cache_path.is_file():
        try:
            return _load_cached(cache_path)
        except (OSError, ValueError, KeyError):
            pass
    result = _extract(reps, by_id, source, length, clip_mode)
    if use_cache:
        try:
            _save_cached(cache_path, result)
        except OSError:
            pass
    return result


def _without_unsegmented_of_segmented_trials(reps: list[Repetition], by_id: dict[str, Session]) -> list[Repetition]:
    """``reps`` less the repetitions of a trial the segmentation cuts that only a
    Dynamics folder knows (e.g. ``SQT01_segment_4`` where the segmentation
    lists three): they have no motion-capture frames, and their muscle-driven
    file is a simulation, not motion capture; a warning names them."""
    stray = [r for r in reps if r.start is None and r.trial in by_id[r.session].segments]
    if stray:
        shown = ", ".join(str(r.dynamics) for r in stray[:3]) + (" ..." if len(stray) > 3 else "")
        _LOG.warning("%d repetition(s) of segmented trials are in a Dynamics folder but not in their segmentation "
                     "file, so they have no motion-capture frames; left out of the kinematics: %s", len(stray), shown)
    return [r for r in reps if r not in stray]


def _input_files(reps: list[Repetition], by_id: dict[str, Session], source: str) -> list[Path]:
    """The file each repetition is read from. With ``source="kinematics"`` a
    repetition the segmentation names comes from its trial's Kinematics file,
    which must exist (:meth:`Session.trial_file` raises naming the
    segmentation, never falling back to the simulated Dynamics file); only a
    repetition known from a Dynamics folder alone (no segmentation of its
    trial) is read from that muscle-driven file."""
    if source == "dynamics":
        return [r.dynamics for r in reps]
    return [by_id[r.session].trial_file(r.trial) if r.start is not None else r.dynamics for r in reps]


def _extract(reps: list[Repetition], by_id: dict[str, Session], source: str,
             length: int, clip_mode: str) -> RepetitionSet:
    motions, acts, files, durations, rates = [], [], [], [], []
    parsed: dict[Path, Motion] = {}
    checked: set[Path] = set()

    def get(path: Path) -> Motion:
        if path not in parsed:
            parsed[path] = read_motion(path)
        return parsed[path]

    muscles: tuple[str, ...] = ()
    if source == "dynamics":
        present = [set(m for m in MUSCLES if get(r.dynamics).has(m)) for r in reps]
        union = set.union(*present)
        for r, found in zip(reps, present):  # a muscle missing from one file must not vanish from the dataset
            lacking = [m for m in MUSCLES if m in union and m not in found]
            if lacking:
                raise DatasetError(f"{r.dynamics}: no activation column for {', '.join(lacking[:5])}"
                                   f"{' ...' if len(lacking) > 5 else ''} ({len(lacking)} muscle(s)), which the "
                                   "other Dynamics files hold; expected the same muscles in every file")
        muscles = tuple(m for m in MUSCLES if m in union)
        if not muscles:
            raise DatasetError(f"{reps[0].dynamics}: no muscle activation columns found")
    for r, path in zip(reps, _input_files(reps, by_id, source)):
        motion = get(path)
        coords = motion.coordinates(COORDINATES, degrees=True)
        times = motion.times
        if path not in checked:
            check_plausible(coords, path)
            checked.add(path)
        if source == "kinematics" and r.start is not None:
            if r.end > motion.n_frames:
                raise DatasetError(
                    f"{path}: segmentation asks for frames {r.start}-{r.end} but the trial has {motion.n_frames}"
                )
            coords, times = coords[r.start:r.end], times[r.start:r.end]
        if coords.shape[0] < 2:
            raise MotionFileError(path, f"repetition {r.trial} #{r.index} has fewer than 2 frames")
        motions.append(fit_length(coords, length, clip_mode, times=times))
        durations.append(float(times[-1] - times[0]))
        rates.append((len(times) - 1) / durations[-1])
        if source == "dynamics":
            act = motion.columns(muscles)
            if act.min() < -1e-6 or act.max() > 1 + 1e-6:
                raise MotionFileError(path, f"activations outside [0, 1] ({act.min():.3g} .. {act.max():.3g})")
            acts.append(np.clip(fit_length(act, length, clip_mode, times=times), 0.0, 1.0))
        files.append(str(path))
    return RepetitionSet(
        motions=np.stack(motions).astype(np.float32),
        sessions=[r.session for r in reps], trials=[r.trial for r in reps],
        indices=[r.index for r in reps],
        activations=np.stack(acts).astype(np.float32) if acts else None,
        muscles=muscles, files=files,
        durations=np.asarray(durations), frame_rates=np.asarray(rates), clip_mode=clip_mode,
    )


def _key_files(root: str | os.PathLike, chosen: list[Session], reps: list[Repetition],
               split_file: str | os.PathLike | None = None) -> list[Path]:
    """Every other file whose content changes the result: the sessions'
    segmentation files, their Dynamics files and the split file."""
    base = dataset_root(root)
    files = [base / "squat-segmentation-data" / f"{s.id}.npy" for s in chosen]
    files += [r.dynamics for r in reps if r.dynamics is not None]
    files.append(Path(split_file) if split_file else base / "split.json")
    return files


def _cache_key(inputs: list[str], source: str, length: int, clip_mode: str,
               extra_files: Sequence[Path] = (), sessions: Sequence[str] = ()) -> str:
    """Hash of the reader version, the options, the chosen sessions, and the
    path, size and modification time of every input (the content itself for
    the small segmentation and split files; a missing file counts too)."""
    h = hashlib.sha1()
    h.update(json.dumps([READER_VERSION, source, length, clip_mode, sorted(sessions)]).encode())
    for p in inputs:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    for p in sorted({Path(p) for p in extra_files}):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            h.update(f"{os.path.abspath(p)}|absent\n".encode())
            continue
        h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode())
        if p.suffix in (".npy", ".json") and st.st_size < 1 << 20:
            h.update(hashlib.sha1(p.read_bytes()).digest())
        h.update(b"\n")
    return h.hexdigest()[:20]


def _save_cached(path: Path, s: RepetitionSet) -> None:
    meta = json.dumps({"sessions": s.sessions, "trials": s.trials, "indices": s.indices,
                       "muscles": list(s.muscles), "coordinates": list(s.coordinates), "files": s.files,
                       "durations": s.durations.tolist(), "frame_rates": s.frame_rates.tolist(),
                       "clip_mode": s.clip_mode})
    arrays = {"motions": s.motions, "meta": np.array(meta)}
    if s.activations is not None:
        arrays["activations"] = s.activations
    atomic_save_npz(path, **arrays)


def _load_cached(path: Path) -> RepetitionSet:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return RepetitionSet(
            motions=z["motions"], sessions=meta["sessions"], trials=meta["trials"],
            indices=meta["indices"], activations=z["activations"] if "activations" in z else None,
            muscles=tuple(meta["muscles"]), coordinates=tuple(meta["coordinates"]), files=meta["files"],
            durations=np.asarray(meta["durations"]), frame_rates=np.asarray(meta["frame_rates"]),
            clip_mode=meta["clip_mode"],  # a cache written before durations existed lacks these: re-extracted
        )


MOTION_SUFFIXES = (".mot", ".sto")


def find_motion_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """``.mot`` / ``.sto`` files named in ``paths``: files as given, folders
    searched recursively (sorted). Raises :class:`DatasetError` for a path
    that does not exist or a folder without such files."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.suffix.lower() in MOTION_SUFFIXES and f.is_file())
            if not inside:
                raise DatasetError(f"{p}: no .mot or .sto files in this folder (searched recursively)")
            found.extend(inside)
        else:
            raise DatasetError(f"{p}: no such file or folder")
    return found


def load_dynamics_files(paths: Sequence[str | os.PathLike], length: int = CLIP_LENGTH,
                        clip_mode: str = "resample") -> RepetitionSet:
    """Muscle-driven files outside an MCS layout (one repetition each, e.g. a
    folder of OpenCap ``kinematics_activations*.mot``) as a :class:`RepetitionSet`.

    Each file must hold the 33 coordinates and activation columns of
    :data:`MUSCLES` (any naming style, any order); it is resampled by its own
    time column. ``muscles`` are those every file holds. A file named in
    ``paths`` that holds no activation is an error naming it; one found by
    searching a folder is passed over (an OpenCap ``Dynamics`` folder also
    holds inverse-dynamics moments), and a folder with none at all is an
    error. ``sessions`` are the file stems.
    """
    named = {Path(p) for p in paths if Path(p).is_file()}
    no_activation = ("no muscle activation columns (expected names such as vasmed_r, vasmed_r/activation or "
                     "/forceset/vasmed_r/activation)")
    motions, present = [], []
    for path in find_motion_files(paths):
        motion = read_motion(path)
        have = [m for m in MUSCLES if motion.has(m)]
        if not have:
            if path in named:
                raise DatasetError(f"{path}: {no_activation}")
            continue
        present.append(set(have))
        motions.append((path, motion))
    if not motions:
        raise DatasetError(f"{', '.join(map(str, paths))}: no file with {no_activation[3:]}")
    files = [path for path, _ in motions]
    common = set.intersection(*present)
    muscles = tuple(m for m in MUSCLES if m in common)
    if not muscles:
        raise DatasetError(f"{files[0]}: the files share no muscle (first file has {len(present[0])})")
    out_x, out_a = [], []
    for path, motion in motions:
        act = motion.columns(muscles)
        if act.min() < -1e-6 or act.max() > 1 + 1e-6:
            raise MotionFileError(path, f"activations outside [0, 1] ({act.min():.3g} .. {act.max():.3g})")
        coords = motion.coordinates(COORDINATES, degrees=True)
        check_plausible(coords, path)  # the same unit checks as the dataset's own files
        out_x.append(fit_length(coords, length, clip_mode, times=motion.times))
        out_a.append(np.clip(fit_length(act, length, clip_mode, times=motion.times), 0.0, 1.0))
    return RepetitionSet(
        motions=np.stack(out_x).astype(np.float32), sessions=[p.stem for p in files],
        trials=[p.stem for p in files], indices=[1] * len(files),
        activations=np.stack(out_a).astype(np.float32), muscles=muscles, files=[str(p) for p in files],
        durations=np.array([m.times[-1] - m.times[0] for _, m in motions]),
        frame_rates=np.array([m.frame_rate for _, m in motions]), clip_mode=clip_mode,
    )


def select_muscles(reps: RepetitionSet, muscles: Sequence[str]) -> RepetitionSet:
    """A copy of ``reps`` whose activations hold only ``muscles``, in that order."""
    idx = [reps.muscles.index(m) for m in muscles]
    out = reps.select(np.ones(len(reps), dtype=bool))
    out.activations = np.ascontiguousarray(reps.activations[:, :, idx])
    out.muscles = tuple(muscles)
    return out


MIRROR_NEGATED: tuple[str, ...] = ("pelvis_list", "pelvis_rotation", "pelvis_tz", "lumbar_bending", "lumbar_rotation")
"""Coordinates whose sign flips under a left/right (sagittal-plane) mirror; bilateral ones swap sides."""


def _other_side(name: str) -> str:
    if name.endswith("_l"):
        return name[:-2] + "_r"
    if name.endswith("_r"):
        return name[:-2] + "_l"
    return name


def mirror_motions(x: np.ndarray) -> np.ndarray:
    """Left/right mirror image of (..., 33) canonical coordinates (degrees / metres).

    Bilateral coordinates swap sides (OpenSim's left joint axes are mirrored,
    so values carry over unchanged); out-of-sagittal-plane pelvis and lumbar
    coordinates change sign.
    """
    order = [COORD_INDEX[_other_side(c)] for c in COORDINATES]
    out = np.array(x[..., order], copy=True)
    out[..., [COORD_INDEX[c] for c in MIRROR_NEGATED]] *= -1.0
    return out


def mirror_repetitions(reps: RepetitionSet) -> RepetitionSet:
    """The mirror image of every repetition: motions mirrored, each muscle's
    activation taken from its other-side twin. Raises ValueError if a twin is missing."""
    missing = [m for m in reps.muscles if _other_side(m) not in reps.muscles]
    if missing:
        where = reps.files[0] if reps.files else "the Dynamics files"
        raise UserError(f"{where} (and every other Dynamics file): no activation for the other side of "
                        f"{', '.join(missing)}, needed to mirror; pass --no-mirror or train on muscles present on "
                        "both sides")
    out = reps.select(np.ones(len(reps), dtype=bool))
    out.motions = mirror_motions(reps.motions).astype(np.float32)
    out.activations = np.ascontiguousarray(reps.activations[..., [reps.muscles.index(_other_side(m))
                                                                  for m in reps.muscles]])
    out.trials = [f"{t}(mirrored)" for t in reps.trials]
    return out


def concat_repetitions(a: RepetitionSet, b: RepetitionSet) -> RepetitionSet:
    """``a`` then ``b`` (same muscles)."""
    if a.muscles != b.muscles:
        raise ValueError("cannot concatenate repetition sets with different muscles")
    return RepetitionSet(
        motions=np.concatenate([a.motions, b.motions]), sessions=a.sessions + b.sessions,
        trials=a.trials + b.trials, indices=a.indices + b.indices,
        activations=np.concatenate([a.activations, b.activations]), muscles=a.muscles,
        coordinates=a.coordinates, files=list(a.files) + list(b.files),
        durations=_concat_optional(a.durations, b.durations),
        frame_rates=_concat_optional(a.frame_rates, b.frame_rates), clip_mode=a.clip_mode)


def _concat_optional(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    return None if a is None or b is None else np.concatenate([a, b])
