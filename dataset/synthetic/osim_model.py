"""A whole-body musculoskeletal model built in code with the OpenSim API.

The model mirrors the structure and the names of LaiUhlrich2022 (the model of
the MCS dataset) closely enough that every file written with it looks like an
MCS file, while staying small enough to be built, scaled and simulated in a
fraction of a second:

* bodies ``pelvis``, ``femur``, ``tibia``, ``talus``, ``calcn``, ``toes`` (both
  sides), ``torso`` (trunk, neck and head), ``humerus``, ``ulna``, ``radius``,
  ``hand`` (both sides);
* ``CustomJoint``\\ s whose coordinates are exactly the 33 coordinates of
  :data:`utils.constants.COORDINATES` (same names, same sign conventions: knee
  flexion positive, hip adduction positive towards the midline, dorsiflexion
  positive, ...), the wrists welded;
* segment masses, centres of mass and radii of gyration from de Leva (1996),
  "Adjustments to Zatsiorsky-Seluyanov's segment inertia parameters",
  J Biomech 29(9):1223-1230, Table 4 (male or female columns), scaled to the
  subject's height and mass;
* the 40 lower-limb muscles per side of LaiUhlrich2022 / Rajagopal2015
  (:data:`utils.constants.MUSCLE_BASES`) as ``DeGrooteFregly2016Muscle`` with a
  rigid tendon; maximum isometric forces and optimal fibre lengths follow
  Rajagopal et al. (2016); attachment points are simplified from the
  gait2392 / Rajagopal geometry; wrap cylinders keep the quadriceps in front
  of the knee and the gluteus maximus behind / iliopsoas in front of the hip
  through deep flexion; forces scale with body mass; tendon slack lengths are set so that fibres are at their optimal length
  in a mid-squat reference posture;
* markers named like OpenCap's video markers (``r_knee_study``, ...), and
  ``Station``\\ s for the foot contact points (``heel_r``, ``met1_r``,
  ``met5_r``, ``toe_r``, ...) and the head (``neck``, ``head``).

This is a synthetic stand-in, not LaiUhlrich2022: see ``docs/synthetic_data.md``.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import opensim as osim

from utils.constants import COORDINATES, MUSCLE_BASES

__all__ = [
    "ANTHROPOMETRY_SOURCE", "SIDES", "CONTACT_STATIONS", "REFERENCE_POSE",
    "build_model", "default_model_path", "save_model", "validate_subject",
]

ANTHROPOMETRY_SOURCE = (
    "de Leva P (1996). Adjustments to Zatsiorsky-Seluyanov's segment inertia parameters. "
    "J Biomech 29(9):1223-1230, Table 4"
)
"""The published anthropometric table the segment parameters come from."""

SIDES: tuple[str, str] = ("r", "l")

CONTACT_STATIONS: tuple[str, ...] = (
    "heel_r", "met1_r", "met5_r", "toe_r", "heel_l", "met1_l", "met5_l", "toe_l",
)
"""Foot contact points (stations on the sole), right then left."""

REFERENCE_POSE: dict[str, float] = {
    "hip_flexion": 55.0, "knee_angle": 65.0, "ankle_angle": 10.0,
}
"""Mid-squat posture (degrees, both sides) in which every muscle fibre is at its
optimal length; sets the tendon slack lengths."""

_REPO_ROOT = Path(__file__).resolve().parents[2]
_CACHE_DIR = _REPO_ROOT / ".cache" / "bige"

# ----------------------------------------------------------------------------- anthropometry

# de Leva (1996) Table 4. Segment: (length mm, mass %, CoM % of length from the
# proximal/cranial end, radii of gyration % of length about the sagittal (x),
# transverse (z) and longitudinal (y) axes). Reference statures: 1741 mm (male),
# 1735 mm (female). The trunk is split into the pelvis (lower trunk) and torso
# (middle + upper trunk + head) with the male sub-trunk proportions, which the
# table gives for both sexes only in part.
_DE_LEVA: dict[str, dict[str, tuple[float, float, float, float, float, float]]] = {
    "male": {
        "head": (242.9, 6.94, 59.76, 36.2, 37.6, 31.2),
        "trunk": (603.3, 43.46, 44.86, 37.2, 34.7, 19.1),
        "upper_trunk": (242.1, 15.96, 50.66, 50.5, 32.0, 46.5),
        "mid_trunk": (215.5, 16.33, 45.02, 48.2, 38.3, 46.8),
        "lower_trunk": (145.7, 11.17, 61.15, 61.5, 55.1, 58.7),
        "upper_arm": (281.7, 2.71, 57.72, 28.5, 26.9, 15.8),
        "forearm": (268.9, 1.62, 45.74, 27.6, 26.5, 12.1),
        "hand": (86.2, 0.61, 79.00, 62.8, 51.3, 40.1),
        "thigh": (422.2, 14.16, 40.95, 32.9, 32.9, 14.9),
        "shank": (434.0, 4.33, 44.59, 25.5, 24.9, 10.3),
        "foot": (258.1, 1.37, 44.15, 25.7, 24.5, 12.4),
    },
    "female": {
        "head": (243.7, 6.68, 58.94, 33.0, 35.9, 31.8),
        "trunk": (614.8, 42.57, 41.51, 35.7, 33.9, 17.1),
        "upper_trunk": (242.1, 15.96, 50.66, 50.5, 32.0, 46.5),
        "mid_trunk": (215.5, 16.33, 45.02, 48.2, 38.3, 46.8),
        "lower_trunk": (145.7, 11.17, 61.15, 61.5, 55.1, 58.7),
        "upper_arm": (275.1, 2.55, 57.54, 27.8, 26.0, 14.8),
        "forearm": (264.3, 1.38, 45.59, 26.1, 25.7, 9.4),
        "hand": (78.0, 0.56, 74.74, 53.1, 45.4, 33.5),
        "thigh": (368.5, 14.78, 36.12, 36.9, 36.4, 16.2),
        "shank": (432.3, 4.81, 44.16, 27.1, 26.7, 9.3),
        "foot": (228.3, 1.29, 40.14, 29.9, 27.9, 13.9),
    },
}
_REF_STATURE_MM = {"male": 1741.0, "female": 1735.0}

HEIGHT_RANGE: tuple[float, float] = (1.2, 2.3)
MASS_RANGE: tuple[float, float] = (30.0, 200.0)


def validate_subject(height: float, mass: float, sex: str = "male") -> None:
    """Raise ``ValueError`` naming the parameter if height (m), mass (kg) or sex
    is outside what the model can represent."""
    if not isinstance(height, (int, float)) or not math.isfinite(height) or not (
        HEIGHT_RANGE[0] <= height <= HEIGHT_RANGE[1]
    ):
        raise ValueError(f"height must be a number in [{HEIGHT_RANGE[0]}, {HEIGHT_RANGE[1]}] m, got {height!r}")
    if not isinstance(mass, (int, float)) or not math.isfinite(mass) or not (MASS_RANGE[0] <= mass <= MASS_RANGE[1]):
        raise ValueError(f"mass must be a number in [{MASS_RANGE[0]}, {MASS_RANGE[1]}] kg, got {mass!r}")
    if sex not in _DE_LEVA:
        raise ValueError(f"sex must be one of {sorted(_DE_LEVA)}, got {sex!r}")


@dataclass(frozen=True)
class _Segment:
    mass: float          # kg
    length: float        # m
    com: float           # fraction of length from the proximal end
    radii: tuple[float, float, float]  # radii of gyration (x, z, y) as fractions of length

    def inertia(self) -> tuple[float, float, float]:
        """Principal moments about the CoM (Ixx, Iyy, Izz), kg m^2; y is the long axis."""
        rx, rz, ry = (r * self.length for r in self.radii)
        return self.mass * rx * rx, self.mass * ry * ry, self.mass * rz * rz


def _segments(height: float, mass: float, sex: str) -> dict[str, _Segment]:
    table = _DE_LEVA[sex]
    stature = _REF_STATURE_MM[sex]
    out = {}
    for name, (length, pct, com, rs, rt, rl) in table.items():
        out[name] = _Segment(mass * pct / 100.0, height * length / stature, com / 100.0,
                             (rs / 100.0, rt / 100.0, rl / 100.0))
    # The sub-trunk table is male; rescale its masses so pelvis + torso + head
    # carry exactly the sex's whole-trunk mass.
    sub = ("upper_trunk", "mid_trunk", "lower_trunk")
    k = out["trunk"].mass / sum(out[s].mass for s in sub)
    for s in sub:
        seg = out[s]
        out[s] = _Segment(seg.mass * k, seg.length, seg.com, seg.radii)
    return out


def _combine(parts: Iterable[tuple[float, np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray, np.ndarray]:
    """Combine (mass, com (3,), inertia about own com (3, 3)) into one rigid body."""
    parts = list(parts)
    m = sum(p[0] for p in parts)
    com = sum(p[0] * p[1] for p in parts) / m
    inertia = np.zeros((3, 3))
    for mi, ci, Ii in parts:
        d = ci - com
        inertia += Ii + mi * (np.dot(d, d) * np.eye(3) - np.outer(d, d))
    return m, com, inertia


# ----------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class _Geometry:
    """Scale factors that map template points to the subject."""
    pelvis: float     # template pelvis for a 1.80 m person (also bone widths)
    femur: float      # template knee at (0, -0.40, 0)
    tibia: float      # template ankle at (0, -0.43, 0)
    foot: float       # template foot 0.26 m long, ankle 0.07 m above the floor
    torso: float      # template neck 0.42 m above the lumbar joint
    upper_arm: float  # template elbow 0.29 m below the shoulder
    forearm: float    # template wrist 0.26 m below the elbow
    hand: float


_TEMPLATE_FOOT = {
    # foot-frame points: origin at the ankle centre, x forward, y up, z right (right foot)
    "subtalar": (-0.049, -0.042, 0.008),
    "mtp": (0.135, -0.055, 0.010),
    "heel": (-0.052, -0.070, 0.000),
    "met1": (0.130, -0.070, -0.030),
    "met5": (0.110, -0.070, 0.035),
    "toe": (0.205, -0.070, -0.012),
}


def _mirror(p: Sequence[float], side: str) -> osim.Vec3:
    x, y, z = p
    return osim.Vec3(x, y, z if side == "r" else -z)


def _mirror_axis(axis: Sequence[float], side: str) -> osim.Vec3:
    """Mirror an axis of rotation (an axial vector) into the left side."""
    x, y, z = axis
    return osim.Vec3(x, y, z) if side == "r" else osim.Vec3(-x, -y, z)


def _make_custom_joint(
    name: str,
    parent: osim.PhysicalFrame,
    loc_parent: osim.Vec3,
    child: osim.Body,
    loc_child: osim.Vec3,
    rotations: Sequence[tuple[str | None, osim.Vec3]],
    translations: Sequence[tuple[str | None, osim.Vec3]] = (),
) -> osim.CustomJoint:
    """A CustomJoint with up to three rotations (body-fixed, in order) and up to
    three translations, each a LinearFunction(1, 0) of one coordinate; axes
    without a coordinate are held at zero."""
    st = osim.SpatialTransform()
    default_rot = [osim.Vec3(1, 0, 0), osim.Vec3(0, 1, 0), osim.Vec3(0, 0, 1)]
    rot = list(rotations)
    used = [ax for _, ax in rot]
    # fill unused rotation axes with independent unit axes
    for cand in default_rot:
        if len(rot) >= 3:
            break
        if all(abs(cand.get(0) * a.get(0) + cand.get(1) * a.get(1) + cand.get(2) * a.get(2)) < 0.99 for a in used):
            rot.append((None, cand))
            used.append(cand)
    trans = list(translations) + [(None, v) for v in default_rot[len(translations):]]
    for i, (coord, axis) in enumerate(rot + trans):
        ta = st.updTransformAxis(i)
        ta.setAxis(axis)
        if coord is None:
            ta.set_function(osim.Constant(0.0))
        else:
            ta.setCoordinateNames(osim.ArrayStr(coord, 1))
            ta.set_function(osim.LinearFunction(1.0, 0.0))
    return osim.CustomJoint(name, parent, loc_parent, osim.Vec3(0), child, loc_child, osim.Vec3(0), st)


_COORD_RANGES_DEG: dict[str, tuple[float, float]] = {
    "pelvis_tilt": (-90, 90), "pelvis_list": (-90, 90), "pelvis_rotation": (-180, 180),
    "hip_flexion": (-30, 140), "hip_adduction": (-50, 30), "hip_rotation": (-40, 40),
    "knee_angle": (0, 150), "ankle_angle": (-40, 40), "subtalar_angle": (-20, 20),
    "mtp_angle": (-30, 60), "lumbar_extension": (-90, 45), "lumbar_bending": (-45, 45),
    "lumbar_rotation": (-45, 45), "arm_flex": (-90, 180), "arm_add": (-120, 90),
    "arm_rot": (-90, 90), "elbow_flex": (0, 150), "pro_sup": (0, 180),
}


def _coord_range(name: str) -> tuple[float, float]:
    if name in ("pelvis_tx", "pelvis_tz"):
        return (-10.0, 10.0)
    if name == "pelvis_ty":
        return (-1.0, 3.0)
    base = name[:-2] if name[-2:] in ("_r", "_l") else name
    lo, hi = _COORD_RANGES_DEG[base]
    return math.radians(lo), math.radians(hi)


def _body(name: str, mass: float, com: np.ndarray, inertia: np.ndarray) -> osim.Body:
    inert = osim.Inertia(float(inertia[0, 0]), float(inertia[1, 1]), float(inertia[2, 2]),
                         float(inertia[0, 1]), float(inertia[0, 2]), float(inertia[1, 2]))
    return osim.Body(name, float(mass), osim.Vec3(*map(float, com)), inert)


def _long_segment(seg: _Segment, top: np.ndarray, bottom: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(mass, com, inertia) of a segment running from ``top`` to ``bottom`` along -y."""
    com = top + seg.com * (bottom - top)
    ixx, iyy, izz = seg.inertia()
    return seg.mass, com, np.diag([ixx, iyy, izz])


# ----------------------------------------------------------------------------- muscles

# Rajagopal et al. (2016) maximum isometric force (N), optimal fibre length (m),
# pennation angle at optimal length (deg).
_MUSCLE_PARAMS: dict[str, tuple[float, float, float]] = {
    "addbrev": (303.7, 0.103, 6.1), "addlong": (399.5, 0.108, 7.1),
    "addmagDist": (324.2, 0.177, 13.8), "addmagIsch": (324.2, 0.156, 11.9),
    "addmagMid": (324.2, 0.138, 14.7), "addmagProx": (324.2, 0.106, 22.2),
    "bflh": (705.2, 0.098, 11.6), "bfsh": (315.8, 0.110, 12.3),
    "edl": (345.4, 0.069, 10.8), "ehl": (165.0, 0.075, 9.4),
    "fdl": (274.4, 0.045, 13.6), "fhl": (436.8, 0.043, 16.9),
    "gaslat": (606.4, 0.059, 12.0), "gasmed": (1308.0, 0.051, 9.9),
    "glmax1": (546.4, 0.147, 21.1), "glmax2": (796.2, 0.157, 21.9), "glmax3": (468.2, 0.167, 21.9),
    "glmed1": (881.1, 0.073, 20.5), "glmed2": (616.5, 0.073, 20.5), "glmed3": (702.0, 0.073, 20.5),
    "glmin1": (180.0, 0.068, 10.0), "glmin2": (190.0, 0.056, 0.0), "glmin3": (215.0, 0.038, 1.0),
    "grac": (137.3, 0.228, 8.2), "iliacus": (621.9, 0.107, 14.3),
    "perbrev": (305.9, 0.045, 11.5), "perlong": (653.3, 0.051, 14.1),
    "piri": (444.0, 0.026, 10.0), "psoas": (479.7, 0.117, 10.7),
    "recfem": (848.8, 0.076, 13.9), "sart": (168.5, 0.403, 1.3),
    "semimem": (1162.7, 0.069, 15.1), "semiten": (301.9, 0.193, 12.9),
    "soleus": (3585.9, 0.044, 21.9), "tfl": (233.5, 0.095, 3.0),
    "tibant": (673.7, 0.068, 9.6), "tibpost": (905.6, 0.038, 13.7),
    "vasint": (1365.3, 0.099, 4.5), "vaslat": (2255.4, 0.099, 18.4), "vasmed": (1443.7, 0.097, 29.6),
}
_REFERENCE_MASS = 75.0  # kg; Rajagopal's forces are for a 75 kg subject
# With rigid tendons the whole knee excursion of a squat (0-130 deg) falls on
# the quadriceps fibres, which would then leave the plateau of their
# force-length curve at both ends (nearly no force when standing). Their
# optimal fibre lengths are lengthened to stand in for the tendon and
# aponeurosis compliance the rigid-tendon model ignores.
_FIBRE_LENGTH_FACTOR: dict[str, float] = {"vasmed": 1.8, "vaslat": 1.8, "vasint": 1.8, "recfem": 1.5}
PASSIVE_STRAIN_AT_ONE_NORM_FORCE = 1.0
"""Fibre strain at which passive force equals the maximum isometric force
(DeGroote-Fregly default 0.6); more compliant so that deep squats are not
held up by passive tension."""

# Path points of the right-side muscles in template frames: (body, (x, y, z)).
# Bodies: "pelvis", "femur", "tibia", "calcn" and "toes" (calcn and toes points
# are given in the foot frame, origin at the ankle, and converted below).
_P = "pelvis"
_F = "femur"
_T = "tibia"
_C = "calcn"
_O = "toes"
_ACHILLES_VIA = (_T, (-0.040, -0.385, 0.0))
_ACHILLES = (_C, (-0.050, -0.035, 0.0))
_PATELLAR = (_T, (0.038, -0.060, 0.0))
_MUSCLE_PATHS: dict[str, list[tuple[str, tuple[float, float, float]]]] = {
    "addbrev": [(_P, (-0.0191, -0.094, 0.0154)), (_F, (-0.002, -0.118, 0.0249))],
    "addlong": [(_P, (-0.0316, -0.0836, 0.0169)), (_F, (0.005, -0.2111, 0.0234))],
    "addmagDist": [(_P, (-0.095, -0.120, 0.045)), (_F, (-0.0065, -0.300, 0.020))],
    "addmagIsch": [(_P, (-0.108, -0.130, 0.050)), (_F, (-0.008, -0.385, -0.028))],
    "addmagMid": [(_P, (-0.085, -0.115, 0.035)), (_F, (-0.0046, -0.220, 0.027))],
    "addmagProx": [(_P, (-0.070, -0.110, 0.025)), (_F, (-0.0046, -0.120, 0.029))],
    "bflh": [(_P, (-0.120, -0.125, 0.0688)), (_T, (-0.030, -0.0356, 0.0294)), (_T, (-0.0234, -0.0563, 0.0343))],
    "bfsh": [(_F, (0.005, -0.2111, 0.0234)), (_T, (-0.0101, -0.0725, 0.0406))],
    "edl": [(_T, (0.0029, -0.1289, 0.0236)), (_T, (0.0288, -0.4005, 0.0071)), (_C, (0.130, -0.030, 0.010)),
            (_O, (0.200, -0.052, 0.010))],
    "ehl": [(_T, (0.0012, -0.1767, 0.0228)), (_T, (0.0326, -0.3985, -0.0085)), (_C, (0.130, -0.030, -0.020)),
            (_O, (0.200, -0.052, -0.025))],
    "fdl": [(_T, (-0.0083, -0.2046, -0.0018)), (_T, (-0.0154, -0.4051, -0.0196)), (_C, (-0.010, -0.055, -0.025)),
            (_C, (0.120, -0.064, 0.000)), (_O, (0.180, -0.066, 0.005))],
    "fhl": [(_T, (-0.0079, -0.2334, 0.0244)), (_T, (-0.0186, -0.4079, -0.0174)), (_C, (0.000, -0.055, -0.020)),
            (_C, (0.130, -0.064, -0.025)), (_O, (0.190, -0.066, -0.025))],
    "gaslat": [(_F, (-0.0155, -0.3946, 0.0272)), (_T, (-0.0254, -0.0401, 0.0274)), _ACHILLES_VIA, _ACHILLES],
    "gasmed": [(_F, (-0.0127, -0.3929, -0.0235)), (_T, (-0.0239, -0.0402, -0.0258)), _ACHILLES_VIA, _ACHILLES],
    "glmax1": [(_P, (-0.1195, 0.0612, 0.070)), (_P, (-0.1291, 0.0012, 0.0886)), (_F, (-0.0457, -0.0248, 0.0392)),
               (_F, (-0.0277, -0.0566, 0.047))],
    "glmax2": [(_P, (-0.1349, 0.0176, 0.0563)), (_P, (-0.1376, -0.052, 0.0914)), (_F, (-0.0426, -0.053, 0.0293)),
               (_F, (-0.0156, -0.1016, 0.0419))],
    "glmax3": [(_P, (-0.1556, -0.0314, 0.0058)), (_P, (-0.1529, -0.1052, 0.0403)), (_F, (-0.0299, -0.1041, 0.0135)),
               (_F, (-0.006, -0.1419, 0.0411))],
    "glmed1": [(_P, (-0.0408, 0.0304, 0.1209)), (_F, (-0.0218, -0.0117, 0.0555))],
    "glmed2": [(_P, (-0.0855, 0.0445, 0.0766)), (_F, (-0.0258, -0.0058, 0.0527))],
    "glmed3": [(_P, (-0.1223, 0.0105, 0.0648)), (_F, (-0.0309, -0.0047, 0.0518))],
    "glmin1": [(_P, (-0.0467, -0.0008, 0.1056)), (_F, (-0.0072, -0.0104, 0.056))],
    "glmin2": [(_P, (-0.0633, -0.0065, 0.0991)), (_F, (-0.0096, -0.0104, 0.056))],
    "glmin3": [(_P, (-0.0834, -0.0063, 0.0856)), (_F, (-0.0135, -0.0083, 0.055))],
    "grac": [(_P, (-0.0563, -0.1038, 0.0079)), (_T, (-0.0154, -0.0475, -0.0358)), (_T, (0.006, -0.0836, -0.0228))],
    "iliacus": [(_P, (-0.0674, 0.0365, 0.0854)), (_P, (-0.0307, -0.0321, 0.0851)), (_F, (0.0017, -0.0543, 0.0057)),
                (_F, (-0.0193, -0.0621, 0.0129))],
    "perbrev": [(_T, (-0.007, -0.2646, 0.0325)), (_T, (-0.0198, -0.4184, 0.0283)), (_C, (-0.020, -0.060, 0.030)),
                (_C, (0.030, -0.058, 0.042))],
    "perlong": [(_T, (0.0005, -0.1568, 0.0362)), (_T, (-0.0207, -0.4205, 0.0286)), (_C, (-0.020, -0.062, 0.030)),
                (_C, (0.070, -0.066, -0.020))],
    "piri": [(_P, (-0.1396, 0.0003, 0.0235)), (_P, (-0.1193, -0.0276, 0.0657)), (_F, (-0.0148, -0.0036, 0.0437))],
    "psoas": [(_P, (-0.0647, 0.0887, 0.0289)), (_P, (-0.0307, -0.0321, 0.0780)), (_F, (0.0016, -0.0507, 0.0038)),
              (_F, (-0.0188, -0.0597, 0.0104))],
    "recfem": [(_P, (-0.0295, -0.0311, 0.0968)), (_F, (0.040, -0.330, 0.002)), _PATELLAR],
    "sart": [(_P, (-0.0153, -0.0013, 0.1242)), (_F, (-0.003, -0.3568, -0.0421)), (_T, (-0.0056, -0.0419, -0.0399)),
             (_T, (0.006, -0.0589, -0.0383)), (_T, (0.0243, -0.084, -0.0252))],
    "semimem": [(_P, (-0.115, -0.123, 0.0695)), (_T, (-0.0243, -0.0536, -0.0194))],
    "semiten": [(_P, (-0.118, -0.127, 0.0603)), (_T, (-0.0314, -0.0545, -0.0146)), (_T, (-0.0113, -0.0746, -0.0245)),
                (_T, (0.0027, -0.0956, -0.0193))],
    "soleus": [(_T, (-0.0024, -0.1533, 0.0071)), _ACHILLES_VIA, _ACHILLES],
    "tfl": [(_P, (-0.0311, 0.0214, 0.1241)), (_F, (0.0294, -0.0995, 0.0597)), (_F, (0.0108, -0.405, 0.0346)),
            (_T, (0.006, -0.0487, 0.0297))],
    "tibant": [(_T, (0.0179, -0.1624, 0.0115)), (_T, (0.0329, -0.3951, -0.0177)), (_C, (0.090, -0.035, -0.020))],
    "tibpost": [(_T, (-0.0094, -0.1348, 0.0019)), (_T, (-0.020, -0.410, -0.025)), (_C, (0.030, -0.050, -0.030))],
    "vasint": [(_F, (0.029, -0.1924, 0.031)), (_F, (0.0335, -0.2084, 0.0285)), (_F, (0.040, -0.330, 0.002)),
               _PATELLAR],
    "vaslat": [(_F, (0.0048, -0.1854, 0.0349)), (_F, (0.0269, -0.2591, 0.0409)), (_F, (0.040, -0.330, 0.012)),
               _PATELLAR],
    "vasmed": [(_F, (0.014, -0.2099, 0.0188)), (_F, (0.0356, -0.2769, 0.0009)), (_F, (0.040, -0.330, -0.010)),
               _PATELLAR],
}
_QUADRICEPS = ("recfem", "vasint", "vaslat", "vasmed")
_KNEE_WRAP_RADIUS = 0.040  # template metres
_KNEE_WRAP_QUADRANT = "+x"
# Cylinders about the hip flexion axis (on the pelvis) keep the gluteus maximus
# behind and the iliopsoas in front of the hip in deep flexion.
_HIP_WRAPS: dict[str, tuple[float, str, tuple[str, ...]]] = {
    "Gmax_at_hip": (0.045, "-x", ("glmax1", "glmax2", "glmax3")),
    "IL_at_hip": (0.035, "+x", ("iliacus", "psoas")),
}

assert set(_MUSCLE_PATHS) == set(MUSCLE_BASES) == set(_MUSCLE_PARAMS)


# ----------------------------------------------------------------------------- markers

_MARKERS: dict[str, tuple[str, tuple[float, float, float]]] = {
    # OpenCap-style video markers, right side (left mirrored with prefix L_ / L.)
    "ASIS_study": (_P, (0.010, 0.000, 0.120)),
    "PSIS_study": (_P, (-0.155, 0.035, 0.045)),
    "HJC_study": (_P, (-0.0707, -0.0661, 0.0835)),
    "knee_study": (_F, (0.000, -0.400, 0.050)),
    "mknee_study": (_F, (0.000, -0.400, -0.050)),
    "thigh1_study": (_F, (0.020, -0.150, 0.070)),
    "thigh2_study": (_F, (0.040, -0.250, 0.050)),
    "sh1_study": (_T, (0.030, -0.150, 0.045)),
    "sh2_study": (_T, (0.040, -0.250, 0.035)),
    "ankle_study": (_T, (-0.005, -0.430, 0.045)),
    "mankle_study": (_T, (0.005, -0.420, -0.040)),
    "calc_study": ("calcn_foot", (-0.060, -0.040, 0.000)),
    "toe_study": ("toes_foot", (0.195, -0.045, -0.010)),
    "5meta_study": ("calcn_foot", (0.110, -0.050, 0.040)),
}


def _marker_name(base: str, side: str) -> str:
    if base in ("ASIS_study", "PSIS_study"):
        return ("r." if side == "r" else "L.") + base
    if base == "HJC_study":
        return ("R" if side == "r" else "L") + base
    return ("r_" if side == "r" else "L_") + base


# ----------------------------------------------------------------------------- model


def build_model(height: float = 1.75, mass: float = 70.0, sex: str = "male",
                strength: float = 1.0, name: str | None = None) -> osim.Model:
    """Build the musculoskeletal model for a subject of ``height`` (m) and
    ``mass`` (kg); ``sex`` picks the de Leva column; ``strength`` multiplies
    every maximum isometric force. Returns a model on which ``initSystem()``
    has been called (tendon slack lengths depend on it).

    Raises ``ValueError`` naming the parameter for an impossible subject.
    """
    validate_subject(height, mass, sex)
    if not (0.2 <= strength <= 5.0):
        raise ValueError(f"strength must be in [0.2, 5], got {strength!r}")
    seg = _segments(float(height), float(mass), sex)
    geo = _Geometry(
        pelvis=height / 1.80,
        femur=seg["thigh"].length / 0.40,
        tibia=seg["shank"].length / 0.43,
        foot=seg["foot"].length / 0.26,
        torso=(seg["upper_trunk"].length + seg["mid_trunk"].length) / 0.42,
        upper_arm=seg["upper_arm"].length / 0.29,
        forearm=seg["forearm"].length / 0.26,
        hand=seg["hand"].length / 0.09,
    )
    model = osim.Model()
    model.setName(name or f"bige_synthetic_{height:.3f}m_{mass:.1f}kg")
    model.set_credits(f"BIGE synthetic model; segment parameters from {ANTHROPOMETRY_SOURCE}")
    model.set_length_units("meters")
    model.set_force_units("N")
    model.setGravity(osim.Vec3(0, -9.80665, 0))
    ground = model.getGround()

    def v(p: Sequence[float], s: float = 1.0) -> np.ndarray:
        return np.asarray(p, dtype=float) * s

    # --- pelvis (lower trunk) --------------------------------------------------------
    hip_r = v((-0.0707, -0.0661, 0.0835), geo.pelvis)
    mid_hip = np.array([hip_r[0], hip_r[1], 0.0])
    lumbar = v((-0.1007, 0.0815, 0.0), geo.pelvis)
    lt = seg["lower_trunk"]
    lt_top = mid_hip + np.array([0.0, lt.length, 0.0])
    pel_m, pel_c, pel_i = _long_segment(lt, lt_top, mid_hip)
    pelvis = _body("pelvis", pel_m, pel_c, pel_i)
    model.addBody(pelvis)
    pelvis_joint = _make_custom_joint(
        "ground_pelvis", ground, osim.Vec3(0), pelvis, osim.Vec3(0),
        [("pelvis_tilt", osim.Vec3(0, 0, 1)), ("pelvis_list", osim.Vec3(1, 0, 0)),
         ("pelvis_rotation", osim.Vec3(0, 1, 0))],
        [("pelvis_tx", osim.Vec3(1, 0, 0)), ("pelvis_ty", osim.Vec3(0, 1, 0)), ("pelvis_tz", osim.Vec3(0, 0, 1))],
    )
    model.addJoint(pelvis_joint)

    # --- torso: middle + upper trunk + head, origin at the lumbar joint ---------------
    torso_len = seg["mid_trunk"].length + seg["upper_trunk"].length
    neck = np.array([-0.025 * geo.torso, torso_len, 0.0])
    head_top = neck + np.array([0.02 * geo.torso, seg["head"].length, 0.0])
    mt, ut, hd = seg["mid_trunk"], seg["upper_trunk"], seg["head"]
    xyph = np.array([0.0, mt.length, 0.0])
    parts = [
        _long_segment(mt, xyph, np.zeros(3)),  # de Leva measures mid trunk from XYPH down
        _long_segment(ut, neck, xyph),
        _long_segment(hd, head_top, neck),
    ]
    tor_m, tor_c, tor_i = _combine(parts)
    torso = _body("torso", tor_m, tor_c, tor_i)
    model.addBody(torso)
    model.addJoint(_make_custom_joint(
        "back", pelvis, osim.Vec3(*lumbar), torso, osim.Vec3(0),
        [("lumbar_extension", osim.Vec3(0, 0, 1)), ("lumbar_bending", osim.Vec3(1, 0, 0)),
         ("lumbar_rotation", osim.Vec3(0, 1, 0))],
    ))
    _add_station(model, torso, "neck", neck)
    _add_station(model, torso, "head", head_top)
    model.addMarker(osim.Marker("C7_study", torso, osim.Vec3(*(neck + np.array([-0.02 * geo.torso, 0, 0])))))

    for side in SIDES:
        _add_leg(model, pelvis, side, seg, geo, hip_r)
        _add_arm(model, torso, side, seg, geo, torso_len)

    # markers on pelvis / leg bodies
    for base, (body, p) in _MARKERS.items():
        for side in SIDES:
            _add_marker(model, _marker_name(base, side), body, p, side, geo)

    _set_coordinate_defaults(model)
    model.initSystem()
    _add_muscles(model, geo, mass, strength)
    _set_tendon_slack_lengths(model)  # initialises the system itself
    model.finalizeConnections()
    model.initSystem()
    return model


def _add_station(model: osim.Model, body: osim.PhysicalFrame, name: str, p: Sequence[float]) -> None:
    st = osim.Station(body, osim.Vec3(*map(float, p)))
    st.setName(name)
    model.addComponent(st)


def _foot_point(name: str, geo: _Geometry) -> np.ndarray:
    return np.asarray(_TEMPLATE_FOOT[name], dtype=float) * geo.foot


def _add_leg(model: osim.Model, pelvis: osim.Body, side: str, seg: dict[str, _Segment], geo: _Geometry,
             hip_r: np.ndarray) -> None:
    s = side
    thigh, shank, foot = seg["thigh"], seg["shank"], seg["foot"]
    knee = np.array([0.0, -thigh.length, 0.0])
    ankle = np.array([0.0, -shank.length, 0.0])
    femur = _body(f"femur_{s}", *_long_segment(thigh, np.zeros(3), knee))
    tibia = _body(f"tibia_{s}", *_long_segment(shank, np.zeros(3), ankle))
    # foot mass split: talus 10 %, calcaneus + metatarsals 75 %, toes 15 %
    heel, toe = _foot_point("heel", geo), _foot_point("toe", geo)
    sub, mtp = _foot_point("subtalar", geo), _foot_point("mtp", geo)
    foot_com = heel + foot.com * (toe - heel)
    foot_com[1] = 0.5 * (heel[1] + 0.0) + 0.01 * geo.foot  # CoM roughly mid-height of the foot
    ixx, iyy, izz = foot.inertia()  # long axis of the foot is x: swap y and x
    foot_inertia = np.diag([iyy, ixx, izz])
    talus = _body(f"talus_{s}", 0.10 * foot.mass, np.zeros(3), 0.10 * foot_inertia)
    calcn = _body(f"calcn_{s}", 0.75 * foot.mass, _mirror_np(foot_com - sub, s), 0.75 * foot_inertia)
    toes_com = 0.5 * (mtp + toe)
    toes = _body(f"toes_{s}", 0.15 * foot.mass, _mirror_np(toes_com - mtp, s), 0.05 * foot_inertia)
    for b in (femur, tibia, talus, calcn, toes):
        model.addBody(b)

    hip = _mirror_np(hip_r, s)
    for wrap_name, (radius, quadrant, _) in _HIP_WRAPS.items():
        wrap = osim.WrapCylinder()
        wrap.setName(f"{wrap_name}_{s}")
        wrap.set_radius(radius * geo.pelvis)
        wrap.set_length(0.2 * geo.pelvis)
        wrap.set_translation(osim.Vec3(*hip))
        wrap.set_quadrant(quadrant)
        pelvis.addWrapObject(wrap)
    model.addJoint(_make_custom_joint(
        f"hip_{s}", pelvis, osim.Vec3(*hip), femur, osim.Vec3(0),
        [(f"hip_flexion_{s}", osim.Vec3(0, 0, 1)), (f"hip_adduction_{s}", _mirror_axis((1, 0, 0), s)),
         (f"hip_rotation_{s}", _mirror_axis((0, 1, 0), s))],
    ))
    model.addJoint(_make_custom_joint(
        f"walker_knee_{s}", femur, osim.Vec3(*knee), tibia, osim.Vec3(0),
        [(f"knee_angle_{s}", osim.Vec3(0, 0, -1))],
    ))
    model.addJoint(_make_custom_joint(
        f"ankle_{s}", tibia, osim.Vec3(*ankle), talus, osim.Vec3(0),
        [(f"ankle_angle_{s}", osim.Vec3(0, 0, 1))],
    ))
    model.addJoint(_make_custom_joint(
        f"subtalar_{s}", talus, _mirror(sub, s), calcn, osim.Vec3(0),
        [(f"subtalar_angle_{s}", _mirror_axis((0.78718, 0.60475, -0.12095), s))],
    ))
    model.addJoint(_make_custom_joint(
        f"mtp_{s}", calcn, _mirror(mtp - sub, s), toes, osim.Vec3(0),
        [(f"mtp_angle_{s}", osim.Vec3(0, 0, 1))],
    ))
    for name in ("heel", "met1", "met5"):
        _add_station(model, calcn, f"{name}_{s}", _mirror_np(_foot_point(name, geo) - sub, s))
    _add_station(model, toes, f"toe_{s}", _mirror_np(_foot_point("toe", geo) - mtp, s))
    # the quadriceps wrap over a cylinder about the knee axis (the femoral
    # condyles and patella), on its anterior side
    wrap = osim.WrapCylinder()
    wrap.setName(f"KnExt_at_fem_{s}")
    wrap.set_radius(_KNEE_WRAP_RADIUS * geo.pelvis)  # joint size follows stature
    wrap.set_length(0.12 * geo.pelvis)
    wrap.set_translation(osim.Vec3(*knee))
    wrap.set_quadrant(_KNEE_WRAP_QUADRANT)
    femur.addWrapObject(wrap)


def _mirror_np(p: Sequence[float], side: str) -> np.ndarray:
    x, y, z = p
    return np.array([x, y, z if side == "r" else -z], dtype=float)


def _add_arm(model: osim.Model, torso: osim.Body, side: str, seg: dict[str, _Segment], geo: _Geometry,
             torso_len: float) -> None:
    s = side
    ua, fa, hd = seg["upper_arm"], seg["forearm"], seg["hand"]
    shoulder = _mirror_np((0.003 * geo.torso, torso_len - 0.05 * geo.torso, 0.17 * geo.torso), s)
    elbow = np.array([0.0, -ua.length, 0.0])
    radioulnar = _mirror_np((0.0, -0.012 * geo.forearm, 0.020 * geo.forearm), s)
    wrist = _mirror_np((-0.005 * geo.forearm, -fa.length + 0.012 * geo.forearm, -0.012 * geo.forearm), s)
    humerus = _body(f"humerus_{s}", *_long_segment(ua, np.zeros(3), elbow))
    fm, fc, fi = _long_segment(fa, np.zeros(3), np.array([0.0, -fa.length, 0.0]))
    ulna = _body(f"ulna_{s}", 0.5 * fm, fc, 0.5 * fi)
    radius = _body(f"radius_{s}", 0.5 * fm, fc - radioulnar, 0.5 * fi)
    hand = _body(f"hand_{s}", *_long_segment(hd, np.zeros(3), np.array([0.0, -hd.length, 0.0])))
    for b in (humerus, ulna, radius, hand):
        model.addBody(b)
    model.addJoint(_make_custom_joint(
        f"acromial_{s}", torso, osim.Vec3(*shoulder), humerus, osim.Vec3(0),
        [(f"arm_flex_{s}", osim.Vec3(0, 0, 1)), (f"arm_add_{s}", _mirror_axis((1, 0, 0), s)),
         (f"arm_rot_{s}", _mirror_axis((0, 1, 0), s))],
    ))
    model.addJoint(_make_custom_joint(
        f"elbow_{s}", humerus, osim.Vec3(*elbow), ulna, osim.Vec3(0),
        [(f"elbow_flex_{s}", osim.Vec3(0, 0, 1))],
    ))
    model.addJoint(_make_custom_joint(
        f"radioulnar_{s}", ulna, osim.Vec3(*radioulnar), radius, osim.Vec3(0),
        [(f"pro_sup_{s}", _mirror_axis((0, 1, 0), s))],
    ))
    model.addJoint(osim.WeldJoint(f"radius_hand_{s}", radius, osim.Vec3(*wrist), osim.Vec3(0),
                                  hand, osim.Vec3(0), osim.Vec3(0)))
    prefix = "r_" if s == "r" else "L_"
    model.addMarker(osim.Marker(f"{prefix}shoulder_study", torso, osim.Vec3(*(shoulder + np.array([0, 0.02, 0])))))
    model.addMarker(osim.Marker(f"{prefix}lelbow_study", humerus,
                                osim.Vec3(*(elbow + _mirror_np((0, 0, 0.035 * geo.upper_arm), s)))))
    model.addMarker(osim.Marker(f"{prefix}melbow_study", humerus,
                                osim.Vec3(*(elbow + _mirror_np((0, 0, -0.035 * geo.upper_arm), s)))))
    model.addMarker(osim.Marker(f"{prefix}lwrist_study", radius,
                                osim.Vec3(*(wrist + _mirror_np((0, 0, 0.03 * geo.forearm), s)))))
    model.addMarker(osim.Marker(f"{prefix}mwrist_study", radius,
                                osim.Vec3(*(wrist + _mirror_np((0, 0, -0.03 * geo.forearm), s)))))


def _template_point(body: str, p: Sequence[float], side: str, geo: _Geometry) -> tuple[str, np.ndarray]:
    """Map a template point to (body name, location in that body) for ``side``."""
    # pelvis: uniform with stature; femur and tibia: along the bone with the
    # segment length, across it with stature (bone and joint widths)
    width = geo.pelvis
    scale = {_P: np.array([width, width, width]), _F: np.array([width, geo.femur, width]),
             _T: np.array([width, geo.tibia, width])}
    if body in scale:
        return f"{body}_{side}" if body != _P else "pelvis", _mirror_np(np.asarray(p) * scale[body], side)
    foot_p = np.asarray(p, dtype=float) * geo.foot
    if body in (_C, "calcn_foot"):
        return f"calcn_{side}", _mirror_np(foot_p - _foot_point("subtalar", geo), side)
    if body in (_O, "toes_foot"):
        return f"toes_{side}", _mirror_np(foot_p - _foot_point("mtp", geo), side)
    raise KeyError(body)


def _add_marker(model: osim.Model, name: str, body: str, p: Sequence[float], side: str, geo: _Geometry) -> None:
    body_name, loc = _template_point(body, p, side, geo)
    model.addMarker(osim.Marker(name, model.getBodySet().get(body_name), osim.Vec3(*loc)))


def _add_muscles(model: osim.Model, geo: _Geometry, mass: float, strength: float) -> None:
    # Maximum isometric force in proportion to body mass: muscle volume grows with
    # mass x height (Handsfield et al. 2014) and fibre length with height, so
    # the physiological cross-section, and with it the force, grows with mass.
    force_scale = strength * mass / _REFERENCE_MASS
    length_scale = 0.5 * (geo.femur + geo.tibia)
    bodies = model.getBodySet()
    for side in SIDES:
        for base in MUSCLE_BASES:
            f0, lopt, penn = _MUSCLE_PARAMS[base]
            m = osim.DeGrooteFregly2016Muscle()
            m.setName(f"{base}_{side}")
            m.set_max_isometric_force(f0 * force_scale)
            m.set_optimal_fiber_length(lopt * length_scale * _FIBRE_LENGTH_FACTOR.get(base, 1.0))
            m.set_tendon_slack_length(0.1)  # replaced by _set_tendon_slack_lengths
            m.set_pennation_angle_at_optimal(math.radians(penn))
            m.set_ignore_tendon_compliance(True)
            m.set_ignore_activation_dynamics(False)
            m.set_max_contraction_velocity(10.0)
            m.set_passive_fiber_strain_at_one_norm_force(PASSIVE_STRAIN_AT_ONE_NORM_FORCE)
            for i, (body, p) in enumerate(_MUSCLE_PATHS[base]):
                body_name, loc = _template_point(body, p, side, geo)
                m.addNewPathPoint(f"{base}_{side}-P{i + 1}", bodies.get(body_name), osim.Vec3(*loc))
            if base in _QUADRICEPS:
                wrap = bodies.get(f"femur_{side}").getWrapObject(f"KnExt_at_fem_{side}")
                m.updGeometryPath().addPathWrap(wrap)
            for wrap_name, (_, _, members) in _HIP_WRAPS.items():
                if base in members:
                    m.updGeometryPath().addPathWrap(bodies.get("pelvis").getWrapObject(f"{wrap_name}_{side}"))
            model.addForce(m)


def _reference_state(model: osim.Model) -> osim.State:
    state = model.initSystem()
    for side in SIDES:
        for base, deg in REFERENCE_POSE.items():
            model.getCoordinateSet().get(f"{base}_{side}").setValue(state, math.radians(deg), False)
    model.realizePosition(state)
    return state


def _set_tendon_slack_lengths(model: osim.Model) -> None:
    """Fibres at optimal length in :data:`REFERENCE_POSE` (rigid tendon)."""
    state = _reference_state(model)
    lengths = {}
    muscles = model.getMuscles()
    for i in range(muscles.getSize()):
        m = muscles.get(i)
        lengths[m.getName()] = m.getLength(state)
    for i in range(muscles.getSize()):
        m = osim.DeGrooteFregly2016Muscle.safeDownCast(muscles.get(i))
        fiber_along = m.get_optimal_fiber_length() * math.cos(m.get_pennation_angle_at_optimal())
        m.set_tendon_slack_length(max(lengths[m.getName()] - fiber_along, 0.01))


def _set_coordinate_defaults(model: osim.Model) -> None:
    coords = model.getCoordinateSet()
    names = [coords.get(i).getName() for i in range(coords.getSize())]
    if sorted(names) != sorted(COORDINATES):
        raise RuntimeError(f"model coordinates {names} differ from the 33 canonical coordinates")
    for name in names:
        c = coords.get(name)
        lo, hi = _coord_range(name)
        c.setRangeMin(lo)
        c.setRangeMax(hi)
        c.set_clamped(False)
        c.setDefaultValue(0.0)
    coords.get("pelvis_ty").setDefaultValue(1.0)


def save_model(model: osim.Model, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` (``.osim``) atomically and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".osim", dir=path.parent)
    os.close(fd)
    try:
        if not model.printToXML(tmp):
            raise OSError(f"OpenSim could not write the model to {tmp}")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def default_model_path() -> Path:
    """The generic (1.75 m, 70 kg, male) model as an ``.osim`` file, written once
    to ``.cache/bige/`` under the repository and reused afterwards."""
    # keyed by this module's source, so that a changed model is rebuilt
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
    path = _CACHE_DIR / f"bige_synthetic_generic_{digest}.osim"
    if not path.exists():
        save_model(build_model(), path)
    return path
