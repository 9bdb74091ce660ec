"""How well a surrogate predicts muscle activations: per-muscle RMSE, R^2,
temporal correlation and peak error of predicted against simulated curves,
their summary, and the reports (text, markdown, CSV/JSON) that
``surrogate_training.py`` writes.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from metrics.report import Column, text_table
from utils.fileio import atomic_open, atomic_write_json

VASTI: tuple[str, ...] = tuple(f"{base}_{side}" for base in ("vasmed", "vaslat", "vasint") for side in ("r", "l"))
"""The six vasti, the muscles the acceptance criterion is stated for."""


R2_MIN_STD = 0.01
"""Below this standard deviation of the simulated activation, R^2 is reported as NaN."""


def surrogate_accuracy(pred: np.ndarray, target: np.ndarray, muscles: Sequence[str]) -> list[dict[str, Any]]:
    """Per-muscle metrics of (N, T, M) predicted vs simulated activations.

    ``rmse``: root mean square error over every frame; ``r2``: 1 - SS_res/SS_tot
    pooled over every frame of every repetition (NaN when the simulated
    activation is practically constant, standard deviation below
    :data:`R2_MIN_STD`: R^2 means nothing for a muscle that stays off); ``peak_error``: mean over repetitions of
    |max_t pred - max_t sim|; ``corr``: temporal correlation, the mean over
    repetitions of Pearson's r between the predicted and the simulated curve
    (repetitions where either curve is flat, std below 1e-6, left out; NaN
    when all are); ``sim_mean`` / ``sim_std``: of the simulated activation;
    ``sim_peak``: mean simulated peak; ``pred_peak``: mean predicted peak.
    All but ``r2`` and ``corr`` in activation units.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} must both be (N, T, M)")
    p = pred.astype(np.float64)
    y = target.astype(np.float64)
    rows = []
    for j, name in enumerate(muscles):
        err = p[..., j] - y[..., j]
        ss_res = float(np.sum(err ** 2))
        ss_tot = float(np.sum((y[..., j] - y[..., j].mean()) ** 2))
        rows.append({
            "muscle": name,
            "rmse": float(np.sqrt(np.mean(err ** 2))),
            "r2": 1.0 - ss_res / ss_tot if y[..., j].std() >= R2_MIN_STD else float("nan"),
            "peak_error": float(np.mean(np.abs(p[..., j].max(1) - y[..., j].max(1)))),
            "corr": temporal_correlation(p[..., j], y[..., j]),
            "sim_mean": float(y[..., j].mean()),
            "sim_std": float(y[..., j].std()),
            "sim_peak": float(y[..., j].max(1).mean()),
            "pred_peak": float(p[..., j].max(1).mean()),
        })
    return rows


def temporal_correlation(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean over repetitions of Pearson's r between (N, T) curves; flat curves left out."""
    pc = pred - pred.mean(axis=1, keepdims=True)
    tc = target - target.mean(axis=1, keepdims=True)
    ps, ts = np.sqrt((pc ** 2).sum(1)), np.sqrt((tc ** 2).sum(1))
    ok = (pred.std(axis=1) > 1e-6) & (target.std(axis=1) > 1e-6)
    if not ok.any():
        return float("nan")
    return float(np.mean((pc[ok] * tc[ok]).sum(1) / (ps[ok] * ts[ok])))


def summarise_accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over all muscles and over the vasti present, and the worst vasti R^2."""
    def mean(key, subset):
        vals = [r[key] for r in subset if r[key] == r[key]]  # NaN R^2 (constant activation) left out
        return float(np.mean(vals)) if vals else float("nan")

    vasti = [r for r in rows if r["muscle"] in VASTI]
    keys = ("rmse", "r2", "peak_error", "corr")
    out = {f"mean_{k}": mean(k, rows) for k in keys}
    if vasti:
        out.update({f"vasti_mean_{k}": mean(k, vasti) for k in keys})
        out["vasti_min_r2"] = float(min(r["r2"] for r in vasti))
    return out


ACCURACY_COLUMNS = (
    Column("muscle", "muscle"), Column("rmse", "RMSE", ".4f"), Column("r2", "R^2"),
    Column("corr", "temporal corr."), Column("peak_error", "peak error", ".4f"),
    Column("sim_peak", "simulated peak"), Column("pred_peak", "predicted peak"), Column("sim_std", "simulated std", ".4f"),
)
"""The printed columns of a surrogate evaluation (CSV and JSON hold every key)."""


def accuracy_table(rows: list[dict[str, Any]], summary: dict[str, Any] | None = None) -> str:
    """The per-muscle rows as an aligned text table, with the mean and vasti-mean
    rows of ``summary`` (:func:`summarise_accuracy`) underneath."""
    extra = []
    if summary:
        extra.append({"muscle": "mean", **{k: summary[f"mean_{k}"] for k in ("rmse", "r2", "corr", "peak_error")}})
        if "vasti_mean_r2" in summary:
            extra.append({"muscle": f"vasti mean (min R^2 {summary['vasti_min_r2']:.3f})",
                          **{k: summary[f"vasti_mean_{k}"] for k in ("rmse", "r2", "corr", "peak_error")}})
    return text_table([*rows, *extra], ACCURACY_COLUMNS)


def write_evaluation(folder: str | Path, name: str, rows: list[dict[str, Any]], info: dict[str, Any]) -> list[Path]:
    """Write ``<name>.csv`` and ``<name>.json`` atomically; returns the paths."""
    folder = Path(folder)
    csv_path, json_path = folder / f"{name}.csv", folder / f"{name}.json"
    with atomic_open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_json(json_path, {**info, "summary": summarise_accuracy(rows), "muscles": rows})
    return [csv_path, json_path]
