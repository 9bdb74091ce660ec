"""The driver every baseline generation script shares: resolve the subjects,
refuse to overwrite before any work, sample per subject with a generator
seeded from ``--seed`` and the session id (so a subject's samples do not
depend on which other subjects run or on the number of processes), write each
subject with :func:`utils.generation_output.write_subject_samples`, and log.

Under ``torchrun`` the subjects are shared out over the ranks.
"""
from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from dataset.mcs import Session
from dataset.subjects import mean_repetition_duration, resolve_subjects
from utils.distributed import DistInfo, barrier, cleanup_distributed, init_distributed
from utils.errors import UserError
from utils.fileio import RunLock, remove_stale_temps
from utils.generation_output import check_outputs, write_subject_samples
from utils.run_logging import RunLogger

Sampler = Callable[[Session, int, torch.Generator], tuple[np.ndarray, list[dict] | None]]
"""``sampler(session, n, generator) -> (motions (n, T, 33) degrees/metres, per-sample dicts or None)``."""


def subject_seed(seed: int, session_id: str) -> int:
    """A stable 63-bit seed from ``--seed`` and a session id."""
    digest = hashlib.sha256(f"{seed}:{session_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


_HELD_LOCKS: list[RunLock] = []
"""The results-folder lock :func:`prepare` takes and :func:`finish` releases."""


def prepare(args: argparse.Namespace) -> tuple[DistInfo, list[Session], Path]:
    """Validate options, join the process group, resolve the subjects and
    check the outputs (all before any model work). Returns (dist info, all
    subjects, experiment folder)."""
    from utils.device import resolve_device
    from engine.training import set_threads

    check_generation_args(args)
    device_type = resolve_device(args.device).type
    dist_info = init_distributed(device_type)
    set_threads(args.num_threads, dist_info.world_size, device_type)
    subjects = resolve_subjects(args.data_root, args.subject, split_file=args.split_file)
    exp_dir = Path(args.out_dir) / args.exp_name
    check_outputs(exp_dir, [s.id for s in subjects], args.overwrite)
    if dist_info.is_main:  # one writer per results folder, until finish() (or the process ends)
        _HELD_LOCKS.append(RunLock(exp_dir).acquire())
        remove_stale_temps(exp_dir)
    return dist_info, subjects, exp_dir


def generate_for_subjects(args: argparse.Namespace, dist_info: DistInfo, subjects: list[Session], exp_dir: Path,
                          sampler: Sampler, device: torch.device, info: dict[str, Any]) -> list[Path]:
    """Run ``sampler`` for this rank's share of ``subjects`` and write the
    results; ``info`` goes into every ``summary.json``. Returns the subject
    folders written by this rank."""
    from utils.device import apply_precision

    precision_note = apply_precision(args, device)  # the samplers read args.precision when they run
    logger = RunLogger(exp_dir, args, enabled=dist_info.is_main, tensorboard=False)
    mine = subjects[dist_info.rank::dist_info.world_size]
    logger.log(f"generating {args.num_samples} samples for each of {len(subjects)} subject(s) "
               f"({info.get('method', '?')}, device {device}, {precision_note}, world size {dist_info.world_size})")
    written = []
    start = time.perf_counter()
    for session in tqdm(mine, desc=f"{info.get('method', 'generate')} subjects", disable=not dist_info.is_main,
                        dynamic_ncols=True):
        gen = torch.Generator(device=device).manual_seed(subject_seed(args.seed, session.id))
        t0 = time.perf_counter()
        motions, per_sample = sampler(session, args.num_samples, gen)
        folder = write_subject_samples(exp_dir, session.id, motions, args.exp_name, overwrite=args.overwrite,
                                       info={**info, "seed": args.seed, "subject_folder": str(session.path)},
                                       per_sample=per_sample, duration=mean_repetition_duration(session))
        written.append(folder)
        logger.log(f"{session.id}: {len(motions)} samples in {time.perf_counter() - t0:.1f} s -> {folder}")
    barrier()
    logger.log(f"done: {len(subjects)} subject(s) in {time.perf_counter() - start:.1f} s under {exp_dir}")
    logger.close()
    return written


def batched(n: int, batch_size: int) -> list[int]:
    """Sizes of the batches that make ``n`` samples."""
    return [min(batch_size, n - i) for i in range(0, n, batch_size)]


def finish() -> None:
    """Leave the process group (no-op without one) and release the results folder."""
    cleanup_distributed()
    while _HELD_LOCKS:
        _HELD_LOCKS.pop().release()


# ----------------------------------------------------------------------------- motion diffusion model


def generate_mdm(args: argparse.Namespace) -> list[Path]:
    """``generate_mdm.py``: sample the diffusion model for each subject."""
    from dataset.subjects import session_repetitions, subject_descriptor
    from models.mdm import load_mdm
    from utils.device import autocast, resolve_device

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


def _ckpt_arg(ckpt: dict, name: str, default: Any) -> Any:
    """An option recorded in a checkpoint's ``args`` (dict or Namespace)."""
    saved = ckpt.get("args") or {}
    if not isinstance(saved, dict):
        saved = vars(saved)
    value = saved.get(name)
    return default if value is None else value


# ----------------------------------------------------------------------------- unguided VQ-VAE samples


def generate_vq(args: argparse.Namespace) -> list[Path]:
    """``generate_vq.py``: decode subject-initialised or random latents."""
    from dataset.repetitions import load_repetitions
    from dataset.subjects import session_repetitions
    from models.vqvae import load_vqvae
    from utils.constants import CLIP_LENGTH
    from utils.device import autocast, resolve_device

    if args.noise_scale < 0:
        raise UserError(f"--noise-scale must be >= 0, got {args.noise_scale}")
    if args.noise_range is not None and not 0 <= args.noise_range[0] <= args.noise_range[1]:
        raise UserError(f"--noise-range needs 0 <= LOW <= HIGH, got {args.noise_range}")
    dist_info, subjects, exp_dir = prepare(args)
    try:
        device = resolve_device(args.device, dist_info.local_rank if dist_info.enabled else None)
        vq, normalizer, ckpt = load_vqvae(args.vq_name, device)
        clip_length = int(_ckpt_arg(ckpt, "clip_length", CLIP_LENGTH))
        clip_mode = str(_ckpt_arg(ckpt, "clip_mode", "resample"))
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


# ----------------------------------------------------------------------------- token prior (T2M-GPT style)


def generate_t2m(args: argparse.Namespace) -> list[Path]:
    """``generate_t2m.py``: sample code sequences and decode them."""
    from dataset.normalization import Normalizer
    from dataset.subjects import session_repetitions, subject_descriptor
    from models.token_prior import load_token_prior
    from models.vqvae import load_vqvae
    from utils.checkpoint import CheckpointError
    from utils.device import autocast, resolve_device

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
        if dict(vq_ckpt["config"]) != ckpt.get("vq_config"):
            raise CheckpointError(f"{vq_name}: VQ-VAE options {vq_ckpt['config']} differ from those the prior "
                                  f"{args.resume_trans} was trained with ({ckpt.get('vq_config')})")
        normalizer = Normalizer.from_state_dict(ckpt["normalizer"])
        config = prior.config
        clip_length = config.block_size * vq.downsample
        clip_mode = str(_ckpt_arg(ckpt, "clip_mode", "resample"))

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


def check_generation_args(args: argparse.Namespace) -> None:
    """Reject impossible values with a clear message (before any work)."""
    if args.num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
