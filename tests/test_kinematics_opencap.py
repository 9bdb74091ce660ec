"""Forward kinematics of OpenCap's real models against OpenSim over a real squat.

The generic ``LaiUhlrich2022.osim`` shipped in dataset/osim and a model scaled
from it here with OpenSim's ScaleTool (1.78 m / 72 kg like the real subject,
non-uniform factors on some segments), both with markers added on every body,
posed with OpenCap's IK of a squat (tests/data/real_opencap). Every body
origin and every marker must agree with OpenSim; the knee's coupled
``knee_angle_*_beta`` are set in OpenSim from its own coupler constraints.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import opensim as osim
import pytest
import torch

from utils.constants import COORDINATES, COUPLED_COORDINATES, GENERIC_MODEL, TRANSLATIONS
from utils.kinematics import ForwardKinematics
from utils.motion_io import read_motion
from utils.osim_scale import scale_model

SQUAT = Path(__file__).parent / "data" / "real_opencap" / "opencap-processing" / "squats1_videoAndMocap.mot"
N_FRAMES = 40
MARKER_OFFSETS = ((0.04, -0.08, 0.03), (-0.05, 0.06, -0.07))
"""Where the test puts two markers on every body (body frame, metres)."""

SEGMENT_FACTORS = {
    "pelvis": (1.08, 1.02, 1.10), "femur_r": (1.03, 1.09, 1.03), "femur_l": (1.01, 1.06, 1.01),
    "tibia_r": (1.0, 1.07, 1.0), "torso": (1.05, 1.08, 1.05), "humerus_l": 0.97,
}


def _quiet():
    osim.Logger.setLevelString("error")


def _with_markers(src: str, dst: Path) -> Path:
    """Copy of the model at ``src`` with two markers on every body."""
    _quiet()
    model = osim.Model(src)
    bodies = model.getBodySet()
    for i in range(bodies.getSize()):
        body = bodies.get(i)
        for k, offset in enumerate(MARKER_OFFSETS):
            model.addMarker(osim.Marker(f"{body.getName()}_m{k}", body, osim.Vec3(*offset)))
    model.finalizeConnections()
    model.printToXML(str(dst))
    return dst


@pytest.fixture(scope="module")
def squat() -> tuple[np.ndarray, np.ndarray]:
    """40 frames spanning the squat: (40, 33) canonical coordinates and the
    file's (40, 2) beta columns (radians despite inDegrees=yes)."""
    motion = read_motion(SQUAT)
    frames = np.linspace(0, motion.n_frames - 1, N_FRAMES).round().astype(int)
    q = motion.coordinates(COORDINATES)[frames]
    beta = np.stack([motion.column(name)[frames] for name in COUPLED_COORDINATES], axis=1)
    assert q[:, COORDINATES.index("knee_angle_r")].max() > 80.0  # the deep part of the squat is sampled
    return q, beta


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("opencap_models")
    generic = _with_markers(GENERIC_MODEL, folder / "generic_markers.osim")
    scaled = scale_model(generic, folder / "scaled.osim", 1.78, 72.0, segment_factors=SEGMENT_FACTORS)
    return {"generic": generic, "scaled": scaled}


def _opensim_reference(path: Path, q: np.ndarray) -> tuple[list[str], np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Body names, body origins (F, B, 3), marker names, marker positions
    (F, M, 3) and the coupled coordinates OpenSim's couplers give (F, 2)."""
    _quiet()
    model = osim.Model(str(path))
    state = model.initSystem()
    coords = model.getCoordinateSet()
    bodies, markers = model.getBodySet(), model.getMarkerSet()
    body_names = [bodies.get(i).getName() for i in range(bodies.getSize())]
    marker_names = [markers.get(i).getName() for i in range(markers.getSize())]
    couplers = [osim.CoordinateCouplerConstraint.safeDownCast(model.getConstraintSet().get(i))
                for i in range(model.getConstraintSet().getSize())]
    origins = np.zeros((len(q), len(body_names), 3))
    marks = np.zeros((len(q), len(marker_names), 3))
    coupled = np.zeros((len(q), len(COUPLED_COORDINATES)))
    for f, row in enumerate(q):
        for i, name in enumerate(COORDINATES):
            coords.get(name).setValue(state, row[i] if name in TRANSLATIONS else math.radians(row[i]), False)
        for cc in couplers:  # the dependent coordinate from OpenSim's own coupler function
            independent = coords.get(cc.getIndependentCoordinateNames().get(0)).getValue(state)
            scale = osim.PropertyHelper.getValueDouble(cc.getPropertyByName("scale_factor"))
            value = scale * cc.getFunction().calcValue(osim.Vector(1, independent))
            coords.get(cc.getDependentCoordinateName()).setValue(state, value, False)
            coupled[f, COUPLED_COORDINATES.index(cc.getDependentCoordinateName())] = value
        model.realizePosition(state)
        for b, name in enumerate(body_names):
            p = bodies.get(name).getPositionInGround(state)
            origins[f, b] = [p.get(0), p.get(1), p.get(2)]
        for m, name in enumerate(marker_names):
            p = markers.get(name).getLocationInGround(state)
            marks[f, m] = [p.get(0), p.get(1), p.get(2)]
    return body_names, origins, marker_names, marks, coupled


def test_scaled_model_holds_what_opencap_models_hold(models):
    """The scaled model has the joints and functions MCS models have: PinJoints,
    WeldJoints, CustomJoints with SimmSpline, PolynomialFunction, LinearFunction,
    Constant, MultiplierFunctions with and without a coordinate, couplers."""
    root = ET.parse(models["scaled"]).getroot()
    tags = {element.tag for element in root.iter()}
    assert {"PinJoint", "WeldJoint", "CustomJoint", "SimmSpline", "PolynomialFunction", "LinearFunction",
            "Constant", "MultiplierFunction", "CoordinateCouplerConstraint"} <= tags
    with_coordinate = without_coordinate = 0
    for axis in root.iter("TransformAxis"):
        if axis.find("MultiplierFunction") is not None:
            if (axis.findtext("coordinates") or "").strip():
                with_coordinate += 1
            else:
                without_coordinate += 1
    assert with_coordinate >= 8 and without_coordinate >= 8, (with_coordinate, without_coordinate)


@pytest.mark.parametrize("which", ["generic", "scaled"])
def test_every_body_origin_and_marker_matches_opensim_over_a_real_squat(models, squat, which):
    q, file_beta = squat
    body_names, origins, marker_names, marks, coupled = _opensim_reference(models[which], q)
    assert len(marker_names) == 2 * len(body_names) == 44
    # OpenSim's couplers give the file's beta columns (radians) back
    np.testing.assert_allclose(coupled, file_beta, atol=1e-6)

    fk = ForwardKinematics.from_osim(models[which], include_markers=True).double()
    assert fk.coupled_names == COUPLED_COORDINATES
    assert list(fk.body_names) == body_names
    _, ours_origins = fk.body_transforms(torch.as_tensor(q))
    ours_marks = fk(torch.as_tensor(q), points=fk.point_indices(marker_names))
    body_error = np.abs(ours_origins.numpy() - origins).max()
    marker_error = np.abs(ours_marks.numpy() - marks).max()
    assert body_error < 1e-6 and marker_error < 1e-6, (body_error, marker_error)

    # float32 stays within the 1 mm the project needs
    fk32 = ForwardKinematics.from_osim(models[which], include_markers=True)
    marks32 = fk32(torch.as_tensor(q, dtype=torch.float32), points=fk32.point_indices(marker_names))
    assert np.abs(marks32.double().numpy() - marks).max() < 1e-3


def test_patella_follows_the_knee_through_the_coupler(models, squat):
    """The patella moves with knee flexion only through knee_angle_r_beta: its
    position relative to the femur changes over the squat and its gradient
    with respect to knee_angle_r is non-zero."""
    q, _ = squat
    fk = ForwardKinematics.from_osim(models["scaled"]).double()
    patella = fk.point_index("patellofemoral_r")
    x = torch.as_tensor(q).clone().requires_grad_(True)
    fk(x, points=[patella]).sum().backward()
    assert float(x.grad[:, COORDINATES.index("knee_angle_r")].abs().min()) > 0
    R, o = fk.body_transforms(torch.as_tensor(q))
    femur, pat = fk.body_names.index("femur_r"), fk.body_names.index("patella_r")
    local = torch.einsum("fji,fj->fi", R[:, femur], o[:, pat] - o[:, femur])  # patella origin in the femur frame
    assert float((local.max(0).values - local.min(0).values).norm()) > 0.02


def test_gradients_through_splines_polynomials_and_couplers_are_exact(models, squat):
    """``gradcheck`` on points hanging from the patella (coupler + spline), the
    knee (polynomials) and the toes (pin joints) of the scaled model."""
    q, _ = squat
    fk = ForwardKinematics.from_osim(models["scaled"]).double()
    points = fk.point_indices(["patellofemoral_r", "patellofemoral_l", "ankle_r", "mtp_l"])
    x = torch.as_tensor(q[N_FRAMES // 2:N_FRAMES // 2 + 1]).clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: fk(c, points=points), (x,))
