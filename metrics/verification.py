"""Guidance verified by simulation (``LIMO_Surrogate.py --verify``): guided
runs simulated with OpenSim as their files will hold them, a per-subject copy
of the surrogate refined on the simulated runs between chunks
(``--verify-refine``), the runs the refined copy expects out of band left
unsimulated (``--verify-prune``), and the samples kept: those in band by
simulation. The simulation is :mod:`metrics.simulation`; the method being
verified is :mod:`models.guidance`. See ``docs/guidance.md``, "Which samples
are kept".
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from metrics.motion_sets import as_written
from metrics.sim_cache import SimulationCache
from metrics.simulation import simulate_many
from models import guidance_losses as L
from models.guidance import (
    GuidanceError, GuidanceObjective, GuidanceResult, candidate_order, order_by_peak, peaks_in_band, rescore,
)
from models.surrogate_refine import RefineConfig, RefineStats, peak_mad, refine_surrogate


@dataclass
class Verification:
    """Simulated activations of the verified runs of one subject (``--verify``)."""

    runs: np.ndarray                # (K,) run indices simulated, in the order they were tried
    activations: np.ndarray         # (K, T, M) simulated activations of the guided muscles (NaN: failed)
    errors: list[str]               # '' or why a simulation failed
    window: int                     # frames of the moving average
    rounds: int = 1                 # rounds of --num-runs latents optimised
    round_of: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    """(K,) the round (1-based) whose latents each simulated run is."""
    predicted: np.ndarray | None = None
    """(K, T, M) surrogate activations of each run when it was picked for simulation
    (the refined surrogate of that moment with --verify-refine), before any training on it."""
    objective: GuidanceObjective | None = None
    """The objective whose surrogate is refined on every simulated run so far (--verify-refine), else None."""
    refinements: list[dict[str, Any]] = field(default_factory=list)
    """One entry per refinement: round, examples, data loss and peak MAD before / after, drift, seconds."""

    def peaks(self, windowed: bool = True) -> np.ndarray:
        """Simulated peak of each guided muscle (moving average over ``window`` frames). (K, M)"""
        act = np.nan_to_num(self.activations, nan=-1.0)
        return L.peak_activation(torch.as_tensor(act), self.window if windowed else 1).numpy()

    def ok(self) -> np.ndarray:
        """Simulations that succeeded. (K,) bool"""
        return np.array([not e for e in self.errors], dtype=bool)

    def in_band(self, low: float, high: float) -> np.ndarray:
        """Windowed simulated peaks all in ``[low, high]`` (False where the simulation failed). (K,)"""
        return peaks_in_band(self.peaks(), low, high) & self.ok()

    def record(self, run: int, muscles: Sequence[str], low: float, high: float) -> dict[str, Any]:
        """What ``summary.json`` holds for one simulated run."""
        k = int(np.flatnonzero(self.runs == run)[0])
        if self.errors[k]:
            return {"error": self.errors[k], "in_band": False}
        raw, win = self.peaks(False)[k], self.peaks(True)[k]
        return {"peak_activation": {m: float(raw[j]) for j, m in enumerate(muscles)},
                "peak_activation_windowed": {m: float(win[j]) for j, m in enumerate(muscles)},
                "peak_activation_windowed_mean": float(win.mean()),
                "in_band": bool(self.in_band(low, high)[k])}


def refine_on_simulated(base: GuidanceObjective, result: GuidanceResult, ver: Verification,
                        config: RefineConfig) -> tuple[GuidanceObjective, RefineStats]:
    """``base`` with its surrogate fine-tuned (from the original weights) on
    every successfully simulated run of ``ver``: inputs the guided motions as
    the surrogate sees them, targets their simulated activations of the guided muscles."""
    ok = ver.ok()
    x = base.surrogate_input(torch.as_tensor(result.motions[ver.runs[ok]], device=base.device)).cpu()
    refined, stats = refine_surrogate(base.surrogate, x, ver.activations[ok], base.muscle_idx, base.window, config)
    return base.with_surrogate(refined), stats


def verify_runs(objective: GuidanceObjective, result: GuidanceResult, model_path: str | Path, n: int,
                weights: Mapping[str, float], workers: int = 1, previous: Verification | None = None,
                log: Callable[[str], None] | None = None, refine: RefineConfig | None = None,
                prune: bool = False, duration: float | None = None,
                cache: SimulationCache | None = None) -> Verification:
    """Simulate runs of ``result`` in :func:`candidate_order`, ``n`` at a
    time, until ``n`` of them are in band by simulation (windowed peak, as
    guidance judges) or every run has been simulated; runs already in
    ``previous`` are not simulated again; new runs belong to round
    ``previous.rounds``.

    Each run is simulated as its results files will hold it
    (:func:`metrics.motion_sets.as_written` with the subject's mean
    repetition ``duration``, the writer's argument), so its simulated peaks
    are those of the written motion and ``cache`` (a
    :class:`~metrics.sim_cache.SimulationCache`, optional) holds exactly what
    ``calculate_guidance.py --simulate`` reading the results folder looks up.

    With ``refine``, after every ``n`` simulations a copy of ``objective``'s
    surrogate (``objective`` is the original) is fine-tuned on every run
    simulated so far (:func:`refine_on_simulated`, kept in the returned
    ``objective``) and the runs not yet simulated are re-ranked by it.

    With ``prune`` (the caller can still optimise another round), runs that
    the refined copy predicts out of band are not simulated: once none is
    left the call returns and the caller guides the next round against the
    refined copy instead of simulating runs it already expects to fail."""
    window = objective.window
    ver = previous or Verification(np.zeros(0, int), np.zeros((0, *result.activations.shape[1:]), np.float32),
                                   [], window, predicted=np.zeros((0, *result.activations.shape[1:]), np.float32))
    current = ver.objective if (refine is not None and ver.objective is not None) else objective
    scored = result if current is objective else rescore(result, current)
    done = set(ver.runs.tolist())
    todo = [int(r) for r in candidate_order(scored, objective.low, objective.high, weights) if r not in done]
    if prune and current is not objective:
        todo = _predicted_in_band(todo, scored, objective, log)
    while todo and int(ver.in_band(objective.low, objective.high).sum()) < n:
        chunk, todo = todo[:n], todo[n:]
        motions, steps = as_written(result.motions[chunk], duration)
        hits_before = cache.hits if cache is not None else 0
        act, errors = simulate_many([str(model_path)] * len(chunk), motions, steps, objective.muscles,
                                    workers=workers, cache=cache)
        hits = cache.hits - hits_before if cache is not None else 0
        ver = Verification(np.r_[ver.runs, chunk].astype(int), np.concatenate([ver.activations, act]),
                           ver.errors + errors, window, ver.rounds,
                           np.r_[ver.round_of, [ver.rounds] * len(chunk)].astype(int),
                           np.concatenate([ver.predicted, scored.activations[chunk]]), ver.objective, ver.refinements)
        passed = int(ver.in_band(objective.low, objective.high).sum())
        if log is not None:
            failed = sum(bool(e) for e in ver.errors)
            log(f"verify: {len(ver.runs)} runs simulated" + (f" ({failed} of them failed)" if failed else "")
                + f", {passed} in band by simulation"
                + (f", {hits} of {len(chunk)} from the simulation cache" if hits else ""))
        if refine is not None and ver.ok().any() and passed < n:  # no refinement once enough passed
            current, stats = refine_on_simulated(objective, result, ver, refine)
            ver.objective = current
            ver.refinements.append({"round": ver.rounds, **asdict(stats)})
            if log is not None:
                log(f"verify: surrogate refined on {stats.examples} simulated runs in {stats.seconds:.1f} s: "
                    f"peak MAD {stats.peak_mad_before:.3f} -> {stats.peak_mad_after:.3f}, drift {stats.drift:.3f}")
            if todo:
                scored = rescore(result, current)
                rank = {r: k for k, r in enumerate(candidate_order(scored, objective.low, objective.high, weights))}
                todo.sort(key=rank.__getitem__)
                if prune:
                    todo = _predicted_in_band(todo, scored, objective, log)
    return ver


def _predicted_in_band(todo: list[int], scored: GuidanceResult, objective: GuidanceObjective,
                       log: Callable[[str], None] | None) -> list[int]:
    """The runs of ``todo`` whose windowed peaks ``scored`` (the refined
    surrogate's prediction) puts in band, order kept; how many were dropped is logged."""
    inside = peaks_in_band(scored.peaks[todo], objective.low, objective.high)
    kept = [r for r, ok in zip(todo, inside) if ok]
    if len(kept) < len(todo) and log is not None:
        log(f"verify: the refined surrogate puts {len(todo) - len(kept)} of the {len(todo)} runs not yet "
            f"simulated out of band; not simulating them" + ("" if kept else " (next round instead)"))
    return kept


def round_records(ver: Verification, result: GuidanceResult, base: GuidanceObjective, low: float,
                  high: float) -> list[dict[str, Any]]:
    """Per round of ``--verify``: runs simulated, in band by the surrogate that
    guided them and by simulation, and the surrogate-simulation peak MAD of
    the surrogate that guided the round (``before``: for round > 1 with
    --verify-refine the copy refined on the earlier rounds, on runs it has
    never been trained on), of the original surrogate, of the surrogate when
    each run was picked, and of the last refined copy (``after``; on runs it
    was trained on)."""
    ok, sim_inb, window = ver.ok(), ver.in_band(low, high), ver.window
    sur_inb = peaks_in_band(result.peaks, low, high)
    last = ver.objective
    out = []
    for r in range(1, ver.rounds + 1):
        sel = ver.round_of == r
        good = sel & ok
        runs = ver.runs[good]
        sim = ver.activations[good]
        rec = {"round": r, "runs_simulated": int(sel.sum()), "simulations_failed": int((sel & ~ok).sum()),
               "in_band_by_surrogate": int(sur_inb[ver.runs[sel]].sum()),
               "in_band_by_simulation": int(sim_inb[sel].sum()),
               "surrogate_sim_peak_mad_before": _mad(result.activations[runs], sim, window),
               "surrogate_sim_peak_mad_original": _mad(base.predict(result.motions[runs]), sim, window),
               "surrogate_sim_peak_mad_at_pick": _mad(ver.predicted[good], sim, window),
               "surrogate_sim_peak_mad_after": (_mad(last.predict(result.motions[runs]), sim, window)
                                                if last is not None else None),
               "guided_by": "refined" if r > 1 and last is not None else "original"}
        out.append(rec)
    return out


def _mad(pred: np.ndarray, sim: np.ndarray, window: int) -> float | None:
    return None if len(pred) == 0 else peak_mad(pred, sim, window)


def verified_keep(result: GuidanceResult, ver: Verification, n: int, low: float, high: float,
                  note: Callable[[str], None], subject: str = "") -> np.ndarray:
    """The first ``n`` verified runs in band by simulation, ordered by peak; if
    none is, the one closest to the band by simulation (its summary says it is
    not in band, and the log warns)."""
    passed = ver.runs[ver.in_band(low, high)][:n]
    if len(passed) < n:
        note(f"verify: WARNING only {len(passed)} of the {n} samples asked for are in band by simulation after "
             f"{ver.rounds} round(s) of {len(result.latents) // max(ver.rounds, 1)} latents; keeping "
             + (f"those {len(passed)}" if len(passed) else "the one closest to the band (not in band)"))
    if len(passed) == 0:
        ok = np.array([not e for e in ver.errors], dtype=bool)
        if not ok.any():
            raise GuidanceError(f"{subject + ': ' if subject else ''}--verify: every simulation failed, "
                                f"e.g. {ver.errors[0]}")
        p = ver.peaks()
        hinge = np.where(ok, (np.maximum(p - high, 0) + np.maximum(low - p, 0)).mean(1), np.inf)
        passed = ver.runs[[int(hinge.argmin())]]
    return order_by_peak(result, passed)
