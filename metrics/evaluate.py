"""What the three metric scripts do, as functions: turn loaded motion sets
into flat result rows, using the surrogate and forward kinematics when they
are available. The scripts (``calculate_wasserstein.py``,
``wasserstein_mocap.py``, ``calculate_guidance.py``) only parse options,
call these, print and write.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dataset.body_mass import subject_mass
from dataset.mcs import DatasetError, data_dir, is_mcs_root, session_model
from metrics.distribution import compare_sets, emd_w2, published_entropy, relative_horizontal
from metrics.guidance import (
    activation_metrics, foot_metrics, foot_point_indices, kinematic_metrics, peak_activation_frame, pelvis_tilt_at,
    summarise, surrogate_simulation_agreement,
)
from metrics.motion_sets import MotionSet, MotionSetError, detect_kind
from metrics.published import (
    PROTOCOLS, PUBLISHED_CLIP_MODE, published_fidelity, published_guidance_per_folder, published_summary,
)
from metrics.report import Column, markdown_table, text_table, write_outputs
from models.surrogate import load_surrogate
from utils.constants import COORDINATES, TRANSLATIONS
from utils.device import torch_threads
from utils.errors import BigeError, UserError
from utils.kinematics import ForwardKinematics

def user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the input or options (the scripts report them through
    :func:`utils.cli.run`, which catches the same base)."""
    return (BigeError,)


DISTRIBUTION_COLUMNS = (
    Column("label", "set", ""),
    Column("n", "n", "d"),
    Column("gaussian_w2sq", "Gaussian W2^2 (pooled)", ".4f"),
    Column("entropy", "entropy (nats)", ".4f"),
    Column("w1_mean_rot_deg", "W1 rot (deg)", ".3f"),
    Column("w1_mean_trans_cm", "W1 trans (cm)", ".3f"),
    Column("emd_w2", "EMD W2 (deg/cm) [CI]", ".2f", ci=True),
    Column("sliced_w2", "sliced W2 (deg/cm) [CI]", ".2f", ci=True),
)

GUIDANCE_COLUMNS = (
    Column("subject", "subject", ""),
    Column("n", "n", "d"),
    Column("activation_peak", "peak act.", ".3f", std=True),
    Column("in_band", "in band", ".2f"),
    Column("violation", "violation", ".3f", std=True),
    Column("violating", "violating", ".2f"),
    Column("activation_peak_windowed", "peak act. (window)", ".3f", std=True),
    Column("in_band_windowed", "in band (window)", ".2f"),
    Column("sim_activation_peak", "sim. peak act.", ".3f", std=True),
    Column("sim_activation_peak_windowed", "sim. peak act. (window)", ".3f", std=True),
    Column("sim_in_band", "in band (sim.)", ".2f"),
    Column("sim_in_band_windowed", "in band (sim., window)", ".2f"),
    Column("surrogate_sim_mad", "|surr. - sim.| peak", ".3f"),
    Column("surrogate_sim_spearman", "Spearman surr./sim.", ".2f"),
    Column("depth_cm", "depth (cm)", ".1f", std=True),
    Column("knee_flexion_peak_deg", "knee peak (deg)", ".1f", std=True),
    Column("pelvis_tilt_at_peak_deg", "tilt@peak (deg)", ".1f", std=True),
    Column("pelvis_tilt_at_depth_deg", "tilt@depth (deg)", ".1f", std=True),
    Column("asymmetry_deg", "asym. (deg)", ".2f", std=True),
    Column("angular_velocity_rms_deg_s", "ang. vel (deg/s)", ".1f", std=True),
    Column("pelvis_velocity_rms_m_s", "pelvis vel (m/s)", ".3f", std=True),
    Column("pelvis_acceleration_rms_m_s2", "pelvis acc (m/s^2)", ".2f", std=True),
    Column("foot_slide_cm", "foot slide (cm)", ".2f", std=True),
    Column("floor_penetration_cm", "penetration (cm)", ".2f", std=True),
)

UNITS = {
    "gaussian_w2sq": "project protocol: Gaussian W2^2 = (mu1-mu2)^2 + (s1-s2)^2 of the two sets each flattened "
                     "to one pool (degrees and metres mixed, as stored); gaussian_w2 is its square root",
    "published_w2sq": "published protocol: the same W2^2 formula for each subject folder against the test "
                      "sessions' muscle-driven (Dynamics) kinematics tiled to the clip length; mean over folders "
                      "(published_w2sq_std: population std over folders)",
    "published_guidance": "published protocol (calculate_guidance.py --protocol published): per subject folder "
                          "asymmetry, omega (7 coordinates: hip/knee/ankle flexion both sides, pelvis tilt), pelvis "
                          "velocity and acceleration are one RMS over the folder's motions and frames, violation one "
                          "RMS of the hinge over its motions and guided muscles, tilt at peak and peak activation "
                          "means over its motions; rows give mean and population std over folders",
    "published_entropy": "published protocol: mean over motions of the 10-bin entropy (nats); "
                         "published_entropy_std: std over folders of the folder means",
    "entropy": "nats; mean over samples of the Shannon entropy of a 10-bin histogram of the sample's values "
               "(max log 10 = 2.303)",
    "w1_<coordinate>": "exact 1-D Wasserstein-1 of the coordinate's values pooled over frames and motions; "
                       "degrees for rotations, cm for pelvis_tx/ty/tz",
    "horizontal": "relative: the honest distances (w1, emd_w2, sliced_w2) see pelvis_tx/tz relative to each "
                  "motion's first frame (the lab origin differs per session); absolute: as stored",
    "w1_mean_rot_deg": "mean of w1 over the 30 rotations, degrees",
    "w1_mean_trans_cm": "mean of w1 over the 3 pelvis translations, cm",
    "w1_mean": "mean of all 33 w1 values (degrees and cm)",
    "emd_w2": "exact optimal-transport W2 (POT emd2) between seeded subsamples of whole motions; ground "
              "metric sqrt(mean_t ||x_t - y_t||^2) with translations in cm (deg/cm); CI = bootstrap, re-centred",
    "sliced_w2": "sliced W2 over random directions of whole motions, times sqrt(T*33), same unit as emd_w2",
    "activation_peak": "peak over frames of each guided muscle's activation (surrogate or simulation), mean over "
                       "the guided muscles, 0-1",
    "in_band": "fraction of motions whose guided muscles all peak inside [low, high]",
    "violation": "hinge max(peak - high, low - peak, 0), mean over guided muscles and motions (activation units)",
    "violating": "fraction of motions with a guided muscle peaking outside the band (1 - in_band)",
    "activation_peak_windowed": "peak over time of each guided muscle's activation averaged over a moving window "
                                "of --peak-window seconds of real time (each motion's own frame interval), mean "
                                "over the guided muscles: a sustained activation, not a spike, 0-1",
    "in_band_windowed": "fraction of motions whose guided muscles' windowed peaks all lie inside [low, high]",
    "violation_windowed": "the hinge on the windowed peaks (activation units)",
    "sim_<metric>": "--simulate: the same metric on the activations of OpenSim inverse dynamics and static "
                    "optimisation of the motion with its subject's scaled model (metrics/simulation.py)",
    "surrogate_sim_mad": "--simulate: mean absolute difference between the surrogate's and the simulation's "
                         "windowed peak activation (mean over guided muscles), per set",
    "surrogate_sim_spearman": "--simulate: Spearman rank correlation over the set's motions between the "
                              "surrogate's and the simulation's windowed peak activation (mean over guided muscles)",
    "depth_cm": "pelvis drop: pelvis_ty of the first frame minus its lowest value, cm",
    "knee_flexion_peak_deg": "peak over frames of the mean of both knee angles, deg",
    "pelvis_tilt_at_peak_deg": "pelvis_tilt at the frame of peak mean guided activation, deg",
    "pelvis_tilt_at_depth_deg": "pelvis_tilt at the frame of lowest pelvis, deg",
    "asymmetry_deg": "RMS over frames and the hip/knee/ankle left-right pairs of (left - right), deg",
    "angular_velocity_rms_deg_s": "RMS over frames and the 30 rotations of the forward difference in real time "
                                  "(the file's time column / the repetition's duration), deg/s",
    "pelvis_velocity_rms_m_s": "RMS over frames of the pelvis translation's speed, m/s",
    "pelvis_acceleration_rms_m_s2": "RMS over frames of the pelvis translation's acceleration norm, m/s^2",
    "foot_slide_cm": "horizontal path of a foot sole point while within --contact-height of the floor, "
                     "mean over heel/met1/met5/toe of both feet, cm per motion",
    "foot_slide_speed_cm_s": "the same path over the time in contact, cm/s",
    "floor_penetration_cm": "deepest foot point below the floor over the motion, cm",
    "foot_height_min_cm": "lowest foot point relative to the floor, cm",
}
"""What every reported number is, with its unit; written into the JSON output."""


PUBLISHED_DISTRIBUTION_COLUMNS = (
    Column("label", "set", ""),
    Column("n", "n", "d"),
    Column("folders", "folders", "d"),
    Column("published_w2sq", "W2^2 (published protocol)", ".4f", std=True),
    Column("published_entropy", "entropy (nats, published protocol)", ".4f", std=True),
)

PUBLISHED_GUIDANCE_COLUMNS = (
    Column("subject", "subject", ""),
    Column("n", "n", "d"),
    Column("folders", "folders", "d"),
    Column("activation_peak", "peak act.", ".3f", std=True),
    Column("violation", "constrain (hinge RMS)", ".3f", std=True),
    Column("pelvis_tilt_at_peak_deg", "pelvis tilt@peak (deg)", ".2f", std=True),
    Column("asymmetry_deg", "asym. (deg)", ".2f", std=True),
    Column("angular_velocity_rms_deg_s", "omega, 7 coords (deg/s)", ".2f", std=True),
    Column("pelvis_velocity_rms_m_s", "pelvis vel (m/s)", ".3f", std=True),
    Column("pelvis_acceleration_rms_m_s2", "pelvis acc (m/s^2)", ".2f", std=True),
)

PROTOCOL_TITLES = {
    "project": "project protocol (per motion; mean ± std over motions; rates in real time)",
    "published": "published protocol (per subject folder; mean ± std over folders, n = folders; for "
                 "comparability with the paper; rates in real time)",
}
"""How each table names the protocol its numbers follow."""


# ----------------------------------------------------------------------------- protocols


def resolve_protocol(args: Any) -> str:
    """Fill the protocol-dependent defaults of ``args`` in place and return
    the protocol: ``--clip-mode`` (project: resample; published: tile) and,
    where the script has one, ``--reference-split`` (project: train;
    published: test, the test sessions' Dynamics kinematics). Raises
    :class:`~metrics.motion_sets.MotionSetError` for options that contradict
    the published protocol."""
    protocol = getattr(args, "protocol", "project")
    if protocol not in PROTOCOLS:
        raise MotionSetError(f"unknown --protocol {protocol!r}; expected one of {PROTOCOLS}")
    if protocol == "published":
        if args.clip_mode not in (None, PUBLISHED_CLIP_MODE):
            raise MotionSetError(f"--protocol published fits clips by tiling; --clip-mode {args.clip_mode} "
                                 "departs from it (use --protocol project)")
        if getattr(args, "reference_split", None) not in (None, "test"):
            raise MotionSetError("--protocol published compares against the test sessions' Dynamics kinematics; "
                                 f"--reference-split {args.reference_split} departs from it")
        args.clip_mode = PUBLISHED_CLIP_MODE
        if hasattr(args, "reference_split"):
            args.reference_split = "test"
    else:
        args.clip_mode = args.clip_mode or "resample"
        if hasattr(args, "reference_split") and args.reference_split is None:
            args.reference_split = "train"
    return protocol


def published_distribution_row(label: str, mset: MotionSet, reference: np.ndarray) -> dict[str, Any]:
    """One flat row of the published protocol: W2^2 of each subject folder of
    ``mset`` against ``reference`` (M, T, 33), mean ± std over folders, and
    the entropy; the per-folder values as ``w2sq_<folder>``."""
    if mset.motions.shape[1] != reference.shape[1]:
        raise ValueError(f"{mset.source}: motions have {mset.motions.shape[1]} frames, the reference "
                         f"{reference.shape[1]}; load both with the same --clip-length")
    res = published_fidelity(mset.motions, mset.subjects, reference)
    row: dict[str, Any] = {"label": label, "protocol": "published", "kind": mset.kind, "n": len(mset),
                           "folders": res["folders"], "reference_n": int(len(reference)),
                           "published_w2sq": res["w2sq"], "published_w2sq_std": res["w2sq_std"],
                           "published_entropy": res["entropy"], "published_entropy_std": res["entropy_std"],
                           "published_reference_entropy": published_entropy(reference)}
    row.update({f"w2sq_{f}": r["w2sq"] for f, r in res["per_folder"].items()})
    row.update({"skipped": len(mset.skipped), "refitted": len(mset.refitted), "source": mset.source})
    return row


def published_guidance_rows(
    mset: MotionSet, label: str, per_folder_rows: bool, *, activations: np.ndarray | None = None,
    low: float = 0.35, high: float = 0.45, frame_rate: float | None = None,
) -> list[dict]:
    """The published protocol's guidance rows of ``mset``: one per subject
    folder (with ``per_folder_rows``) and the summary row ``label`` (mean ±
    std over folders). Rates in real time from ``mset.time_steps`` unless
    ``frame_rate`` overrides them."""
    dt = mset.frame_times() if frame_rate is None else 1.0 / frame_rate
    per = published_guidance_per_folder(mset.motions, mset.subjects, dt, activations, low, high)
    rows = [{"subject": f, "folders": 1, **r} for f, r in per.items()] if per_folder_rows else []
    return rows + [{**published_summary(per, label), "protocol": "published"}]


# ----------------------------------------------------------------------------- distributions


def distribution_row(
    label: str, mset: MotionSet, reference: np.ndarray, *, ot_samples: int = 300, bootstrap: int = 100,
    projections: int = 256, confidence: float = 0.95, seed: int = 0, multivariate: bool = True,
    horizontal: str = "relative",
) -> dict[str, Any]:
    """One flat result row of ``mset`` against ``reference`` (M, T, 33)."""
    if mset.motions.shape[1] != reference.shape[1]:
        raise UserError(f"{mset.source}: motions have {mset.motions.shape[1]} frames, the reference "
                        f"{reference.shape[1]}; load both with the same --clip-length")
    res = compare_sets(mset.motions, reference, ot_samples=ot_samples, bootstrap=bootstrap,
                       n_projections=projections, confidence=confidence, seed=seed, multivariate=multivariate,
                       horizontal=horizontal)
    row: dict[str, Any] = {"label": label, "kind": mset.kind, "n": len(mset),
                           "subjects": len(set(mset.subjects)), "reference_n": int(len(reference)),
                           "horizontal": horizontal}
    for key in ("gaussian_w2sq", "gaussian_w2", "entropy", "reference_entropy", "w1_mean",
                "w1_mean_rot_deg", "w1_mean_trans_cm", "pool_mean", "pool_std",
                "reference_pool_mean", "reference_pool_std"):
        row[key] = res[key]
    for name in ("emd_w2", "sliced_w2"):
        if name in res:
            d = res[name]
            row[name] = d["value"]
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = d["ci_low"], d["ci_high"]
            row[f"{name}_n"] = f"{d['n_a']}x{d['n_b']}"
    row.update({f"w1_{c}": v for c, v in res["w1"].items()})
    row.update({"skipped": len(mset.skipped), "refitted": len(mset.refitted), "source": mset.source})
    return row


OWN_SUBJECT_COLUMNS = (
    Column("label", "set", ""),
    Column("own_subjects", "subjects", "d"),
    Column("own_w2sq", "Gaussian W2^2", ".4f", std=True),
    Column("own_w1_rot_deg", "W1 rot (deg)", ".3f", std=True),
    Column("own_emd_w2", "EMD W2 (deg/cm)", ".2f", std=True),
)
"""The ``--own-subject`` table: each subject folder against the subject's own
motion capture, mean ± std over subjects."""

OWN_SUBJECT_NOTE = (
    "each subject folder of a set against that subject's own motion-capture repetitions in the data root (any "
    "split); same distances as above (EMD without bootstrap), mean ± population std over the subjects that have "
    "repetitions; per-subject values as own_*_<subject> in the CSV/JSON")


def own_subject_row(mset: MotionSet, own: MotionSet, *, ot_samples: int = 300, seed: int = 0,
                    horizontal: str = "relative") -> dict[str, Any]:
    """How far each subject folder of ``mset`` lies from the same subject's
    own motion capture (``own``, the root's repetitions of every split):
    Gaussian W2^2 (pooled, as stored), mean W1 of the rotations and EMD W2
    without bootstrap (as :func:`metrics.distribution.compare_sets`), each as the mean and
    population std over subjects, plus ``own_<measure>_<subject>``. Subjects
    with no repetitions in ``own`` are listed in ``own_missing``."""
    if mset.motions.shape[1] != own.motions.shape[1]:
        raise UserError(f"{mset.source}: motions have {mset.motions.shape[1]} frames, the motion capture "
                        f"{own.motions.shape[1]}; load both with the same --clip-length")
    per: dict[str, dict[str, float]] = {}
    missing = []
    for subject in sorted(set(mset.subjects)):
        reference = own.motions[[s == subject for s in own.subjects]]
        if not len(reference):
            missing.append(subject)
            continue
        motions = mset.motions[[s == subject for s in mset.subjects]]
        res = compare_sets(motions, reference, multivariate=False, horizontal=horizontal)
        pair = (motions, reference) if horizontal == "absolute" else map(relative_horizontal, (motions, reference))
        per[subject] = {"w2sq": res["gaussian_w2sq"], "w1_rot_deg": res["w1_mean_rot_deg"],
                        "emd_w2": emd_w2(*pair, max_samples=ot_samples, bootstrap=0, seed=seed).value}
    row: dict[str, Any] = {"own_subjects": len(per), "own_missing": " ".join(missing)}
    for measure in ("w2sq", "w1_rot_deg", "emd_w2"):
        values = np.array([p[measure] for p in per.values()])
        row[f"own_{measure}"] = float(values.mean()) if len(values) else float("nan")
        row[f"own_{measure}_std"] = float(values.std()) if len(values) else float("nan")
        row.update({f"own_{measure}_{s}": p[measure] for s, p in per.items()})
    return row


def per_coordinate_columns(rows: Sequence[dict]) -> tuple[list[dict], list[Column]]:
    """The per-coordinate W1 values transposed: one row per coordinate, one
    column per set, for the Markdown and verbose terminal output."""
    table = []
    for c in COORDINATES:
        unit = "cm" if c in TRANSLATIONS else "deg"
        table.append({"coordinate": f"{c} ({unit})", **{f"s{i}": r[f"w1_{c}"] for i, r in enumerate(rows)}})
    cols = [Column("coordinate", "W1 per coordinate", "")] + [
        Column(f"s{i}", str(r["label"]), ".3f") for i, r in enumerate(rows)]
    return table, cols


# ----------------------------------------------------------------------------- surrogate


def surrogate_activations(
    motions: np.ndarray, model: Any, muscles: Sequence[str], batch_size: int = 256, progress: bool = True,
    body_mass: np.ndarray | None = None,
) -> np.ndarray:
    """Activations of ``muscles`` predicted by a loaded surrogate.
    (N, T, 33) degrees / metres -> (N, T, G) in [0, 1], float32; ``body_mass``
    (N,) kg for a surrogate that takes it (:func:`subject_masses`)."""
    return model.predict(motions, muscles, batch_size=batch_size, progress=progress, body_mass=body_mass)


def subject_masses(subjects: Sequence[str], roots: Sequence[str | os.PathLike]) -> np.ndarray:
    """Body mass (kg) of the subject of each motion: ``subjects`` are session
    ids of one of the MCS ``roots`` (first root wins); the mass comes from the
    session's scaled model, else its ``sessionMetadata.yaml``
    (:func:`dataset.body_mass.subject_mass`). (N,) float32"""
    folders = session_folders(subjects, roots)
    missing = sorted(set(subjects) - set(folders))
    if missing:
        raise MotionSetError(f"subject(s) {', '.join(missing)}: no session folder of that name under "
                             f"{', '.join(map(str, roots))}, so the body mass is unknown; the surrogate takes "
                             "the subject's body mass (trained with --body-mass): point --data-root at the "
                             "subjects' MCS root, or use --activations none or a surrogate trained with "
                             "--no-body-mass")
    found = {sid: subject_mass(folder) for sid, folder in folders.items()}
    return np.array([found[s] for s in subjects], dtype=np.float32)


def session_folders(subjects: Sequence[str], roots: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """The session folder of every subject that is a session of one of the
    MCS ``roots`` (first root wins). {subject: folder}"""
    found: dict[str, Path] = {}
    for root in roots:
        try:
            base = data_dir(root)
        except DatasetError:
            continue
        for sid in sorted(set(subjects) - set(found)):
            if (base / sid).is_dir():
                found[sid] = base / sid
    return found


def load_surrogate_model(path: Path, device: str, muscles: Sequence[str]) -> Any:
    """``models.surrogate.load_surrogate`` checking that it predicts ``muscles``."""
    return load_surrogate(path, device, muscles=list(muscles))


# ----------------------------------------------------------------------------- forward kinematics


def load_forward_kinematics(osim_path: str | os.PathLike | None = None) -> tuple[Any | None, str]:
    """A ``utils.kinematics.ForwardKinematics`` for ``osim_path`` (default:
    ``dataset.synthetic.osim_model.default_model_path()``) and a note."""
    if osim_path is None:
        from dataset.synthetic.osim_model import default_model_path  # OpenSim

        osim_path = default_model_path()
    return ForwardKinematics.from_osim(osim_path), f"foot points by forward kinematics of {osim_path}"


def subject_models(subjects: Sequence[str], roots: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """The scaled model (``OpenSimData/Model/*.osim``) of every subject that is
    a session of one of the MCS ``roots`` (first root wins). {subject: path}"""
    found: dict[str, Path] = {}
    for sid, folder in session_folders(subjects, roots).items():
        model = session_model(folder)
        if model is not None:
            found[sid] = model
    return found


class SubjectFeet:
    """Foot points of motions by forward kinematics of each subject's own
    scaled model when one is known, else of one fallback model.

    Segment lengths differ between subjects; the generic model puts the feet
    of a short subject's motion below the floor and makes planted feet slide,
    so the subject's model is used whenever the subject is a session of a
    known MCS root.
    """

    def __init__(self, models: dict[str, Path], fallback: str | os.PathLike | None = None,
                 cache: dict[str, Any] | None = None) -> None:
        self.models = dict(models)
        self.fallback = fallback
        self._cache: dict[str, Any] = {} if cache is None else cache  # model path -> ForwardKinematics
        self.used: dict[str, str] = {}

    def _fk(self, path: str | os.PathLike | None) -> Any:
        key = str(path)
        if key not in self._cache:
            fk, note = load_forward_kinematics(path)
            if fk is None:
                raise RuntimeError(note)
            self._cache[key] = fk
        return self._cache[key]

    def positions(self, motions: np.ndarray, subjects: Sequence[str]) -> np.ndarray:
        """(N, T, 33) degrees / metres, N subject ids -> (N, T, P, 3) metres, y up."""
        subjects = np.asarray(list(subjects), dtype=object)
        out: np.ndarray | None = None
        for sid in sorted(set(subjects.tolist())):
            rows = np.flatnonzero(subjects == sid)
            path = self.models.get(sid, self.fallback)
            self.used[sid] = "generic model" if path is None else str(path)
            feet, _ = foot_positions(motions[rows], self._fk(path))
            if out is None:
                out = np.empty((len(motions), *feet.shape[1:]))
            out[rows] = feet
        assert out is not None
        return out

    def note(self) -> str:
        """Which models were used, in one line."""
        own = sum(1 for sid in self.used if sid in self.models)
        fallback = "the generic model" if self.fallback is None else str(self.fallback)
        text = f"foot points by forward kinematics: {own} subject(s) with the model of their session's Model/ folder"
        if len(self.used) > own:
            text += f", {len(self.used) - own} with {fallback}"
        return text


def foot_positions(motions: np.ndarray, fk: Any, chunk: int = 128, threads: int | None = 1,
                   ) -> tuple[np.ndarray, list[str]]:
    """Positions of the foot sole points (heel, met1, met5, toe of both feet)
    of every frame, by ``fk`` (a ``utils.kinematics.ForwardKinematics``), on
    the CPU. (N, T, 33) degrees / metres -> (N, T, P, 3) metres (y up), names.

    Forward kinematics is hundreds of tiny batched 3x3 operations, which gain
    nothing from intra-op threads; on a busy 2-core machine two threads were
    7-9x slower than one (bench/bench_metrics.py), hence ``threads=1``.
    """
    import torch

    names = list(fk.point_names)
    idx = fk.foot_contact_indices() if hasattr(fk, "foot_contact_indices") else foot_point_indices(names)
    if not idx:
        raise ValueError(f"the forward-kinematics model has no foot contact points; its points: {names}")
    out = []
    with torch.no_grad(), torch_threads(threads):
        for s in range(0, len(motions), chunk):
            x = torch.as_tensor(np.asarray(motions[s:s + chunk], dtype=np.float32))
            out.append(fk(x)[..., idx, :].numpy().astype(np.float64))
    return np.concatenate(out), [names[i] for i in idx]


# ----------------------------------------------------------------------------- guidance


def guidance_per_motion(
    mset: MotionSet, *, activations: np.ndarray | None = None, muscles: Sequence[str] = (),
    low: float = 0.35, high: float = 0.45, feet: np.ndarray | None = None,
    floor_height: float | np.ndarray = 0.0,
    contact_height: float = 0.03, frame_rate: float | None = None, peak_window: float = 0.0,
    simulated: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every guidance metric of every motion of ``mset``: kinematic ones
    always, activation ones with ``activations`` (N, T, G) of ``muscles``,
    foot ones with ``feet`` (N, T, P, 3), ``sim_``-prefixed activation ones
    with ``simulated`` (N, T, G) activations of the same muscles (NaN rows:
    simulation failed). Rates and the ``peak_window`` (s) in real time from
    ``mset.time_steps``; ``frame_rate`` (Hz) overrides them for every motion.
    -> {name: (N,)}"""
    dt = mset.frame_times() if frame_rate is None else 1.0 / frame_rate
    out = kinematic_metrics(mset.motions, dt)
    if simulated is not None:
        out = {**activation_metrics(np.nan_to_num(simulated), muscles, low, high, peak_window, dt, "sim_"), **out}
        failed = ~np.isfinite(np.asarray(simulated)).all(axis=(1, 2))
        for key in [k for k in out if k.startswith("sim_")]:
            out[key] = np.where(failed, np.nan, out[key])
    if activations is not None:
        act = activation_metrics(activations, muscles, low, high, peak_window, dt)
        act["pelvis_tilt_at_peak_deg"] = pelvis_tilt_at(mset.motions, peak_activation_frame(activations))
        out = {**act, **out}
    if feet is not None:
        out.update(foot_metrics(feet, floor_height, contact_height, dt))
    return out


def guidance_rows(per_motion: dict[str, np.ndarray], subjects: Sequence[str], per_subject: bool,
                  label: str = "all") -> list[dict]:
    """Per-subject rows and the pooled row (``per_subject``), or the pooled row only.
    With surrogate and simulated windowed peaks, each row also holds their
    agreement (:func:`metrics.guidance.surrogate_simulation_agreement`)."""
    rows = summarise(per_motion, subjects, pooled=label)
    if "activation_peak_windowed" in per_motion and "sim_activation_peak_windowed" in per_motion:
        labels = np.asarray(list(subjects), dtype=object)
        for row in rows:
            mask = np.ones(len(labels), bool) if row["subject"] == label and row is rows[-1] else labels == row["subject"]
            row.update(surrogate_simulation_agreement(per_motion["activation_peak_windowed"][mask],
                                                      per_motion["sim_activation_peak_windowed"][mask]))
    return rows if per_subject else rows[-1:]


# ----------------------------------------------------------------------------- script plumbing


def input_specs(args: Any) -> list[tuple[str, str, str]]:
    """``(label, folder, kind)`` of every set the options name: ``--compare``
    folders (with ``--labels`` / ``--kinds``) or ``--folder_path``. An MCS
    root is always ``mocap`` (its segmented repetitions)."""
    compare = getattr(args, "compare", None)
    folders = list(compare) if compare else ([args.folder_path] if args.folder_path else [])
    if not folders:
        raise MotionSetError("no input: give --folder_path FOLDER or --compare FOLDER [FOLDER ...]")
    if compare and args.folder_path:
        raise MotionSetError("give either --folder_path or --compare, not both")
    kinds = getattr(args, "kinds", None) or [args.file_type] * len(folders)
    labels = getattr(args, "labels", None)
    if len(kinds) != len(folders):
        raise MotionSetError(f"--kinds names {len(kinds)} kind(s) for {len(folders)} folder(s)")
    if labels is not None and len(labels) != len(folders):
        raise MotionSetError(f"--labels names {len(labels)} row(s) for {len(folders)} folder(s)")
    specs = []
    for i, (folder, kind) in enumerate(zip(folders, kinds)):
        if not Path(folder).is_dir():
            raise MotionSetError(f"{folder}: folder does not exist")
        if is_mcs_root(folder):
            kind = "mocap"  # an MCS root always means its segmented repetitions, never its raw trial files
        kind = detect_kind(folder) if kind == "auto" else kind
        if kind == "mocap" and not is_mcs_root(folder):
            raise MotionSetError(f"{folder}: not an MCS dataset root (expected <root>/Data/<session>/OpenSimData)")
        label = labels[i] if labels else ("MoCap" if kind == "mocap" else Path(folder).resolve().name)
        specs.append((label, str(folder), kind))
    return specs


def output_location(args: Any, default_stem: str, compare: bool) -> tuple[Path, str]:
    """Folder and file stem of the results: ``--out`` / ``--out-name`` or the
    defaults (the evaluated folder; ``output/metrics`` with ``--compare``)."""
    if args.out:
        out_dir = Path(args.out)
    elif compare:
        out_dir = Path("output") / "metrics"
    else:
        out_dir = Path(args.folder_path)
    stem = args.out_name or (f"{default_stem}_compare" if compare else default_stem)
    return out_dir, stem


def set_info(label: str, mset: MotionSet) -> dict[str, Any]:
    """What the JSON output records about one evaluated set."""
    return {"label": label, "source": mset.source, "kind": mset.kind, "n": len(mset),
            "subjects": sorted(set(mset.subjects)), "skipped": [list(s) for s in mset.skipped],
            "refitted": [list(r) for r in mset.refitted], "warnings": list(mset.warnings)}


def options_dict(args: Any) -> dict[str, Any]:
    """The options as a JSON-friendly dict."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


DISTRIBUTION_NOTES = (
    "Gaussian W2^2 (pooled): (mu1-mu2)^2 + (s1-s2)^2 of each set flattened to one pool (the paper's formula on "
    "pooled sets, not its protocol; gaussian_w2 in the CSV/JSON is its square root)",
    "entropy: mean Shannon entropy (nats) of a 10-bin histogram per sample; max log 10 = 2.303",
    "W1: exact 1-D Wasserstein per coordinate, pooled over frames; mean over rotations (deg) and translations (cm)",
    "EMD / sliced W2: optimal transport between whole motions, ground metric sqrt(mean_t ||x_t - y_t||^2) "
    "(deg, translations in cm); bracket = bootstrap interval",
    "W1 / EMD / sliced see pelvis_tx/tz relative to each motion's first frame (the lab origin differs per "
    "session) unless --absolute-horizontal; the row's 'horizontal' field in the CSV/JSON says which",
)


PUBLISHED_DISTRIBUTION_NOTES = (
    "published protocol: W2^2 = (mu1-mu2)^2 + (s1-s2)^2 of each subject folder's motions (flattened, degrees and "
    "metres as stored) against the reference; mean ± population std over folders (n = folders)",
    "reference: the test sessions' muscle-driven (Dynamics) kinematics; every repetition brought to the clip "
    "length by tiling, as the original code did",
    "entropy: mean over motions of the 10-bin entropy (nats); ± std over folders of the folder means",
)


def reference_label(args) -> str:
    """How the tables name the reference set."""
    if args.protocol == "published":
        return "test split, muscle-driven (Dynamics) kinematics, tiled"
    return f"{args.reference_split} split"


def write_distribution_tables(args, paths, rows, reference, infos, script: str, started: float,
                              title: str) -> None:
    """Print the table of ``args.protocol`` and write CSV / JSON / Markdown."""
    published = args.protocol == "published"
    columns = PUBLISHED_DISTRIBUTION_COLUMNS if published else DISTRIBUTION_COLUMNS
    print()
    print(text_table(rows, columns))
    extra_md = ""
    if not published:
        coord_rows, coord_cols = per_coordinate_columns(rows)
        extra_md = markdown_table(coord_rows, coord_cols)
        if args.verbose:
            print()
            print(text_table(coord_rows, coord_cols))
    payload = {"script": script, "protocol": args.protocol, "options": options_dict(args),
               "reference": set_info(reference_label(args), reference), "sets": infos,
               "units": UNITS, "seconds": round(time.time() - started, 2)}
    notes = [f"reference: {reference.describe()} [{reference_label(args)}]",
             *(PUBLISHED_DISTRIBUTION_NOTES if published else DISTRIBUTION_NOTES)]
    if any("own_subjects" in r for r in rows):
        own_table = markdown_table(rows, OWN_SUBJECT_COLUMNS)
        print("\nagainst each subject's own motion capture (--own-subject)")
        print(text_table(rows, OWN_SUBJECT_COLUMNS))
        extra_md = f"## Against each subject's own motion capture\n\n{own_table}\n\n- {OWN_SUBJECT_NOTE}\n\n{extra_md}"
    write_outputs(paths, rows, columns, payload, f"{title}: {PROTOCOL_TITLES[args.protocol]}",
                  notes=notes, extra_md=extra_md)
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
