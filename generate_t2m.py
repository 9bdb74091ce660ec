#!/usr/bin/env python
"""Sample the token prior for each subject and decode with the VQ-VAE.

    python generate_t2m.py --resume-trans output/T2M/net_last.pth --subject all --num-samples 20 --top-k 50

Outputs: <out-dir>/<exp-name>/<session>/entry_<k>_<exp-name>.{mot,npy} and summary.json
(default output/baselines/t2m_baseline), read by the metric scripts like guidance outputs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dataset.mcs import Session
from dataset.normalization import Normalizer
from dataset.subjects import session_repetitions, subject_descriptor
from engine.generation import batched, checkpoint_option, finish, generate_for_subjects, prepare
from models.token_prior import load_token_prior
from models.vqvae import load_vqvae
from options.t2m import get_generate_parser
from utils.checkpoint import CheckpointError
from utils.cli import run as run_cli
from utils.device import autocast, resolve_device
from utils.errors import UserError


def main(args: argparse.Namespace) -> list[Path]:
    """``generate_t2m.py``: sample code sequences and decode them."""
    if args.top_k < 0:
        raise UserError(f"--top-k must be >= 0, got {args.top_k}")
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0, got {args.temperature}")
    dist_info, subjects, exp_dir = prepare(args)
    try:
        device = resolve_device(args.device, dist_info.local_rank if dist_info.enabled else None)
        prior, ckpt = load_token_prior(args.resume_trans, device)
        vq_name = args.vq_name or ckpt["vq_name"]
        vq, _, vq_ckpt = load_vqvae(vq_name, device)
        if dict(vq_ckpt["model_config"]) != ckpt.get("vq_config"):
            raise CheckpointError(f"{vq_name}: VQ-VAE options {vq_ckpt['model_config']} differ from those the prior "
                                  f"{args.resume_trans} was trained with ({ckpt.get('vq_config')})")
        normalizer = Normalizer.from_state_dict(ckpt["normalizer"])
        config = prior.config
        clip_length = config.block_size * vq.downsample
        clip_mode = str(checkpoint_option(ckpt, "clip_mode", "resample"))

        def sampler(session: Session, n: int, gen: torch.Generator):
            cond = None
            if config.cond_dim:
                reps = session_repetitions(session, clip_length, clip_mode)
                desc = subject_descriptor(normalizer.normalize(reps.motions.astype(np.float64)))
                cond = torch.as_tensor(desc, device=device)[None]
            out = []
            for b in batched(n, args.batch_size):
                with torch.no_grad(), autocast(device, args.precision):
                    idx = prior.sample(b, None if cond is None else cond.expand(b, -1), top_k=args.top_k,
                                       temperature=args.temperature, generator=gen)
                    x = vq.decode_indices(idx)
                out.append(normalizer.denormalize(x.float().cpu().numpy().astype(np.float64)))
            return np.concatenate(out), None

        info = {"method": "t2m", "checkpoint": str(args.resume_trans), "checkpoint_step": ckpt.get("step"),
                "vq_checkpoint": str(vq_name), "top_k": args.top_k or None, "temperature": args.temperature,
                "conditioning": "subject" if config.cond_dim else "none"}
        return generate_for_subjects(args, dist_info, subjects, exp_dir, sampler, device, info)
    finally:
        finish()


if __name__ == "__main__":
    run_cli(main, get_generate_parser())
