"""The one training engine of every trainer (``train_vq.py``,
``surrogate_training.py``, ``train_t2m_trans.py``, ``train_mdm.py``).

* :func:`check_run_dir` / :func:`clear_run_dir`: the one folder policy (a new
  run never lands silently in a folder that holds a trained model);
* :func:`prepare_training`: AdamW, the warm-up + step-decay schedule,
  in-memory batches and the state restored from a checkpoint;
* :func:`run_loop`: the one optimisation loop (autocast, backward, clipping,
  optimiser and scheduler step, or a ``step_fn`` hook such as DeepSpeed's
  engine; rank-averaged logging; validation with a key to minimise and
  optional patience; best / last / numbered checkpoints; stop on SIGINT or
  SIGTERM with ``net_last.pth`` written);
* :func:`save_training_state` / :func:`restore_training_state`: the one
  checkpoint schema, written in one place.

A training checkpoint is one dict::

    kind          "vqvae" | "surrogate" | "t2m" | "mdm"
    model         unwrapped weights            model_config  constructor options
    normalizer    the data normaliser's state  coordinates   the 33 names in order
    args          the options used             step          optimiser steps done
    optimizer     optimiser state              scheduler     scheduler state
    ranks         per rank: RNG and batch-sampler state   rng  rank 0's RNG state
    best          best validation value so far  (+ what the trainer adds: val, muscles...)

so a resumed run continues exactly (same batches, same random numbers).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from dataset.torch_data import InMemoryBatches
from utils.checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from utils.constants import COORDINATES
from utils.device import autocast, resolve_device, torch_threads
from utils.distributed import all_reduce_mean, barrier, cleanup_distributed, init_distributed
from utils.fileio import OutputExistsError, exclusive_run

LAST_NAME = "net_last.pth"
BEST_NAME = "net_best.pth"


def run_distributed(args: argparse.Namespace,
                    body: Callable[[argparse.Namespace, Any], Any]) -> Any:
    """Join the launcher's process group (if any), run ``body(args, dist_info)``
    with ``--num-threads`` applied and one writer per experiment folder, and
    always leave the group again."""
    device_type = resolve_device(args.device).type
    dist_info = init_distributed(device_type)
    try:
        with torch_threads(args.num_threads, dist_info.world_size, device_type), \
                exclusive_run(Path(args.out_dir) / args.exp_name, enabled=dist_info.is_main):
            return body(args, dist_info)
    finally:
        cleanup_distributed()


def start_run(args: argparse.Namespace, dist_info: Any) -> tuple[torch.device, Path, dict | None]:
    """The opening of every trainer: this rank's device, the checked
    experiment folder and the checkpoint to resume from (or ``None``)."""
    device = resolve_device(args.device, dist_info.local_rank if dist_info.enabled else None)
    exp_dir = check_run_dir(f"{args.out_dir}/{args.exp_name}", args.resume, args.overwrite)
    ckpt = load_checkpoint(args.resume) if args.resume else None
    return device, exp_dir, ckpt


def make_optimizer(model: nn.Module, args: argparse.Namespace, lr_lambda: Callable[[int], float] | None = None,
                   betas: tuple[float, float] = (0.9, 0.99)) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW (``betas``, ``--lr``, ``--weight-decay``) and a LambdaLR schedule:
    ``lr_lambda``, else the warm-up + step decay of ``--warm-up-iter``,
    ``--lr-scheduler`` and ``--gamma``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=betas, weight_decay=args.weight_decay)
    if lr_lambda is None:
        lr_lambda = warmup_step_lambda(args.warm_up_iter, sorted(args.lr_scheduler), args.gamma)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def prepare_training(model: nn.Module, data: torch.Tensor, cond: torch.Tensor | None,
                     args: argparse.Namespace, dist_info: Any, device: torch.device, ckpt: dict | None,
                     config: dict, resume_path: str | None, kind: str):
    """AdamW, warm-up + step-decay schedule, in-memory batches of ``data``
    (and ``cond``) for this rank, the state restored from ``ckpt`` when
    resuming, and the model wrapped in DDP when distributed.

    Returns (model, optimizer, scheduler, batches, loop state)."""
    optimizer, scheduler = make_optimizer(model, args)
    extra = () if cond is None else (cond,)
    batches = InMemoryBatches(data, args.batch_size, *extra, seed=args.seed, rank=dist_info.rank,
                              world_size=dist_info.world_size, device=device)
    state = loop_state(None) if ckpt is None else restore_training_state(
        ckpt, resume_path, model, optimizer, scheduler, batches, dist_info.rank, dist_info.world_size, config, kind)
    if dist_info.enabled:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model, optimizer, scheduler, batches, state


def loop_state(ckpt: Mapping[str, Any] | None) -> dict[str, Any]:
    """Where :func:`run_loop` starts: step, best validation value, validations
    since the best (``stale``), the step of the best, the last validation;
    all zero / infinite for a fresh run, else from the checkpoint."""
    ckpt = ckpt or {}
    return {"step": int(ckpt.get("step", 0)), "best": float(ckpt.get("best", math.inf)),
            "stale": int(ckpt.get("stale", 0)), "best_step": int(ckpt.get("best_step", 0)),
            "val": dict(ckpt.get("val") or {})}


RUN_OUTPUTS = ("net_last.pth", "net_best.pth", "run.log", "tensorboard")
"""What a training run writes into its experiment folder (besides numbered snapshots and reports)."""


def check_run_dir(exp_dir: str | os.PathLike, resume: str | None, overwrite: bool) -> Path:
    """The one folder policy: refuse to start a fresh run in a folder that
    already holds a run (a checkpoint or a log), unless ``overwrite`` (then
    :func:`clear_run_dir` removes it once the data has been read) or
    ``resume`` (which continues it)."""
    exp_dir = Path(exp_dir)
    if resume is None and not overwrite and any((exp_dir / name).exists() for name in RUN_OUTPUTS):
        raise OutputExistsError(
            f"{exp_dir}: holds a training run ({', '.join(n for n in RUN_OUTPUTS if (exp_dir / n).exists())}); "
            f"pass --resume {exp_dir / LAST_NAME} to continue it, --overwrite to start again, or choose another "
            "--exp-name")
    return exp_dir


def clear_run_dir(exp_dir: str | os.PathLike, resume: str | None, overwrite: bool,
                  also: tuple[str, ...] = ()) -> None:
    """With ``--overwrite`` on a fresh run, remove the previous run's outputs
    (:data:`RUN_OUTPUTS`, numbered snapshots and the ``also`` glob patterns);
    nothing else in the folder is touched. Call on the main rank, after the
    inputs have been read, so that a bad input loses nothing."""
    exp_dir = Path(exp_dir)
    if resume is not None or not overwrite or not exp_dir.is_dir():
        return
    targets = [exp_dir / n for n in RUN_OUTPUTS] + [p for p in exp_dir.glob("*.pth") if p.stem.isdigit()]
    targets += [p for pattern in also for p in exp_dir.glob(pattern)]
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def lr_factor(step: int, warm_up_iter: int, milestones: list[int], gamma: float) -> float:
    """Learning-rate multiplier at 0-based ``step``: linear warm-up to 1 over
    ``warm_up_iter`` steps, times ``gamma`` per milestone reached (T2M-GPT's schedule)."""
    warm = min(1.0, (step + 1) / warm_up_iter) if warm_up_iter > 0 else 1.0
    return warm * gamma ** sum(step >= m for m in milestones)


def warmup_step_lambda(warmup: int, milestones: list[int], gamma: float) -> Callable[[int], float]:
    """:func:`lr_factor` as a ``LambdaLR`` function."""
    return lambda s: lr_factor(s, warmup, list(milestones), gamma)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DeepSpeed wrapper (or the model)."""
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


def save_training_state(path: str | os.PathLike, *, kind: str, model: nn.Module, model_config: Mapping[str, Any],
                        normalizer: Mapping[str, Any] | None, optimizer: torch.optim.Optimizer, scheduler: Any,
                        step: int, args: argparse.Namespace, rank_states: list[dict], best: float,
                        **extra: Any) -> Path:
    """Write a complete training checkpoint atomically (the one schema, see
    the module docstring; call on the main rank only)."""
    return save_checkpoint(
        path, kind=kind, model=unwrap(model).state_dict(), model_config=dict(model_config), normalizer=normalizer,
        coordinates=list(COORDINATES), args=vars(args), step=int(step), optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(), ranks=rank_states, rng=rank_states[0]["rng"], best=float(best), **extra)


def checkpoint_writer(*, kind: str, model: nn.Module, model_config: Mapping[str, Any],
                      normalizer: Mapping[str, Any] | None, optimizer: torch.optim.Optimizer, scheduler: Any,
                      args: argparse.Namespace, batches: Any, dist_info: Any,
                      **extra: Any) -> Callable[[Path, dict], None]:
    """The ``save(path, state)`` that :func:`run_loop` calls with its loop
    state (:func:`loop_state`): every rank's sampler and RNG state gathered,
    the main rank writing the checkpoint (:func:`save_training_state`, with
    the loop state and ``extra``)."""
    def save(path: Path, state: dict) -> None:
        states = gather_rank_states(batches)
        if dist_info.is_main:
            rest = {k: v for k, v in state.items() if k not in ("step", "best")}
            save_training_state(path, kind=kind, model=model, model_config=model_config, normalizer=normalizer,
                                optimizer=optimizer, scheduler=scheduler, step=state["step"], args=args,
                                rank_states=states, best=state["best"], **rest, **extra)
        barrier()
    return save


def check_resumable(ckpt: Mapping[str, Any], path: str | os.PathLike, model_config: Mapping[str, Any],
                    kind: str) -> None:
    """Raise :class:`CheckpointError` unless ``ckpt`` is a complete training
    checkpoint of ``kind`` whose architecture is ``model_config`` (cheap:
    call it before reading any data)."""
    if ckpt.get("kind") != kind:
        raise CheckpointError(f"{path}: not a training checkpoint of this script ({kind!r} expected, "
                              f"kind={ckpt.get('kind')!r})")
    missing = [k for k in ("model_config", "model", "optimizer", "scheduler", "step", "ranks") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: cannot resume, the checkpoint has no {', '.join(map(repr, missing))}")
    saved = dict(ckpt.get("model_config") or {})
    if saved != dict(model_config):
        diff = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, options {v!r}" for k, v in model_config.items()
                         if saved.get(k) != v)
        raise CheckpointError(f"{path}: checkpoint model does not match the options ({diff})")


def restore_training_state(ckpt: dict, path: str | os.PathLike, model: nn.Module,
                           optimizer: torch.optim.Optimizer, scheduler: Any, batches: Any,
                           rank: int, world_size: int, model_config: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """Load what :func:`save_training_state` wrote into live objects and this
    rank's random state; returns the loop state to continue from
    (:func:`loop_state`). Raises :class:`CheckpointError` where
    :func:`check_resumable` does, or if it was written by another number of
    processes."""
    check_resumable(ckpt, path, model_config, kind)
    ranks = ckpt["ranks"]
    if len(ranks) != world_size:
        raise CheckpointError(f"{path}: saved by {len(ranks)} process(es), resumed with {world_size}; "
                              "exact resume needs the same number")
    unwrap(model).load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    batches.load_state_dict(ranks[rank]["batches"])
    set_rng_state(ranks[rank]["rng"])
    return loop_state(ckpt)


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


def _broadcast_value(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (the main rank validates)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def run_loop(args: argparse.Namespace, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
             batches: Any, loss_fn: Callable[[Any], Mapping[str, torch.Tensor]],
             val_fn: Callable[[], float | Mapping[str, float]] | None, logger: Any, dist_info: Any,
             device: torch.device, exp_dir: Path, state: dict[str, Any],
             save: Callable[[Path, dict], None], desc: str, val_key: str = "loss",
             step_fn: Callable[[torch.Tensor], None] | None = None, patience: int = 0,
             stop_step: int | None = None, last_every: int | None = None,
             unit: str = "it", steps_per_unit: int = 1) -> dict[str, Any]:
    """The optimisation loop of every trainer.

    Each step: ``loss_fn(batches.next())`` under ``--precision`` autocast
    (a dict with ``loss`` and any other numbers to log), then ``step_fn(loss)``
    when given (DeepSpeed: ``engine.backward`` + ``engine.step``), else
    zero-grad, backward, ``--grad-clip``, optimiser and scheduler step. A
    non-finite loss stops training with an error. Every ``--print-iter`` steps
    the rank-averaged numbers go to run.log, tensorboard (``train/*``) and the
    progress bar. Every ``--eval-iter`` steps and at the end, ``val_fn()``
    (computed on the main rank; a number, or a dict holding ``val_key``) is
    logged under ``val/``; ``net_best.pth`` is written when ``val_key``
    improves, ``net_last.pth`` every ``last_every`` steps (default: at each
    validation) and at the end; ``--snapshot-iter`` adds numbered snapshots.
    ``patience`` > 0 stops after that many validations without improvement;
    ``stop_step`` ends this call early (``--stop-at``) with ``net_last.pth``
    written. SIGINT / SIGTERM stop after the current step with
    ``net_last.pth`` written. ``state`` (:func:`loop_state`) is where the
    loop starts; ``save(path, state)`` writes one checkpoint with the loop
    state (:func:`checkpoint_writer`; collective under DDP).

    Returns the last logged numbers plus the loop state (``step``, ``best``,
    ``best_step``, ``stale``, ``val``), ``losses`` (per-step totals of this
    call), ``stopped`` (signal), ``early_stop`` (patience) and ``finished``.
    """
    end = args.total_iter if stop_step is None else min(args.total_iter, stop_step)
    last_every = last_every or args.eval_iter
    state = dict(state)
    step = start_step = state["step"]
    losses: list[float] = []
    running: dict[str, float] = {}
    last: dict[str, Any] = {}
    bar = tqdm(total=args.total_iter // steps_per_unit, initial=step // steps_per_unit, desc=desc, unit=unit,
               dynamic_ncols=True, disable=not dist_info.is_main or getattr(args, "no_progress", False))
    t0, timed, n_run = time.perf_counter(), 0, 0
    stopped = early = False
    model.train()
    with stop_on_signal() as flag:
        while step < end and not (stopped or early):
            lr_used = optimizer.param_groups[0]["lr"]
            with autocast(device, args.precision):
                parts = loss_fn(batches.next())
            loss = parts["loss"]
            if step_fn is not None:
                step_fn(loss)
            else:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if args.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
                optimizer.step()
                scheduler.step()
            step += 1
            timed += 1
            n_run += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {step}; lower --lr or use fp32")
            losses.append(value)
            for k, v in parts.items():
                running[k] = running.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v)
            if step % steps_per_unit == 0:
                bar.update(1)
            stopped = flag["stop"]
            if dist_info.enabled:  # every rank stops at the same step
                stopped = bool(all_reduce_mean(torch.tensor(float(stopped), device=device)) > 0)
            if step % args.print_iter == 0 or step == end:
                keys = sorted(running)
                means = all_reduce_mean(torch.tensor([running[k] / n_run for k in keys], dtype=torch.float64,
                                                     device=device))
                avg = dict(zip(keys, means.tolist()))
                avg["it_per_s"] = timed / max(time.perf_counter() - t0, 1e-9)
                avg["lr"] = lr_used
                last.update(avg)
                logger.scalars(avg, step, prefix="train/")
                logger.log(f"step {step}: " + " ".join(f"{k} {v:.5g}" for k, v in avg.items()))
                bar.set_postfix(loss=f"{avg['loss']:.4f}")
                running, n_run, timed, t0 = {}, 0, 0, time.perf_counter()
            validate = val_fn is not None and (step % args.eval_iter == 0 or step == args.total_iter)
            if validate:
                model.eval()
                got = val_fn() if dist_info.is_main else {}
                model.train()
                val = dict(got) if isinstance(got, Mapping) else {val_key: float(got)}
                score = _broadcast_value(float(val.get(val_key, math.inf)), device)
                if dist_info.is_main:
                    logger.scalars(val, step, prefix="val/")
                    logger.log(f"step {step}: validation " + " ".join(f"{k} {v:.5g}" for k, v in val.items())
                               + f" (best {val_key} {min(score, state['best']):.5g})")
                last.update({f"val_{k}": v for k, v in val.items()})
                state["step"], state["val"] = step, val
                if score < state["best"]:
                    state.update(best=score, best_step=step, stale=0)
                    save(exp_dir / BEST_NAME, state)
                else:
                    state["stale"] += 1
                early = patience > 0 and state["stale"] >= patience
            state["step"] = step
            if (validate and step % last_every == 0) or step == end or stopped or early \
                    or (val_fn is None and step % last_every == 0):
                save(exp_dir / LAST_NAME, state)
            if stopped:
                logger.log(f"stopped by signal at step {step}; continue with --resume {exp_dir / LAST_NAME}")
            if args.snapshot_iter and step % args.snapshot_iter == 0:
                save(exp_dir / f"{step}.pth", state)
    bar.close()
    if step >= args.total_iter and start_step >= args.total_iter:  # resumed a finished run: restore lost files
        if args.snapshot_iter and step % args.snapshot_iter == 0 and not (exp_dir / f"{step}.pth").exists():
            save(exp_dir / f"{step}.pth", state)
            logger.log(f"rewrote the missing final snapshot {exp_dir / f'{step}.pth'}")
        if val_fn is not None and not (exp_dir / BEST_NAME).exists():
            save(exp_dir / BEST_NAME, state)
            logger.log(f"rewrote the missing {exp_dir / BEST_NAME} from the final state")
    finished = step >= args.total_iter or early
    logger.log(f"{'done' if finished else 'paused'} at step {step}; checkpoint {exp_dir / LAST_NAME}"
               + (f" (no better {val_key} for {patience} validations)" if early else ""))
    last.update(state, losses=losses, stopped=float(stopped), early_stop=early, finished=finished)
    return last
