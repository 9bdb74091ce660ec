"""Differentiable forward kinematics (utils/kinematics.py) against OpenSim."""
from __future__ import annotations

import math

import numpy as np
import opensim as osim
import pytest
import torch

from dataset.synthetic.osim_model import build_model, save_model
from utils.constants import COORDINATES, TRANSLATIONS
from utils.kinematics import (FOOT_CONTACT_POINTS, JOINT_POINT_NAMES, STICK_SEGMENTS, AxisRotation, ForwardKinematics,
                              ModelError, coordinate_axis, rotation_about_axis)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("fk") / "subject.osim"
    return save_model(build_model(1.63, 58.0, "female", 1.1), path)


@pytest.fixture(scope="module")
def fk(model_path):
    return ForwardKinematics.from_osim(model_path).double()


def _random_poses(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.uniform(-90.0, 90.0, size=(n, len(COORDINATES)))
    for i, name in enumerate(COORDINATES):
        if name in TRANSLATIONS:
            q[:, i] = rng.uniform(-2.0, 2.0, size=n)
    return q


def _opensim_points(model, state, names: tuple[str, ...]) -> np.ndarray:
    out = np.zeros((len(names), 3))
    index = {n: i for i, n in enumerate(names)}
    joints = model.getJointSet()
    for j in range(joints.getSize()):
        joint = joints.get(j)
        name = JOINT_POINT_NAMES.get(joint.getName(), joint.getName())
        p = joint.getChildFrame().getPositionInGround(state)
        out[index[name]] = [p.get(0), p.get(1), p.get(2)]
    for comp in model.getComponentsList():
        if comp.getConcreteClassName() == "Station" and comp.getName() in index:
            p = osim.Station.safeDownCast(comp).findLocationInFrame(state, model.getGround())
            out[index[comp.getName()]] = [p.get(0), p.get(1), p.get(2)]
    return out


def test_forward_kinematics_matches_opensim_on_random_poses(model_path, fk):
    model = osim.Model(str(model_path))
    state = model.initSystem()
    poses = _random_poses(25, seed=3)
    ours = fk(torch.as_tensor(poses)).numpy()
    coords = model.getCoordinateSet()
    worst = 0.0
    for k, q in enumerate(poses):
        for i, name in enumerate(COORDINATES):
            coords.get(name).setValue(state, q[i] if name in TRANSLATIONS else math.radians(q[i]), False)
        model.realizePosition(state)
        ref = _opensim_points(model, state, fk.point_names)
        worst = max(worst, float(np.abs(ours[k] - ref).max()))
        # body origins too
        R, o = fk.body_transforms(torch.as_tensor(q))
        for b, body_name in enumerate(fk.body_names):
            p = model.getBodySet().get(body_name).getPositionInGround(state)
            worst = max(worst, float(np.abs(o[b].numpy() - [p.get(0), p.get(1), p.get(2)]).max()))
        com = model.calcMassCenterPosition(state)
        ours_com = fk.center_of_mass(torch.as_tensor(q)).numpy()
        worst = max(worst, float(np.abs(ours_com - [com.get(0), com.get(1), com.get(2)]).max()))
    assert worst < 1e-5, f"forward kinematics differs from OpenSim by {worst:.3g} m"


def test_point_names_cover_joint_centres_contacts_and_stick_figure(fk):
    for name in ("pelvis", "hip_r", "knee_r", "ankle_r", "mtp_r", "hip_l", "knee_l", "ankle_l", "mtp_l",
                 "torso", "neck", "head", "shoulder_r", "elbow_r", "wrist_r", "shoulder_l", "elbow_l", "wrist_l",
                 *FOOT_CONTACT_POINTS):
        assert fk.point_names[fk.point_index(name)] == name
    assert [fk.point_names[i] for i in fk.foot_contact_indices()] == list(FOOT_CONTACT_POINTS)
    for a, b in STICK_SEGMENTS:
        fk.point_index(a), fk.point_index(b)
    assert len(fk.stick_segments()) == len(STICK_SEGMENTS)
    with pytest.raises(KeyError, match="no point named"):
        fk.point_index("nose")


def test_batched_float32_float64_and_differentiable(fk):
    poses = torch.as_tensor(_random_poses(12, seed=5)).reshape(3, 4, len(COORDINATES))
    out64 = fk(poses)
    assert out64.shape == (3, 4, len(fk.point_names), 3) and out64.dtype == torch.float64
    fk32 = ForwardKinematics.from_model(build_model(1.63, 58.0, "female", 1.1))
    out32 = fk32(poses.float())
    assert out32.dtype == torch.float32
    assert torch.allclose(out32.double(), out64, atol=1e-4)
    x = poses.clone().requires_grad_(True)
    fk(x)[..., fk.point_index("heel_r"), 1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    toe = fk.point_index("toe_l")
    assert torch.autograd.gradcheck(lambda c: fk(c)[..., toe, :], (poses[0, :1].clone().requires_grad_(True),))


def test_selected_points_equal_the_full_computation_and_skip_unneeded_bodies(fk):
    """``fk(x, points=...)`` (what guidance uses for the feet) returns exactly
    those rows of the full result, computing only the bodies they hang from."""
    poses = torch.as_tensor(_random_poses(10, seed=11)).reshape(2, 5, len(COORDINATES))
    feet = fk.foot_contact_indices()
    full = fk(poses)
    torch.testing.assert_close(fk(poses, points=feet), full[..., feet, :], rtol=0, atol=1e-12)
    some = [fk.point_index("toe_l"), fk.point_index("heel_r"), fk.point_index("toe_l")]
    torch.testing.assert_close(fk(poses, points=some), full[..., some, :], rtol=0, atol=1e-12)
    bodies = [fk.body_names[b] for b in fk.bodies_of_points(feet)]
    assert "pelvis" in bodies and "calcn_r" in bodies and "calcn_l" in bodies
    assert "torso" not in bodies and len(bodies) < len(fk.body_names)
    x = poses.clone().requires_grad_(True)
    fk(x, points=feet)[..., 1].sum().backward()
    knee = COORDINATES.index("knee_angle_r")
    assert float(x.grad[..., knee].abs().sum()) > 0
    assert float(x.grad[..., COORDINATES.index("lumbar_extension")].abs().sum()) == 0.0


def test_converted_constants_follow_load_state_dict_and_to(fk):
    import copy

    x = torch.randn(4, len(COORDINATES), generator=torch.Generator().manual_seed(3)) * 10
    other = copy.deepcopy(fk)
    other(x), other(x.double())  # convert the constants for both dtypes
    state = other.state_dict()
    state["j1_p_PF"] = state["j1_p_PF"] + 0.05  # move the second joint's parent frame
    other.load_state_dict(state)
    assert torch.allclose(other(x).double(), other(x.double()), atol=1e-5)
    assert not torch.allclose(other(x), fk(x), atol=1e-3)
    assert torch.equal(other.double()(x.double()), other(x.double()))
    assert torch.allclose(other.float()(x).double(), other(x.double()), atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotations_about_coordinate_axes_equal_rodrigues_and_matmul_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(5)
    angle = (torch.rand(500, generator=g, dtype=torch.float64) * 8 - 4).to(dtype)
    other = torch.randn(500, 3, 3, generator=g, dtype=torch.float64).to(dtype)
    for k in range(3):
        for sign in (1.0, -1.0):
            axis = torch.zeros(3, dtype=dtype)
            axis[k] = sign
            assert coordinate_axis(axis.numpy()) == (k, sign)
            rot = AxisRotation(k, sign, angle)
            reference = rotation_about_axis(axis, angle)
            assert torch.equal(rot.matrix(), reference)
            assert torch.equal(rot.right_of(other), torch.matmul(other, reference))
    assert coordinate_axis([0.0, 0.6, 0.8]) is None and coordinate_axis([0.0, 0.0, 0.5]) is None


def test_translations_move_every_point_rigidly(fk):
    q = torch.zeros(2, len(COORDINATES), dtype=torch.float64)
    q[1, COORDINATES.index("pelvis_ty")] = 0.3
    q[1, COORDINATES.index("pelvis_tx")] = -0.2
    p = fk(q)
    assert torch.allclose(p[1] - p[0], torch.tensor([-0.2, 0.3, 0.0], dtype=torch.float64).expand_as(p[0]))


def _save(model: osim.Model, path) -> str:
    model.finalizeConnections()
    model.initSystem()
    model.printToXML(str(path))
    return str(path)


def _two_body_model(joint_factory) -> osim.Model:
    model = osim.Model()
    body = osim.Body("b", 1.0, osim.Vec3(0), osim.Inertia(0.1, 0.1, 0.1))
    model.addBody(body)
    model.addJoint(joint_factory(model, body))
    return model


def test_wrong_input_width_and_unsupported_joint_are_clear_errors(fk, tmp_path):
    with pytest.raises(ValueError, match="33"):
        fk(torch.zeros(2, 30, dtype=torch.float64))
    path = _save(_two_body_model(lambda m, b: osim.BallJoint("ball", m.getGround(), osim.Vec3(0), osim.Vec3(0), b,
                                                                  osim.Vec3(0), osim.Vec3(0))), tmp_path / "ball.osim")
    with pytest.raises(ModelError, match=r"ball\.osim: joint ball is a BallJoint; ForwardKinematics supports "
                                         r"CustomJoint, PinJoint"):
        ForwardKinematics.from_osim(path)
    with pytest.raises(FileNotFoundError):
        ForwardKinematics.from_osim(tmp_path / "missing.osim")
    broken = tmp_path / "broken.osim"
    broken.write_text("<OpenSimDocument Version='40000'><Model name='m'><BodySet>")
    with pytest.raises(ModelError, match=r"broken\.osim: OpenSim could not load the model"):
        ForwardKinematics.from_osim(broken)
    assert issubclass(ModelError, ValueError)


def _custom_joint(name, parent, loc, child, axes):
    st = osim.SpatialTransform()
    for k, (coord, axis, func) in enumerate(axes):
        ta = st.updTransformAxis(k)
        ta.setAxis(osim.Vec3(*axis))
        if coord:
            ta.setCoordinateNames(osim.ArrayStr(coord, 1))
        ta.set_function(func)
    return osim.CustomJoint(name, parent, osim.Vec3(*loc), osim.Vec3(0), child, osim.Vec3(0, 0.02, 0),
                            osim.Vec3(0), st)


def test_joint_functions_other_than_linear_are_tabulated(tmp_path):
    """A knee whose translations are splines of the knee angle (as in
    LaiUhlrich2022's walker knee) is reproduced to 1e-5 m."""
    model = osim.Model()
    thigh = osim.Body("femur_r", 5.0, osim.Vec3(0), osim.Inertia(0.1, 0.1, 0.1))
    shank = osim.Body("tibia_r", 3.0, osim.Vec3(0), osim.Inertia(0.1, 0.1, 0.1))
    model.addBody(thigh)
    model.addBody(shank)
    zero = (None, (1, 0, 0), osim.Constant(0.0))
    model.addJoint(_custom_joint("hip_r", model.getGround(), (0, 1, 0), thigh, [
        ("hip_flexion_r", (0, 0, 1), osim.LinearFunction(1.0, 0.0)), (None, (1, 0, 0), osim.Constant(0.0)),
        (None, (0, 1, 0), osim.Constant(0.0)), zero, (None, (0, 1, 0), osim.Constant(0.0)),
        (None, (0, 0, 1), osim.Constant(0.0))]))
    spline_x, spline_y = osim.SimmSpline(), osim.SimmSpline()
    for angle in np.linspace(-0.5, 2.7, 17):
        spline_x.addPoint(angle, 0.01 * math.sin(2 * angle))
        spline_y.addPoint(angle, -0.4 + 0.005 * angle * angle)
    model.addJoint(_custom_joint("walker_knee_r", thigh, (0, 0, 0), shank, [
        ("knee_angle_r", (0, 0, -1), osim.LinearFunction(1.0, 0.0)), (None, (1, 0, 0), osim.Constant(0.0)),
        (None, (0, 1, 0), osim.Constant(0.0)), ("knee_angle_r", (1, 0, 0), spline_x),
        ("knee_angle_r", (0, 1, 0), spline_y), (None, (0, 0, 1), osim.Constant(0.0))]))
    coord = model.getCoordinateSet().get("knee_angle_r")
    coord.setRangeMin(-0.2)
    coord.setRangeMax(2.4)
    model.initSystem()
    path = tmp_path / "spline_knee.osim"
    model.printToXML(str(path))
    model = osim.Model(str(path))
    state = model.initSystem()
    fk = ForwardKinematics.from_osim(path).double()
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(20):
        q = np.zeros(len(COORDINATES))
        q[COORDINATES.index("hip_flexion_r")] = rng.uniform(-30, 120)
        q[COORDINATES.index("knee_angle_r")] = rng.uniform(-10, 135)
        for name in ("hip_flexion_r", "knee_angle_r"):
            model.getCoordinateSet().get(name).setValue(state, math.radians(q[COORDINATES.index(name)]), False)
        model.realizePosition(state)
        p = model.getJointSet().get("walker_knee_r").getChildFrame().getPositionInGround(state)
        ours = fk(torch.as_tensor(q))[fk.point_index("knee_r")].numpy()
        worst = max(worst, float(np.abs(ours - [p.get(0), p.get(1), p.get(2)]).max()))
    assert worst < 1e-5, worst


def _zero_axes() -> list:
    return [(None, axis, osim.Constant(0.0)) for axis in ((1, 0, 0), (0, 1, 0), (0, 0, 1))] * 2


def test_unsupported_functions_and_constraints_name_model_joint_and_function(tmp_path):
    """Functions or constraints FK cannot reproduce stop with one clear line.
    (A non-constant function without a coordinate crashes OpenSim itself when
    the model is initialised, so it cannot reach ForwardKinematics.)"""
    def step_of_knee(m, b):
        axes = _zero_axes()
        axes[0] = ("knee_angle_r", (1, 0, 0), osim.LinearFunction(1.0, 0.0))
        axes[4] = ("knee_angle_r", (0, 1, 0), osim.StepFunction(0.3, 0.9, 0.0, 0.05))
        return _custom_joint("walker_knee_r", m.getGround(), (0, 0, 0), b, axes)

    model = _two_body_model(step_of_knee)
    path = _save(model, tmp_path / "step.osim")
    with pytest.raises(ModelError, match=r"step\.osim: joint walker_knee_r axis 5 \(knee_angle_r\): its "
                                         r"StepFunction cannot be reproduced"):
        ForwardKinematics.from_osim(path)

    model = _two_body_model(lambda m, b: osim.PinJoint("ankle_r", m.getGround(), osim.Vec3(0), osim.Vec3(0), b,
                                                       osim.Vec3(0), osim.Vec3(0)))
    model.getJointSet().get(0).upd_coordinates(0).setName("ankle_angle_r")
    con = osim.PointOnLineConstraint(model.getGround(), osim.Vec3(1, 0, 0), osim.Vec3(0),
                                     model.getBodySet().get("b"), osim.Vec3(0))
    con.setName("on_line")
    model.addConstraint(con)
    path = _save(model, tmp_path / "constrained.osim")
    with pytest.raises(ModelError, match=r"constrained\.osim: constraint on_line is a PointOnLineConstraint"):
        ForwardKinematics.from_osim(path)


def test_pin_slider_universal_gimbal_and_weld_joints_match_opensim(tmp_path):
    """A chain of every joint type with one coordinate per axis, with rotated
    and offset joint frames, against OpenSim on random poses."""
    model = osim.Model()
    names = ["pelvis", "torso", "femur_r", "tibia_r", "calcn_r"]
    bodies = []
    for i, name in enumerate(names):
        body = osim.Body(name, 1.0 + i, osim.Vec3(0.01 * i, -0.1, 0.02), osim.Inertia(0.1, 0.1, 0.1))
        model.addBody(body)
        bodies.append(body)
    offset = [osim.Vec3(0.03, -0.2, 0.05), osim.Vec3(0.1, 0.2, 0.3)]
    joints = [
        osim.SliderJoint("slide", model.getGround(), osim.Vec3(0, 1, 0), osim.Vec3(0.1, 0.4, 0.2), bodies[0],
                         osim.Vec3(0), osim.Vec3(0)),
        osim.GimbalJoint("back", bodies[0], osim.Vec3(-0.1, 0.1, 0), osim.Vec3(0.3, 0.0, -0.2), bodies[1],
                         offset[0], offset[1]),
        osim.UniversalJoint("hip_r", bodies[0], osim.Vec3(0, -0.1, 0.08), osim.Vec3(0.0, 0.5, 0.1), bodies[2],
                            offset[0], osim.Vec3(-0.2, 0.1, 0)),
        osim.PinJoint("knee", bodies[2], osim.Vec3(0, -0.4, 0), osim.Vec3(0.2, 0, 0), bodies[3],
                      osim.Vec3(0, 0.02, 0), osim.Vec3(0, 0, 0.3)),
        osim.WeldJoint("weld", bodies[3], osim.Vec3(0, -0.4, 0), osim.Vec3(0.1, 0.2, 0.3), bodies[4],
                       osim.Vec3(0.05, 0, 0), osim.Vec3(0)),
    ]
    coord_names = [["pelvis_tx"], ["lumbar_extension", "lumbar_bending", "lumbar_rotation"],
                   ["hip_flexion_r", "hip_adduction_r"], ["knee_angle_r"], []]
    for joint, coords in zip(joints, coord_names):
        model.addJoint(joint)
        for k, cname in enumerate(coords):
            joint.upd_coordinates(k).setName(cname)
    path = _save(model, tmp_path / "chain.osim")
    model = osim.Model(path)
    state = model.initSystem()
    fk = ForwardKinematics.from_osim(path).double()
    poses = _random_poses(15, seed=7)
    _, origins = fk.body_transforms(torch.as_tensor(poses))
    worst = 0.0
    for k, q in enumerate(poses):
        for i, name in enumerate(COORDINATES):
            if model.getCoordinateSet().contains(name):
                model.getCoordinateSet().get(name).setValue(state, q[i] if name in TRANSLATIONS else
                                                            math.radians(q[i]), False)
        model.realizePosition(state)
        for b, name in enumerate(fk.body_names):
            p = model.getBodySet().get(name).getPositionInGround(state)
            worst = max(worst, float(np.abs(origins[k, b].numpy() - [p.get(0), p.get(1), p.get(2)]).max()))
    assert worst < 1e-9, worst


def test_scripts_report_an_unsupported_model_in_one_line(tmp_path):
    """A model FK cannot represent stops a script with one line naming the
    file, the joint and its type (plot_3.py end to end; the metric and
    guidance scripts through metrics.evaluate.user_errors)."""
    import subprocess
    import sys
    from pathlib import Path

    from metrics.evaluate import user_errors
    from utils.motion_io import write_coordinates

    assert issubclass(ModelError, user_errors())
    model = _save(_two_body_model(lambda m, b: osim.BallJoint("ball", m.getGround(), osim.Vec3(0), osim.Vec3(0), b,
                                                                   osim.Vec3(0), osim.Vec3(0))), tmp_path / "ball.osim")
    motion = write_coordinates(tmp_path / "squat.mot", np.zeros((3, len(COORDINATES))))
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "plot_3.py"), str(motion), str(tmp_path / "out.gif"),
                             "--model", model], capture_output=True, text=True, cwd=root, timeout=300)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "ball.osim: joint ball is a BallJoint" in lines[0]
    assert not (tmp_path / "out.gif").exists()
