"""Per-coordinate reconstruction errors of a VQ-VAE (``MOT_eval.py`` and the
validation of ``train_vq.py``): degrees for rotations, centimetres for the
pelvis translations; CSV and text tables of them.
"""
from __future__ import annotations

import csv
import io
from typing import Sequence

import numpy as np

from utils.constants import COORDINATES, TRANSLATIONS

def unit_of(name: str) -> str:
    """``cm`` for the pelvis translations, ``deg`` for every rotation."""
    return "cm" if name in TRANSLATIONS else "deg"


def coordinate_errors(pred: np.ndarray, target: np.ndarray,
                      names: Sequence[str] = COORDINATES) -> dict:
    """Mean absolute error per coordinate between (N, T, C) arrays in degrees /
    metres. Returns ``{"per_coordinate": {name: {"mae", "unit"}}, "mae_deg":
    mean over rotations, "mae_cm": mean over translations, "n_clips": N}``."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.shape[-1] != len(names):
        raise ValueError(f"shapes differ or do not have {len(names)} coordinates: {pred.shape} vs {target.shape}")
    mae = np.abs(pred - target).reshape(-1, len(names)).mean(0)
    per = {}
    for i, name in enumerate(names):
        unit = unit_of(name)
        per[name] = {"mae": float(mae[i] * (100.0 if unit == "cm" else 1.0)), "unit": unit}
    rot = [v["mae"] for v in per.values() if v["unit"] == "deg"]
    trans = [v["mae"] for v in per.values() if v["unit"] == "cm"]
    return {"per_coordinate": per, "mae_deg": float(np.mean(rot)) if rot else float("nan"),
            "mae_cm": float(np.mean(trans)) if trans else float("nan"), "n_clips": int(pred.shape[0])}


def errors_csv(errors: dict) -> str:
    """The per-coordinate table of :func:`coordinate_errors` as CSV text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["coordinate", "mae", "unit"])
    for name, row in errors["per_coordinate"].items():
        writer.writerow([name, f"{row['mae']:.6g}", row["unit"]])
    writer.writerow(["mean_rotations", f"{errors['mae_deg']:.6g}", "deg"])
    writer.writerow(["mean_translations", f"{errors['mae_cm']:.6g}", "cm"])
    return buf.getvalue()


def errors_table(errors: dict) -> str:
    """A fixed-width text table of :func:`coordinate_errors` for the terminal."""
    lines = [f"{'coordinate':<20} {'MAE':>9}  unit", "-" * 36]
    for name, row in errors["per_coordinate"].items():
        lines.append(f"{name:<20} {row['mae']:>9.3f}  {row['unit']}")
    lines.append("-" * 36)
    lines.append(f"{'mean rotations':<20} {errors['mae_deg']:>9.3f}  deg")
    lines.append(f"{'mean translations':<20} {errors['mae_cm']:>9.3f}  cm")
    lines.append(f"({errors['n_clips']} clips)")
    return "\n".join(lines)
