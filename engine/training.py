"""Pieces the trainers share (``train_mdm.py``, ``train_t2m_trans.py``):
the experiment folder check, the learning-rate
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
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from utils.checkpoint import CheckpointError, rng_state, save_checkpoint, set_rng_state
from utils.constants import COORDINATES
from utils.device import autocast
from utils.distributed import all_reduce_mean, barrier
from utils.fileio import OutputExistsError, exclusive_run

LAST_NAME = "net_last.pth"
BEST_NAME = "net_best.pth"


def run_distributed(args: argparse.Namespace,
                    body: Callable[[argparse.Namespace, Any], dict[str, float]]) -> dict[str, float]:
    """Join the launcher's process group (if any), run ``body(args, dist_info)``
    and always leave the group again."""
    from utils.device import resolve_device
    from utils.distributed import cleanup_distributed, init_distributed

    dist_info = init_distributed(resolve_device(args.device).type)
    try:
        with exclusive_run(Path(args.out_dir) / args.exp_name, enabled=dist_info.is_main):  # one writer per folder
            return body(args, dist_info)
    finally:
        cleanup_distributed()


def start_run(args: argparse.Namespace, dist_info: Any) -> tuple[torch.device, Path, dict | None]:
    """The opening of every trainer: this rank's device, the thread count, the
    checked experiment folder and the checkpoint to resume from (or ``None``)."""
    from utils.checkpoint import load_checkpoint
    from utils.device import resolve_device

    device = resolve_device(args.device, dist_info.local_rank if dist_info.enabled else None)
    set_threads(args.num_threads, dist_info.world_size, device.type)
    exp_dir = check_run_dir(f"{args.out_dir}/{args.exp_name}", args.resume, args.overwrite)
    ckpt = load_checkpoint(args.resume) if args.resume else None
    return device, exp_dir, ckpt


def prepare_training(model: nn.Module, data: torch.Tensor, cond: torch.Tensor | None,
                     args: argparse.Namespace, dist_info: Any, device: torch.device, ckpt: dict | None,
                     config: dict, resume_path: str | None):
    """AdamW (betas 0.9/0.99), warm-up + step-decay schedule, in-memory batches
    of ``data`` (and ``cond``) for this rank, the state restored from ``ckpt``
    when resuming, and the model wrapped in DDP when distributed.

    Returns (model, optimizer, scheduler, batches, step, best_val)."""
    import math

    from torch.nn.parallel import DistributedDataParallel

    from dataset.torch_data import InMemoryBatches

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_step_lambda(args.warm_up_iter, sorted(args.lr_scheduler), args.gamma))
    extra = () if cond is None else (cond,)
    batches = InMemoryBatches(data, args.batch_size, *extra, seed=args.seed, rank=dist_info.rank,
                              world_size=dist_info.world_size, device=device)
    step, best_val = 0, math.inf
    if ckpt is not None:
        step = restore_training_state(ckpt, resume_path, model, optimizer, scheduler, batches,
                                      dist_info.rank, dist_info.world_size, config)
        best_val = float(ckpt.get("best_val", math.inf))
    if dist_info.enabled:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model, optimizer, scheduler, batches, step, best_val


def set_threads(num_threads: int, world_size: int, device_type: str) -> None:
    """``--num-threads``: use that many CPU threads; with 0 under a multi-process
    launch on the CPU that did not set OMP_NUM_THREADS, share the cores out."""
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    elif world_size > 1 and device_type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        local = int(os.environ.get("LOCAL_WORLD_SIZE") or world_size)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


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
    missing = [k for k in ("model_config", "model", "optimizer", "scheduler", "step", "ranks") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint of this script (no {', '.join(map(repr, missing))})")
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


@contextlib.contextmanager
def stop_on_signal():
    """Within the block, SIGINT / SIGTERM only set ``flag["stop"]`` (a second
    one interrupts at once), so the loop can save a checkpoint and return."""
    flag = {"stop": False}

    def handle(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread
            old[sig] = signal.signal(sig, handle)
    try:
        yield flag
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def run_loop(args: argparse.Namespace, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             batches: Any, loss_fn: Callable[[Any], dict[str, torch.Tensor]],
             val_fn: Callable[[], float] | None, logger: Any, dist_info: Any, device: torch.device,
             exp_dir: Path, step: int, best_val: float, extra: dict[str, Any], desc: str) -> dict[str, float]:
    """The optimisation loop every baseline trainer runs.

    Each step: ``loss_fn(batches.next())`` (under ``--precision`` autocast),
    backward, gradient clipping (``--grad-clip``), optimizer and scheduler
    step. Every ``--print-iter`` steps the rank-averaged losses go to run.log,
    tensorboard (``train/*``) and the tqdm bar; every ``--eval-iter`` steps
    (and at the end) ``val_fn()`` is logged (``val/loss``), ``net_best.pth``
    is written when it improves and ``net_last.pth`` always; ``--snapshot-iter``
    adds numbered snapshots. ``extra`` goes into every checkpoint. SIGINT or
    SIGTERM stops after the current step with ``net_last.pth`` written
    (``stopped`` = 1 in the result). Returns the last logged numbers and
    ``step``.
    """
    def checkpoint(path: Path) -> None:
        states = gather_rank_states(batches)
        if dist_info.is_main:
            save_training_state(path, model, optimizer, scheduler, step, args, states, best_val=best_val, **extra)
        barrier()

    model.train()
    running: dict[str, float] = {}
    last: dict[str, float] = {}
    bar = tqdm(total=args.total_iter, initial=step, desc=desc, dynamic_ncols=True,
               disable=not dist_info.is_main or getattr(args, "no_progress", False))
    t0, timed = time.perf_counter(), 0
    stopped = False
    with stop_on_signal() as flag:
        while step < args.total_iter and not stopped:
            with autocast(device, args.precision):
                losses = loss_fn(batches.next())
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if args.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            timed += 1
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            bar.update(1)
            stopped = flag["stop"]
            if dist_info.enabled:  # every rank stops at the same step
                stopped = bool(all_reduce_mean(torch.tensor(float(stopped), device=device)) > 0)
            if step % args.print_iter == 0 or step == args.total_iter:
                n = step % args.print_iter or args.print_iter
                avg = {k: float(all_reduce_mean(torch.tensor(v / n, device=device))) for k, v in running.items()}
                rate = timed / (time.perf_counter() - t0)
                avg["lr"] = scheduler.get_last_lr()[0]
                last.update(avg)
                logger.scalars(avg, step, prefix="train/")
                logger.log(f"step {step}: " + " ".join(f"{k} {v:.5g}" for k, v in avg.items())
                           + f" ({rate:.2f} it/s)")
                bar.set_postfix(loss=f"{avg['loss']:.4f}", it_s=f"{rate:.2f}")
                running = {}
            if step % args.eval_iter == 0 or step == args.total_iter:
                if val_fn is not None:
                    model.eval()
                    val = float(val_fn())
                    model.train()
                    last["val_loss"] = val
                    logger.scalars({"loss": val}, step, prefix="val/")
                    logger.log(f"step {step}: val_loss {val:.5g} (best {min(val, best_val):.5g})")
                    if val < best_val:
                        best_val = val
                        checkpoint(exp_dir / BEST_NAME)
                checkpoint(exp_dir / LAST_NAME)
            elif stopped:
                checkpoint(exp_dir / LAST_NAME)
                logger.log(f"stopped by signal at step {step}; continue with --resume {exp_dir / LAST_NAME}")
            if args.snapshot_iter and step % args.snapshot_iter == 0:
                checkpoint(exp_dir / f"{step}.pth")
    bar.close()
    if step >= args.total_iter and args.snapshot_iter and step % args.snapshot_iter == 0 \
            and not (exp_dir / f"{step}.pth").exists():  # a resumed finished run whose final snapshot was lost
        checkpoint(exp_dir / f"{step}.pth")
        logger.log(f"rewrote the missing final snapshot {exp_dir / f'{step}.pth'}")
    logger.log(f"done at step {step}; checkpoint {exp_dir / LAST_NAME}")
    last["step"] = step
    last["stopped"] = float(stopped)
    return last
