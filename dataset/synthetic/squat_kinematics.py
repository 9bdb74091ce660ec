"""Synthetic squat kinematics for one subject and one trial, 60 Hz.

A trial is standing, then ``n_reps`` repetitions (descent, hold, ascent), each
followed by a pause, then standing. The joint angles come from a few style
parameters (:class:`SquatStyle`): depth, tempo, stance width and toe-out,
trunk lean (pelvis and lumbar share), balance point, arm and elbow posture,
left/right asymmetry, heel rise, knee valgus, measurement noise and video-like
jitter; trunk lean, balance and arm swing also vary between repetitions.
Physical consistency comes from the subject's model, through any point
kinematics with the interface of :class:`utils.kinematics.ForwardKinematics`
(the generator passes :class:`dataset.synthetic.opencap_model.OsimPoints`: OpenSim
itself):

* feet flat (or heels raised by the heel-rise angle, toes flat), from the
  sagittal chain: thigh pitch = knee flexion - ankle dorsiflexion - pelvis tilt;
* balance: the ankle dorsiflexion of every frame is solved so that the whole
  body centre of mass lies over the base of support (between heel and
  metatarsal heads, moving forwards as the heels rise);
* the pelvis height is solved so that the lowest foot contact point touches
  the floor (y = 0) in every frame, and the horizontal pelvis position so that
  the feet do not slide.

Coordinates are returned in the canonical order of
:data:`utils.constants.COORDINATES`, rotations in degrees, translations in metres.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt
from scipy.spatial.transform import Rotation

from dataset.synthetic.osim_model import MASS_RANGE, validate_subject
from utils.constants import COORD_INDEX, COORDINATES, FRAME_RATE
from utils.kinematics import ForwardKinematics

__all__ = ["SubjectParams", "SquatStyle", "SquatTrial", "sample_subject", "generate_trial", "STYLE_RANGES"]

STANDING_KNEE = 3.0  # degrees of knee flexion when standing
MAX_REP_DEPTH = 125.0  # degrees; deeper repetitions are clipped

STYLE_RANGES: dict[str, tuple[float, float]] = {
    "depth": (20.0, 140.0),        # peak knee flexion, degrees
    "depth_jitter": (0.0, 20.0),   # SD of the peak knee flexion between repetitions, degrees
    "descent": (0.3, 5.0),         # seconds
    "ascent": (0.3, 5.0),          # seconds
    "hold": (0.0, 3.0),            # seconds at the bottom
    "pause": (0.2, 5.0),           # seconds standing between repetitions
    "stance": (-5.0, 30.0),        # hip abduction of the leg plane, degrees (stance width)
    "toe_out": (-10.0, 40.0),      # external rotation of the leg plane, degrees
    "trunk_lean": (0.0, 100.0),    # forward trunk inclination added at the bottom of a 100 degree squat, degrees
    "pelvis_share": (0.0, 1.0),    # part of the trunk lean made by the pelvis (the rest: lumbar flexion)
    "standing_tilt": (-25.0, 10.0),  # pelvis tilt when standing, degrees (negative: anterior)
    "asymmetry": (-25.0, 25.0),    # right minus left knee flexion at the bottom, degrees
    "heel_rise": (0.0, 30.0),      # heel lift (foot plantarflexion) at the bottom, degrees
    "knee_valgus": (-15.0, 25.0),  # extra hip adduction at the bottom, degrees
    "noise": (0.0, 5.0),           # SD of smooth (1.5 Hz) measurement noise, degrees
    "jitter": (0.0, 10.0),         # video-like 3-12 Hz jitter, multiple of the measured OpenCap jitter
    "arm_forward": (-10.0, 120.0), # shoulder flexion added at the bottom, degrees
    "arm_add": (-45.0, 10.0),      # shoulder adduction (negative: arms away from the body), degrees
    "arm_rot": (-30.0, 40.0),      # shoulder rotation, degrees
    "elbow": (0.0, 100.0),         # elbow flexion standing, degrees
    "elbow_bend": (0.0, 60.0),     # elbow flexion added at the bottom, degrees
    "pro_sup": (50.0, 100.0),      # forearm pronation-supination, degrees
    "subtalar": (-15.0, 15.0),     # subtalar angle (inversion positive), degrees
    "lumbar_side": (-10.0, 10.0),  # lumbar bending, degrees
    "lumbar_twist": (-20.0, 20.0), # lumbar rotation, degrees
    "heading": (-45.0, 45.0),      # pelvis rotation (facing direction), degrees
    "balance": (0.2, 0.8),         # centre of mass between heel (0) and metatarsal heads (1)
}
"""Allowed range of every :class:`SquatStyle` parameter (inclusive)."""


@dataclass(frozen=True)
class SubjectParams:
    """Anthropometry: height (m), mass (kg), sex (``male``/``female``, picks
    the de Leva column), strength (multiplies the maximum isometric forces)."""

    height: float = 1.75
    mass: float = 70.0
    sex: str = "male"
    strength: float = 1.0

    def __post_init__(self) -> None:
        validate_subject(self.height, self.mass, self.sex)
        if not (0.2 <= self.strength <= 5.0):
            raise ValueError(f"strength must be in [0.2, 5], got {self.strength!r}")


@dataclass(frozen=True)
class SquatStyle:
    """How one subject squats; every field must lie in :data:`STYLE_RANGES`."""

    depth: float = 90.0
    depth_jitter: float = 5.0
    descent: float = 1.3
    ascent: float = 1.1
    hold: float = 0.2
    pause: float = 1.0
    stance: float = 8.0
    toe_out: float = 10.0
    trunk_lean: float = 50.0
    pelvis_share: float = 0.4
    standing_tilt: float = -5.0
    asymmetry: float = 0.0
    heel_rise: float = 0.0
    knee_valgus: float = 0.0
    noise: float = 0.5
    jitter: float = 1.0
    arm_forward: float = 60.0
    arm_add: float = -15.0
    arm_rot: float = 0.0
    elbow: float = 30.0
    elbow_bend: float = 15.0
    pro_sup: float = 85.0
    subtalar: float = 0.0
    lumbar_side: float = 0.0
    lumbar_twist: float = 0.0
    heading: float = 0.0
    balance: float = 0.55

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            lo, hi = STYLE_RANGES[f.name]
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not (lo <= value <= hi):
                raise ValueError(f"squat style parameter {f.name!r} must be in [{lo}, {hi}], got {value!r}")


@dataclass
class SquatTrial:
    """One generated trial: ``coords`` (T, 33) degrees/metres in canonical order
    (with measurement-like noise; ``clean`` without),
    ``segments`` [(start, end)] frame ranges of the repetitions (``end``
    exclusive, ``coords[start:end]``), ``depths`` the planned peak knee flexion
    of every repetition (degrees)."""

    coords: np.ndarray
    segments: list[tuple[int, int]]
    depths: list[float]
    frame_rate: float = FRAME_RATE
    info: dict = field(default_factory=dict)
    clean: np.ndarray | None = None
    """The same trial without measurement noise (the planned motion, from which
    the dynamics are computed), (T, 33)."""

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.coords.shape[0]) / self.frame_rate


REP_VARIATION: dict[str, float] = {"trunk_lean": 6.0, "balance": 0.03, "arm_forward": 10.0}
"""SD of the repetition-to-repetition variation of these style parameters."""

DEPTH_SAMPLING_RANGE: tuple[float, float] = (45.0, 115.0)
"""Range of the subjects' typical squat depth (peak knee flexion, degrees)."""


def sample_subject(rng: np.random.Generator, depth_quantile: float | None = None
                   ) -> tuple[SubjectParams, SquatStyle]:
    """Draw a plausible adult and squatting style. ``depth_quantile`` in [0, 1)
    places the subject's typical depth within :data:`DEPTH_SAMPLING_RANGE`
    (uniformly at random when ``None``)."""
    if depth_quantile is not None and not (0.0 <= depth_quantile <= 1.0):
        raise ValueError(f"depth_quantile must be in [0, 1], got {depth_quantile!r}")
    sex = "female" if rng.random() < 0.5 else "male"
    height = float(np.clip(rng.normal(1.64 if sex == "female" else 1.77, 0.07), 1.48, 2.0))
    bmi = float(np.clip(rng.normal(24.0, 3.0), 18.0, 34.0))
    mass = float(np.clip(bmi * height * height, MASS_RANGE[0], MASS_RANGE[1]))
    strength = 1.0  # the generic model's maximum isometric forces, as OpenCap's scaled models keep them
    rng.random()  # (kept for the stream of draws) heels stay down, as in the real OpenCap squats (constant mtp)
    heel = 0.0
    style = SquatStyle(
        depth=float(DEPTH_SAMPLING_RANGE[0] + (DEPTH_SAMPLING_RANGE[1] - DEPTH_SAMPLING_RANGE[0])
                    * (rng.random() if depth_quantile is None else depth_quantile)),
        depth_jitter=float(rng.uniform(5.0, 12.0)),
        descent=float(rng.uniform(0.65, 1.0)),
        ascent=float(rng.uniform(0.6, 0.95)),
        hold=float(rng.uniform(0.0, 0.12)),
        pause=float(rng.uniform(0.3, 1.0)),
        stance=float(rng.uniform(0.0, 8.0)),
        toe_out=float(rng.uniform(0.0, 15.0)),
        trunk_lean=float(rng.uniform(30.0, 75.0)),
        pelvis_share=float(rng.uniform(0.25, 0.6)),
        standing_tilt=float(rng.uniform(-15.0, 0.0)),
        asymmetry=float(np.clip(rng.normal(0.0, 3.0), -8, 8)),
        heel_rise=heel,
        knee_valgus=float(rng.uniform(-3.0, 8.0)),
        noise=float(rng.uniform(0.2, 0.7)),
        jitter=float(rng.uniform(0.5, 1.2)),
        arm_forward=float(rng.uniform(0.0, 110.0)),
        arm_add=float(rng.uniform(-33.0, -8.0)),
        arm_rot=float(rng.uniform(-20.0, 30.0)),
        elbow=float(rng.uniform(10.0, 60.0)),
        elbow_bend=float(rng.uniform(0.0, 40.0)),
        pro_sup=float(rng.uniform(70.0, 92.0)),
        subtalar=float(rng.uniform(-6.0, 9.0)),
        lumbar_side=float(rng.uniform(-3.0, 3.0)),
        lumbar_twist=float(rng.uniform(-3.0, 15.0)),
        heading=float(rng.uniform(-8.0, 8.0)),
        balance=float(rng.uniform(0.45, 0.65)),
    )
    return SubjectParams(height, mass, sex, strength), style


# ----------------------------------------------------------------------------- timeline


def _timeline(style: SquatStyle, n_reps: int, rng: np.random.Generator, fs: float
              ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]], list[float]]:
    """Squat phase phi(t) in [0, 1] (0 standing, 1 bottom), the repetition index
    of every frame (-1 outside repetitions), segments and planned depths."""
    lead = int(round(rng.uniform(0.6, 1.0) * fs))
    phases = [np.zeros(lead)]
    rep_index = [np.full(lead, -1)]
    segments, depths = [], []
    t = lead
    lo, hi = STYLE_RANGES["depth"]
    for k in range(n_reps):
        depth = float(np.clip(style.depth + rng.normal(0.0, style.depth_jitter), lo + 10.0, MAX_REP_DEPTH))
        n_down = max(int(round(style.descent * rng.uniform(0.9, 1.1) * fs)), 8)
        n_hold = int(round(style.hold * rng.uniform(0.7, 1.3) * fs))
        n_up = max(int(round(style.ascent * rng.uniform(0.9, 1.1) * fs)), 8)
        n_pause = max(int(round(style.pause * rng.uniform(0.8, 1.2) * fs)), 12)
        down = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_down) / n_down)
        up = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, n_up + 1) / n_up)
        rep = np.concatenate([down, np.ones(n_hold), up])
        margin = 6
        start = t - min(margin, t)
        end = t + len(rep) + margin
        phases += [rep, np.zeros(n_pause)]
        rep_index += [np.full(len(rep), k), np.full(n_pause, -1)]
        segments.append((start, end))
        depths.append(depth)
        t += len(rep) + n_pause
    phi = np.concatenate(phases)
    idx = np.concatenate(rep_index)
    return phi, idx, segments, depths


VIDEO_JITTER_SD: dict[str, float] = {
    "pelvis_tilt": 0.18, "pelvis_list": 0.07, "pelvis_rotation": 0.06,
    "pelvis_tx": 0.003, "pelvis_ty": 0.002, "pelvis_tz": 0.002,
    "hip_flexion": 0.36, "hip_adduction": 0.05, "hip_rotation": 0.08, "knee_angle": 0.28,
    "ankle_angle": 0.19, "subtalar_angle": 0.15, "mtp_angle": 0.0,
    "lumbar_extension": 0.21, "lumbar_bending": 0.08, "lumbar_rotation": 0.21,
    "arm_flex": 0.41, "arm_add": 0.2, "arm_rot": 0.2, "elbow_flex": 0.41, "pro_sup": 0.3,
}
"""SD (degrees; metres for pelvis translations) of the part of OpenCap's video
inverse kinematics above 4 Hz, measured on the shipped real file
``tests/data/real_opencap/opencap-processing/squats1_videoAndMocap.mot``
(residual of a 4th-order 4 Hz Butterworth low-pass, right side; arm
adduction / rotation and pronation, not excited there, set from the arm
flexion). Its spectrum peaks at 3-8 Hz and falls by 10x at 15 Hz."""

JITTER_BAND_HZ: tuple[float, float] = (3.0, 12.0)
"""Pass band of the video-like jitter added to the written kinematics."""


def _video_jitter(rng: np.random.Generator, n: int, scale: float, fs: float) -> np.ndarray:
    """(n, 33) band-limited (:data:`JITTER_BAND_HZ`) noise with per-coordinate
    SD ``scale`` x :data:`VIDEO_JITTER_SD`, canonical order."""
    sd = np.array([VIDEO_JITTER_SD[n_ if n_ in VIDEO_JITTER_SD else n_.rsplit("_", 1)[0]] for n_ in COORDINATES])
    if scale <= 0 or n < 32:
        return np.zeros((n, len(COORDINATES)))
    lo, hi = JITTER_BAND_HZ
    sos = butter(2, [lo / (fs / 2), min(hi / (fs / 2), 0.95)], btype="band", output="sos")
    white = rng.normal(size=(n + 128, len(COORDINATES)))
    band = sosfiltfilt(sos, white, axis=0)[64:64 + n]
    band /= band.std(axis=0, keepdims=True) + 1e-12
    return scale * sd * band


def _smooth_noise(rng: np.random.Generator, n: int, cols: int, sd: float, fs: float, cutoff: float = 1.5) -> np.ndarray:
    if sd <= 0 or n < 16:
        return np.zeros((n, cols))
    white = rng.normal(size=(n + 64, cols))
    sos = butter(2, cutoff / (fs / 2), output="sos")
    smooth = sosfiltfilt(sos, white, axis=0)[32:32 + n]
    smooth /= smooth.std(axis=0, keepdims=True) + 1e-12
    return sd * smooth


def _hip_angles(theta: np.ndarray, abduction: np.ndarray | float, toe_out: float) -> np.ndarray:
    """Hip (flexion, adduction, rotation) in degrees putting the thigh at flexion
    ``theta`` (T,) within a leg plane abducted by ``abduction`` (scalar or (T,))
    and turned out by ``toe_out`` (degrees). Same values for either side (the
    left axes are mirrored)."""
    theta = np.asarray(theta, dtype=float)
    abd = np.broadcast_to(np.asarray(abduction, dtype=float), theta.shape)
    plane = Rotation.from_euler("YX", np.stack([np.full_like(theta, -toe_out), -abd], axis=1), degrees=True)
    flex = Rotation.from_euler("Z", theta[:, None], degrees=True)
    return (plane * flex).as_euler("ZXY", degrees=True)


# ----------------------------------------------------------------------------- generation


def generate_trial(fk: ForwardKinematics, style: SquatStyle, n_reps: int, rng: np.random.Generator,
                   fs: float = FRAME_RATE, lab_offset: tuple[float, float] = (0.0, 0.0)) -> SquatTrial:
    """Generate one trial of ``n_reps`` squats for the subject whose model is ``fk``."""
    if not isinstance(n_reps, (int, np.integer)) or n_reps < 1 or n_reps > 50:
        raise ValueError(f"n_reps must be an integer in [1, 50], got {n_reps!r}")
    if not isinstance(style, SquatStyle):
        raise TypeError(f"style must be a SquatStyle, got {type(style).__name__}")
    phi, rep_idx, segments, depths = _timeline(style, int(n_reps), rng, fs)
    # repetition-to-repetition variation of the style (a person never squats
    # twice the same way): trunk lean, balance point and arm swing per repetition
    per_rep = {
        "trunk_lean": np.clip(style.trunk_lean + rng.normal(0.0, REP_VARIATION["trunk_lean"], n_reps),
                              *STYLE_RANGES["trunk_lean"]),
        "balance": np.clip(style.balance + rng.normal(0.0, REP_VARIATION["balance"], n_reps),
                           *STYLE_RANGES["balance"]),
        "arm_forward": np.clip(style.arm_forward + rng.normal(0.0, REP_VARIATION["arm_forward"], n_reps),
                               *STYLE_RANGES["arm_forward"]),
    }
    # carried through the frames of each repetition and the pause after it
    owner = np.maximum.accumulate(np.where(rep_idx >= 0, rep_idx, -1))
    frame_style = {k: np.where(owner >= 0, v[np.clip(owner, 0, None)], getattr(style, k)) for k, v in per_rep.items()}
    T = phi.shape[0]
    depth = np.where(rep_idx >= 0, np.asarray(depths)[np.clip(rep_idx, 0, None)], style.depth)
    # depth of the current repetition carried through the frames of its segment
    amp = phi * (depth - STANDING_KNEE)
    knee_r = STANDING_KNEE + amp + 0.5 * style.asymmetry * phi
    knee_l = STANDING_KNEE + amp - 0.5 * style.asymmetry * phi
    knee_mean = 0.5 * (knee_r + knee_l)
    rel = phi * depth / 90.0  # 1 at a 90 degree squat
    lean = frame_style["trunk_lean"] * phi * np.minimum(depth, 100.0) / 100.0  # no further lean past 100 deg
    pelvis_tilt = style.standing_tilt - style.pelvis_share * lean
    lumbar_ext = -(1.0 - style.pelvis_share) * lean
    heel = style.heel_rise * phi ** 2 * min(1.0, max(depth.max(), 1.0) / 90.0)
    valgus = style.knee_valgus * rel

    q = np.zeros((T, len(COORDINATES)))
    c = COORD_INDEX
    # pelvis: tilt and list in the subject's own frame, turned to the heading
    # about the vertical; expressed as OpenSim's body-fixed tilt-list-rotation
    pelvis_list = -0.08 * style.asymmetry * phi
    turn = Rotation.from_euler("Y", style.heading, degrees=True)
    own = Rotation.from_euler("ZX", np.stack([pelvis_tilt, pelvis_list], axis=1), degrees=True)
    pelvis = (turn * own).as_euler("ZXY", degrees=True)
    q[:, c["pelvis_tilt"]] = pelvis[:, 0]
    q[:, c["pelvis_list"]] = pelvis[:, 1]
    q[:, c["pelvis_rotation"]] = pelvis[:, 2]
    q[:, c["lumbar_extension"]] = lumbar_ext
    q[:, c["knee_angle_r"]] = knee_r
    q[:, c["knee_angle_l"]] = knee_l
    q[:, c["mtp_angle_r"]] = heel
    q[:, c["mtp_angle_l"]] = heel
    for s in ("r", "l"):
        q[:, c[f"subtalar_angle_{s}"]] = style.subtalar - 0.4 * style.stance
        q[:, c[f"arm_flex_{s}"]] = 10.0 + frame_style["arm_forward"] * phi
        q[:, c[f"arm_add_{s}"]] = style.arm_add
        q[:, c[f"arm_rot_{s}"]] = style.arm_rot
        q[:, c[f"elbow_flex_{s}"]] = style.elbow + style.elbow_bend * phi
        q[:, c[f"pro_sup_{s}"]] = style.pro_sup
    q[:, c["lumbar_bending"]] = style.lumbar_side
    q[:, c["lumbar_rotation"]] = style.lumbar_twist

    dtype = torch.float64
    knees = {"r": knee_r, "l": knee_l}

    # Per-frame corrections that keep each foot in place (see below): a
    # right/left opposite ankle offset moves the feet fore-aft relative to each
    # other, a common change of the leg-plane abduction sets the stance width.
    feet_offset = np.zeros(T)
    feet_abduction = np.zeros(T)

    def pose(ankle_mean: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = q[rows].copy()
        for s in ("r", "l"):
            sign = 1.0 if s == "r" else -1.0
            ankle = ankle_mean + 0.4 * (knees[s][rows] - knee_mean[rows]) + sign * feet_offset[rows]
            theta = knees[s][rows] - ankle - pelvis_tilt[rows] - heel[rows]
            hip = _hip_angles(theta, style.stance + feet_abduction[rows], style.toe_out)
            out[:, c[f"ankle_angle_{s}"]] = ankle
            out[:, c[f"hip_flexion_{s}"]] = hip[:, 0]
            out[:, c[f"hip_adduction_{s}"]] = hip[:, 1] + valgus[rows]
            out[:, c[f"hip_rotation_{s}"]] = hip[:, 2] + 0.5 * valgus[rows]
        return out

    heel_i = fk.point_indices(["heel_r", "heel_l"])
    met_i = fk.point_indices(["met1_r", "met5_r", "met1_l", "met5_l"])
    forward = np.array([math.cos(math.radians(style.heading)), 0.0, -math.sin(math.radians(style.heading))])

    def imbalance(ankle_mean: np.ndarray, rows: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(pose(ankle_mean, rows), dtype=dtype)
        with torch.no_grad():
            pts = fk(x).numpy()
            com = fk.center_of_mass(x).numpy()
        heel_x = pts[:, heel_i].mean(1) @ forward
        met_x = pts[:, met_i].mean(1) @ forward
        lift = np.clip(heel[rows] / 8.0, 0.0, 1.0)
        bal = frame_style["balance"][rows]
        frac = bal + (0.92 - bal) * lift
        target = heel_x + frac * (met_x - heel_x)
        return com @ forward - target

    lateral = np.array([-forward[2], 0.0, forward[0]])  # to the subject's right
    foot_i = {s: fk.point_indices([f"heel_{s}", f"met1_{s}", f"met5_{s}", f"toe_{s}"]) for s in ("r", "l")}

    def feet_apart(ankle_mean: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Right-minus-left foot centre, (forward, lateral) metres. (n, 2)"""
        with torch.no_grad():
            pts = fk(torch.as_tensor(pose(ankle_mean, rows), dtype=dtype)).numpy()
        d = pts[:, foot_i["r"]].mean(1) - pts[:, foot_i["l"]].mean(1)
        return np.stack([d @ forward, d @ lateral], axis=1)

    def solve_balance(rows: np.ndarray, a1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a0 = a1 - 5.0
        g0, g1 = imbalance(a0, rows), imbalance(a1, rows)
        for _ in range(8):
            denom = g1 - g0
            safe = np.abs(denom) > 1e-9
            a2 = np.where(safe, a1 - g1 * (a1 - a0) / np.where(safe, denom, 1.0), a1)
            a2 = np.clip(a2, -20.0, 50.0)
            a0, g0 = a1, g1
            a1, g1 = a2, imbalance(a2, rows)
            if np.max(np.abs(g1)) < 1e-5:
                break
        return a1, g1

    # Balance and feet placement on every third frame, then interpolated (the
    # motion is smooth). Feet: Newton steps on the fore-aft and lateral
    # distance between the feet, which must stay as when standing.
    rows = np.unique(np.r_[np.arange(0, T, 3), T - 1])
    ankle_rows, g1 = solve_balance(rows, 0.4 * knee_mean[rows] + 2.0)
    target = feet_apart(ankle_rows[:1], rows[:1])[0]
    step = 0.5  # degrees, for the finite-difference derivatives
    for _ in range(3):
        base = feet_apart(ankle_rows, rows) - target
        if np.abs(base).max() < 1e-3:
            break
        feet_offset[rows] += step
        d_off = (feet_apart(ankle_rows, rows)[:, 0] - target[0] - base[:, 0]) / step
        feet_offset[rows] -= step
        feet_abduction[rows] += step
        d_abd = (feet_apart(ankle_rows, rows)[:, 1] - target[1] - base[:, 1]) / step
        feet_abduction[rows] -= step
        feet_offset[rows] -= np.clip(base[:, 0] / np.where(np.abs(d_off) > 1e-6, d_off, np.inf), -10, 10)
        feet_abduction[rows] -= np.clip(base[:, 1] / np.where(np.abs(d_abd) > 1e-6, d_abd, np.inf), -10, 10)
        ankle_rows, g1 = solve_balance(rows, ankle_rows)
    feet_offset[:] = np.interp(np.arange(T), rows, feet_offset[rows])
    feet_abduction[:] = np.interp(np.arange(T), rows, feet_abduction[rows])
    ankle_mean = np.interp(np.arange(T), rows, ankle_rows)
    q = pose(ankle_mean, np.arange(T))

    clean = _place_on_floor(fk, q, lab_offset)
    # smooth measurement-like noise on the angles (not on the pelvis translations),
    # as inverse kinematics of video would add; the noisy trial is placed on the
    # floor again so that its feet touch the floor too
    rot_cols = [i for i, n in enumerate(COORDINATES) if n not in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]
    noisy = q.copy()
    noisy[:, rot_cols] += _smooth_noise(rng, T, len(rot_cols), style.noise, fs)
    jitter = _video_jitter(rng, T, style.jitter, fs)
    noisy[:, rot_cols] += jitter[:, rot_cols]
    noisy = _place_on_floor(fk, noisy, lab_offset)
    trans = [COORD_INDEX[n] for n in ("pelvis_tx", "pelvis_tz")]
    noisy[:, trans] += jitter[:, trans]  # horizontal only (millimetres): the feet stay on the floor
    info = {
        "max_balance_error_m": float(np.max(np.abs(g1))),
        "peak_knee_r": [float(knee_r[a:b].max()) for a, b in segments],
        "peak_knee_l": [float(knee_l[a:b].max()) for a, b in segments],
        "style": asdict(style),
    }
    return SquatTrial(noisy, segments, depths, fs, info, clean)


def _place_on_floor(fk: ForwardKinematics, q: np.ndarray, lab_offset: tuple[float, float]) -> np.ndarray:
    """Set pelvis_ty so that the lowest foot contact point is on the floor in
    every frame, and pelvis_tx/tz so that the mean contact point stays at
    ``lab_offset`` (x, z) (no sliding of the feet as a whole)."""
    q = q.copy()
    c = COORD_INDEX
    q[:, [c["pelvis_tx"], c["pelvis_ty"], c["pelvis_tz"]]] = 0.0
    contact = fk.foot_contact_indices()
    with torch.no_grad():
        pts = fk(torch.as_tensor(q, dtype=torch.float64)).numpy()[:, contact]
    q[:, c["pelvis_ty"]] = -pts[:, :, 1].min(axis=1)
    anchor = pts.mean(axis=1)
    q[:, c["pelvis_tx"]] = lab_offset[0] - anchor[:, 0]
    q[:, c["pelvis_tz"]] = lab_offset[1] - anchor[:, 2]
    return q
