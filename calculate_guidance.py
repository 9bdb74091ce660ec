"""Guidance metrics of sets of motions, per subject and pooled: peak
activation of the guided muscles (surrogate, or the simulation for motion
capture) and the constraint band, squat depth, pelvis tilt, asymmetry,
smoothness, foot sliding and floor penetration. See docs/metrics.md.

``--protocol project`` (default): per motion, mean ± std per subject and
pooled over motions. ``--protocol published``: the paper's protocol, for
comparability: per subject folder (one RMS per folder), mean ± std over
folders, angular velocity over the 7 published coordinates, clips tiled; the
paper's floor metrics have other definitions and are not reported there.
Rates are in real time under both.

Peak activations are reported raw and averaged over ``--peak-window``
seconds side by side; ``--simulate`` adds the OpenSim simulation's
activations of every motion (``metrics/simulation.py``) and the
surrogate-simulation agreement; ``--lowpass HZ`` filters every set alike.
``--sim-cache DIR`` keeps the simulated activations (``metrics/sim_cache.py``)
so a motion simulated once, by this run or an earlier one, is not simulated
again; the tables are the same with or without it.

    python calculate_guidance.py --file_type mocap --folder_path data/mcs_synthetic --surrogate output/surrogate/net_best.pth
    python calculate_guidance.py --file_type mot --folder_path output/guidance/BIGE
    python calculate_guidance.py --compare data/mcs_synthetic output/baselines/VQVAE-Generations output/guidance/BIGE --labels MoCap VQ-VAE BIGE
    python calculate_guidance.py --compare data/mcs_synthetic output/guidance/BIGE --labels MoCap BIGE --simulate --workers 2
    python calculate_guidance.py --compare data/mcs_synthetic output/guidance/BIGE --labels MoCap BIGE --simulate --sim-cache output/sim_cache
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from dataset.mcs import DatasetError
from dataset.repetitions import load_repetitions
from metrics.evaluate import (
    GUIDANCE_COLUMNS, PROTOCOL_TITLES, PUBLISHED_GUIDANCE_COLUMNS, UNITS, SubjectFeet,
    guidance_per_motion, guidance_rows, input_specs, load_surrogate_model, options_dict, output_location,
    published_guidance_rows, resolve_protocol, set_info, subject_masses, subject_models, surrogate_activations,
)
from metrics.guidance import floor_contact_warning, lowpass_motions, subject_floors
from metrics.motion_sets import MotionSetError, load_motion_set
from metrics.report import csv_text, output_paths, text_table, write_outputs
from metrics.sim_cache import SimulationCache
from metrics.simulation import simulate_many
from options.metrics import get_guidance_parser
from utils.cli import run as run_cli
from utils.errors import UserError
from utils.fileio import OutputExistsError, atomic_write_text

DEFAULT_SURROGATES = ("output/surrogate/net_best.pth", "output/demo/surrogate/net_best.pth")
"""Where the surrogate is looked for (relative to the working directory) when
``--surrogate`` is not given: the default experiment folders of the surrogate
script and of the demo pipeline."""


def find_surrogate(explicit: str | os.PathLike | None) -> tuple[Path | None, str]:
    """The surrogate checkpoint to use and a note saying which (or why none)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UserError(f"--surrogate {path}: no such checkpoint file")
        return path, f"activations from the surrogate {path}"
    for candidate in DEFAULT_SURROGATES:
        if Path(candidate).is_file():
            return Path(candidate), f"activations from the surrogate {candidate} (found by default)"
    return None, ("no surrogate checkpoint given (--surrogate) or found at " + ", ".join(DEFAULT_SURROGATES)
                  + ": activation columns (peak act., in band, violation, tilt@peak) skipped")


def subject_roots(kind: str, folder: str, args) -> list:
    """Where the subjects of a motion set are sessions: the set's own root for
    motion capture, else ``--data_root``."""
    return [folder] if kind == "mocap" else [args.data_root]


def simulate_set(mset, kind: str, folder: str, args, cache: SimulationCache | None = None) -> tuple:
    """Simulated activations of ``args.muscles`` for every motion of ``mset``
    with its subject's scaled model (generic where none is known), through
    ``cache`` if given: ``((N, T, G) with NaN rows where a simulation failed, errors)``."""
    from dataset.synthetic.osim_model import default_model_path

    models = subject_models(mset.subjects, subject_roots(kind, folder, args))
    generic = str(default_model_path())
    paths = [str(models.get(sid, generic)) for sid in mset.subjects]
    dt = mset.frame_times() if args.frame_rate is None else 1.0 / args.frame_rate
    return simulate_many(paths, mset.motions, dt, args.muscles, workers=args.workers,
                         progress=not args.no_progress, cache=cache)


def auto_floors(mset, feet, kind: str, folder: str, engine: SubjectFeet, args,
                known: dict[str, dict[str, float]]) -> tuple[np.ndarray, str]:
    """``--floor-height auto``: one floor height per motion of ``mset``, its
    subject's, estimated from the subject's motion capture (the set itself
    for a motion-capture root, ``--data-root``'s sessions for a generated
    folder) through the same foot model; ``known`` caches them per root.
    Returns the (N,) heights and a note."""
    if kind == "mocap":
        root = str(folder)
        found = subject_floors(feet, mset.subjects)
    else:
        root = str(args.data_root)
        missing = sorted(set(mset.subjects) - set(known.get(root, {})))
        found = {}
        if missing:
            try:
                reps = load_repetitions(root, "all", length=args.clip_length, clip_mode=args.clip_mode,
                                        sessions=missing)
            except DatasetError as err:
                raise UserError(f"--floor-height auto for {folder} needs its subjects' motion capture in "
                                f"--data-root: {err}") from None
            found = subject_floors(engine.positions(reps.motions, reps.sessions), reps.sessions)
    floors = known.setdefault(root, {})
    floors.update(found)
    heights = np.array([floors[sid] for sid in mset.subjects], dtype=np.float64)
    note = ("floor per subject (--floor-height auto): the median lowest foot point of its motion capture in "
            f"{root}, " + ", ".join(f"{sid} {floors[sid]:.3f} m" for sid in sorted(set(mset.subjects))))
    return heights, note


def main(args) -> list[dict]:
    """Evaluate every set the options name; print and write the table. Returns the rows."""
    started = time.time()
    protocol = resolve_protocol(args)
    published = protocol == "published"
    specs = input_specs(args)
    compare = bool(args.compare)
    if args.low > args.high:
        raise MotionSetError(f"--low {args.low} is above --high {args.high}")
    if args.peak_window < 0:
        raise UserError(f"--peak-window must be >= 0 seconds, got {args.peak_window}")
    if args.simulate and published:
        raise UserError("--simulate is reported under --protocol project only")
    if args.sim_cache and not args.simulate:
        raise UserError("--sim-cache keeps simulations: it needs --simulate")
    cache = SimulationCache(args.sim_cache) if args.sim_cache else None
    if args.activations == "simulation":
        not_mocap = [folder for _, folder, kind in specs if kind != "mocap"]
        if not_mocap:
            raise MotionSetError(f"--activations simulation needs motion-capture roots; not one: {', '.join(not_mocap)}")
    out_dir, stem = output_location(args, "guidance", compare)
    paths = output_paths(out_dir, stem, args.overwrite)
    per_motion_path = out_dir / f"{stem}_motions.csv"
    if per_motion_path.exists() and not args.overwrite:
        raise OutputExistsError(f"results exist: {per_motion_path}; pass --overwrite or choose --out-name / --out")

    notes, model = [PROTOCOL_TITLES[protocol]], None
    if args.activations == "surrogate":
        path, note = find_surrogate(args.surrogate)
        notes.append(note)
        if path is not None:
            model = load_surrogate_model(path, args.device, args.muscles)
    elif args.activations == "simulation":
        notes.append("activations from the muscle-driven simulation files (kinematics from those files too)")
    else:
        notes.append("--activations none: activation columns skipped")
    use_fk = not args.no_fk and not published
    if published:
        notes.append("published protocol: foot sliding and floor penetration not reported (the paper's floor "
                     "metrics use other definitions)")
    elif args.no_fk:
        notes.append("--no-fk: foot sliding and floor penetration skipped")
    if use_fk:
        if args.osim not in ("subject", "generic") and not Path(args.osim).is_file():
            raise UserError(f"--osim {args.osim}: no such model file")
        notes.append((f"floor at y = {args.floor_height} m" if args.floor_height != "auto" else
                      "floor per subject (--floor-height auto)") + f", contact within {args.contact_height} m of it")
    if args.lowpass < 0:
        raise UserError(f"--lowpass must be >= 0 Hz, got {args.lowpass}")
    if args.lowpass > 0:
        notes.append(f"POST-HOC FILTER: every motion of every set low-pass filtered at {args.lowpass} Hz (zero-lag "
                     "4th-order Butterworth, --lowpass) before any metric")
    if args.simulate:
        notes.append("--simulate: activations also by OpenSim inverse dynamics and static optimisation of every "
                     "motion with its subject's scaled model (the generic model where none is known)")
    notes.append(f"activation band [{args.low}, {args.high}] on {', '.join(args.muscles)}, raw peak and peak of "
                 f"a {args.peak_window} s moving average; rates "
                 + (f"at an assumed {args.frame_rate} Hz (--frame-rate)" if args.frame_rate else
                    "in real time (each file's time column, each repetition's real duration)"))
    for note in notes:
        print(note)

    rows, infos, motion_rows, fk_cache, floors = [], [], [], {}, {}
    for label, folder, kind in specs:
        mset = load_motion_set(folder, kind, split=args.split, length=args.clip_length, clip_mode=args.clip_mode,
                               split_file=args.split_file, workers=args.workers, strict=args.strict,
                               with_activations=args.activations == "simulation", progress=not args.no_progress)
        for line in mset.report_lines(limit=10_000 if args.verbose else 5):
            print(line)
        if args.lowpass > 0:
            dt = mset.frame_times() if args.frame_rate is None else 1.0 / args.frame_rate
            mset.motions = lowpass_motions(mset.motions, dt, args.lowpass).astype(mset.motions.dtype)
        acts = None
        if model is not None:
            masses = (subject_masses(mset.subjects, subject_roots(kind, folder, args))
                      if model.uses_body_mass else None)
            acts = surrogate_activations(mset.motions, model, args.muscles, args.batch_size,
                                         progress=not args.no_progress, body_mass=masses)
        elif args.activations == "simulation":
            missing = [m for m in args.muscles if m not in mset.muscles]
            if missing:
                raise MotionSetError(f"{folder}: the simulation files lack activations of {', '.join(missing)}")
            acts = mset.activations[..., [mset.muscles.index(m) for m in args.muscles]]
        feet, floor = None, args.floor_height
        if use_fk:
            if args.osim == "subject":
                roots = subject_roots(kind, folder, args)
                engine = SubjectFeet(subject_models(mset.subjects, roots), None, fk_cache)
            else:
                engine = SubjectFeet({}, None if args.osim == "generic" else args.osim, fk_cache)
            feet = engine.positions(mset.motions, mset.subjects)
            notes.append(f"{label}: {engine.note()}")
            print(notes[-1])
            if floor == "auto":
                floor, note = auto_floors(mset, feet, kind, folder, engine, args, floors)
                notes.append(f"{label}: {note}")
                print(notes[-1])
        if published:
            rows += published_guidance_rows(mset, label if compare else "all", per_folder_rows=not compare,
                                            activations=acts, low=args.low, high=args.high,
                                            frame_rate=args.frame_rate)
            infos.append(set_info(label, mset))
            continue
        simulated = None
        if args.simulate:
            hits = cache.hits if cache else 0
            simulated = simulate_set(mset, kind, folder, args, cache)
            if cache:  # printed and in the JSON, not among the notes: the tables do not depend on the cache
                print(f"{label}: {cache.hits - hits} of {len(mset)} motions from the simulation cache {cache.folder}")
            failed = [f"{mset.files[i]}: {err}" for i, err in enumerate(simulated[1]) if err]
            notes.append(f"{label}: {len(mset) - len(failed)} of {len(mset)} motions simulated"
                         + ("; failed: " + "; ".join(failed[:5]) if failed else ""))
            print(notes[-1])
            simulated = simulated[0]
        per_motion = guidance_per_motion(mset, activations=acts, muscles=args.muscles, low=args.low,
                                         high=args.high, feet=feet, floor_height=floor,
                                         contact_height=args.contact_height, frame_rate=args.frame_rate,
                                         peak_window=args.peak_window, simulated=simulated)
        if "foot_height_min_cm" in per_motion:
            where = "its subject's floor (--floor-height auto)" if args.floor_height == "auto" else args.floor_height
            warning = floor_contact_warning(label, per_motion["foot_height_min_cm"], where, args.contact_height)
            if warning is not None:
                notes.append(warning)
                print(warning)
        rows += guidance_rows(per_motion, mset.subjects, per_subject=not compare, label=label if compare else "all")
        infos.append(set_info(label, mset))
        for i in range(len(mset)):
            motion_rows.append({"set": label, "subject": mset.subjects[i], "file": mset.files[i],
                                **{k: float(v[i]) for k, v in per_motion.items()}})

    columns = [c for c in (PUBLISHED_GUIDANCE_COLUMNS if published else GUIDANCE_COLUMNS)
               if any(c.key in r for r in rows)]
    if compare:
        columns[0] = replace(columns[0], header="set")
    print()
    print(text_table(rows, columns))
    if args.verbose and motion_rows:
        print()
        print(text_table(motion_rows, [replace(columns[0], key="file", header="file")] + columns[2:]))
    payload = {"script": "calculate_guidance.py", "protocol": protocol, "options": options_dict(args),
               "notes": notes, "sets": infos, "units": UNITS, "seconds": round(time.time() - started, 2)}
    if cache:
        payload["sim_cache"] = cache.summary()
    spread = ("mean ± population standard deviation over subject folders (n = folders)" if published
              else "mean ± standard deviation over motions")
    write_outputs(paths, rows, columns, payload, f"Guidance metrics: {PROTOCOL_TITLES[protocol]}",
                  notes=notes + [f"{spread}; see the JSON 'units' for definitions"])
    written = list(paths.values())
    if motion_rows:
        atomic_write_text(per_motion_path, csv_text(motion_rows))
        written.append(per_motion_path)
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    return rows


if __name__ == "__main__":
    run_cli(main, get_guidance_parser())
