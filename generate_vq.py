#!/usr/bin/env python
"""Unguided VQ-VAE samples for each subject (the baseline guidance improves on).

    python generate_vq.py --vq-name output/VQVAE/net_last.pth --subject all --num-samples 20
    python generate_vq.py --vq-name output/VQVAE/net_last.pth --mode random --subject <session folder>

Outputs: <out-dir>/<exp-name>/<session>/entry_<k>_<exp-name>.{mot,npy} and summary.json
(default output/baselines/VQVAE-Generations), read by the metric scripts like guidance outputs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dataset.mcs import Session
from dataset.repetitions import load_repetitions
from dataset.subjects import session_repetitions
from engine.generation import batched, checkpoint_option, finish, generate_for_subjects, prepare
from models.vqvae import load_vqvae
from options.generate_vq import get_args_parser
from utils.cli import run as run_cli
from utils.constants import CLIP_LENGTH
from utils.device import autocast, resolve_device
from utils.errors import UserError


def main(args: argparse.Namespace) -> list[Path]:
    """``generate_vq.py``: decode subject-initialised or random latents."""
    if args.noise_scale < 0:
        raise UserError(f"--noise-scale must be >= 0, got {args.noise_scale}")
    if args.noise_range is not None and not 0 <= args.noise_range[0] <= args.noise_range[1]:
        raise UserError(f"--noise-range needs 0 <= LOW <= HIGH, got {args.noise_range}")
    dist_info, subjects, exp_dir = prepare(args)
    try:
        device = resolve_device(args.device, dist_info.local_rank if dist_info.enabled else None)
        vq, normalizer, ckpt = load_vqvae(args.vq_name, device)
        clip_length = int(checkpoint_option(ckpt, "clip_length", CLIP_LENGTH))
        clip_mode = str(checkpoint_option(ckpt, "clip_mode", "resample"))
        steps = clip_length // vq.downsample
        used = None
        if args.mode == "random":
            train = load_repetitions(args.data_root, "train", length=clip_length, clip_mode=clip_mode,
                                     split_file=args.split_file)
            with torch.no_grad():
                x = torch.as_tensor(normalizer.normalize(train.motions.astype(np.float64)), dtype=torch.float32)
                codes = torch.cat([vq.encode(x[i:i + 256].to(device)) for i in range(0, len(x), 256)])
            used = torch.unique(codes)

        def decode(z_or_idx: torch.Tensor, from_indices: bool) -> np.ndarray:
            with torch.no_grad(), autocast(device, args.precision):
                x = vq.decode_indices(z_or_idx) if from_indices else vq.decode_latent(vq.quantize(z_or_idx)[0])
            return normalizer.denormalize(x.float().cpu().numpy().astype(np.float64))

        def sampler(session: Session, n: int, gen: torch.Generator):
            out, records = [], []
            if args.mode == "random":
                for b in batched(n, args.batch_size):
                    pick = torch.randint(0, len(used), (b, steps), generator=gen, device=device)
                    out.append(decode(used.to(device)[pick], True))
                return np.concatenate(out), None
            reps = session_repetitions(session, clip_length, clip_mode)
            with torch.no_grad():
                x = torch.as_tensor(normalizer.normalize(reps.motions.astype(np.float64)), dtype=torch.float32)
                z = vq.encode_latent(x.to(device)).float()
            mean, spread = z.mean(0, keepdim=True), float(z.std())
            for b in batched(n, args.batch_size):
                if args.noise_range is not None:
                    low, high = args.noise_range
                    sigma = low + (high - low) * torch.rand(b, 1, 1, generator=gen, device=device)
                else:
                    sigma = torch.full((b, 1, 1), args.noise_scale * spread, device=device)
                noise = torch.randn((b, *mean.shape[1:]), generator=gen, device=device)
                out.append(decode(mean + sigma * noise, False))
                records += [{"noise_std": float(s)} for s in sigma.flatten()]
            return np.concatenate(out), records

        info = {"method": "vqvae", "mode": args.mode, "checkpoint": str(args.vq_name),
                "checkpoint_step": ckpt.get("step"),
                "noise_scale": args.noise_scale if args.noise_range is None else None,
                "noise_range": args.noise_range, "guidance": None}
        return generate_for_subjects(args, dist_info, subjects, exp_dir, sampler, device, info)
    finally:
        finish()


if __name__ == "__main__":
    run_cli(main, get_args_parser())
