#!/usr/bin/env python
"""Train the token prior (T2M-GPT style) over a trained VQ-VAE's code indices.

    python train_t2m_trans.py --vq-name output/VQVAE/net_last.pth --exp-name T2M --total-iter 100000
    python train_t2m_trans.py --vq-name output/VQVAE/net_last.pth --cond subject --exp-name T2M_subject
    torchrun --nproc_per_node 2 train_t2m_trans.py ...          # DDP, same flags

Outputs: <out-dir>/<exp-name>/{run.log, tensorboard/, net_last.pth, net_best.pth}.

The stage encodes the training split's clips with a frozen VQ-VAE (``--vq-name``) into
code sequences (N, T / 4), then trains :class:`models.token_prior.TokenPrior`
on next-code cross entropy with T2M-GPT's input corruption (``--pkeep``),
AdamW, warm-up and step decay. Writes ``<out-dir>/<exp-name>/``: ``run.log``,
tensorboard (train/loss, accuracy, lr; val/loss = cross entropy on the test
split's codes), ``net_last.pth`` (complete, atomic; ``--resume`` continues
exactly), ``net_best.pth``. Runs unchanged under ``torchrun``.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict

import numpy as np
import torch

from dataset.mcs import DatasetError
from dataset.normalization import Normalizer
from dataset.repetitions import RepetitionSet, load_repetitions
from dataset.subjects import SUBJECT_FEATURES, clip_descriptors
from engine.training import (
    checkpoint_writer, clear_run_dir, prepare_training, run_distributed, run_loop, start_run, unwrap,
)
from models.token_prior import TokenPrior, TokenPriorConfig, next_code_loss
from models.vqvae import VQVAE, load_vqvae
from options.t2m import get_args_parser
from utils.checkpoint import CheckpointError, seed_everything
from utils.cli import run as run_cli
from utils.device import apply_precision, autocast
from utils.distributed import barrier
from utils.errors import UserError
from utils.run_logging import RunLogger


def check_args(args: argparse.Namespace) -> None:
    """Reject impossible option values before any work."""
    for name in ("batch_size", "total_iter", "embed_dim_gpt", "num_layers", "n_head_gpt", "ff_rate",
                 "print_iter", "eval_iter"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.embed_dim_gpt % args.n_head_gpt:
        raise UserError(f"--embed-dim-gpt {args.embed_dim_gpt} must be divisible by --n-head-gpt {args.n_head_gpt}")
    if not 0.0 < args.pkeep <= 1.0:
        raise UserError(f"--pkeep must be in (0, 1], got {args.pkeep}")
    if not 0.0 <= args.cond_drop < 1.0:
        raise UserError(f"--cond-drop must be in [0, 1), got {args.cond_drop}")


@torch.no_grad()
def encode_codes(vq: VQVAE, normalizer: Normalizer, motions: np.ndarray, device: torch.device,
                 batch_size: int = 256) -> torch.Tensor:
    """Code indices of clips (N, T, 33) in degrees / metres -> (N, T / 4) int64 (CPU)."""
    x = torch.as_tensor(normalizer.normalize(motions.astype(np.float64)), dtype=torch.float32)
    return torch.cat([vq.encode(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def prior_config(args: argparse.Namespace, vq: VQVAE, clip_length: int) -> TokenPriorConfig:
    if clip_length % vq.downsample:
        raise UserError(f"--clip-length {clip_length} is not a multiple of the VQ-VAE's downsampling "
                        f"{vq.downsample}")
    return TokenPriorConfig(
        nb_code=vq.config["nb_code"], block_size=clip_length // vq.downsample, embed_dim=args.embed_dim_gpt,
        num_layers=args.num_layers, n_head=args.n_head_gpt, ff_rate=args.ff_rate, dropout=args.drop_out_rate,
        cond_dim=SUBJECT_FEATURES if args.cond == "subject" else 0)


@torch.no_grad()
def validation_ce(model: TokenPrior, codes: torch.Tensor, cond: torch.Tensor | None, batch_size: int,
                  device: torch.device, precision: str) -> float:
    """Mean next-code cross entropy (nats) over sequences ``codes`` (N, L)
    without corruption or condition dropping. Call in eval mode."""
    total = 0.0
    for i in range(0, len(codes), batch_size):
        c = None if cond is None else cond[i:i + batch_size].to(device)
        with autocast(device, precision):
            out = model.loss(codes[i:i + batch_size].to(device), c)
        total += float(out["loss"]) * len(codes[i:i + batch_size])
    return total / len(codes)


def code_histogram(codes: torch.Tensor, nb_code: int) -> list[int]:
    """How often each code occurs in ``codes``. (nb_code,) counts."""
    return torch.bincount(codes.reshape(-1), minlength=nb_code).tolist()




def _train(args: argparse.Namespace, dist_info) -> dict[str, float]:
    device, exp_dir, ckpt = start_run(args, dist_info)
    precision_note = apply_precision(args, device, "t2m_training")
    vq, normalizer, vq_ckpt = load_vqvae(args.vq_name, device)
    if ckpt is not None and ckpt.get("vq_config") != vq.config:
        raise CheckpointError(f"{args.resume}: trained on a VQ-VAE with options {ckpt.get('vq_config')}, "
                              f"but {args.vq_name} has {vq.config}")
    seed_everything(args.seed + dist_info.rank)
    config = prior_config(args, vq, args.clip_length)

    def load(split: str) -> RepetitionSet:
        return load_repetitions(args.data_root, split, length=args.clip_length, clip_mode=args.clip_mode,
                                split_file=args.split_file)

    train_reps = load("train")
    try:
        val_reps = load("test")
    except DatasetError:
        val_reps = None
    codes = encode_codes(vq, normalizer, train_reps.motions, device)
    cond = torch.as_tensor(clip_descriptors(train_reps, normalizer)) if config.cond_dim else None
    codes_val = cond_val = None
    if val_reps is not None:
        codes_val = encode_codes(vq, normalizer, val_reps.motions, device)
        cond_val = torch.as_tensor(clip_descriptors(val_reps, normalizer)) if config.cond_dim else None
    del vq

    model = TokenPrior(config).to(device)
    model, optimizer, scheduler, batches, state = prepare_training(
        model, codes, cond, args, dist_info, device, ckpt, asdict(config), args.resume, "t2m")
    if dist_info.is_main:
        clear_run_dir(exp_dir, args.resume, args.overwrite)
    barrier()

    logger = RunLogger(exp_dir, args, enabled=dist_info.is_main)
    hist = code_histogram(codes, config.nb_code)
    used = sum(1 for h in hist if h)
    n_params = sum(p.numel() for p in unwrap(model).parameters())
    logger.log(f"{'resumed at step ' + str(state['step']) if ckpt else 'start'}: {len(codes)} training code sequences "
               f"of {config.block_size} codes ({used} of {config.nb_code} codes used) from "
               f"{len(set(train_reps.sessions))} subjects, {0 if codes_val is None else len(codes_val)} validation "
               f"sequences, {n_params / 1e6:.2f} M parameters, device {device}, {precision_note}, "
               f"world size {dist_info.world_size}")

    def loss_fn(batch):
        idx, c = (batch, None) if cond is None else batch
        return next_code_loss(model, config.nb_code, idx, c, args.cond_drop, args.pkeep)

    val_fn = None
    if codes_val is not None:
        val_fn = lambda: validation_ce(unwrap(model), codes_val, cond_val, args.batch_size,  # noqa: E731
                                       device, args.precision)
    save = checkpoint_writer(kind="t2m", model=model, model_config=asdict(config), normalizer=normalizer.state_dict(),
                             optimizer=optimizer, scheduler=scheduler, args=args, batches=batches, dist_info=dist_info,
                             vq_name=str(args.vq_name), vq_config=dict(vq_ckpt["model_config"]), code_counts=hist)
    last = run_loop(args, model=model, optimizer=optimizer, scheduler=scheduler, batches=batches, loss_fn=loss_fn,
                    val_fn=val_fn, logger=logger, dist_info=dist_info, device=device, exp_dir=exp_dir, state=state,
                    save=save, desc="t2m")
    logger.close()
    return last


def main(args: argparse.Namespace) -> dict[str, float]:
    """Train (or resume) the token prior; returns the final logged numbers."""
    check_args(args)
    return run_distributed(args, _train)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
