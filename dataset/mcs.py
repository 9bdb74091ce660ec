"""Discovery of an MCS-layout dataset root: sessions, squat trials, the
segmentation of trials into repetitions, muscle-driven Dynamics files and
marker files.

Layout (``root`` may be the dataset root or its ``Data`` folder)::

    <root>/Data/<session>/OpenSimData/Kinematics/<trial>.mot   (or <trial>.sto)
    <root>/Data/<session>/OpenSimData/Dynamics/<trial>_segment_<k>/kinematics_activations_<trial>_segment_<k>_muscle_driven.mot
    <root>/Data/<session>/OpenSimData/Model/*.osim
    <root>/Data/<session>/MarkerData/<trial>.trc
    <root>/squat-segmentation-data/<session>.npy

The session id is the name of the session folder (never derived by counting
path separators).

A repetition the segmentation lists is frames of its trial's Kinematics file,
which must then exist (never replaced by a simulation); one it does not list
(typically every one of a session without segmentation) is known from its
Dynamics folder alone, whose muscle-driven file is the repetition.
"""
from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from utils.errors import BigeError
from utils.fileio import atomic_open


class DatasetError(BigeError, ValueError):
    """The dataset root is not usable; the message names the path."""


_DYNAMICS_DIR = re.compile(r"^(?P<trial>.+)_segment_(?P<k>\d+)$")

KINEMATICS_SUFFIXES = (".mot", ".sto")
"""A trial's inverse kinematics: ``<trial>.mot`` (OpenCap) or ``<trial>.sto`` (OpenSim's own writer)."""


@dataclass(frozen=True)
class Repetition:
    """One squat repetition: frames ``[start, end)`` of a trial (``start``/``end``
    are ``None`` when only a Dynamics file is known); ``index`` is 1-based."""

    session: str
    trial: str
    index: int
    start: int | None
    end: int | None
    dynamics: Path | None


@dataclass
class Session:
    """Everything found for one session folder."""

    id: str
    path: Path
    trials: dict[str, Path] = field(default_factory=dict)
    markers: dict[str, Path] = field(default_factory=dict)
    segments: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    dynamics: dict[tuple[str, int], Path] = field(default_factory=dict)
    models: list[Path] = field(default_factory=list)
    segmentation: Path | None = None
    """The session's ``squat-segmentation-data/<id>.npy``, if present."""
    kinematics_listing: list[str] = field(default_factory=list)
    """Every file name in ``OpenSimData/Kinematics`` (for messages)."""
    ambiguous: dict[str, list[Path]] = field(default_factory=dict)
    """Squat trials with both a ``.mot`` and a ``.sto`` Kinematics file."""
    other_trials: set[str] = field(default_factory=set)
    """Trial names seen that are not squats (no ``sqt``): Kinematics files,
    segmentation keys, Dynamics folders."""

    def repetitions(self) -> list[Repetition]:
        """All squat repetitions, from segmentation and/or Dynamics files."""
        reps: dict[tuple[str, int], Repetition] = {}
        for trial, bounds in self.segments.items():
            for k, (start, end) in enumerate(bounds, start=1):
                reps[(trial, k)] = Repetition(self.id, trial, k, int(start), int(end),
                                              self.dynamics.get((trial, k)))
        for (trial, k), path in self.dynamics.items():
            reps.setdefault((trial, k), Repetition(self.id, trial, k, None, None, path))
        return [reps[key] for key in sorted(reps)]

    def trial_file(self, trial: str) -> Path:
        """The Kinematics file of a segmented ``trial``: ``<trial>.mot`` or
        ``<trial>.sto``. Raises :class:`DatasetError` naming the segmentation
        file, the session, the trial, what was looked for and what the
        Kinematics folder holds."""
        kin = self.path / "OpenSimData" / "Kinematics"
        if trial in self.ambiguous:
            names = " and ".join(p.name for p in self.ambiguous[trial])
            raise DatasetError(f"{kin}: {names} both hold trial {trial} of session {self.id}; keep one of them")
        found = self.trials.get(trial)
        if found is not None:
            return found
        where = self.segmentation if self.segmentation is not None else self.path
        if not kin.is_dir():
            holds = f"no OpenSimData/Kinematics folder in {self.path}"
        elif not self.kinematics_listing:
            holds = "Kinematics is empty"
        else:
            names = self.kinematics_listing
            more = f" and {len(names) - 8} more" if len(names) > 8 else ""
            holds = f"Kinematics holds: {', '.join(names[:8])}{more}"
        raise DatasetError(f"{where}: trial {trial} of session {self.id} has no OpenSimData/Kinematics/{trial}.mot "
                           f"or {trial}.sto ({holds})")

    @property
    def model(self) -> Path | None:
        """The subject's scaled model, if any."""
        return self.models[0] if self.models else None


def is_squat(trial: str) -> bool:
    """Squat trials contain ``sqt`` in any case."""
    return "sqt" in trial.lower()


def data_dir(root: str | os.PathLike) -> Path:
    """The folder holding session folders: ``root/Data`` or ``root`` itself."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: dataset root does not exist")
    if (root / "Data").is_dir():
        return root / "Data"
    if root.name == "Data" and root.is_dir():
        return root
    raise DatasetError(f"{root}: no 'Data' folder; expected <root>/Data/<session>/OpenSimData/...")


def dataset_root(root: str | os.PathLike) -> Path:
    """The dataset root (the parent of ``Data``)."""
    return data_dir(root).parent


_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}
"""The only classes and functions a segmentation file's pickle may name:
NumPy's array and scalar reconstruction. Lists, tuples, dicts, numbers and
strings need none; anything else (``os.system``, ``eval``...) is refused."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and scalars, lists, tuples, dicts, numbers and
    strings; refuses every other global, so a data file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core." + module[len("numpy.core."):]
        return super().find_class(module, name)


def _read_npy(path: Path) -> object:
    """A ``.npy`` file's content: a plain array, or for an object array the
    unpickled value through :class:`_RestrictedUnpickler`."""
    with open(path, "rb") as handle:
        try:
            version = npy_format.read_magic(handle)
            if version not in ((1, 0), (2, 0)):
                handle.seek(0)
                return np.load(handle, allow_pickle=False)
            shape, fortran, dtype = (npy_format.read_array_header_1_0(handle) if version == (1, 0)
                                     else npy_format.read_array_header_2_0(handle))
        except ValueError as err:
            raise DatasetError(f"{path}: not a NumPy .npy file ({err})") from None
        if not dtype.hasobject:
            handle.seek(0)
            return np.load(handle, allow_pickle=False)
        try:
            return _RestrictedUnpickler(handle, encoding="latin1").load()
        except pickle.UnpicklingError as err:
            raise DatasetError(f"{path}: refused: the pickled content is not plain data ({err}); a segmentation "
                               "file holds only a dict trial -> [(start, end), ...]") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
            raise DatasetError(f"{path}: cannot read segmentation file ({type(err).__name__}: {err})") from None


def load_segmentation(path: str | os.PathLike) -> dict[str, list[tuple[int, int]]]:
    """Read a segmentation ``.npy`` (pickled dict: trial -> [(start, end), ...]).

    Never runs code from the file: only NumPy arrays and scalars, lists,
    tuples, dicts, numbers and strings are unpickled."""
    path = Path(path)
    obj = _read_npy(path)
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a dict trial -> [(start, end), ...], found {type(obj).__name__}")
    out: dict[str, list[tuple[int, int]]] = {}
    for trial, bounds in obj.items():
        if not isinstance(bounds, (list, tuple, np.ndarray)):
            raise DatasetError(f"{path}: {trial} = {bounds!r}, expected a list of (start, end) frame pairs")
        pairs = []
        for j, pair in enumerate(bounds):
            try:
                start, end = (int(v) for v in pair)
            except (TypeError, ValueError):
                raise DatasetError(f"{path}: {trial}[{j}] = {pair!r}, expected (start, end)") from None
            if end <= start or start < 0:
                raise DatasetError(f"{path}: {trial}[{j}] = ({start}, {end}) is not a frame range")
            pairs.append((start, end))
        out[str(trial)] = pairs
    return out


def save_segmentation(path: str | os.PathLike, segments: dict[str, list[tuple[int, int]]]) -> Path:
    """Write a segmentation ``.npy`` (trial -> [(start, end), ...], frames of the
    trial's Kinematics file, ``end`` exclusive) atomically, in the format
    :func:`load_segmentation` reads."""
    with atomic_open(path, "wb") as handle:
        np.save(handle, {str(t): [(int(a), int(b)) for a, b in pairs] for t, pairs in segments.items()},
                allow_pickle=True)
    return Path(path)


def dynamics_files(folder: Path) -> list[Path]:
    """The muscle-driven simulation files of one ``<trial>_segment_<k>`` folder,
    best first: ``*muscle_driven*`` as ``.mot`` or ``.sto``, else any ``.mot``,
    else an ``.sto`` whose name mentions activations."""
    files = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".mot", ".sto")]
    for accept in (lambda p: "muscle_driven" in p.name,
                   lambda p: p.suffix.lower() == ".mot",
                   lambda p: "activation" in p.name.lower()):
        chosen = [p for p in files if accept(p)]
        if chosen:
            return chosen
    return []


def find_session(path: str | os.PathLike) -> Session:
    """Scan one session folder."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: session folder does not exist")
    session = Session(id=path.name, path=path)
    kin = path / "OpenSimData" / "Kinematics"
    if kin.is_dir():
        for f in sorted(kin.iterdir()):
            if f.name.startswith("."):
                continue
            session.kinematics_listing.append(f.name)
            if f.suffix.lower() not in KINEMATICS_SUFFIXES:
                continue
            if not is_squat(f.stem):
                session.other_trials.add(f.stem)
            elif f.stem in session.ambiguous:
                session.ambiguous[f.stem].append(f)
            elif f.stem in session.trials:
                session.ambiguous[f.stem] = [session.trials.pop(f.stem), f]
            else:
                session.trials[f.stem] = f
    dyn = path / "OpenSimData" / "Dynamics"
    if dyn.is_dir():
        for d in sorted(dyn.iterdir()):
            match = _DYNAMICS_DIR.match(d.name)
            if not (d.is_dir() and match):
                continue
            if not is_squat(match["trial"]):
                session.other_trials.add(match["trial"])
                continue
            files = dynamics_files(d)
            if files:
                session.dynamics[(match["trial"], int(match["k"]))] = files[0]
    markers = path / "MarkerData"
    if markers.is_dir():
        for f in sorted(markers.iterdir()):
            if f.suffix.lower() == ".trc" and is_squat(f.stem):
                session.markers[f.stem] = f
    model_dir = path / "OpenSimData" / "Model"
    if model_dir.is_dir():
        session.models = sorted(model_dir.glob("*.osim"))
    seg_file = path.parent.parent / "squat-segmentation-data" / f"{session.id}.npy"
    if seg_file.is_file():
        session.segmentation = seg_file
        segments = load_segmentation(seg_file)
        session.segments = {t: b for t, b in segments.items() if is_squat(t)}
        session.other_trials.update(t for t in segments if not is_squat(t))
    return session


def discover(root: str | os.PathLike) -> list[Session]:
    """All sessions under ``root`` that have at least one squat repetition,
    sorted by id."""
    base = data_dir(root)
    seen = [find_session(d) for d in sorted(base.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    sessions = [s for s in seen if s.repetitions()]
    if not sessions:
        raise DatasetError(f"{base}: no session with squat repetitions found ({why_no_repetitions(base, seen)})")
    return sessions


def why_no_repetitions(base: Path, seen: list[Session]) -> str:
    """Why none of the session folders ``seen`` under ``base`` yields a squat
    repetition, in a few words for the error message."""
    if not seen:
        return "no session folder in it; expected <root>/Data/<session>/OpenSimData/..."
    n = len(seen)
    reasons = [f"{n} session folder{'s' if n > 1 else ''}"]
    seg_dir = base.parent / "squat-segmentation-data"
    with_seg = [s for s in seen if s.segmentation is not None]
    if not with_seg:
        which = f"{seg_dir}/<session>.npy" if n > 1 else f"{seg_dir}/{seen[0].id}.npy"
        reasons.append(f"{'none has' if n > 1 else 'no'} {which} or OpenSimData/Dynamics/<trial>_segment_<k>/ "
                       "with a muscle-driven file")
    other = sorted(set().union(*(s.other_trials for s in seen)))
    listed = sorted(set().union(*(s.segments for s in with_seg)))  # squat trials segmented into nothing
    files = "their segmentation files list" if len(with_seg) > 1 else "its segmentation file lists"
    if listed:
        reasons.append(f"{files} no repetition of {', '.join(listed[:6])}{' ...' if len(listed) > 6 else ''}")
    elif with_seg and not other:
        reasons.append(f"{files} no trial")
    if other:
        reasons.append(f"trials found: {', '.join(other[:6])}{' ...' if len(other) > 6 else ''} "
                       "(a squat trial's name must contain 'sqt')")
    return "; ".join(reasons)


def session_folder(path: str | os.PathLike) -> Path | None:
    """The MCS session folder (the one holding ``OpenSimData``) that ``path``
    is or lies in, or None."""
    path = Path(path).resolve()
    for folder in (path, *path.parents):
        if (folder / "OpenSimData").is_dir():
            return folder
    return None


def session_model(folder: str | os.PathLike) -> Path | None:
    """The scaled model of the session in ``folder`` (the first
    ``OpenSimData/Model/*.osim`` by name), or None."""
    models = sorted((Path(folder) / "OpenSimData" / "Model").glob("*.osim"))
    return models[0] if models else None


def session_model_for(path: str | os.PathLike) -> Path | None:
    """The scaled model of the MCS session a motion file lives in
    (``<session>/OpenSimData/Model/*.osim``), if the file is inside one."""
    folder = session_folder(path)
    return None if folder is None else session_model(folder)


def is_mcs_root(path: str | os.PathLike) -> bool:
    """True if ``path`` is an MCS-layout dataset root or its ``Data`` folder."""
    path = Path(path)
    data = path / "Data" if (path / "Data").is_dir() else path if path.name == "Data" else None
    if data is None or not data.is_dir():
        return False
    return any((d / "OpenSimData").is_dir() for d in data.iterdir() if d.is_dir())
