"""Reconstruction with a trained VQ-VAE and its per-coordinate errors.

Shared by the validation inside ``train_vq.py`` and by ``MOT_eval.py``.
Motions outside the model are in physical units: (N, T, 33) canonical order,
rotations in degrees, pelvis translations in metres; errors are reported in
degrees for rotations and centimetres for translations.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dataset.normalization import Normalizer
from dataset.repetitions import load_repetitions
from utils.constants import COORDINATES, DEFAULT_DATA_ROOT, TRANSLATIONS
from utils.device import apply_precision, autocast, resolve_device
from utils.errors import UserError
from utils.fileio import atomic_write_json, atomic_write_text, ensure_writable, staged_dir
from utils.motion_io import write_coordinates


@torch.no_grad()
def reconstruct(model: torch.nn.Module, motions: np.ndarray, normalizer: Normalizer,
                batch_size: int = 64, device: torch.device | str = "cpu", precision: str = "fp32",
                progress: bool = False) -> np.ndarray:
    """Encode, quantise and decode ``motions`` (N, T, C) in physical units, in
    batches, without touching the codebook. Returns (N, T, C) float32 in the
    same units; what the normaliser centres (the clip mean of the laboratory
    position and heading) is added back, so the result compares with ``motions``."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = np.empty_like(np.asarray(motions, dtype=np.float32))
    starts = range(0, len(motions), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="reconstruct", unit="batch")
    try:
        for start in starts:
            chunk = np.asarray(motions[start:start + batch_size])
            x = torch.as_tensor(normalizer.normalize(chunk), dtype=torch.float32, device=device)
            with autocast(device, precision):
                z = model.encode_latent(x)
                z_q, _ = model.quantize(z)
                x_hat = model.decode_latent(z_q)
            out[start:start + batch_size] = (normalizer.denormalize(x_hat.float()).cpu().numpy()
                                             + normalizer.clip_offset(chunk))
    finally:
        model.train(was_training)
    return out


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


def evaluate_checkpoint(args) -> dict:
    """What ``MOT_eval.py`` does: reconstruct a split with the checkpoint
    ``args.resume_pth`` and write, under ``<out-dir>/<exp-name>/reconstruction_<split>/``,
    one ``.mot`` per repetition (canonical 33 columns, degrees / metres, time
    column in the repetition's real time)
    plus ``errors.csv`` and ``errors.json`` (MAE per coordinate, degrees / cm).
    Returns the error dict. Data options left unset come from the checkpoint."""
    folder = Path(args.out_dir) / args.exp_name / f"reconstruction_{args.split}"
    ensure_writable(folder, args.overwrite)
    device = resolve_device(args.device)
    print(apply_precision(args, device))
    threads = torch.get_num_threads()
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    try:
        return _evaluate(args, folder, device)
    finally:
        torch.set_num_threads(threads)


def _evaluate(args, folder: Path, device: torch.device) -> dict:
    from models.vqvae import load_vqvae  # models import this module's neighbours, not the reverse

    model, normalizer, ckpt = load_vqvae(args.resume_pth, device)
    trained = ckpt.get("args", {})
    data_root = args.data_root or trained.get("data_root", DEFAULT_DATA_ROOT)
    reps = load_repetitions(
        data_root, args.split,
        length=args.clip_length or trained.get("clip_length", model.downsample * 49),
        clip_mode=args.clip_mode or trained.get("clip_mode", "resample"),
        split_file=args.split_file or trained.get("split_file"))
    if reps.motions.shape[1] % model.downsample:
        raise UserError(f"--clip-length {reps.motions.shape[1]} is not a multiple of {model.downsample}")
    recon = reconstruct(model, reps.motions, normalizer, batch_size=args.batch_size, device=device,
                        precision=args.precision, progress=not args.no_progress)
    errors = coordinate_errors(recon, reps.motions)
    with staged_dir(folder) as staging:  # old results are replaced only once the new ones are complete
        clips = []
        steps = reps.time_steps()
        for i in range(len(reps)):
            name = f"{reps.sessions[i]}_{reps.trials[i]}_rep{reps.indices[i]}.mot"
            # the reconstruction spans its repetition's real time, not 195 frames at 60 Hz
            write_coordinates(staging / "mot" / name, recon[i], frame_rate=1.0 / steps[i])
            e = coordinate_errors(recon[i:i + 1], reps.motions[i:i + 1])
            clips.append({"file": f"mot/{name}", "session": reps.sessions[i], "trial": reps.trials[i],
                          "repetition": reps.indices[i], "mae_deg": e["mae_deg"], "mae_cm": e["mae_cm"]})
        atomic_write_text(staging / "errors.csv", errors_csv(errors))
        atomic_write_json(staging / "errors.json", {
            "checkpoint": str(args.resume_pth), "step": ckpt.get("step"), "data_root": str(data_root),
            "split": args.split, **errors, "clips": clips})
    print(errors_table(errors))
    print(f"wrote {len(reps)} reconstructions and errors.csv / errors.json to {folder}")
    return {**errors, "folder": str(folder)}
