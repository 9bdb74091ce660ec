"""The VQ-VAE training loop behind ``train_vq.py``.

One function, :func:`train`, runs single-process, under ``torchrun`` (DDP,
gloo on CPU / nccl on GPU, one data shard per rank, rank-0 logging) or under
the ``deepspeed`` launcher (DeepSpeed engine configured from
``--deepspeed-config``). Read it top to bottom:

1. output folder checks (before any work), process group, device, seed;
2. data: training split (minus held-out validation sessions), normaliser
   fitted on it, in-memory batches;
3. model, AdamW, warm-up + step-decay schedule; ``--resume`` restores all of
   it, the data generator and the RNG states, so the run continues exactly;
4. the loop: reconstruction + velocity + acceleration matching (+ smoothness,
   pelvis acceleration, foot sliding) + commitment loss;
   validation error in degrees and centimetres every ``--eval-iter`` steps,
   ``net_last.pth`` / ``net_best.pth`` / numbered snapshots.

SIGINT / SIGTERM stop the loop after the current step and write
``net_last.pth``, from which ``--resume`` continues.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from dataset.normalization import CENTRED, Normalizer
from dataset.repetitions import RepetitionSet, load_repetitions
from dataset.torch_data import InMemoryBatches
from models.guidance_losses import foot_sliding, pelvis_acceleration
from models.vqvae import VQVAE
from utils.checkpoint import (CheckpointError, check_compatible, load_checkpoint, save_checkpoint,
                              seed_everything, set_rng_state)
from utils.constants import COORDINATES, FRAME_RATE
from utils.device import apply_precision, autocast, resolve_device
from utils.distributed import DistInfo, all_reduce_mean, barrier, cleanup_distributed, init_distributed
from utils.errors import UserError
from utils.fileio import OutputExistsError, ensure_writable, exclusive_run
from utils.run_logging import RunLogger
from utils.vq_eval import coordinate_errors, reconstruct

CHECKPOINT_KIND = "vqvae"
# options that may change between a checkpoint and its resumption
RESUMABLE_CHANGES = {"total_iter", "eval_iter", "print_iter", "snapshot_iter", "resume", "overwrite",
                     "no_progress", "num_workers", "device", "local_rank", "out_dir", "exp_name",
                     "deepspeed_config", "data_root"}


# ---------------------------------------------------------------- pieces ---
def model_config(args: argparse.Namespace, n_features: int = len(COORDINATES)) -> dict:
    """VQVAE constructor arguments from the options."""
    return dict(n_features=n_features, nb_code=args.nb_code, code_dim=args.code_dim, width=args.width,
                down_t=args.down_t, stride_t=args.stride_t, depth=args.depth,
                dilation_growth_rate=args.dilation_growth_rate, activation=args.vq_act,
                norm=None if args.vq_norm == "none" else args.vq_norm, quantizer=args.quantizer, mu=args.mu)


def lr_factor(step: int, warm_up_iter: int, milestones: list[int], gamma: float) -> float:
    """Learning-rate multiplier at 0-based ``step``: linear warm-up to 1 over
    ``warm_up_iter`` steps, times ``gamma`` per milestone reached."""
    warm = min(1.0, (step + 1) / warm_up_iter) if warm_up_iter > 0 else 1.0
    return warm * gamma ** sum(step >= m for m in milestones)


def make_scheduler(optimizer: torch.optim.Optimizer, args: argparse.Namespace):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, args.warm_up_iter, list(args.lr_scheduler), args.gamma))


def recons_loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``l1`` | ``l2`` | ``l1_smooth`` (Huber, beta 1) on normalised features."""
    fns = {"l1": F.l1_loss, "l2": F.mse_loss, "l1_smooth": F.smooth_l1_loss}
    if name not in fns:
        raise UserError(f"unknown reconstruction loss {name!r}; expected one of {sorted(fns)}")
    return fns[name]


def second_difference(x: torch.Tensor) -> torch.Tensor:
    """``x[t+1] - 2 x[t] + x[t-1]`` along time. (B, T, C) -> (B, T-2, C)"""
    return x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]


def acceleration_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between the second differences of ``x_hat``
    and ``x`` (B, T, C), in their units per frame squared: zero when the
    reconstruction accelerates as the target does; offsets and linear drifts
    cost nothing. Under L1 the best prediction is the median of the target's
    acceleration given the code, so zero-mean jitter that the code does not
    predict is not learnt (at very high weights the decoder starts to copy
    its input's jitter: docs/guidance.md, "Smooth and planted motion")."""
    return F.l1_loss(second_difference(x_hat), second_difference(x))


def vq_loss(x_hat: torch.Tensor, x: torch.Tensor, commit: torch.Tensor, args: argparse.Namespace,
            loss_fn: Callable, std: torch.Tensor | None = None,
            fs: float = FRAME_RATE, foot: Callable | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total training loss and its parts. ``x_hat``, ``x``: (B, T, C) normalised.

    recons + loss_vel * recons(frame differences) + loss_smooth * mean squared
    second difference of ``x_hat`` + loss_acc * :func:`acceleration_loss`
    + loss_pelvis_acc * smooth-L1 of the pelvis acceleration of ``x_hat`` in
    m/s^2 (needs ``std`` (C,), the normaliser's scale, and ``fs`` Hz)
    + loss_foot_slide * ``foot(x_hat, x)`` (a :class:`FootSlideTerm`)
    + commit * commitment.
    """
    x_hat = x_hat.float()
    parts = {"recons": loss_fn(x_hat, x), "commit": commit}
    loss = parts["recons"] + args.commit * commit
    if args.loss_vel:
        parts["vel"] = loss_fn(x_hat[:, 1:] - x_hat[:, :-1], x[:, 1:] - x[:, :-1])
        loss = loss + args.loss_vel * parts["vel"]
    if args.loss_smooth:
        parts["smooth"] = second_difference(x_hat).pow(2).mean()
        loss = loss + args.loss_smooth * parts["smooth"]
    if getattr(args, "loss_acc", 0.0):
        parts["acc"] = acceleration_loss(x_hat, x)
        loss = loss + args.loss_acc * parts["acc"]
    if getattr(args, "loss_pelvis_acc", 0.0):
        if std is None:
            raise ValueError("--loss-pelvis-acc needs the normaliser's scale")
        # the clip-mean offsets the normaliser removes vanish in second differences
        parts["pelvis_acc"] = pelvis_acceleration(x_hat * std, fs).mean()
        loss = loss + args.loss_pelvis_acc * parts["pelvis_acc"]
    if getattr(args, "loss_foot_slide", 0.0):
        parts["foot_slide"] = foot(x_hat, x)
        loss = loss + args.loss_foot_slide * parts["foot_slide"]
    return loss, parts


class FootSlideTerm:
    """Foot sliding of a normalised reconstruction ``x_hat`` (B, T, C), cm^2
    per frame: :func:`models.guidance_losses.foot_sliding` of the foot points
    given by the forward kinematics ``fk`` of one model, with each clip's floor
    at the lowest foot point of its target ``x``. ``mean``, ``std`` (C,): the
    normaliser's; the clip means it removes (laboratory position, heading)
    are not restored, which moves and turns the feet as a whole but leaves
    their sliding (nearly) unchanged."""

    def __init__(self, fk, mean: torch.Tensor, std: torch.Tensor, tol: float = 0.02):
        self.fk, self.mean, self.std, self.tol = fk, mean, std, tol
        self.idx = list(fk.foot_contact_indices())

    def __call__(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            floor = self.fk(x * self.std + self.mean, points=self.idx)[..., 1].amin(dim=(1, 2), keepdim=True)
        feet = self.fk(x_hat * self.std + self.mean, points=self.idx)
        return foot_sliding(feet, floor, self.tol).mean()


def split_validation(train: RepetitionSet, fraction: float, seed: int) -> tuple[RepetitionSet, RepetitionSet | None]:
    """Hold out ``fraction`` of the training sessions (at least one) for validation."""
    ids = sorted(set(train.sessions))
    if fraction <= 0 or len(ids) < 2:
        return train, None
    n_val = min(len(ids) - 1, max(1, int(round(fraction * len(ids)))))
    val_ids = set(np.random.default_rng(seed).permutation(ids)[:n_val].tolist())
    return train.of_sessions([s for s in ids if s not in val_ids]), train.of_sessions(sorted(val_ids))


def check_options(args: argparse.Namespace) -> None:
    """Reject inconsistent options before any work starts."""
    down = args.stride_t ** args.down_t
    problems = []
    if args.clip_length % down:
        problems.append(f"--clip-length {args.clip_length} is not a multiple of stride_t**down_t = {down}")
    if args.window_size and (args.window_size % down or args.window_size > args.clip_length
                             or args.window_size < 2 * down):
        problems.append(f"--window-size {args.window_size} must be a multiple of {down} between {2 * down} and "
                        f"--clip-length {args.clip_length} (or 0 for whole clips)")
    for name in ("batch_size", "total_iter", "eval_iter", "print_iter", "nb_code", "code_dim", "width", "depth"):
        if getattr(args, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.down_t < 1:
        problems.append(f"--down-t must be >= 1, got {args.down_t}")
    if not 0 <= args.val_fraction < 1:
        problems.append(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.lr <= 0:
        problems.append(f"--lr must be positive, got {args.lr}")
    if problems:
        raise UserError("; ".join(problems))


def check_resume(ckpt: dict, path: str, args: argparse.Namespace) -> None:
    """Refuse a checkpoint that is not a VQ-VAE checkpoint or whose model
    differs from the one the options describe."""
    if ckpt.get("kind") != CHECKPOINT_KIND or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a VQ-VAE training checkpoint (kind={ckpt.get('kind')!r})")
    for key in ("config", "optimizer", "scheduler", "step", "batches", "normalizer"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: cannot resume, the checkpoint has no {key!r}")
    check_compatible(ckpt, path, "coordinates", COORDINATES)
    want = model_config(args, ckpt["config"].get("n_features", len(COORDINATES)))
    diff = [f"{k}: checkpoint {ckpt['config'].get(k)!r}, options {v!r}" for k, v in want.items()
            if ckpt["config"].get(k) != v]
    if diff:
        raise CheckpointError(f"{path}: checkpoint model does not match the options ({'; '.join(diff)})")
    for name in ("clip_length", "clip_mode", "window_size"):
        if name in ckpt.get("args", {}) and ckpt["args"][name] != getattr(args, name):
            raise CheckpointError(f"{path}: checkpoint was trained with --{name.replace('_', '-')} "
                                  f"{ckpt['args'][name]!r}, options say {getattr(args, name)!r}")


def _gather_objects(obj: Any, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop stops after the current step."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:  # second signal: give up at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


@dataclass
class TrainResult:
    """What :func:`train` did (on this rank)."""

    folder: Path
    step: int
    losses: list[float] = field(default_factory=list)
    best_mae_deg: float = math.inf
    val: dict = field(default_factory=dict)
    stopped: bool = False
    model: torch.nn.Module | None = None


# ------------------------------------------------------------------ train ---
def train(args: argparse.Namespace) -> TrainResult:
    """Train (or resume training) a VQ-VAE as the options say. Returns the
    per-step total losses of this call and the last validation errors."""
    check_options(args)
    folder = Path(args.out_dir) / args.exp_name
    use_deepspeed = bool(args.deepspeed or args.local_rank is not None)
    device_type = resolve_device(args.device).type
    if use_deepspeed:
        deepspeed = _import_deepspeed()
        deepspeed.init_distributed(dist_backend="nccl" if device_type == "cuda" else "gloo")
    info = init_distributed(device_type)
    device = resolve_device(args.device, info.local_rank)
    precision_note = apply_precision(args, device)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    elif info.enabled and device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # torchrun sets one thread per process; the deepspeed launcher does not: share the cores
        local = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE") or info.world_size)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))

    # -- output folder: decided before any work --------------------------------
    if args.resume is None and not args.overwrite:
        try:
            ensure_writable(folder, overwrite=False)
        except OutputExistsError:
            raise OutputExistsError(f"{folder} already exists and is not empty; pass --resume "
                                    f"{folder / 'net_last.pth'} to continue or --overwrite to start again") from None
    ckpt = None
    if args.resume is not None:
        ckpt = load_checkpoint(args.resume, map_location="cpu")
        check_resume(ckpt, args.resume, args)
    # -- data: read before anything is written, so bad data leaves no folder behind ------------
    data_kw = dict(length=args.clip_length, clip_mode=args.clip_mode, split_file=args.split_file)
    train_set = load_repetitions(args.data_root, "train", **data_kw)
    train_set, val_set = split_validation(train_set, args.val_fraction, args.seed)
    on_test = val_set is None
    if on_test:
        val_set = load_repetitions(args.data_root, "test", **data_kw)
    if ckpt is not None:
        normalizer = Normalizer.from_state_dict(ckpt["normalizer"])
    else:
        normalizer = Normalizer.fit(train_set.motions, centred=CENTRED if args.centre else ())
    notes = [f"train {len(train_set)} clips from {len(set(train_set.sessions))} sessions, validation "
             f"{len(val_set)} clips from {len(set(val_set.sessions))} sessions"
             + (" of the test split" if on_test else " held out from training")]

    barrier()
    if info.is_main and args.resume is None and args.overwrite and folder.exists():
        shutil.rmtree(folder)
    barrier()
    logger = RunLogger(folder, args, enabled=info.is_main)
    log = logger.log
    log(f"world size {info.world_size}, device {device}, {precision_note}, "
        f"{'deepspeed' if use_deepspeed else 'ddp' if info.enabled else 'single process'}")
    for note in notes:
        log(note)

    x_train = torch.as_tensor(normalizer.normalize(train_set.motions), dtype=torch.float32)
    batches = InMemoryBatches(x_train, args.batch_size, window=args.window_size or None, seed=args.seed,
                              rank=info.rank, world_size=info.world_size, device=device)

    # -- model, optimiser, schedule --------------------------------------------------
    seed_everything(args.seed)
    config = model_config(args, x_train.shape[-1])
    net = VQVAE(**config).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, betas=(0.9, 0.99),
                                  weight_decay=args.weight_decay)
    scheduler = make_scheduler(optimizer, args)
    start_step, best = 0, math.inf
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_step, best = int(ckpt["step"]), float(ckpt.get("best_mae_deg", math.inf))
        states = ckpt["batches"]
        if len(states) == info.world_size:
            batches.load_state_dict(states[info.rank])
            set_rng_state(ckpt["rng"])
        else:
            log(f"checkpoint was written by {len(states)} ranks, this run has {info.world_size}: "
                f"data order is re-seeded (the continuation is not bit-exact)")
            batches.generator.manual_seed(args.seed * 1000 + info.rank + 7919 * start_step)
        log(f"resumed from {args.resume} at step {start_step}")
    log(f"model {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters, config {json.dumps(config)}")

    engine = None
    if use_deepspeed:
        engine = _deepspeed_engine(deepspeed, net, optimizer, scheduler, args, info)
        model = engine
    elif info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False)  # the quantizer keeps its buffers in step itself
    else:
        model = net
    loss_fn = recons_loss_fn(args.recons_loss)
    std = torch.as_tensor(normalizer.std, dtype=torch.float32, device=device)
    fs = float(np.median(1.0 / train_set.time_steps())) if train_set.durations is not None else FRAME_RATE
    if getattr(args, "loss_pelvis_acc", 0.0):
        log(f"pelvis acceleration term at {fs:.1f} Hz (median real frame rate of the training clips)")
    foot = None
    if getattr(args, "loss_foot_slide", 0.0):
        from dataset.osim_model import default_model_path
        from metrics.evaluate import subject_models
        from utils.kinematics import ForwardKinematics

        models = subject_models(sorted(set(train_set.sessions)), [args.data_root])
        osim = next(iter(models.values())) if models else default_model_path()
        fk = ForwardKinematics.from_osim(osim).float().to(device)
        foot = FootSlideTerm(fk, torch.as_tensor(normalizer.mean, dtype=torch.float32, device=device), std)
        log(f"foot sliding term by forward kinematics of {osim} for every clip")

    def save(path: Path, step: int, val: dict) -> None:
        batch_states = _gather_objects(batches.state_dict(), info)
        if info.is_main:
            save_checkpoint(path, kind=CHECKPOINT_KIND, model=net.state_dict(), config=config,
                            args=vars(args), coordinates=list(COORDINATES), normalizer=normalizer.state_dict(),
                            step=step, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                            batches=batch_states, world_size=info.world_size, best_mae_deg=best, val=val)

    def validate(step: int) -> dict:
        if not info.is_main:
            return {}
        recon = reconstruct(net, val_set.motions, normalizer, batch_size=64, device=device,
                            precision=args.precision)
        errors = coordinate_errors(recon, val_set.motions)
        metrics = {"mae_deg": errors["mae_deg"], "mae_cm": errors["mae_cm"],
                   "alive_codes": net.quantizer.code_usage()}
        logger.scalars(metrics, step, prefix="val/")
        log(f"step {step}: validation MAE {errors['mae_deg']:.3f} deg (rotations), {errors['mae_cm']:.3f} cm "
            f"(translations), alive codes {metrics['alive_codes']:.3f}")
        return metrics

    # -- loop ---------------------------------------------------------------------------
    result = TrainResult(folder=folder, step=start_step, best_mae_deg=best)
    sums: dict[str, float] = {}
    n_sum, t_last = 0, time.perf_counter()
    progress = None
    if info.is_main and not args.no_progress:
        from tqdm import tqdm

        progress = tqdm(total=args.total_iter, initial=start_step, desc=args.exp_name, unit="it",
                        dynamic_ncols=True)
    model.train()
    step = start_step
    with _StopFlag() as stop:
        while step < args.total_iter:
            x = batches.next()
            lr_used = optimizer.param_groups[0]["lr"]
            with autocast(device, args.precision):
                x_hat, commit, perplexity, usage = model(x, return_usage=True)
            loss, parts = vq_loss(x_hat, x, commit, args, loss_fn, std, fs, foot)
            if engine is not None:
                engine.backward(loss)
                engine.step()  # optimiser, zero_grad and scheduler
            else:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if args.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), args.grad_clip)
                optimizer.step()
                scheduler.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {step}; lower --lr or use fp32")
            result.losses.append(value)
            for key, v in {"loss": loss, "perplexity": perplexity, "code_usage": usage, **parts}.items():
                sums[key] = sums.get(key, 0.0) + float(v.detach())
            n_sum += 1
            if progress is not None:
                progress.update(1)
                progress.set_postfix(loss=f"{value:.4f}", ppl=f"{float(perplexity):.0f}")
            if step % args.print_iter == 0 or step == args.total_iter:
                means = torch.tensor([sums[k] / n_sum for k in sorted(sums)], dtype=torch.float64)
                means = dict(zip(sorted(sums), all_reduce_mean(means).tolist()))
                now = time.perf_counter()
                means["it_per_s"] = n_sum / max(now - t_last, 1e-9)
                means["lr"] = lr_used
                logger.scalars(means, step, prefix="train/")
                log(f"step {step}: " + ", ".join(f"{k} {v:.5g}" for k, v in means.items()))
                sums, n_sum, t_last = {}, 0, now
            stop_now = stop.requested
            if info.enabled:  # every rank stops at the same step
                flag = torch.tensor([float(stop_now)])
                stop_now = bool(all_reduce_mean(flag).item() > 0)
            if step % args.eval_iter == 0 or step == args.total_iter or stop_now:
                result.val = validate(step)
                improved = torch.tensor([float(info.is_main and result.val["mae_deg"] < best)])
                if info.enabled:  # rank 0 decides; every rank joins the checkpoint's collectives
                    torch.distributed.broadcast(improved, src=0)
                if improved.item():
                    best = result.val.get("mae_deg", best)
                    result.best_mae_deg = best
                    save(folder / "net_best.pth", step, result.val)
                save(folder / "net_last.pth", step, result.val)
                barrier()
            if args.snapshot_iter and step % args.snapshot_iter == 0:
                save(folder / f"{step}.pth", step, result.val)
            if stop_now:
                log(f"stopped by signal at step {step}; resume with --resume {folder / 'net_last.pth'}")
                result.stopped = True
                break
    if step >= args.total_iter and start_step >= args.total_iter:  # resumed a finished run: restore lost files
        if args.snapshot_iter and step % args.snapshot_iter == 0 and not (folder / f"{step}.pth").exists():
            save(folder / f"{step}.pth", step, ckpt.get("val", {}) if ckpt else {})
            log(f"rewrote the missing final snapshot {folder / f'{step}.pth'}")
        if not (folder / "net_best.pth").exists():
            save(folder / "net_best.pth", step, ckpt.get("val", {}) if ckpt else {})
            log(f"rewrote the missing {folder / 'net_best.pth'} from the final state")
    result.step = step
    result.model = net
    if progress is not None:
        progress.close()
    log(f"finished at step {step}; best validation MAE {best:.3f} deg")
    logger.close()
    return result


def main(args: argparse.Namespace) -> TrainResult:
    """Entry point of ``train_vq.py``: train, then leave the process group."""
    threads = torch.get_num_threads()
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        with exclusive_run(Path(args.out_dir) / args.exp_name, enabled=main_rank):  # one writer per run folder
            return train(args)
    finally:
        cleanup_distributed()
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- deepspeed ---
def _import_deepspeed():
    try:
        import deepspeed
    except ImportError:
        raise UserError("DeepSpeed was asked for (--deepspeed or the deepspeed launcher) but is not installed; "
                        "pip install -r requirements-deepspeed.txt, or use torchrun for DDP") from None
    if os.environ.get("BIGE_DS_SHM", "0") != "1":
        # On CPU, DeepSpeed JIT-compiles a shared-memory all-reduce extension at start-up (over four
        # minutes on a 2-core machine, and its ninja cache is not reused between runs); gloo does the
        # same job here. BIGE_DS_SHM=1 keeps DeepSpeed's default.
        import importlib

        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
    return deepspeed


def _deepspeed_engine(deepspeed, net, optimizer, scheduler, args, info: DistInfo):
    path = Path(args.deepspeed_config)
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: cannot read the DeepSpeed configuration ({err})") from None
    # the flags decide batch size and clipping; precision is handled by torch.autocast
    config["train_micro_batch_size_per_gpu"] = args.batch_size
    config["gradient_accumulation_steps"] = 1
    config["train_batch_size"] = args.batch_size * info.world_size
    config["gradient_clipping"] = float(args.grad_clip)
    for key in ("fp16", "bf16"):
        if config.get(key, {}).get("enabled"):
            raise UserError(f"{path}: set precision with --precision, not the {key!r} section")
    engine, _, _, _ = deepspeed.initialize(model=net, optimizer=optimizer, lr_scheduler=scheduler, config=config)
    return engine
