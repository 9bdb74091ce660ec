"""Names and numbers every part of BIGE agrees on, defined once.

The coordinate order is the one the method uses (LaiUhlrich2022 model, 33
coordinates). Rotations are stored in degrees on disk and in datasets; the three
pelvis translations are in metres.
"""
from __future__ import annotations

from pathlib import Path

COORDINATES: tuple[str, ...] = (
    "pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz",
    "hip_flexion_l", "hip_adduction_l", "hip_rotation_l",
    "hip_flexion_r", "hip_adduction_r", "hip_rotation_r",
    "knee_angle_l", "knee_angle_r", "ankle_angle_l", "ankle_angle_r",
    "subtalar_angle_l", "subtalar_angle_r", "mtp_angle_l", "mtp_angle_r",
    "lumbar_extension", "lumbar_bending", "lumbar_rotation",
    "arm_flex_l", "arm_add_l", "arm_rot_l", "arm_flex_r", "arm_add_r", "arm_rot_r",
    "elbow_flex_l", "elbow_flex_r", "pro_sup_l", "pro_sup_r",
)
"""The 33 kinematic coordinates in canonical order."""

TRANSLATIONS: frozenset[str] = frozenset({"pelvis_tx", "pelvis_ty", "pelvis_tz"})
"""Coordinates measured in metres; every other coordinate is a rotation (degrees)."""

COORD_INDEX: dict[str, int] = {name: i for i, name in enumerate(COORDINATES)}
ROTATION_MASK: tuple[bool, ...] = tuple(name not in TRANSLATIONS for name in COORDINATES)
"""True where the canonical coordinate is an angle."""

N_COORDS: int = len(COORDINATES)

MUSCLE_BASES: tuple[str, ...] = (
    "addbrev", "addlong", "addmagDist", "addmagIsch", "addmagMid", "addmagProx",
    "bflh", "bfsh", "edl", "ehl", "fdl", "fhl", "gaslat", "gasmed",
    "glmax1", "glmax2", "glmax3", "glmed1", "glmed2", "glmed3",
    "glmin1", "glmin2", "glmin3", "grac", "iliacus", "perbrev", "perlong",
    "piri", "psoas", "recfem", "sart", "semimem", "semiten", "soleus", "tfl",
    "tibant", "tibpost", "vasint", "vaslat", "vasmed",
)
"""The 40 muscles per side of LaiUhlrich2022 / Rajagopal2015."""

MUSCLES: tuple[str, ...] = tuple(f"{base}_{side}" for side in ("r", "l") for base in MUSCLE_BASES)
"""All 80 muscle names: the 40 right-side muscles, then the 40 left-side ones."""

GUIDED_MUSCLES: tuple[str, ...] = ("vasmed_r", "vasmed_l")
"""Muscles whose peak activation guidance constrains by default."""

FRAME_RATE: float = 60.0
"""Sampling rate of MCS kinematics, Hz."""

CLIP_LENGTH: int = 196
"""Frames per repetition after time normalisation."""

PEAK_WINDOW_S: float = 0.1
"""Default window (s, real time) of the moving average whose peak is held to
the activation band (``--peak-window``): a sustained activation, not a spike.
Muscle activation follows neural excitation with time constants of ~15 ms
(activation) and ~60 ms (deactivation) (De Groote et al. 2016, Ann Biomed Eng
44:2922; Thelen 2003, J Biomech Eng 125:70), and EMG envelopes of slow
movements such as squats are smoothed with 50-100 ms moving windows (Konrad
2005, The ABC of EMG, Noraxon). 0.1 s spans both."""

READER_VERSION: int = 3
"""Version of the way repetitions are read from files (parsing, units,
segmentation, resampling). Part of the repetition cache key: bump it when any
of these changes, so no cached result of the old reader is reused."""

MAX_ABS_ROTATION_DEG: float = 360.0
"""Largest plausible magnitude of a joint angle or pelvis rotation, degrees."""

MAX_ABS_TRANSLATION_M: float = 20.0
"""Largest plausible magnitude of a pelvis translation in a laboratory, metres
(millimetres or centimetres read as metres exceed it)."""

KNEE_COORDINATES: tuple[str, str] = ("knee_angle_r", "knee_angle_l")
"""The two knee flexion coordinates (the squat's defining angle)."""

MIN_SQUAT_KNEE_RANGE_DEG: float = 10.0
"""A squat bends the knees by more than this; a whole trial whose knee angles
and every other rotation stay below ``pi`` in magnitude holds radians."""

TEST_SESSIONS: tuple[str, ...] = (
    "349e4383-da38-4138-8371-9a5fed63a56a", "015b7571-9f0b-4db4-a854-68e57640640d",
    "c613945f-1570-4011-93a4-8c8c6408e2cf", "dfda5c67-a512-4ca2-a4b3-6a7e22599732",
    "7562e3c0-dea8-46f8-bc8b-ed9d0f002a77", "275561c0-5d50-4675-9df1-733390cd572f",
    "0e10a4e3-a93f-4b4d-9519-d9287d1d74eb", "a5e5d4cd-524c-4905-af85-99678e1239c8",
    "dd215900-9827-4ae6-a07d-543b8648b1da", "3d1207bf-192b-486a-b509-d11ca90851d7",
    "c28e768f-6e2b-4726-8919-c05b0af61e4a", "fb6e8f87-a1cc-48b4-8217-4e8b160602bf",
    "e6b10bbf-4e00-4ac0-aade-68bc1447de3e", "d66330dc-7884-4915-9dbb-0520932294c4",
    "0d9e84e9-57a4-4534-aee2-0d0e8d1e7c45", "2345d831-6038-412e-84a9-971bc04da597",
    "0a959024-3371-478a-96da-bf17b1da15a9", "ef656fe8-27e7-428a-84a9-deb868da053d",
    "c08f1d89-c843-4878-8406-b6f9798a558e", "d2020b0e-6d41-4759-87f0-5c158f6ab86a",
    "8dc21218-8338-4fd4-8164-f6f122dc33d9",
)
"""The 21 MCS sessions of the published evaluation split."""

DEFAULT_DATA_ROOT: str = "data/mcs_synthetic"
"""Where the embedded synthetic dataset is generated (relative to the repo root)."""

GENERIC_MODEL: str = str(Path(__file__).resolve().parent.parent / "dataset" / "osim" / "LaiUhlrich2022.osim")
"""OpenCap's generic (unscaled) model, shipped with the project (Apache-2.0)."""

COUPLED_COORDINATES: tuple[str, ...] = ("knee_angle_r_beta", "knee_angle_l_beta")
"""OpenCap model coordinates driven by a coupler constraint; never among the 33
(OpenCap IK files store them in radians even under ``inDegrees=yes``)."""

SYMMETRIC_PAIRS: tuple[tuple[str, str], ...] = (
    ("hip_flexion_l", "hip_flexion_r"),
    ("knee_angle_l", "knee_angle_r"),
    ("ankle_angle_l", "ankle_angle_r"),
)
"""Left/right coordinate pairs used for asymmetry losses and metrics."""


PUBLISHED_OMEGA_COORDINATES: tuple[str, ...] = (
    "hip_flexion_l", "hip_flexion_r", "knee_angle_l", "knee_angle_r",
    "ankle_angle_l", "ankle_angle_r", "pelvis_tilt",
)
"""The 7 coordinates whose angular velocity the published protocol averages
(hip, knee and ankle flexion of both sides, and pelvis tilt)."""
