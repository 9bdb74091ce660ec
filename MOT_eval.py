"""Reconstruct the test split with a trained VQ-VAE.

    python MOT_eval.py --dataname mcs --out-dir output --exp-name VQVAE9 --resume-pth output/VQVAE9/net_best.pth

Writes ``<out-dir>/<exp-name>/reconstruction_test/``: one OpenSim ``.mot`` per
repetition under ``mot/``, ``errors.csv`` and ``errors.json`` (MAE per
coordinate, degrees / cm), and prints the table.

Motions outside the model are in physical units: (N, T, 33) canonical order,
rotations in degrees, pelvis translations in metres; errors are reported in
degrees for rotations and centimetres for translations.
"""
from __future__ import annotations

from pathlib import Path

import torch

from dataset.repetitions import load_repetitions
from metrics.reconstruction import coordinate_errors, errors_csv, errors_table
from models.vqvae import load_vqvae
from options.vq import get_eval_parser
from utils.cli import run as run_cli
from utils.constants import DEFAULT_DATA_ROOT
from utils.device import apply_precision, resolve_device, torch_threads
from utils.errors import UserError
from utils.fileio import atomic_write_json, atomic_write_text, ensure_writable, staged_dir
from utils.motion_io import write_coordinates


def main(args) -> dict:
    """What ``MOT_eval.py`` does: reconstruct a split with the checkpoint
    ``args.resume_pth`` and write, under ``<out-dir>/<exp-name>/reconstruction_<split>/``,
    one ``.mot`` per repetition (canonical 33 columns, degrees / metres, time
    column in the repetition's real time)
    plus ``errors.csv`` and ``errors.json`` (MAE per coordinate, degrees / cm).
    Returns the error dict. Data options left unset come from the checkpoint."""
    folder = Path(args.out_dir) / args.exp_name / f"reconstruction_{args.split}"
    ensure_writable(folder, args.overwrite)
    device = resolve_device(args.device)
    print(apply_precision(args, device, "vq_evaluation"))
    with torch_threads(args.num_threads):
        return _evaluate(args, folder, device)


def _evaluate(args, folder: Path, device: torch.device) -> dict:
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
    recon = model.reconstruct(reps.motions, normalizer, batch_size=args.batch_size, precision=args.precision,
                              progress=not args.no_progress)
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


if __name__ == "__main__":
    run_cli(main, get_eval_parser())
