"""Verification by simulation: the muscle activations OpenSim gives for a
motion, to check what the surrogate predicts.

One thin adapter, :func:`simulate_activations`, in front of the project's
simulation (the code that makes the embedded dataset,
``dataset/synthetic/muscle_dynamics.py``: inverse dynamics with ground reactions, then
static optimisation); when that simulation changes, only this module
follows. :func:`simulate_many` runs it over many motions in worker processes,
one subject model per motion; a motion whose simulation fails gets NaN
activations and its error message, never a silent zero.

Each process keeps the models it has loaded (keyed by path, size and
modification time, so a rewritten file is loaded again), and the worker
processes live from one :func:`simulate_many` call to the next: guidance's
verification simulates a subject's runs ten at a time, and loading OpenSim
and the subject's model again for every batch cost a third of the work. They
hold nothing worth saving, so they are killed if the process that started
them dies without stopping them (on Linux).

With a :class:`~metrics.sim_cache.SimulationCache`, :func:`simulate_many`
simulates only the motions the cache does not hold (keyed by the model's
bytes, the motion's and the code's) and stores what it simulates.
"""
from __future__ import annotations

import atexit
import os
import signal
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from metrics.sim_cache import SimulationCache
from utils.constants import COORDINATES
from utils.errors import UserError
from utils.osim_log import opensim_quiet
from utils.process_map import die_with

__all__ = ["SimulationError", "shutdown_workers", "simulate_activations", "simulate_many"]

MIN_FRAMES = 16
"""Fewest frames inverse dynamics accepts (its low-pass filter needs them)."""


MODEL_CACHE_SIZE = 8
"""Subject models each process keeps loaded."""


class SimulationError(UserError):
    """A motion cannot be simulated (bad model file, bad time column); the message names it."""


_loaded: OrderedDict[tuple[str, int, int], tuple[Any, Any]] = OrderedDict()


def _subject_models(model_path: str | os.PathLike) -> tuple[Any, Any]:
    """``(MuscleModel, DynamicsModel)`` of one ``.osim`` file, loaded once per
    process: the muscle model for static optimisation and the model for the
    ground reactions and inverse dynamics."""
    from dataset.synthetic.muscle_dynamics import DynamicsModel, MuscleModel

    path = Path(model_path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _loaded:
        _loaded.move_to_end(key)
        return _loaded[key]
    models = (MuscleModel(path), DynamicsModel(path))
    _loaded[key] = models
    while len(_loaded) > MODEL_CACHE_SIZE:
        _loaded.popitem(last=False)
    return models


def _uniform_times(times: np.ndarray, n: int) -> float:
    """Time step (s) of an increasing time column of ``n`` frames."""
    t = np.asarray(times, dtype=np.float64)
    if t.shape != (n,) or n < MIN_FRAMES or not np.all(np.diff(t) > 0):
        raise SimulationError(f"time column must be increasing with one value per frame (>= {MIN_FRAMES}), "
                              f"got shape {t.shape} for {n} frames")
    return float((t[-1] - t[0]) / (n - 1))


def simulate_activations(model_path: str | os.PathLike, coords_deg: np.ndarray, times: np.ndarray
                         ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Muscle activations of one motion by OpenSim inverse dynamics and static
    optimisation with the subject's scaled model.

    ``coords_deg`` (T, 33) canonical order, degrees / metres; ``times`` (T,)
    seconds (uneven steps are resampled to their mean step first, and the
    activations back). Returns ``(activations (T, M) in [0, 1], muscle names)``.
    """
    from dataset.synthetic.muscle_dynamics import inverse_dynamics, static_optimization

    x = np.asarray(coords_deg, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(COORDINATES) or not np.isfinite(x).all():
        raise SimulationError(f"motion must be finite (T, {len(COORDINATES)}), got shape {x.shape}")
    if not Path(model_path).is_file():
        raise SimulationError(f"{model_path}: no such model file")
    n = len(x)
    t = np.asarray(times, dtype=np.float64)
    dt = _uniform_times(t, n)
    grid = t[0] + dt * np.arange(n)
    uneven = not np.allclose(grid, t, rtol=0, atol=1e-6)
    if uneven:
        x = np.stack([np.interp(grid, t, x[:, j]) for j in range(x.shape[1])], axis=1)
    fs = 1.0 / dt
    muscles, base = _subject_models(model_path)
    muscles.crossing = {}  # found again from this motion, so the result does not depend on what ran before
    dyn = inverse_dynamics(str(model_path), x, fs, base=base)
    rep = static_optimization(muscles, dyn, 0, n, fs)
    act = rep.activations
    if uneven:
        act = np.stack([np.interp(t, grid, act[:, j]) for j in range(act.shape[1])], axis=1)
    return np.clip(act, 0.0, 1.0), tuple(rep.muscles)


def _one(job: tuple[str, np.ndarray, np.ndarray]) -> tuple[np.ndarray | None, tuple[str, ...], str]:
    """Simulate one ``(model, coords, times)`` job: ``(activations (T, M)
    float64, muscle names, '')``, or ``(None, (), message)`` when it fails."""
    model, x, t = job
    try:
        with opensim_quiet():  # OpenSim's per-model [info] lines would bury the table
            act, names = simulate_activations(model, x, t)
    except Exception as err:  # reported per motion by simulate_many; one bad motion must not stop a set
        return None, (), f"{type(err).__name__}: {err}"
    return np.asarray(act, dtype=np.float64), names, ""


def _select(act: np.ndarray, names: tuple[str, ...], muscles: Sequence[str], model: str
            ) -> tuple[np.ndarray | None, str]:
    """The columns of ``muscles`` of one motion's activations (T, M) as float32 (T, G), or an error."""
    missing = [m for m in muscles if m not in names]
    if missing:
        return None, f"{model}: the model has no muscle(s) {missing}"
    return act[:, [names.index(m) for m in muscles]].astype(np.float32), ""


def simulate_many(models: Sequence[str | os.PathLike], motions: np.ndarray, time_steps: np.ndarray | float,
                  muscles: Sequence[str], workers: int = 1, progress: bool = False,
                  cache: SimulationCache | None = None) -> tuple[np.ndarray, list[str]]:
    """Simulated activations of ``muscles`` for every motion.

    ``models`` one ``.osim`` per motion; ``motions`` (N, T, 33) degrees /
    metres; ``time_steps`` seconds between frames (scalar or (N,)); ``workers``
    processes; ``cache`` a :class:`~metrics.sim_cache.SimulationCache` whose
    entries are used instead of simulating and which receives every new
    success. Returns ``(activations (N, T, G) float32, errors)``: a motion
    whose simulation failed has NaN activations and its message in
    ``errors[i]`` ('' when it succeeded). Cached or not, the numbers are the same bit for bit.
    """
    x = np.asarray(motions, dtype=np.float64)
    n, frames = x.shape[:2]
    if len(models) != n:
        raise ValueError(f"{len(models)} models for {n} motions")
    steps = np.broadcast_to(np.asarray(time_steps, dtype=np.float64), (n,))
    jobs = [(str(models[i]), x[i], steps[i] * np.arange(frames)) for i in range(n)]
    out = np.full((n, frames, len(muscles)), np.nan, dtype=np.float32)
    errors = [""] * n
    keys = [cache.key(*job) for job in jobs] if cache is not None else [None] * n
    todo = []
    for i, key in enumerate(keys):
        hit = cache.load(key, frames) if key is not None else None
        if hit is None:
            todo.append(i)
        else:
            act, errors[i] = _select(*hit, muscles, jobs[i][0])
            if act is not None:
                out[i] = act
    parallel = workers > 1 and len(todo) > 1
    todo_jobs = [jobs[i] for i in todo]
    results = _pool(workers).map(_one, todo_jobs, chunksize=1) if parallel else map(_one, todo_jobs)
    if progress:
        from tqdm.auto import tqdm

        results = tqdm(results, total=len(todo), desc="simulation", unit="motion", leave=False)
    try:
        for i, (act, names, err) in zip(todo, results):
            if act is None:
                errors[i] = err
                continue
            if keys[i] is not None:
                cache.store(keys[i], act, names)
            act, errors[i] = _select(act, names, muscles, jobs[i][0])
            if act is not None:
                out[i] = act
    except BaseException:
        if parallel:  # an interrupted map leaves work queued: start afresh next time
            shutdown_workers()
        raise
    return out, errors


_workers: tuple[int, ProcessPoolExecutor] | None = None


def _pool(workers: int) -> ProcessPoolExecutor:
    """The process pool of ``workers`` processes, kept between calls (a broken
    or differently sized one is replaced)."""
    global _workers
    if _workers is not None:
        size, pool = _workers
        if size == workers and not getattr(pool, "_broken", False):
            return pool
        shutdown_workers()
    _workers = (workers, ProcessPoolExecutor(max_workers=workers, initializer=die_with,
                                             initargs=(os.getpid(), signal.SIGKILL)))
    return _workers[1]


def shutdown_workers() -> None:
    """Stop the simulation worker processes (they are also stopped at exit)."""
    global _workers
    if _workers is not None:
        _workers[1].shutdown(wait=True, cancel_futures=True)
        _workers = None


atexit.register(shutdown_workers)
