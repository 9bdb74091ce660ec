"""Train the motion VQ-VAE.

    python train_vq.py --batch-size 256 --lr 2e-4 --total-iter 300000 --lr-scheduler 200000 \
        --nb-code 512 --down-t 2 --depth 3 --dilation-growth-rate 3 --out-dir output --dataname mcs \
        --vq-act relu --quantizer ema_reset --loss-vel 0.5 --recons-loss l1_smooth --exp-name VQVAE9

The same command runs under ``torchrun --nproc_per_node N`` (DDP, gloo on CPU
/ nccl on GPU, one data shard per rank, rank-0 logging) or the ``deepspeed``
launcher (DeepSpeed engine configured from ``--deepspeed-config``; its
backward and step go through the shared loop's ``step_fn`` hook).

The stage, top to bottom:

1. output folder and checkpoint checks (before any work), process group,
   device, seed;
2. data: training split (minus held-out validation sessions), normaliser
   fitted on it, in-memory batches;
3. model, AdamW, warm-up + step-decay schedule; ``--resume`` restores all of
   it, the data generator and the RNG states, so the run continues exactly;
4. the shared loop (:func:`engine.training.run_loop`): reconstruction +
   velocity + acceleration matching (+ smoothness, pelvis acceleration, foot
   sliding) + commitment loss; validation error in degrees and
   centimetres every ``--eval-iter`` steps (``net_best.pth`` keeps the lowest
   ``mae_deg``), ``net_last.pth`` and numbered snapshots.

SIGINT / SIGTERM stop the loop after the current step and write
``net_last.pth``, from which ``--resume`` continues (exit status 130).
"""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dataset.normalization import CENTRED, Normalizer
from dataset.paired_dynamics import paired_dynamics
from dataset.repetitions import RepetitionSet, load_repetitions
from dataset.split import hold_out_sessions
from dataset.torch_data import InMemoryBatches
from engine.training import (
    check_resumable, check_run_dir, checkpoint_writer, clear_run_dir, loop_state, make_optimizer,
    restore_training_state, run_loop,
)
from metrics.evaluate import subject_models
from metrics.reconstruction import coordinate_errors
from models.vq_losses import FootSlideTerm, recons_loss_fn, vq_loss
from models.vqvae import VQVAE
from options.vq import get_args_parser
from utils.checkpoint import CheckpointError, check_compatible, load_checkpoint, seed_everything
from utils.cli import run as run_cli
from utils.constants import COORDINATES, FRAME_RATE
from utils.device import apply_precision, resolve_device, torch_threads
from utils.distributed import DistInfo, barrier, cleanup_distributed, init_distributed
from utils.errors import UserError
from utils.fileio import exclusive_run
from utils.kinematics import ForwardKinematics
from utils.run_logging import RunLogger

CHECKPOINT_KIND = "vqvae"


def model_config(args: argparse.Namespace, n_features: int = len(COORDINATES)) -> dict:
    """VQVAE constructor arguments from the options."""
    return dict(n_features=n_features, nb_code=args.nb_code, code_dim=args.code_dim, width=args.width,
                down_t=args.down_t, stride_t=args.stride_t, depth=args.depth,
                dilation_growth_rate=args.dilation_growth_rate, activation=args.vq_act,
                norm=None if args.vq_norm == "none" else args.vq_norm, quantizer=args.quantizer, mu=args.mu)


def split_validation(train: RepetitionSet, fraction: float, seed: int) -> tuple[RepetitionSet, RepetitionSet | None]:
    """Hold out ``fraction`` of the training sessions (at least one) for
    validation; ``None`` when ``fraction`` is 0 or there is one session."""
    ids = sorted(set(train.sessions))
    if fraction <= 0 or len(ids) < 2:
        return train, None
    kept, held = hold_out_sessions(ids, fraction, seed)
    return train.of_sessions(kept), train.of_sessions(held)


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
    """Refuse a checkpoint that is not a VQ-VAE training checkpoint or whose
    model or data options differ from the ones given."""
    if ckpt.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"{path}: not a VQ-VAE training checkpoint (kind={ckpt.get('kind')!r})")
    saved = ckpt.get("model_config") or {}
    check_resumable(ckpt, path, model_config(args, saved.get("n_features", len(COORDINATES))), CHECKPOINT_KIND)
    if "normalizer" not in ckpt:
        raise CheckpointError(f"{path}: cannot resume, the checkpoint has no 'normalizer'")
    check_compatible(ckpt, path, "coordinates", COORDINATES)
    for name in ("clip_length", "clip_mode", "window_size"):
        if name in ckpt.get("args", {}) and ckpt["args"][name] != getattr(args, name):
            raise CheckpointError(f"{path}: checkpoint was trained with --{name.replace('_', '-')} "
                                  f"{ckpt['args'][name]!r}, options say {getattr(args, name)!r}")


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


def train(args: argparse.Namespace) -> TrainResult:
    """Train (or resume training) a VQ-VAE as the options say. Returns the
    per-step total losses of this call and the last validation errors."""
    check_options(args)
    use_deepspeed = bool(args.deepspeed or args.local_rank is not None)
    device_type = resolve_device(args.device).type
    deepspeed = None
    if use_deepspeed:
        deepspeed = _import_deepspeed()
        deepspeed.init_distributed(dist_backend="nccl" if device_type == "cuda" else "gloo")
    info = init_distributed(device_type)
    device = resolve_device(args.device, info.local_rank)
    with torch_threads(args.num_threads, info.world_size, device.type):
        return _train(args, info, device, deepspeed)


def _train(args: argparse.Namespace, info: DistInfo, device: torch.device, deepspeed) -> TrainResult:
    precision_note = apply_precision(args, device, "vq_training")
    folder = check_run_dir(Path(args.out_dir) / args.exp_name, args.resume, args.overwrite)
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

    if info.is_main:
        clear_run_dir(folder, args.resume, args.overwrite, also=("reconstruction_*",))
    barrier()
    logger = RunLogger(folder, args, enabled=info.is_main)
    log = logger.log
    log(f"world size {info.world_size}, device {device}, {precision_note}, "
        f"{'deepspeed' if deepspeed else 'ddp' if info.enabled else 'single process'}")
    log(f"train {len(train_set)} clips from {len(set(train_set.sessions))} sessions, validation "
        f"{len(val_set)} clips from {len(set(val_set.sessions))} sessions"
        + (" of the test split" if on_test else " held out from training"))

    x_train = torch.as_tensor(normalizer.normalize(train_set.motions), dtype=torch.float32)
    extra = []
    if args.acc_target == "dynamics":
        clean, n_paired = paired_dynamics(train_set, args.data_root, data_kw)
        extra.append(torch.as_tensor(normalizer.normalize(clean), dtype=torch.float32))
        log(f"acceleration target: noise-free Dynamics kinematics for {n_paired} of {len(train_set)} training clips "
            "(the rest match their own input)"
            + ("; WARNING: no Dynamics repetition pairs with any training clip, so this is --acc-target input"
               if n_paired == 0 else ""))
    batches = InMemoryBatches(x_train, args.batch_size, *extra, window=args.window_size or None, seed=args.seed,
                              rank=info.rank, world_size=info.world_size, device=device)

    # -- model, optimiser, schedule --------------------------------------------------
    seed_everything(args.seed)
    config = model_config(args, x_train.shape[-1])
    net = VQVAE(**config).to(device)
    optimizer, scheduler = make_optimizer(net, args)
    state = loop_state(None)
    if ckpt is not None:
        state = restore_training_state(ckpt, args.resume, net, optimizer, scheduler, batches, info.rank,
                                       info.world_size, config, CHECKPOINT_KIND)
        log(f"resumed from {args.resume} at step {state['step']}")
    log(f"model {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters, config {json.dumps(config)}")

    step_fn: Callable[[torch.Tensor], None] | None = None
    if deepspeed is not None:
        model = _deepspeed_engine(deepspeed, net, optimizer, scheduler, args, info)

        def deepspeed_step(loss: torch.Tensor) -> None:
            model.backward(loss)
            model.step()  # optimiser, zero_grad and scheduler

        step_fn = deepspeed_step
    elif info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False)  # the quantizer keeps its buffers in step itself
    else:
        model = net
    recons = recons_loss_fn(args.recons_loss)
    std = torch.as_tensor(normalizer.std, dtype=torch.float32, device=device)
    fs = float(np.median(1.0 / train_set.time_steps())) if train_set.durations is not None else FRAME_RATE
    if args.loss_pelvis_acc:
        log(f"pelvis acceleration term at {fs:.1f} Hz (median real frame rate of the training clips)")
    foot = None
    if args.loss_foot_slide:
        models = subject_models(sorted(set(train_set.sessions)), [args.data_root])
        if models:
            osim = next(iter(models.values()))
        else:
            from dataset.synthetic.osim_model import default_model_path  # OpenSim

            osim = default_model_path()
        fk = ForwardKinematics.from_osim(osim).float().to(device)
        foot = FootSlideTerm(fk, torch.as_tensor(normalizer.mean, dtype=torch.float32, device=device), std)
        log(f"foot sliding term by forward kinematics of {osim} for every clip")

    def loss_fn(batch: torch.Tensor | tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, x_acc = batch if isinstance(batch, tuple) else (batch, None)
        x_hat, commit, perplexity, usage = model(x, return_usage=True)
        loss, parts = vq_loss(x_hat, x, commit, args, recons, std, fs, foot, x_acc=x_acc)
        return {"loss": loss, "perplexity": perplexity, "code_usage": usage, **parts}

    def validate() -> dict[str, float]:
        recon = net.reconstruct(val_set.motions, normalizer, batch_size=64, precision=args.precision)
        errors = coordinate_errors(recon, val_set.motions)
        metrics = {"mae_deg": errors["mae_deg"], "mae_cm": errors["mae_cm"], "alive_codes": net.quantizer.code_usage()}
        log(f"validation MAE {errors['mae_deg']:.3f} deg (rotations), {errors['mae_cm']:.3f} cm (translations), "
            f"alive codes {metrics['alive_codes']:.3f}")
        return metrics

    save = checkpoint_writer(kind=CHECKPOINT_KIND, model=net, model_config=config, normalizer=normalizer.state_dict(),
                             optimizer=optimizer, scheduler=scheduler, args=args, batches=batches, dist_info=info)
    out = run_loop(args, model=model, optimizer=optimizer, scheduler=scheduler, batches=batches, loss_fn=loss_fn,
                   val_fn=validate, val_key="mae_deg", step_fn=step_fn, logger=logger, dist_info=info, device=device,
                   exp_dir=folder, state=state, save=save, desc=args.exp_name)
    log(f"finished at step {out['step']}; best validation MAE {out['best']:.3f} deg")
    logger.close()
    return TrainResult(folder=folder, step=out["step"], losses=out["losses"], best_mae_deg=out["best"],
                       val=out["val"], stopped=bool(out["stopped"]), model=net)


def main(args: argparse.Namespace) -> TrainResult:
    """Train, one writer per run folder, then leave the process group."""
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        with exclusive_run(Path(args.out_dir) / args.exp_name, enabled=main_rank):
            return train(args)
    finally:
        cleanup_distributed()


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
        import deepspeed.comm.torch as ds_comm

        ds_comm.build_shm_op = lambda: None
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


if __name__ == "__main__":
    run_cli(main, get_args_parser())
