#!/usr/bin/env python
"""Train the kinematics -> muscle-activation surrogate and evaluate it on the test subjects.

    python surrogate_training.py                                  # MLP, all muscles, embedded dataset
    python surrogate_training.py --arch transformer --exp-name surrogate_tf
    python surrogate_training.py --muscles vasmed_r,vasmed_l --epochs 200
    python surrogate_training.py --resume output/surrogate/net_last.pth
    python surrogate_training.py --eval-only --checkpoint output/surrogate/net_best.pth

Outputs in <out-dir>/<exp-name>/: net_best.pth, net_last.pth, run.log,
tensorboard/, eval_test.csv, eval_test.json, eval_test.png.

The stage (options in ``options/surrogate.py``), top to bottom:

1. muscle-driven Dynamics repetitions of the training split
   (:func:`dataset.repetitions.load_repetitions`), minus a seeded set of whole
   validation sessions (:func:`split_validation`);
2. AdamW on the smooth-L1 loss between predicted and simulated activations,
   warm-up then cosine learning rate, early stopping on the validation loss;
   ``net_best.pth`` (best validation loss) and ``net_last.pth`` written
   atomically, both complete enough to resume exactly;
3. evaluation of ``net_best.pth`` on the test subjects: per-muscle RMSE, R^2
   and peak-activation error as ``eval_<split>.csv`` / ``.json``, a printed
   table, and ``eval_<split>.png`` with predicted vs simulated curves of the
   guided muscles.
"""
from __future__ import annotations

import argparse
import difflib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dataset.body_mass import file_masses
from dataset.normalization import Normalizer, static_features
from dataset.repetitions import (
    RepetitionSet, concat_repetitions, load_dynamics_files, load_repetitions, mirror_repetitions, select_muscles,
)
from dataset.split import hold_out_sessions
from dataset.torch_data import EpochBatches
from engine.training import (
    BEST_NAME, check_run_dir, checkpoint_writer, clear_run_dir, loop_state, make_optimizer, restore_training_state,
    run_loop,
)
from metrics.surrogate import accuracy_table, summarise_accuracy, surrogate_accuracy, write_evaluation
from models.surrogate import SurrogateModel, build_from_checkpoint, centre_horizontal, load_surrogate
from options.surrogate import get_args_parser, model_config_from_args, parse_muscles
from render.figures import plot_activation_curves
from utils.checkpoint import CheckpointError, check_compatible, load_checkpoint, seed_everything
from utils.cli import run as run_cli
from utils.constants import COORDINATES, GUIDED_MUSCLES, MUSCLES
from utils.device import apply_precision, resolve_device, torch_threads
from utils.distributed import DistInfo
from utils.errors import UserError
from utils.fileio import exclusive_run
from utils.run_logging import RunLogger


CHECKPOINT_KIND = "surrogate"
SINGLE_PROCESS = DistInfo()
"""The surrogate trains in one process (it is small: a few seconds per epoch on a CPU)."""


# ----------------------------------------------------------------------------- data


@dataclass
class SurrogateData:
    """Training and validation repetitions, restricted to ``muscles``."""

    train: RepetitionSet
    val: RepetitionSet
    muscles: tuple[str, ...]
    train_sessions: list[str]
    val_sessions: list[str]


def check_muscle_names(names: Sequence[str] | None) -> None:
    """Raise ValueError for names that are not LaiUhlrich2022 muscles (before any data is read)."""
    if names is None:
        return

    for name in names:
        if name not in MUSCLES:
            close = difflib.get_close_matches(name, MUSCLES, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"--muscles: unknown muscle {name!r}{hint}; expected names from utils.constants.MUSCLES")
    dup = sorted({n for n in names if list(names).count(n) > 1})
    if dup:
        raise UserError(f"--muscles: {', '.join(dup)} given more than once")


def resolve_muscles(requested: Sequence[str] | None, available: Sequence[str], where: str) -> tuple[str, ...]:
    """``requested`` (None = all) checked against the muscles the data hold."""
    if requested is None:
        return tuple(available)
    missing = [m for m in requested if m not in available]
    if missing:
        raise UserError(f"{where}: no activation column for {', '.join(missing)}; "
                        f"the Dynamics files hold {', '.join(available)}")
    return tuple(requested)


def split_validation(session_ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Hold out a seeded ``fraction`` of whole sessions (subjects): (train, val), both sorted."""
    ids = sorted(set(session_ids))
    if not 0.0 < fraction < 1.0:
        raise UserError(f"--val-fraction must be in (0, 1), got {fraction}")
    if len(ids) < 2:
        raise UserError(f"need at least 2 training sessions to hold one out for validation, found {len(ids)}")
    return hold_out_sessions(ids, fraction, seed)


def load_training_data(args: argparse.Namespace, muscles: Sequence[str] | None,
                       val_sessions: Sequence[str] | None = None) -> SurrogateData:
    """Training-split Dynamics repetitions, divided into train and validation sessions."""
    reps = load_repetitions(args.data_root, split="train", source="dynamics", length=args.clip_length,
                            clip_mode=args.clip_mode, split_file=args.split_file)
    chosen = resolve_muscles(muscles, reps.muscles, str(args.data_root))
    if val_sessions is None:
        train_ids, val_ids = split_validation(reps.sessions, args.val_fraction, args.seed)
    else:
        val_ids = sorted(val_sessions)
        unknown = set(val_ids) - set(reps.sessions)
        if unknown:
            raise CheckpointError(f"validation session(s) {', '.join(sorted(unknown))} of the resumed run are "
                                  f"not in the training split of {args.data_root}")
        train_ids = sorted(set(reps.sessions) - set(val_ids))
    train = reps.of_sessions(train_ids)
    if args.mirror:
        train = concat_repetitions(train, mirror_repetitions(train))
    return SurrogateData(train=select_muscles(train, chosen), val=select_muscles(reps.of_sessions(val_ids), chosen),
                         muscles=chosen, train_sessions=train_ids, val_sessions=val_ids)


# ----------------------------------------------------------------------------- loss and prediction


def surrogate_loss(pred: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Smooth-L1 between activations (B, T, M), averaged, in float32."""
    return F.smooth_l1_loss(pred.float(), target.float(), beta=beta)


def validation_loss(model: SurrogateModel, reps: RepetitionSet, beta: float, precision: str = "fp32",
                    body_mass: np.ndarray | None = None) -> float:
    """Mean smooth-L1 over every frame of ``reps`` (``body_mass`` (N,) kg for a model that takes it)."""
    pred = torch.as_tensor(model.predict(reps.motions, precision=precision, body_mass=body_mass))
    return float(surrogate_loss(pred, torch.as_tensor(reps.activations), beta))


def clip_masses(model: SurrogateModel, reps: RepetitionSet, given: float | None = None) -> np.ndarray | None:
    """Body mass (kg) of the subject of each repetition for a model that takes
    it (``given`` for all, else from each file's session: :func:`dataset.body_mass.file_masses`);
    None for a model that does not."""
    if not model.uses_body_mass:
        return None
    if given is not None:
        return np.full(len(reps), given, dtype=np.float32)
    return file_masses(reps.files)


def mass_normalisation(masses: np.ndarray, sessions: Sequence[str]) -> tuple[float, float]:
    """Mean and standard deviation (kg) of the subjects' body masses, one value
    per subject (std at least 1 kg, so that one subject or identical masses
    still give a usable scale)."""
    per_subject = {sid: float(m) for sid, m in zip(sessions, masses)}
    values = np.array(list(per_subject.values()))
    return float(values.mean()), float(max(values.std(), 1.0))


# ----------------------------------------------------------------------------- metrics and reports


def evaluate_checkpoint(checkpoint: str | Path, args: argparse.Namespace, folder: str | Path,
                        logger: RunLogger | None = None) -> dict[str, Any]:
    """Evaluate a surrogate checkpoint on ``args.eval_split`` and write the reports into ``folder``.

    Returns the JSON content (``summary`` and per-muscle ``muscles`` rows).
    """
    model = _load_for_evaluation(checkpoint, args, logger)
    reps = load_repetitions(args.data_root, split=args.eval_split, source="dynamics", length=args.clip_length,
                            clip_mode=args.clip_mode, split_file=args.split_file)
    info = {"checkpoint": str(checkpoint), "data_root": str(args.data_root), "split": args.eval_split}
    return evaluate_repetitions(model, reps, f"eval_{args.eval_split}", info, args, folder, logger,
                                what=f"{args.eval_split} subjects")


def evaluate_files(checkpoint: str | Path, args: argparse.Namespace, folder: str | Path,
                   logger: RunLogger | None = None) -> dict[str, Any]:
    """Evaluate a surrogate checkpoint on the muscle-driven files of ``args.eval_data``
    (files or folders, e.g. real OpenCap ``kinematics_activations*.mot``), written
    as ``eval_<args.eval_name>.csv/.json/.png`` in ``folder``."""
    model = _load_for_evaluation(checkpoint, args, logger)
    reps = load_dynamics_files(args.eval_data, length=args.clip_length, clip_mode=args.clip_mode)
    info = {"checkpoint": str(checkpoint), "eval_data": [str(p) for p in args.eval_data], "files": reps.files}
    return evaluate_repetitions(model, reps, f"eval_{args.eval_name}", info, args, folder, logger,
                                what=f"files of {', '.join(map(str, args.eval_data))}",
                                body_mass=args.eval_body_mass)


def _load_for_evaluation(checkpoint: str | Path, args: argparse.Namespace,
                         logger: RunLogger | None) -> SurrogateModel:
    """The checkpoint's surrogate on ``--device``, ``--precision`` resolved and logged."""
    device = resolve_device(args.device)
    precision_note = apply_precision(args, device, "surrogate_evaluation")
    if logger is not None:
        logger.log(f"evaluation: {precision_note}")
    return load_surrogate(checkpoint, device=device)


def evaluate_repetitions(model: SurrogateModel, reps: RepetitionSet, name: str, info: dict[str, Any],
                         args: argparse.Namespace, folder: str | Path, logger: RunLogger | None,
                         what: str, body_mass: float | None = None) -> dict[str, Any]:
    """Predict ``reps``, write ``<name>.csv/.json`` and ``<name>.png`` into ``folder``, print the table.
    ``body_mass`` (kg): the subject's, for every repetition (default: from each file's session)."""
    reps = select_muscles(reps, resolve_muscles(model.muscles, reps.muscles, what))
    masses = clip_masses(model, reps, body_mass)
    pred = model.predict(reps.motions, precision=args.precision, body_mass=masses)
    rows = surrogate_accuracy(pred, reps.activations, reps.muscles)
    info = {**info, "arch": model.arch, "n_repetitions": len(reps), "sessions": sorted(set(reps.sessions)),
            "body_mass_kg": None if masses is None else [float(m) for m in masses]}
    paths = write_evaluation(folder, name, rows, info)
    show = [m for m in GUIDED_MUSCLES if m in reps.muscles] or list(reps.muscles[:2])
    n_plot = min(args.plot_reps, len(reps))
    if n_plot > 0:
        pick = np.linspace(0, len(reps) - 1, n_plot).round().astype(int)
        labels = [f"{reps.sessions[i][:8]} {reps.trials[i]}#{reps.indices[i]}" for i in pick]
        paths.append(plot_activation_curves(
            Path(folder) / f"{name}.png", pred[pick], reps.activations[pick], reps.muscles, show, labels,
            title=f"{model.arch} surrogate vs simulation, {what}"))
    summary = summarise_accuracy(rows)
    table = accuracy_table(rows, summary)
    print(f"\nsurrogate evaluation on {len(reps)} repetitions ({what}):\n{table}")
    if logger is not None:
        logger.log(f"evaluation on {what} ({len(reps)} repetitions):\n{table}")
        logger.log("wrote " + ", ".join(str(p) for p in paths))
    return {**info, "summary": summary, "muscles": rows}


# ----------------------------------------------------------------------------- training


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


def _check_args(args: argparse.Namespace) -> None:
    for flag in ("epochs", "batch_size"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.lr <= 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    if args.patience < 0:
        raise UserError(f"--patience must be >= 0, got {args.patience}")
    if args.save_every < 1:
        raise UserError(f"--save-every must be >= 1, got {args.save_every}")
    if args.stop_at is not None and args.stop_at < 1:
        raise UserError(f"--stop-at must be >= 1, got {args.stop_at}")
    if not args.resume:
        SurrogateModel(args.arch, MUSCLES[:1], **model_config_from_args(args))  # architecture options valid?


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train a surrogate on :func:`engine.training.run_loop`, one validation per
    epoch. Returns the loop's result (``finished`` is False after ``--stop-at``
    or a signal; ``best_step``, ``step``, ``best`` ...)."""
    _check_args(args)
    muscles = parse_muscles(args.muscles)
    check_muscle_names(muscles)
    folder = check_run_dir(Path(args.out_dir) / args.exp_name, args.resume, args.overwrite)
    ckpt = None
    uses_mass = args.body_mass
    if args.resume:
        ckpt = load_checkpoint(args.resume)
        # validates the checkpoint before any data is read
        uses_mass = build_from_checkpoint(ckpt, args.resume).uses_body_mass
        if ckpt.get("kind") != CHECKPOINT_KIND or "val_sessions" not in ckpt:
            raise CheckpointError(f"{args.resume}: not a surrogate training checkpoint of this version "
                                  f"(kind={ckpt.get('kind')!r}); train again, or use it with --eval-only")
        muscles = list(ckpt["muscles"])
    check_body_mass_args(args, uses_mass, training=True)
    device = resolve_device(args.device)
    precision_note = apply_precision(args, device, "surrogate_training")
    seed_everything(args.seed)

    data = load_training_data(args, muscles, val_sessions=None if ckpt is None else ckpt["val_sessions"])
    if ckpt is None:
        inputs = centre_horizontal(data.train.motions) if args.centre else data.train.motions
        norm = Normalizer.fit(inputs, COORDINATES)
        train_mass = file_masses(data.train.files) if args.body_mass else None
        mass_norm = None if train_mass is None else mass_normalisation(train_mass, data.train.sessions)
        model = SurrogateModel(args.arch, data.muscles, norm.mean, norm.std, centre=args.centre,
                               static=static_features(inputs, COORDINATES), body_mass=mass_norm,
                               **model_config_from_args(args))
    else:
        check_compatible(ckpt, args.resume, "muscles", data.muscles)
        norm = Normalizer.from_state_dict(ckpt["normalizer"])
        model = build_from_checkpoint(ckpt, args.resume)
        train_mass = clip_masses(model, data.train)
    model.to(device).train()
    clear_run_dir(folder, args.resume, args.overwrite, also=("eval_*",))

    x_train = torch.as_tensor(data.train.motions, device=device)
    y_train = torch.as_tensor(data.train.activations, device=device)
    val_mass = clip_masses(model, data.val)
    extra = () if train_mass is None else (torch.as_tensor(train_mass, device=device),)
    batches = EpochBatches(x_train, y_train, *extra, batch_size=args.batch_size, seed=args.seed)
    per_epoch = batches.steps_per_epoch
    total_steps = args.epochs * per_epoch
    warmup = min(args.warmup_epochs * per_epoch, max(1, total_steps // 2))
    optimizer, scheduler = make_optimizer(model, args, lambda s: _lr_factor(s, warmup, total_steps),
                                          betas=(0.9, 0.999))
    logger = RunLogger(folder, args)
    state = loop_state(None)
    if ckpt is not None:
        state = restore_training_state(ckpt, args.resume, model, optimizer, scheduler, batches, 0, 1,
                                       model.model_config(), CHECKPOINT_KIND)
        logger.log(f"resumed from {args.resume} after epoch {state['step'] // per_epoch} (step {state['step']})")
    logger.log(f"data: {len(x_train)} training repetitions{' (half of them mirrored)' if args.mirror else ''} from "
               f"{len(data.train_sessions)} subjects, "
               f"{len(data.val)} validation repetitions from {len(data.val_sessions)} subjects "
               f"({', '.join(data.val_sessions)}); {len(data.muscles)} muscles")
    n_params = sum(p.numel() for p in model.parameters())
    mass_note = ("kinematics only (--no-body-mass)" if train_mass is None else
                 f"body mass as an input (training subjects {train_mass.min():.1f}-{train_mass.max():.1f} kg)")
    logger.log(f"model: {model.arch} {model.config}, {mass_note}, {n_params} parameters, device {device}, "
               f"{precision_note}")

    def loss_fn(batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, y, *mass = batch
        if args.noise > 0:  # drawn from the sampler's generator: one state for all the randomness
            x = x + args.noise * model.x_std * torch.randn(x.shape, generator=batches.generator).to(device)
        return {"loss": surrogate_loss(model(x, mass[0] if mass else None), y, args.loss_beta)}

    save = checkpoint_writer(kind=CHECKPOINT_KIND, model=model, model_config=model.model_config(),
                             normalizer=norm.state_dict(), optimizer=optimizer, scheduler=scheduler, args=args,
                             batches=batches, dist_info=SINGLE_PROCESS, muscles=list(model.muscles),
                             train_sessions=data.train_sessions, val_sessions=data.val_sessions)
    loop_args = argparse.Namespace(**{**vars(args), "total_iter": total_steps, "eval_iter": per_epoch,
                                      "print_iter": per_epoch, "snapshot_iter": 0, "grad_clip": 0.0})
    start_time = time.perf_counter()
    result = run_loop(loop_args, model=model, optimizer=optimizer, scheduler=scheduler, batches=batches,
                      loss_fn=loss_fn,
                      val_fn=lambda: validation_loss(model, data.val, args.loss_beta, args.precision, val_mass),
                      logger=logger, dist_info=SINGLE_PROCESS, device=device, exp_dir=folder, state=state,
                      save=save, desc=f"surrogate {model.arch}", patience=args.patience,
                      stop_step=None if args.stop_at is None else args.stop_at * per_epoch,
                      last_every=args.save_every * per_epoch, unit="epoch", steps_per_unit=per_epoch)
    seconds = time.perf_counter() - start_time
    epochs, best_epoch = result["step"] // per_epoch, result["best_step"] // per_epoch
    why = (f"early stop: no better validation loss for {args.patience} epochs" if result["early_stop"]
           else "stopped by signal" if result["stopped"] else "stopped at --stop-at" if epochs < args.epochs
           else "all epochs done")
    logger.log(f"training ended after epoch {epochs} ({why}) in {seconds:.1f} s; "
               f"best validation loss {result['best']:.6f} at epoch {best_epoch}")
    print(f"surrogate: {why}; {epochs} epochs in {seconds:.1f} s, best validation loss "
          f"{result['best']:.6f} at epoch {best_epoch} -> {folder / BEST_NAME}")
    logger.close()
    return result


def main(args: argparse.Namespace) -> dict[str, Any] | None:
    """Train (unless ``--eval-only``), then evaluate the best checkpoint. Returns the evaluation."""
    with torch_threads(args.num_threads), exclusive_run(Path(args.out_dir) / args.exp_name):  # one writer per folder
        return _run(args)


def check_body_mass_args(args: argparse.Namespace, uses_mass: bool, training: bool) -> None:
    """Flags that will not act are said; ``uses_mass``: whether the model
    evaluated, resumed or about to be trained takes body mass. Before a
    training run, the ``--eval-data`` files evaluated after it are read and,
    for a model that takes body mass, every file's subject must have one (or
    ``--eval-body-mass``): a bad file fails now, not after the training."""
    if args.resume and uses_mass != args.body_mass:
        print(f"note: {args.resume} was trained {'with' if uses_mass else 'without'} body mass; "
              f"--{'' if args.body_mass else 'no-'}body-mass does not change a resumed run")
    if args.eval_body_mass is not None and not (uses_mass and args.eval_data):
        print("note: --eval-body-mass is not used "
              + ("(the model does not take body mass)" if not uses_mass else "(no --eval-data)"))
    if training and args.eval_data:
        files = load_dynamics_files(args.eval_data, length=args.clip_length, clip_mode=args.clip_mode).files
        if uses_mass and args.eval_body_mass is None:
            file_masses(files)


def _run(args: argparse.Namespace) -> dict[str, Any] | None:
    folder = Path(args.out_dir) / args.exp_name
    if args.eval_data and not args.eval_name:
        args.eval_name = Path(args.eval_data[0]).stem
    if args.eval_only:
        checkpoint = Path(args.checkpoint) if args.checkpoint else folder / BEST_NAME
        model = load_surrogate(checkpoint)  # fail on a bad checkpoint before reading data
        check_body_mass_args(args, model.uses_body_mass, training=False)
        logger = RunLogger(folder, args, tensorboard=False)
        try:
            if args.eval_data:  # only the named files: the data root may not even exist
                return evaluate_files(checkpoint, args, folder, logger)
            return evaluate_checkpoint(checkpoint, args, folder, logger)
        finally:
            logger.close()
    result = train(args)
    if not result["finished"]:  # --stop-at or a signal: evaluate when the run is complete
        return {"stopped": True} if result["stopped"] else None
    logger = RunLogger(folder, None, tensorboard=False)
    try:
        result = evaluate_checkpoint(folder / BEST_NAME, args, folder, logger)
        if args.eval_data:
            result["eval_data"] = evaluate_files(folder / BEST_NAME, args, folder, logger)
        return result
    finally:
        logger.close()


if __name__ == "__main__":
    run_cli(main, get_args_parser())
