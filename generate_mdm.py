#!/usr/bin/env python
"""Sample squats from a trained motion diffusion model for each subject.

    python generate_mdm.py --model-path output/MDM/net_last.pth --subject all --num-samples 20
    python generate_mdm.py --model-path output/MDM/net_last.pth --sampler ddpm --subject <session folder>

Outputs: <out-dir>/<exp-name>/<session>/entry_<k>_<exp-name>.{mot,npy} and summary.json
(default <out-dir>/<exp-name> = output/baselines/mdm_baseline), read by
calculate_wasserstein.py and calculate_guidance.py like guidance outputs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dataset.mcs import Session
from dataset.subjects import session_repetitions, subject_descriptor
from engine.generation import batched, finish, generate_for_subjects, prepare
from models.mdm import load_mdm
from options.mdm import get_generate_parser
from utils.cli import run as run_cli
from utils.device import autocast, resolve_device
from utils.errors import UserError


def main(args: argparse.Namespace) -> list[Path]:
    """``generate_mdm.py``: sample the diffusion model for each subject."""
    if args.sampler == "ddim" and args.ddim_steps < 1:
        raise UserError(f"--ddim-steps must be >= 1, got {args.ddim_steps}")
    dist_info, subjects, exp_dir = prepare(args)
    try:
        device = resolve_device(args.device, dist_info.local_rank if dist_info.enabled else None)
        model, diffusion, normalizer, ckpt = load_mdm(args.model_path, device)
        config = model.config
        train_args = ckpt.get("args", {})
        conditional = config.cond_dim > 0

        def sampler(session: Session, n: int, gen: torch.Generator):
            cond = None
            if conditional:
                reps = session_repetitions(session, config.n_frames, train_args.get("clip_mode", "resample"))
                desc = subject_descriptor(normalizer.normalize(reps.motions.astype(np.float64)))
                cond = torch.as_tensor(desc, device=device)[None]
            out = []
            for b in batched(n, args.batch_size):
                with autocast(device, args.precision):
                    x = diffusion.sample(model, (b, config.n_frames, config.n_features),
                                         None if cond is None else cond.expand(b, -1), sampler=args.sampler,
                                         ddim_steps=args.ddim_steps, eta=args.ddim_eta,
                                         guidance=args.guidance_param, generator=gen)
                out.append(normalizer.denormalize(x.float().cpu().numpy().astype(np.float64)))
            return np.concatenate(out), None

        info = {"method": "mdm", "checkpoint": str(args.model_path), "checkpoint_step": ckpt.get("step"),
                "sampler": args.sampler, "ddim_steps": args.ddim_steps if args.sampler == "ddim" else None,
                "ddim_eta": args.ddim_eta, "guidance_param": args.guidance_param,
                "conditioning": "subject" if conditional else "none"}
        return generate_for_subjects(args, dist_info, subjects, exp_dir, sampler, device, info)
    finally:
        finish()


if __name__ == "__main__":
    run_cli(main, get_generate_parser())
