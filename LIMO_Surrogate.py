"""BIGE guidance: optimise VQ-VAE latents under biomechanical constraints.

    python LIMO_Surrogate.py --exp-name TestBIGE --vq-name output/VQVAE/net_best.pth --dataname mcs \
        --seq-len 49 --total-iter 3000 --lr 0.5 --num-runs 3000 --min-samples 20 \
        --subject data/mcs_synthetic/Data/<session> --low 0.35 --high 0.45 \
        --surrogate output/surrogate/net_best.pth

``--subject all`` guides every test-split session. This script is the stage:
check every input before any work (:func:`check_args`, :func:`prepare`), then
per subject guide, rank, optionally verify by OpenSim simulation of the runs
as their files will hold them (``--verify``; between chunks of simulations a
per-subject copy of the surrogate is refined on the simulated runs,
``--verify-refine``; :mod:`metrics.verification`, :mod:`models.surrogate_refine`;
``--sim-cache DIR`` stores the simulations where ``calculate_guidance.py
--simulate --sim-cache DIR`` finds them) and write ``.mot`` / ``.npy`` / ``summary.json`` / PNG /
``run.log`` / tensorboard (:func:`guide_subjects`, :func:`write_results`).
The method itself (objective, schedule, optimisation, ranking) is
:mod:`models.guidance`; see ``docs/guidance.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from dataset.body_mass import subject_mass
from dataset.mcs import DatasetError, dataset_root
from dataset.repetitions import load_repetitions
from dataset.subjects import resolve_subjects, session_repetitions
from engine.generation import subject_seed
from metrics.sim_cache import SimulationCache
from metrics.simulation import shutdown_workers
from metrics.verification import Verification, round_records, verified_keep, verify_runs
from models import guidance_losses as L
from models.guidance import (
    TERMS, GuidanceError, GuidanceObjective, GuidanceResult, Schedule, estimate_floor, guide, initial_latents,
    latent_unit_scale, merge_results, rank_samples, subject_frame_rate,
)
from models.surrogate import load_surrogate
from models.surrogate_refine import RefineConfig
from models.vqvae import load_vqvae
from options.guidance import get_args_parser
from render.figures import plot_samples
from utils.checkpoint import CheckpointError, seed_everything
from utils.cli import run
from utils.constants import COORD_INDEX, COORDINATES, DEFAULT_DATA_ROOT, MUSCLES
from utils.device import apply_precision, resolve_device, set_threads, torch_threads
from utils.fileio import exclusive_run
from utils.generation_output import check_outputs, check_uniform_settings, write_subject_samples
from utils.kinematics import ForwardKinematics
from utils.process_map import process_map, worker_slot
from utils.run_logging import RunLogger, now


def guidance_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings every subject of one results folder must share, as written
    into each ``summary.json`` (see :data:`utils.generation_output.SETTINGS_KEYS`)."""
    schedule = schedule_from_args(args)
    return {
        "method": "BIGE guidance",
        "vq_checkpoint": str(args.vq_name),
        "surrogate_checkpoint": str(args.surrogate),
        "muscles": list(args.muscles),
        "band": [float(args.low), float(args.high)],
        "peak_window_s": float(args.peak_window),
        "surrogate_lowpass_hz": float(args.surrogate_lowpass),
        "num_runs": int(args.num_runs),
        "total_iter": int(args.total_iter),
        "lr": float(args.lr),
        "latent_unit": args.latent_unit,
        "floor_align": args.floor_align,
        "schedule": {"proximity_only": schedule.proximity_only, "ramp": schedule.ramp,
                     "final_proximity": schedule.final_proximity},
        "weights": weights_from_args(args),
        "verify": bool(getattr(args, "verify", False)),
        "verify_refine": bool(getattr(args, "verify", False) and getattr(args, "verify_refine", False)),
        "verify_prune": bool(getattr(args, "verify", False) and getattr(args, "verify_refine", False)
                             and getattr(args, "verify_prune", False)),
    }


def schedule_from_args(args: argparse.Namespace) -> Schedule:
    return Schedule.published(args.total_iter, args.proximity_only_iter, args.ramp_iter, args.final_proximity_iter)


def weights_from_args(args: argparse.Namespace) -> dict[str, float]:
    return {name: float(getattr(args, f"w_{name}")) for name in TERMS}


def refine_config(args: argparse.Namespace) -> RefineConfig | None:
    """The surrogate refinement of ``--verify-refine`` (None when off or without ``--verify``)."""
    if not (args.verify and args.verify_refine):
        return None
    return RefineConfig(steps=args.refine_steps, lr=args.refine_lr, anchor=args.refine_anchor)


def check_args(args: argparse.Namespace) -> None:
    """Option checks that need no file; raise :class:`GuidanceError`."""
    if not (0.0 <= args.low < args.high <= 1.0):
        raise GuidanceError(f"--low {args.low} and --high {args.high} must satisfy 0 <= low < high <= 1")
    if args.surrogate_lowpass < 0:
        raise GuidanceError(f"--surrogate-lowpass must be >= 0 Hz, got {args.surrogate_lowpass}")
    if args.peak_window < 0:
        raise GuidanceError(f"--peak-window must be >= 0 seconds, got {args.peak_window}")
    if not 0.0 <= args.band_margin < 0.5:
        raise GuidanceError(f"--band-margin {args.band_margin} must be in [0, 0.5) (a fraction of the band width)")
    try:  # RefineConfig holds the rule
        RefineConfig(steps=args.refine_steps, lr=args.refine_lr, anchor=args.refine_anchor)
    except ValueError:
        raise GuidanceError(f"--refine-steps must be >= 1, --refine-lr > 0 and --refine-anchor >= 0; got "
                            f"{args.refine_steps}, {args.refine_lr}, {args.refine_anchor}") from None
    if args.sim_cache and not args.verify:
        raise GuidanceError("--sim-cache keeps the simulations of --verify: it needs --verify")
    if args.verify_rounds < 0 or args.workers < 1:
        raise GuidanceError(f"--verify-rounds must be >= 0 and --workers >= 1, got {args.verify_rounds}, {args.workers}")
    if args.subject_workers < 1:
        raise GuidanceError(f"--subject-workers must be >= 1, got {args.subject_workers}")
    for flag in ("num_runs", "min_samples", "batch_size", "total_iter", "seq_len", "log_every", "contact_stride"):
        if getattr(args, flag) < 1:
            raise GuidanceError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.min_samples > args.num_runs:
        raise GuidanceError(f"--min-samples {args.min_samples} exceeds --num-runs {args.num_runs}")
    if args.lr <= 0:
        raise GuidanceError(f"--lr must be positive, got {args.lr}")
    bad = [m for m in args.muscles if m not in MUSCLES]
    if bad:
        raise GuidanceError(f"--muscles: unknown muscle name(s) {bad}; names look like vasmed_r, vasmed_l")
    negative = [n for n, w in weights_from_args(args).items() if w < 0]
    if negative:
        raise GuidanceError(f"loss weights must be >= 0; negative: {negative}")
    lo, hi = args.init_noise
    if not 0 <= lo <= hi:
        raise GuidanceError(f"--init-noise {lo} {hi}: expected 0 <= LOW <= HIGH")
    schedule_from_args(args)  # raises on inconsistent phases


def resolve_data_root(args: argparse.Namespace) -> Path:
    """``--data-root``, else the root holding the first ``--subject`` folder, else the default root."""
    if args.data_root:
        return Path(args.data_root)
    for entry in args.subject:
        path = Path(entry)
        if path.is_dir() and path.parent.name == "Data":
            return dataset_root(path.parent)
    return Path(DEFAULT_DATA_ROOT)


@dataclass
class Prepared:
    """Everything :func:`guide_subjects` loads and checks before any optimisation."""

    device: torch.device
    vqvae: Any
    normalizer: Any
    surrogate: Any
    bank: L.LatentBank
    sessions: list
    subject_motions: dict[str, np.ndarray]
    model_paths: dict[str, Path]
    frames: int
    root: Path
    exp_dir: Path
    precision_note: str = ""
    data_range: tuple[np.ndarray, np.ndarray] | None = None
    """Per-coordinate (min, max) of the normalised training repetitions: the surrogate's trust region."""
    durations: dict[str, float] = field(default_factory=dict)
    """Mean real duration (s) of each subject's repetitions: the time span
    written into its guided ``.mot`` files, so rates are in real time."""
    masses: dict[str, float] = field(default_factory=dict)
    """Each subject's body mass (kg), for a surrogate that takes it (empty otherwise)."""


def prepare(args: argparse.Namespace) -> Prepared:
    """Check every input and load models and data; raises before any guidance work.

    Errors: :class:`GuidanceError` (options), ``DatasetError`` (subject folder
    missing or without squat trial), ``CheckpointError`` (VQ-VAE coordinate
    order / input width, surrogate lacking a requested muscle),
    ``OutputExistsError`` (results exist and no ``--overwrite``).
    """
    from dataset.synthetic.osim_model import default_model_path

    check_args(args)
    device = resolve_device(args.device)
    precision_note = apply_precision(args, device, "guidance")
    root = resolve_data_root(args)
    sessions = resolve_subjects(root, args.subject, args.split_file, args.seed)
    exp_dir = Path(args.out_dir) / args.exp_name
    check_outputs(exp_dir, [s.id for s in sessions], args.overwrite)
    # subjects not rewritten now must have been guided the same way, or the folder would mix settings
    check_uniform_settings(exp_dir, expected=guidance_settings(args), skip=[s.id for s in sessions])

    vqvae, normalizer, ckpt = load_vqvae(args.vq_name, device)
    n_features = int(ckpt["model_config"].get("n_features", -1))
    if n_features != len(COORDINATES) or tuple(normalizer.names) != tuple(COORDINATES):
        raise CheckpointError(f"{args.vq_name}: VQ-VAE takes {n_features} features "
                              f"({len(normalizer.names)} normalised names); guidance needs the "
                              f"{len(COORDINATES)} canonical coordinates")
    surrogate = load_surrogate(args.surrogate, device, muscles=args.muscles)
    frames = args.seq_len * vqvae.downsample

    subject_motions, model_paths, durations = {}, {}, {}
    for session in sessions:
        reps = session_repetitions(session, length=frames, clip_mode=args.clip_mode)
        if len(reps) == 0:
            raise DatasetError(f"{session.path}: no squat repetitions")
        subject_motions[session.id] = reps.motions
        durations[session.id] = reps.mean_duration(session.id)
        model_paths[session.id] = session.model if session.model is not None else default_model_path()
    masses = {s.id: subject_mass(s.path) for s in sessions} if surrogate.uses_body_mass else {}
    train = load_repetitions(root, "train", length=frames, clip_mode=args.clip_mode, split_file=args.split_file)
    bank = L.LatentBank(vqvae.encode_motions(train.motions, normalizer), unit=args.proximity_unit)
    train_norm = np.asarray(normalizer.normalize(np.asarray(train.motions, dtype=np.float64)))
    data_range = (train_norm.min(axis=(0, 1)), train_norm.max(axis=(0, 1)))
    return Prepared(device, vqvae, normalizer, surrogate, bank, sessions, subject_motions, model_paths,
                    frames, root, exp_dir, precision_note, data_range, durations, masses)


@dataclass
class SubjectOutcome:
    """What guiding one subject gives back: its results folder and the lines it noted."""

    folder: Path
    lines: list[tuple[str, str]]
    """``(time stamp, message)`` of every line of the subject's ``run.log``, in order."""


WORKER_PRELOAD = ("torch._dynamo", "dataset.synthetic.muscle_dynamics", "tqdm.auto")
"""Imported once by the forkserver the subject workers are forked from, beside
this script's own imports: what a worker would otherwise import itself (the
first ``torch.optim`` optimiser imports ``torch._dynamo``, ~2 s; verification
imports OpenSim)."""


def guide_subjects(args: argparse.Namespace) -> dict[str, Path]:
    """Guide every subject of ``args``; returns ``{session id: results folder}``.

    With ``--subject-workers N > 1`` the subjects are guided by N worker
    processes (:func:`utils.process_map.process_map`), each with its own
    ``--num-threads`` and simulation pool; every subject folder is written by
    its worker (atomically, under this process's ``exclusive_run`` lock) and
    its lines go into the experiment's ``run.log`` here, in subject order.
    A subject's results do not depend on the process that guides it nor on
    the subjects guided before it in the same process."""
    prep = prepare(args)
    seed_everything(args.seed)
    exp_log = RunLogger(prep.exp_dir, args, tensorboard=False)
    unit_scale = latent_unit_scale(args.latent_unit, prep.bank)
    processes = min(args.subject_workers, len(prep.sessions))
    exp_log.log(f"device {prep.device}, {prep.precision_note}, data root {prep.root}, "
                f"{len(prep.sessions)} subject(s), latent bank {len(prep.bank)} x {prep.bank.vectors.shape[1]} "
                f"({prep.bank.unit}), frames {prep.frames}, {schedule_from_args(args)}, "
                f"lr {args.lr} and init noise U{tuple(args.init_noise)} in units of {unit_scale:.4g}"
                + (f", {processes} subject worker processes" if processes > 1 else ""))
    out: dict[str, Path] = {}

    def done(session: Any, outcome: SubjectOutcome) -> None:
        out[session.id] = outcome.folder
        print(f"{session.id}: {outcome.lines[-1][1]} -> {outcome.folder}", flush=True)

    try:
        if processes <= 1:
            for session in prep.sessions:
                def echo(msg: str, sid: str = session.id) -> None:
                    exp_log.log(f"{sid}: {msg}")

                done(session, guide_subject(args, prep, session, echo))
        else:
            outcomes = process_map(_guide_in_worker, prep.sessions, processes, initializer=_start_worker,
                                   initargs=(args, prep), finalizer=shutdown_workers,
                                   name="subject-worker", preload=WORKER_PRELOAD)
            with contextlib.closing(outcomes):
                for session, outcome in zip(prep.sessions, outcomes):
                    for stamp, msg in outcome.lines:
                        exp_log.log(f"{session.id}: {msg}", stamp=stamp)
                    done(session, outcome)
    finally:
        exp_log.close()
    return out


def guide_subject(args: argparse.Namespace, prep: Prepared, session: Any,
                  echo: Callable[[str], None] | None = None) -> SubjectOutcome:
    """Guide one subject, optionally verify and refine (``--verify``), and write
    its results folder (:func:`write_results`, its ``run.log`` and tensorboard
    curves). ``echo`` also receives every line as it is noted. Uses only the
    subject's own generator (:func:`engine.generation.subject_seed` of ``args.seed`` and the session id), no
    global random state."""
    started = time.perf_counter()
    schedule, weights = schedule_from_args(args), weights_from_args(args)
    unit_scale = latent_unit_scale(args.latent_unit, prep.bank)
    lines: list[tuple[str, str]] = []

    def note(msg: str) -> None:
        lines.append((now(), msg))
        if echo is not None:
            echo(msg)

    motions = prep.subject_motions[session.id]
    fk = ForwardKinematics.from_osim(prep.model_paths[session.id])
    floor = args.floor_height if args.floor_height is not None else estimate_floor(fk, motions)
    fs = subject_frame_rate(prep.durations.get(session.id), prep.frames)
    surrogate = prep.surrogate.for_subject(prep.masses.get(session.id))
    objective = GuidanceObjective(prep.vqvae, prep.normalizer, surrogate, args.muscles, fk, prep.bank,
                                  args.low, args.high, floor, precision=args.precision,
                                  contact_tol=args.contact_tol, contact_stride=args.contact_stride,
                                  floor_align=args.floor_align, band_margin=args.band_margin,
                                  quantizer_grad=args.quantizer_grad, relax_temperature=args.relax_temperature,
                                  fs=fs, peak_window=args.peak_window, surrogate_lowpass=args.surrogate_lowpass,
                                  data_range=prep.data_range)
    sub_lat = prep.vqvae.encode_motions(motions, prep.normalizer)
    gen = torch.Generator().manual_seed(subject_seed(args.seed, session.id))
    z0 = initial_latents(sub_lat, args.num_runs, tuple(args.init_noise), unit_scale, gen)
    mass = ""
    if session.id in prep.masses:  # how far from the training subjects' masses the surrogate reaches
        kg = prep.masses[session.id]
        mass = f", body mass {kg:.1f} kg ({prep.surrogate.mass_z(kg):+.1f} SD from the surrogate's training subjects)"
    note(f"{len(motions)} repetitions, model {prep.model_paths[session.id]}{mass}, floor {floor:.4f} m, "
         f"{fs:.2f} Hz real time, peak window {args.peak_window} s = {objective.window} frames")
    progress = {"progress": not args.no_progress, "desc": session.id[:12], "position": _progress_position}
    result = guide(objective, z0, weights, schedule, lr=args.lr * unit_scale, batch_size=args.batch_size,
                   log_every=args.log_every, **progress)
    verification = None
    if args.verify:
        model_path = prep.model_paths[session.id]
        refine = refine_config(args)
        prune = refine is not None and args.verify_prune  # and only while another round is allowed (below)
        duration = prep.durations.get(session.id)  # the time span write_results gives the motions
        cache = SimulationCache(args.sim_cache) if args.sim_cache else None
        verification = verify_runs(objective, result, model_path, args.min_samples, weights, args.workers,
                                   log=note, refine=refine, prune=prune and args.verify_rounds >= 1,
                                   duration=duration, cache=cache)
        while (verification.in_band(args.low, args.high).sum() < args.min_samples
               and verification.rounds <= args.verify_rounds):
            guiding = verification.objective or objective  # the refined surrogate with --verify-refine
            note(f"verify: fewer than {args.min_samples} in band by simulation; optimising {args.num_runs} more "
                 f"latents (round {verification.rounds + 1} of at most {args.verify_rounds + 1})"
                 + (" against the refined surrogate" if guiding is not objective else ""))
            z_more = initial_latents(sub_lat, args.num_runs, tuple(args.init_noise), unit_scale, gen)
            result = merge_results(result, guide(guiding, z_more, weights, schedule, lr=args.lr * unit_scale,
                                                 batch_size=args.batch_size, log_every=args.log_every, **progress))
            verification.rounds += 1
            verification = verify_runs(objective, result, model_path, args.min_samples, weights, args.workers,
                                       previous=verification, log=note, refine=refine,
                                       prune=prune and verification.rounds <= args.verify_rounds,
                                       duration=duration, cache=cache)
        keep = verified_keep(result, verification, args.min_samples, args.low, args.high, note, subject=session.id)
    else:
        keep = rank_samples(result, args.min_samples, args.low, args.high, weights)
    folder = write_results(args, session.id, result, keep, objective, schedule, weights, floor, prep,
                           verification, wall_seconds=time.perf_counter() - started)
    inb = L.in_band(torch.as_tensor(result.activations), args.low, args.high, result.window).numpy()
    runs = len(result.latents)
    note(f"{runs} runs in {result.seconds:.1f} s "
         f"({runs * args.total_iter / max(result.seconds, 1e-9):.0f} latent-iterations/s); "
         f"{inb.mean():.1%} of runs and {inb[keep].mean():.1%} of the {len(keep)} kept in "
         f"[{args.low}, {args.high}]")
    logger = RunLogger(folder, args)
    for stamp, line in lines:
        logger.log(line, stamp=stamp)
    for k, step in enumerate(result.history_steps):
        logger.scalars({name: v[k] for name, v in result.history.items()}, int(step), prefix="guidance/")
    logger.close()
    return SubjectOutcome(folder, lines)


# --------------------------------------------------------------- subject worker processes (--subject-workers)

_worker: tuple[argparse.Namespace, Prepared] | None = None
"""The options and loaded models of this subject worker process (:func:`_start_worker`)."""

_progress_position: int | None = None
"""tqdm line of this process's progress bars (a worker's slot), so parallel bars do not overwrite each other."""


def _start_worker(args: argparse.Namespace, prep: Prepared) -> None:
    """Set up a subject worker process as the parent is set up: its thread
    count, the global seeds (as before the parent's first subject) and the
    models and data :func:`prepare` loaded."""
    global _worker, _progress_position
    set_threads(args.num_threads)
    seed_everything(args.seed)
    _worker = (args, prep)
    _progress_position = worker_slot()


def _guide_in_worker(session: Any) -> SubjectOutcome:
    """:func:`guide_subject` in a subject worker process."""
    assert _worker is not None, "_start_worker runs first"
    args, prep = _worker
    return guide_subject(args, prep, session)


def write_results(args: argparse.Namespace, session_id: str, result: GuidanceResult, keep: np.ndarray,
                  objective: GuidanceObjective, schedule: Schedule, weights: Mapping[str, float], floor: float,
                  prep: Prepared, verification: Verification | None = None, wall_seconds: float | None = None
                  ) -> Path:
    """Write the kept samples (``.mot``, ``.npy``), ``summary.json`` and the PNG; returns the folder.
    With ``verification`` every kept sample's simulated activation goes into the summary, the
    per-round figures into ``summary.json["verification"]["per_round"]``, and the simulated runs
    (motions, simulated and surrogate activations, round) into ``verification.npz``."""
    peaks, raw = result.peaks, result.raw_peaks
    inb = ((peaks >= args.low) & (peaks <= args.high)).all(1)
    raw_inb = ((raw >= args.low) & (raw <= args.high)).all(1)
    ty = torch.as_tensor(result.motions[:, :, COORD_INDEX["pelvis_ty"]])
    depth = L.squat_depth(ty).numpy()
    per_sample = []
    for i in keep:
        per_sample.append({
            "run": int(i),
            "loss_terms": {k: float(result.terms[k][i]) for k in TERMS},
            "weighted_loss": float(sum(weights[k] * result.terms[k][i] for k in TERMS)),
            "peak_activation": {m: float(peaks[i, j]) for j, m in enumerate(objective.muscles)},
            "peak_activation_mean": float(peaks[i].mean()),
            "raw_peak_activation": {m: float(raw[i, j]) for j, m in enumerate(objective.muscles)},
            "raw_peak_activation_mean": float(raw[i].mean()),
            "squat_depth_m": float(depth[i]),
            "in_band": bool(inb[i]),
            "raw_in_band": bool(raw_inb[i]),
        })
        if verification is not None:
            per_sample[-1]["simulated"] = verification.record(int(i), objective.muscles, args.low, args.high)
    info = {
        **guidance_settings(args),
        "muscles": list(objective.muscles),
        "floor_height_m": float(floor),
        "schedule": {"proximity_only": schedule.proximity_only, "ramp": schedule.ramp,
                     "final_proximity": schedule.final_proximity},
        "weights": dict(weights),
        "seconds": float(result.seconds),
        "wall_seconds": None if wall_seconds is None else float(wall_seconds),
        "in_band_fraction_all_runs": float(inb.mean()),
        "in_band_fraction_kept": float(inb[keep].mean()) if len(keep) else 0.0,
        "raw_in_band_fraction_kept": float(raw_inb[keep].mean()) if len(keep) else 0.0,
        "frame_rate_hz": float(objective.fs),
        "peak_window_frames": int(result.window),
        "runs_optimised": int(len(result.latents)),
        "all_runs": {"peak_activation_mean": [round(float(v), 5) for v in peaks.mean(1)],
                     "in_band": [bool(v) for v in inb]},
        "options": dict(vars(args)),
    }
    if verification is not None:
        ok = np.array([not e for e in verification.errors], dtype=bool)
        sim_inb = verification.in_band(args.low, args.high)
        sur_inb = inb[verification.runs]
        info["verification"] = {
            "rounds": int(verification.rounds), "runs_simulated": int(len(verification.runs)),
            "simulations_failed": int((~ok).sum()), "in_band_by_simulation": int(sim_inb.sum()),
            "kept_in_band_by_simulation": int(sum(bool(verification.in_band(args.low, args.high)[
                np.flatnonzero(verification.runs == i)[0]]) for i in keep)),
            "in_band_fraction_simulated": float(sim_inb[ok].mean()) if ok.any() else 0.0,
            "in_band_by_surrogate_among_simulated": int(sur_inb.sum()),
            "surrogate_sim_peak_mad": float(np.abs(peaks[verification.runs][ok].mean(1)
                                                   - verification.peaks()[ok].mean(1)).mean()) if ok.any() else None,
            "refine": asdict(refine_config(args)) if args.verify_refine else None,
            "per_round": round_records(verification, result, objective, args.low, args.high),
            "refinements": verification.refinements,
        }
    folder = write_subject_samples(prep.exp_dir, session_id, result.motions[keep], args.exp_name,
                                   overwrite=args.overwrite, info=info, per_sample=per_sample,
                                   duration=prep.durations.get(session_id))
    if verification is not None:
        np.savez_compressed(folder / "verification.npz", runs=verification.runs, round=verification.round_of,
                            motions=result.motions[verification.runs], simulated=verification.activations,
                            surrogate=result.activations[verification.runs], at_pick=verification.predicted,
                            window=verification.window)
    if not args.no_plot:

        plot_samples(folder / f"samples_{args.exp_name}.png", result.activations[keep], result.motions[keep],
                     objective.muscles, args.low, args.high, title=session_id, fs=objective.fs)
    return folder


def main(args: argparse.Namespace) -> dict[str, Path]:
    """Guide the subjects ``args`` names, one writer per results folder."""
    with torch_threads(args.num_threads), exclusive_run(Path(args.out_dir) / args.exp_name):
        return guide_subjects(args)


if __name__ == "__main__":
    run(main, get_args_parser())
