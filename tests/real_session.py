"""An MCS-layout dataset root assembled from the real OpenCap files in
``tests/data/real_opencap`` (no file of this project's making among the
motion data):

- ``OpenSimData/Kinematics/SQT01.mot``: OpenCap's IK of five squats
  (100 Hz, 35 columns with the ``*_beta`` couplers, right leg first);
- ``OpenSimData/Dynamics/SQT01_segment_1/kinematics_activations_SQT01_segment_1_muscle_driven.mot``:
  OpenCap's muscle-driven simulation of one squat (older header, left leg
  first, ~50 Hz uneven mesh, rows ending in a tab);
- ``OpenSimData/Model/LaiArnoldModified2017_poly_withArms_weldHand_scaled.osim``:
  the generic LaiUhlrich2022 model scaled by OpenSim's ``ScaleTool`` to the
  subject of the muscle-driven file (1.78 m, 72 kg);
- ``MarkerData/SQT01.trc``: OpenSim's body origins of the posed model at every IK frame
  (the generic model has no markers);
- ``squat-segmentation-data/<session>.npy`` cut at the knee-flexion minima
  between squats (frames of the Kinematics file), and a ``split.json``.

The sessions are copies of the one real trial under different ids: the
point is that every reader and stage meets real files, not that the models
learn anything from them.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from utils.constants import GENERIC_MODEL
from utils.motion_io import read_motion, write_trc

REAL = Path(__file__).parent / "data" / "real_opencap"
IK_FILE = REAL / "opencap-processing" / "squats1_videoAndMocap.mot"
MUSCLE_DRIVEN_FILE = REAL / "opencap-to-nwb" / "Squats_0_1_kinematics_activations.mot"
MODEL_NAME = "LaiArnoldModified2017_poly_withArms_weldHand_scaled.osim"
SUBJECT_HEIGHT_M, SUBJECT_MASS_KG = 1.78, 72.0


def segment_squats(knee_deg: np.ndarray, threshold: float = 10.0) -> list[tuple[int, int]]:
    """Repetitions of a squat trial: each region where the knee flexes past
    ``threshold`` degrees, extended to the knee minimum between neighbours."""
    above = knee_deg > threshold
    edges = np.flatnonzero(np.diff(above.astype(int)))
    starts = [int(e) + 1 for e in edges if not above[e]]
    ends = [int(e) + 1 for e in edges if above[e]]
    if above[0]:
        starts.insert(0, 0)
    if above[-1]:
        ends.append(len(knee_deg))
    bounds = []
    for k, (s, e) in enumerate(zip(starts, ends)):
        lo = 0 if k == 0 else ends[k - 1]
        hi = len(knee_deg) if k == len(starts) - 1 else starts[k + 1]
        bounds.append((lo + int(np.argmin(knee_deg[lo:s + 1])), e + int(np.argmin(knee_deg[e - 1:hi]))))
    return bounds


def scaled_model(dest: Path) -> Path:
    """The generic model scaled to the real subject by OpenSim's ScaleTool."""
    from utils.osim_scale import scale_model

    return scale_model(GENERIC_MODEL, dest, SUBJECT_HEIGHT_M, SUBJECT_MASS_KG)


def opensim_markers(model_path: Path, ik_path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Times, marker names and (T, M, 3) positions posed by OpenSim at every
    frame of an IK file (its coupled coordinates included): the model's
    markers, or, as OpenCap's generic model has none, the origin of every
    body, named after the body."""
    import opensim as osim

    from utils.osim_log import opensim_quiet

    with opensim_quiet():
        model = osim.Model(str(model_path))
        state = model.initSystem()
    motion = read_motion(ik_path)
    coords = model.getCoordinateSet()
    names = [coords.get(i).getName() for i in range(coords.getSize())]
    values = motion.columns(names).copy()
    rotational = np.array([coords.get(i).getMotionType() == 1 for i in range(coords.getSize())])
    coupled = np.array([n.endswith("_beta") for n in names])  # radians even under inDegrees=yes
    values[:, rotational & ~coupled] = np.deg2rad(values[:, rotational & ~coupled])
    markers = model.getMarkerSet()
    if markers.getSize():
        points = [markers.get(j) for j in range(markers.getSize())]
        where = [lambda s, m=m: m.getLocationInGround(s) for m in points]
    else:
        bodies = model.getBodySet()
        points = [bodies.get(j) for j in range(bodies.getSize())]
        where = [lambda s, b=b: b.getPositionInGround(s) for b in points]
    out = np.empty((motion.n_frames, len(points), 3))
    for t in range(motion.n_frames):
        for i in range(len(names)):
            coords.get(i).setValue(state, float(values[t, i]), False)
        model.realizePosition(state)
        for j, locate in enumerate(where):
            p = locate(state)
            out[t, j] = (p.get(0), p.get(1), p.get(2))
    return motion.times, [p.getName() for p in points], out


def build_real_root(root: Path, n_sessions: int = 4, n_test: int = 1) -> Path:
    """Assemble the MCS-layout root described in the module docstring; returns ``root``."""
    root = Path(root)
    seg_dir = root / "squat-segmentation-data"
    seg_dir.mkdir(parents=True, exist_ok=True)
    knee = read_motion(IK_FILE).column("knee_angle_r")
    segments = segment_squats(knee)
    model = scaled_model(root / "_model" / MODEL_NAME)
    times, names, positions = opensim_markers(model, IK_FILE)
    ids = [f"real{i:02d}" for i in range(n_sessions)]
    for sid in ids:
        base = root / "Data" / sid
        (base / "OpenSimData" / "Kinematics").mkdir(parents=True)
        shutil.copyfile(IK_FILE, base / "OpenSimData" / "Kinematics" / "SQT01.mot")
        dyn = base / "OpenSimData" / "Dynamics" / "SQT01_segment_1"
        dyn.mkdir(parents=True)
        shutil.copyfile(MUSCLE_DRIVEN_FILE, dyn / "kinematics_activations_SQT01_segment_1_muscle_driven.mot")
        (base / "OpenSimData" / "Model").mkdir(parents=True)
        shutil.copyfile(model, base / "OpenSimData" / "Model" / MODEL_NAME)
        write_trc(base / "MarkerData" / "SQT01.trc", times, names, positions)
        np.save(seg_dir / f"{sid}.npy", {"SQT01": segments}, allow_pickle=True)
    (root / "split.json").write_text(json.dumps({"train": ids[:-n_test], "test": ids[-n_test:]}))
    return root
