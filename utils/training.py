"""Pieces every baseline trainer shares (``utils/mdm_training.py``,
``utils/t2m_training.py``): the experiment folder check, the learning-rate
schedule, per-rank random state for exact resume under DDP, and the
checkpoint round trip.

A training checkpoint is one dict with ``model`` (unwrapped weights),
``optimizer``, ``scheduler``, ``step``, ``args`` (the options used),
``model_config``, ``normalizer``, ``coordinates``, ``rng`` (rank 0's Python,
NumPy and torch states), ``ranks`` (per rank: RNG and batch-sampler state) and
whatever the trainer adds (``best_val``, ``method``...).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from utils.checkpoint import CheckpointError, rng_state, save_checkpoint, set_rng_state
from utils.constants import COORDINATES
from utils.fileio import OutputExistsError

LAST_NAME = "net_last.pth"
BEST_NAME = "net_best.pth"


def check_run_dir(exp_dir: str | os.PathLike, resume: str | None, overwrite: bool) -> Path:
    """Refuse to start a fresh run in a folder that already holds a
    checkpoint, unless ``overwrite`` (or ``resume``, which continues it)."""
    exp_dir = Path(exp_dir)
    if resume is None and not overwrite and (exp_dir / LAST_NAME).exists():
        raise OutputExistsError(
            f"{exp_dir}: holds a trained model ({LAST_NAME}); pass --resume {exp_dir / LAST_NAME} to continue "
            "it, --overwrite to start again, or choose another --exp-name")
    return exp_dir


def warmup_step_lambda(warmup: int, milestones: list[int], gamma: float) -> Callable[[int], float]:
    """LR factor at step ``s``: linear warm-up over ``warmup`` steps, then
    multiplied by ``gamma`` at each milestone (T2M-GPT's schedule)."""
    def factor(s: int) -> float:
        f = min(1.0, (s + 1) / warmup) if warmup > 0 else 1.0
        for m in milestones:
            if s >= m:
                f *= gamma
        return f
    return factor


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the model)."""
    return model.module if hasattr(model, "module") else model


def gather_rank_states(batches: Any) -> list[dict]:
    """Every rank's RNG and batch-sampler state (a list indexed by rank; a
    one-element list without a process group). Collective under DDP."""
    mine = {"rng": rng_state(), "batches": batches.state_dict()}
    if dist.is_available() and dist.is_initialized():
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, mine)
        return out
    return [mine]


def save_training_state(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: Any, step: int, args: argparse.Namespace, rank_states: list[dict],
                        **extra: Any) -> Path:
    """Write a complete checkpoint atomically (call on the main rank only)."""
    return save_checkpoint(
        path, model=unwrap(model).state_dict(), optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(), step=step, args=vars(args), coordinates=list(COORDINATES),
        rng=rank_states[0]["rng"], ranks=rank_states, **extra)


def restore_training_state(ckpt: dict, path: str | os.PathLike, model: nn.Module,
                           optimizer: torch.optim.Optimizer, scheduler: Any, batches: Any,
                           rank: int, world_size: int, model_config: dict) -> int:
    """Load what :func:`save_training_state` wrote into live objects and this
    rank's random state; returns the step to continue from. Raises
    :class:`CheckpointError` if the architecture or world size differ."""
    if ckpt.get("model_config") != model_config:
        diff = {k: (ckpt.get("model_config", {}).get(k), v) for k, v in model_config.items()
                if ckpt.get("model_config", {}).get(k) != v}
        raise CheckpointError(f"{path}: architecture differs from the options given (checkpoint, now): {diff}")
    ranks = ckpt.get("ranks", [])
    if len(ranks) != world_size:
        raise CheckpointError(f"{path}: saved by {len(ranks)} process(es), resumed with {world_size}; "
                              "exact resume needs the same number")
    unwrap(model).load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    batches.load_state_dict(ranks[rank]["batches"])
    set_rng_state(ranks[rank]["rng"])
    return int(ckpt["step"])
