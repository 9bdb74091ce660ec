"""A disk cache of simulated activations, keyed by everything the simulation's
result depends on, so a motion is simulated once however often it is evaluated.

An entry holds what :func:`metrics.simulation.simulate_activations` returns
for one motion: its activations of every muscle (T, M) float64 and the muscle
names, in ``<folder>/<key[:2]>/<key>.npz``. The key is the SHA-256 of

- the simulation code's identity (:func:`code_identity`): the source of
  ``metrics/simulation.py`` and of every project module it imports, directly or
  through ``dataset/synthetic/muscle_dynamics.py`` (found by reading their
  imports, so a new import can never be forgotten), the versions of OpenSim,
  NumPy, SciPy and Python and the machine's architecture. Editing any of that
  code misses every entry; over-invalidating costs a re-simulation, a stale
  result would cost a wrong table;
- the model file's bytes (its SHA-256), not its path or modification time;
- the motion (T, 33) and its time stamps (T,) exactly as the simulation
  receives them: the bytes of the float64 arrays and their shapes.

``simulate_activations`` has no other option; the muscle subset a caller asks
for is taken from the cached full result, so it is not part of the key.

Entries are written atomically (a temporary sibling renamed into place), so
two processes filling the same folder never read half an entry; the last of
two writers of one key wins with the same bytes. An unreadable or malformed
entry is reported with a :class:`SimulationCacheWarning` and treated as a miss,
and the recomputed result replaces it. Failed simulations are not cached: most
failures are input checks that cost nothing to repeat, and a failure that is
not a property of the inputs (a missing file, memory, a killed worker) must not
be remembered as one.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import sys
import warnings
import zipfile
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from utils.errors import OutputWriteError
from utils.fileio import atomic_save_npz

__all__ = ["CACHE_FORMAT", "SimulationCache", "SimulationCacheWarning", "code_identity"]

CACHE_FORMAT = 1
"""Version of the entry layout; part of every key."""

REPO = Path(__file__).resolve().parents[1]
"""The project's root folder (modules are resolved against it)."""

SIMULATION_MODULES = ("metrics.simulation", "dataset.synthetic.muscle_dynamics")
"""The modules that simulate; they and every project module they import make the code identity."""

VERSIONED_PACKAGES = ("opensim", "numpy", "scipy")
"""Third-party packages whose version is part of the code identity."""


class SimulationCacheWarning(UserWarning):
    """A cache entry could not be read; the motion is simulated again."""


def _module_file(name: str) -> Path | None:
    """The project file of a dotted module name, or None if it is not one of ours."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _project_imports(path: Path) -> set[str]:
    """Dotted names of the project modules ``path`` imports anywhere (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
    return {n for n in names if _module_file(n) is not None}


def simulation_sources() -> list[Path]:
    """The project files the simulation's result can depend on: the
    :data:`SIMULATION_MODULES` and everything they import, transitively, sorted."""
    todo, seen = list(SIMULATION_MODULES), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(_project_imports(_module_file(name)) - seen)
    return sorted({_module_file(n) for n in seen})


@lru_cache(maxsize=1)
def code_identity() -> str:
    """SHA-256 (hex) of the simulation code: :func:`simulation_sources`, the
    :data:`VERSIONED_PACKAGES` versions, Python's version and the machine."""
    h = hashlib.sha256()
    for path in simulation_sources():
        h.update(f"{path.relative_to(REPO).as_posix()}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    for package in VERSIONED_PACKAGES:
        try:
            v = version(package)
        except PackageNotFoundError:
            v = getattr(__import__(package), "__version__", "?")  # e.g. OpenSim installed by conda
        h.update(f"{package}={v}\0".encode())
    h.update(f"python={sys.version}\0machine={platform.machine()}\0".encode())
    return h.hexdigest()


class SimulationCache:
    """Simulated activations on disk under ``folder`` (created when first
    written). ``hits``, ``misses`` and ``stored`` count this object's lookups
    and writes."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.hits = self.misses = self.stored = 0
        self._model_hashes: dict[tuple[str, int, int, int], str] = {}

    def _model_hash(self, model_path: str | os.PathLike) -> str:
        """SHA-256 of the model file's bytes (remembered per path, size, inode and mtime for this object's life)."""
        path = Path(model_path).resolve()
        st = path.stat()
        memo = (str(path), st.st_size, st.st_ino, st.st_mtime_ns)
        if memo not in self._model_hashes:
            self._model_hashes[memo] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._model_hashes[memo]

    def key(self, model_path: str | os.PathLike, coords: np.ndarray, times: np.ndarray) -> str | None:
        """Key (hex) of one simulation: the model file, ``coords`` (T, 33) and
        ``times`` (T,) as float64 and the code identity. None when the model
        file cannot be read (the simulation then reports it, uncached)."""
        try:
            model = self._model_hash(model_path)
        except OSError:
            return None
        x = np.ascontiguousarray(coords, dtype=np.float64)
        t = np.ascontiguousarray(times, dtype=np.float64)
        header = json.dumps({"format": CACHE_FORMAT, "code": code_identity(), "model": model,
                             "coords": list(x.shape), "times": list(t.shape)}, sort_keys=True)
        h = hashlib.sha256(header.encode())
        h.update(x.tobytes())
        h.update(t.tobytes())
        return h.hexdigest()

    def path(self, key: str) -> Path:
        """The entry file of ``key``."""
        return self.folder / key[:2] / f"{key}.npz"

    def load(self, key: str, frames: int) -> tuple[np.ndarray, tuple[str, ...]] | None:
        """``(activations (frames, M) float64, muscle names)`` stored under
        ``key``, or None (a miss) when there is no such entry or it cannot be
        read (then with a :class:`SimulationCacheWarning`)."""
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as z:
                act, names = z["activations"], tuple(str(m) for m in z["muscles"])
            if act.dtype != np.float64 or act.shape != (frames, len(names)):
                raise ValueError(f"activations {act.dtype} {act.shape}, expected float64 ({frames}, {len(names)})")
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(f"{path}: unreadable simulation cache entry ({type(err).__name__}: {err}); "
                          "simulating the motion again", SimulationCacheWarning, stacklevel=2)
            self.misses += 1
            return None
        self.hits += 1
        return act, names

    def store(self, key: str, activations: np.ndarray, muscles: tuple[str, ...]) -> Path | None:
        """Write one entry atomically: ``activations`` (T, M) float64 of
        ``muscles``. Returns its path, or None with a
        :class:`SimulationCacheWarning` when the folder cannot be written (a
        read-only or full cache costs re-simulation later, never this run's results)."""
        act = np.asarray(activations)
        if act.dtype != np.float64 or act.ndim != 2 or act.shape[1] != len(muscles):
            raise ValueError(f"activations must be float64 (T, {len(muscles)}), got {act.dtype} {act.shape}")
        try:
            path = atomic_save_npz(self.path(key), activations=act, muscles=np.array(muscles, dtype=str))
        except OutputWriteError as err:
            warnings.warn(f"simulation cache not written: {err}", SimulationCacheWarning, stacklevel=2)
            return None
        self.stored += 1
        return path

    def summary(self) -> dict[str, object]:
        """The folder and the counts, JSON-friendly."""
        return {"folder": str(self.folder), "hits": self.hits, "misses": self.misses, "stored": self.stored}
