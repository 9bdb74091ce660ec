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
import torch.nn.functional as F

from dataset.mcs import DatasetError
from dataset.normalization import CENTRED, Normalizer
from dataset.repetitions import RepetitionSet, load_repetitions
from dataset.split import hold_out_sessions
from dataset.torch_data import InMemoryBatches
from engine.training import (
    check_resumable, check_run_dir, checkpoint_writer, clear_run_dir, loop_state, make_optimizer,
    restore_training_state, run_loop,
)
from metrics.evaluate import subject_models
from metrics.reconstruction import coordinate_errors
from models.guidance_losses import foot_sliding, pelvis_acceleration
from models.vqvae import VQVAE
from options.vq import get_args_parser
from utils.checkpoint import CheckpointError, check_compatible, load_checkpoint, seed_everything
from utils.cli import run as run_cli
from utils.constants import COORD_INDEX, COORDINATES, FRAME_RATE, ROTATION_MASK
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


def recons_loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``l1`` | ``l2`` | ``l1_smooth`` (Huber, beta 1) on normalised features."""
    fns = {"l1": F.l1_loss, "l2": F.mse_loss, "l1_smooth": F.smooth_l1_loss}
    if name not in fns:
        raise UserError(f"unknown reconstruction loss {name!r}; expected one of {sorted(fns)}")
    return fns[name]


def second_difference(x: torch.Tensor) -> torch.Tensor:
    """``x[t+1] - 2 x[t] + x[t-1]`` along time. (B, T, C) -> (B, T-2, C)"""
    return x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]


ACC_DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss, "l2": F.mse_loss}
"""``--acc-loss`` name -> the distance :func:`acceleration_loss` takes between second differences."""


def acceleration_loss(x_hat: torch.Tensor, x: torch.Tensor, distance: str = "l1") -> torch.Tensor:
    """Mean distance between the second differences of ``x_hat`` and ``x``
    (B, T, C), in their units per frame squared: zero when the reconstruction
    accelerates as the target does; offsets and linear drifts cost nothing.

    ``distance`` "l1" (mean absolute difference): the best prediction is the
    median of the target's acceleration given the code, so zero-mean jitter
    that the code does not predict is not learnt, but the gradient keeps a
    constant size however well the accelerations match, and at demo size the
    decoded clip edges stay flexed. "l2" (mean squared difference,
    ``--acc-loss l2``, the default): the gradient vanishes as the
    accelerations match, so the reconstruction term can still correct levels
    (docs/guidance.md, "Smooth and planted motion")."""
    return ACC_DISTANCES[distance](second_difference(x_hat), second_difference(x))


def depth_loss(x_hat: torch.Tensor, x: torch.Tensor, index: int) -> torch.Tensor:
    """Mean absolute difference between the per-clip minima over time of
    feature ``index`` (pelvis_ty: the bottom of the squat) of ``x_hat`` and
    ``x`` (B, T, C): zero when the reconstruction goes exactly as deep as its
    target, whatever happens elsewhere in the clip."""
    return F.l1_loss(x_hat[..., index].amin(dim=1), x[..., index].amin(dim=1))


def vq_loss(x_hat: torch.Tensor, x: torch.Tensor, commit: torch.Tensor, args: argparse.Namespace,
            loss_fn: Callable, std: torch.Tensor | None = None, fs: float = FRAME_RATE,
            foot: Callable | None = None,
            x_acc: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total training loss and its parts. ``x_hat``, ``x``: (B, T, C) normalised.

    recons + loss_vel * recons(frame differences) + loss_smooth * mean squared
    second difference of ``x_hat`` + loss_acc * :func:`acceleration_loss`
    + loss_pelvis_acc * smooth-L1 of the pelvis acceleration of ``x_hat`` in
    m/s^2 (needs ``std`` (C,), the normaliser's scale, and ``fs`` Hz)
    + loss_foot_slide * ``foot(x_hat, x)`` (a :class:`FootSlideTerm`)
    + loss_depth * :func:`depth_loss` of pelvis_ty
    + commit * commitment. ``x_acc`` (B, T, C), normalised: what the
    acceleration term matches instead of ``x`` (``--acc-target dynamics``).
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
    if args.loss_acc:
        parts["acc"] = acceleration_loss(x_hat, x if x_acc is None else x_acc, args.acc_loss)
        loss = loss + args.loss_acc * parts["acc"]
    if args.loss_depth:
        parts["depth"] = depth_loss(x_hat, x, COORD_INDEX["pelvis_ty"])
        loss = loss + args.loss_depth * parts["depth"]
    if args.loss_pelvis_acc:
        if std is None:
            raise ValueError("--loss-pelvis-acc needs the normaliser's scale")
        # the clip-mean offsets the normaliser removes vanish in second differences
        parts["pelvis_acc"] = pelvis_acceleration(x_hat * std, fs).mean()
        loss = loss + args.loss_pelvis_acc * parts["pelvis_acc"]
    if args.loss_foot_slide:
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


_ROTATIONS = np.asarray(ROTATION_MASK)

PAIR_TOLERANCE_DEG = 3.0
"""Largest mean absolute difference (degrees, over the rotational coordinates
and frames) between a clip and its Dynamics repetition for the pair to be
the same motion. The synthetic pairs differ by 0.2-0.6 deg (measurement
noise); an unrelated squat paired by index differs by ~12 deg (the real
OpenCap files of the test root)."""


def paired_dynamics(train: RepetitionSet, root, data_kw: dict) -> tuple[np.ndarray, int]:
    """The noise-free kinematics (from the Dynamics files) of each clip of
    ``train``, paired by (session, trial, repetition index), as an array
    shaped like ``train.motions``; a clip without a Dynamics repetition, or
    whose Dynamics repetition is not the same motion (differs by more than
    :data:`PAIR_TOLERANCE_DEG`: another segmentation, another squat), keeps
    its own motion. Also returns how many clips were paired (0 when the
    dataset has no Dynamics files)."""
    try:
        dyn = load_repetitions(root, source="dynamics", sessions=sorted(set(train.sessions)), **data_kw)
    except DatasetError:
        return train.motions.copy(), 0
    where = {(s, t, i): k for k, (s, t, i) in enumerate(zip(dyn.sessions, dyn.trials, dyn.indices))}
    clean = train.motions.copy()
    n = 0
    for k, key in enumerate(zip(train.sessions, train.trials, train.indices)):
        j = where.get(key)
        if j is not None and dyn.motions[j].shape == clean[k].shape and np.abs(
                dyn.motions[j][:, _ROTATIONS] - clean[k][:, _ROTATIONS]).mean() <= PAIR_TOLERANCE_DEG:
            clean[k] = dyn.motions[j]
            n += 1
    return clean, n


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
