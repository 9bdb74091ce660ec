"""The driver every baseline generation script shares: resolve the subjects,
refuse to overwrite before any work, sample per subject with a generator
seeded from ``--seed`` and the session id (so a subject's samples do not
depend on which other subjects run or on the number of processes), write each
subject with :func:`utils.generation_output.write_subject_samples`, and log.

Under ``torchrun`` the subjects are shared out over the ranks.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from dataset.mcs import Session
from dataset.subjects import mean_repetition_duration, resolve_subjects
from utils.device import apply_precision, resolve_device, torch_threads
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


_HELD = contextlib.ExitStack()
"""What :func:`prepare` holds until :func:`finish`: the thread count and the results-folder lock."""


def prepare(args: argparse.Namespace) -> tuple[DistInfo, list[Session], Path]:
    """Validate options, join the process group, resolve the subjects and
    check the outputs (all before any model work). Returns (dist info, all
    subjects, experiment folder)."""
    check_generation_args(args)
    device_type = resolve_device(args.device).type
    dist_info = init_distributed(device_type)
    try:
        _HELD.enter_context(torch_threads(args.num_threads, dist_info.world_size, device_type))
        subjects = resolve_subjects(args.data_root, args.subject, split_file=args.split_file)
        exp_dir = Path(args.out_dir) / args.exp_name
        check_outputs(exp_dir, [s.id for s in subjects], args.overwrite)
        if dist_info.is_main:  # one writer per results folder, until finish() (or the process ends)
            _HELD.enter_context(RunLock(exp_dir))
            remove_stale_temps(exp_dir)
    except BaseException:
        finish()  # a refused start gives back the threads and leaves the process group
        raise
    return dist_info, subjects, exp_dir


def generate_for_subjects(args: argparse.Namespace, dist_info: DistInfo, subjects: list[Session], exp_dir: Path,
                          sampler: Sampler, device: torch.device, info: dict[str, Any]) -> list[Path]:
    """Run ``sampler`` for this rank's share of ``subjects`` and write the
    results; ``info`` goes into every ``summary.json``. Returns the subject
    folders written by this rank."""
    precision_note = apply_precision(args, device, "generation")  # the samplers read args.precision when they run
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
    """Leave the process group (no-op without one), release the results
    folder and give the thread count back."""
    cleanup_distributed()
    _HELD.close()


def checkpoint_option(ckpt: dict, name: str, default: Any) -> Any:
    """An option recorded in a checkpoint's ``args`` (dict or Namespace)."""
    saved = ckpt.get("args") or {}
    if not isinstance(saved, dict):
        saved = vars(saved)
    value = saved.get(name)
    return default if value is None else value


def check_generation_args(args: argparse.Namespace) -> None:
    """Reject impossible values with a clear message (before any work)."""
    if args.num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
