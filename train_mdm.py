#!/usr/bin/env python
"""Train the motion diffusion baseline (MDM style) on the training split.

    python train_mdm.py --exp-name MDM --total-iter 100000
    torchrun --nproc_per_node 2 train_mdm.py ...      # DDP, same flags
    python train_mdm.py --exp-name MDM --resume output/MDM/net_last.pth

Outputs: <out-dir>/<exp-name>/{run.log, tensorboard/, net_last.pth, net_best.pth}.

The stage reads the training split's repetitions, fits the normaliser on them, trains
the x0-predicting denoiser of :mod:`models.mdm` with AdamW, warm-up and step
decay, and writes ``<out-dir>/<exp-name>/``: ``run.log`` (options first),
tensorboard scalars (train/loss, mse, vel, lr; val/loss = x0 error on the test split), ``net_last.pth`` (complete,
atomic; ``--resume`` continues exactly), ``net_best.pth`` (lowest validation
denoising error) and optional numbered snapshots. Runs unchanged under
``torchrun`` (DDP, rank 0 writes).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict

import numpy as np
import torch

from dataset.mcs import DatasetError
from dataset.normalization import CENTRED, Normalizer
from dataset.repetitions import load_repetitions
from dataset.subjects import SUBJECT_FEATURES, clip_descriptors
from engine.training import (
    checkpoint_writer, clear_run_dir, prepare_training, run_distributed, run_loop, start_run, unwrap,
)
from models.mdm import GaussianDiffusion, MDMConfig, build_mdm
from options.mdm import get_args_parser
from utils.checkpoint import seed_everything
from utils.cli import run as run_cli
from utils.device import apply_precision, autocast
from utils.distributed import barrier
from utils.errors import UserError
from utils.run_logging import RunLogger


def check_args(args: argparse.Namespace) -> None:
    """Reject impossible option values before any work."""
    for name in ("batch_size", "total_iter", "latent_dim", "layers", "heads", "ff_size", "print_iter", "eval_iter"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.latent_dim % args.heads:
        raise UserError(f"--latent-dim {args.latent_dim} must be divisible by --heads {args.heads}")
    if args.frames_per_token < 1 or args.clip_length % args.frames_per_token:
        raise UserError(f"--frames-per-token {args.frames_per_token} must be >= 1 and divide --clip-length "
                        f"{args.clip_length}")
    if args.output_filter < 0 or (args.output_filter and args.output_filter % 2 == 0):
        raise UserError(f"--output-filter must be 0 or an odd width, got {args.output_filter}")
    if args.diffusion_steps < 2:
        raise UserError(f"--diffusion-steps must be >= 2, got {args.diffusion_steps}")
    if not 0.0 <= args.cond_mask_prob < 1.0:
        raise UserError(f"--cond-mask-prob must be in [0, 1), got {args.cond_mask_prob}")


def model_config_from_args(args: argparse.Namespace) -> MDMConfig:
    return MDMConfig(
        n_frames=args.clip_length, latent_dim=args.latent_dim, layers=args.layers, heads=args.heads,
        ff_size=args.ff_size, dropout=args.dropout, cond_dim=SUBJECT_FEATURES if args.cond == "subject" else 0,
        cond_mask_prob=args.cond_mask_prob, frames_per_token=args.frames_per_token, output_filter=args.output_filter,
        diffusion_steps=args.diffusion_steps, noise_schedule=args.noise_schedule)


@torch.no_grad()
def validation_mse(model: torch.nn.Module, diffusion: GaussianDiffusion, x: torch.Tensor,
                   cond: torch.Tensor | None, batch_size: int, device: torch.device, precision: str) -> float:
    """Mean x0 error (normalised units) over clips ``x`` (N, T, C) at steps and
    noise drawn from a fixed generator, so numbers compare across evaluations.
    Call with the model in eval mode."""
    gen = torch.Generator().manual_seed(0)
    t_all = torch.randint(0, diffusion.steps, (len(x),), generator=gen)
    noise_all = torch.randn(x.shape, generator=gen)
    total = 0.0
    for i in range(0, len(x), batch_size):
        sl = slice(i, i + batch_size)
        c = None if cond is None else cond[sl].to(device)
        with autocast(device, precision):
            out = diffusion.training_losses(model, x[sl].to(device), c, 0.0, 0.0,
                                            t=t_all[sl].to(device), noise=noise_all[sl].to(device))
        total += float(out["mse"]) * len(x[sl])
    return total / len(x)




def _train(args: argparse.Namespace, dist_info) -> dict[str, float]:
    device, exp_dir, ckpt = start_run(args, dist_info)
    precision_note = apply_precision(args, device, "mdm_training")
    seed_everything(args.seed + dist_info.rank)

    train_reps = load_repetitions(args.data_root, "train", length=args.clip_length, clip_mode=args.clip_mode,
                                  split_file=args.split_file)
    try:
        val_reps = load_repetitions(args.data_root, "test", length=args.clip_length, clip_mode=args.clip_mode,
                                    split_file=args.split_file)
    except DatasetError:
        val_reps = None
    normalizer = (Normalizer.from_state_dict(ckpt["normalizer"]) if ckpt is not None
                  else Normalizer.fit(train_reps.motions, centred=CENTRED if args.centre else ()))
    config = model_config_from_args(args)
    x = torch.as_tensor(normalizer.normalize(train_reps.motions.astype(np.float64)), dtype=torch.float32)
    cond = torch.as_tensor(clip_descriptors(train_reps, normalizer)) if config.cond_dim else None
    x_val = cond_val = None
    if val_reps is not None:
        x_val = torch.as_tensor(normalizer.normalize(val_reps.motions.astype(np.float64)), dtype=torch.float32)
        cond_val = torch.as_tensor(clip_descriptors(val_reps, normalizer)) if config.cond_dim else None

    model, diffusion = build_mdm(config, device)
    model, optimizer, scheduler, batches, state = prepare_training(
        model, x, cond, args, dist_info, device, ckpt, asdict(config), args.resume, "mdm")
    if dist_info.is_main:
        clear_run_dir(exp_dir, args.resume, args.overwrite)
    barrier()

    logger = RunLogger(exp_dir, args, enabled=dist_info.is_main)
    n_params = sum(p.numel() for p in unwrap(model).parameters())
    logger.log(f"{'resumed at step ' + str(state['step']) if ckpt else 'start'}: {len(x)} training clips from "
               f"{len(set(train_reps.sessions))} subjects, {0 if x_val is None else len(x_val)} validation clips, "
               f"{n_params / 1e6:.2f} M parameters, device {device}, {precision_note}, "
               f"world size {dist_info.world_size}")

    def loss_fn(batch):
        x0, c = (batch, None) if cond is None else batch
        return diffusion.training_losses(model, x0, c, config.cond_mask_prob, args.lambda_vel)

    val_fn = None
    if x_val is not None:
        val_fn = lambda: validation_mse(unwrap(model), diffusion, x_val, cond_val,  # noqa: E731
                                        args.batch_size, device, args.precision)
    save = checkpoint_writer(kind="mdm", model=model, model_config=asdict(config), normalizer=normalizer.state_dict(),
                             optimizer=optimizer, scheduler=scheduler, args=args, batches=batches, dist_info=dist_info)
    last = run_loop(args, model=model, optimizer=optimizer, scheduler=scheduler, batches=batches, loss_fn=loss_fn,
                    val_fn=val_fn, logger=logger, dist_info=dist_info, device=device, exp_dir=exp_dir, state=state,
                    save=save, desc="mdm")
    logger.close()
    return last


def main(args: argparse.Namespace) -> dict[str, float]:
    """Train (or resume) the diffusion model; returns the final logged numbers."""
    check_args(args)
    return run_distributed(args, _train)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
