"""Inverse dynamics and static optimisation (dataset/muscle_dynamics.py) with OpenSim."""
from __future__ import annotations


import numpy as np
import opensim as osim
import pytest
from scipy.optimize import lsq_linear

from dataset.muscle_dynamics import (SO_COORDINATES, MuscleModel, _moment_arms, _to_si, inverse_dynamics,
                                     solve_so_qp, static_optimization)
from dataset.osim_model import build_model, save_model
from dataset.squat_kinematics import SquatStyle, generate_trial
from utils.constants import COORDINATES
from utils.kinematics import ForwardKinematics


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    model = build_model(1.72, 68.0, "male")
    path = save_model(model, tmp_path_factory.mktemp("dyn") / "subject.osim")
    fk = ForwardKinematics.from_model(model).double()
    style = SquatStyle(depth=95.0, depth_jitter=0.0, noise=0.0, asymmetry=0.0, heading=5.0)
    trial = generate_trial(fk, style, 1, np.random.default_rng(1))
    return path, trial


def test_moment_arms_agree_with_opensim(subject):
    path, _ = subject
    mm = MuscleModel(path)
    q = np.zeros(len(COORDINATES))
    for name, deg in (("hip_flexion_r", 50.0), ("knee_angle_r", 60.0), ("ankle_angle_r", 10.0),
                      ("hip_flexion_l", 20.0), ("knee_angle_l", 30.0)):
        q[COORDINATES.index(name)] = deg
    q_si = _to_si(q[None])[0]
    ours = _moment_arms(mm.model, mm.state, mm.setter, q_si, mm.muscles, mm.sides, {})
    mm.setter.set(mm.state, q_si)
    mm.model.realizePosition(mm.state)
    diffs, plain = [], []
    for j, coord in enumerate(SO_COORDINATES):
        c = mm.model.getCoordinateSet().get(coord)
        for i, m in enumerate(mm.muscles):
            if m.getName()[-1] == coord[-1]:
                d = abs(ours[j, i] - m.computeMomentArm(mm.state, c))
                diffs.append(d)
                if m.getGeometryPath().getWrapSet().getSize() == 0:
                    plain.append(d)
    # Geometric moment arms (-dL/dq) equal OpenSim's exactly for plain paths;
    # wraps restricted to a quadrant make the two differ by a few millimetres.
    assert max(plain) < 2e-4, f"{max(plain) * 1000:.3f} mm"
    assert np.median(diffs) < 1e-4 and max(diffs) < 8e-3, f"{max(diffs) * 1000:.2f} mm"


def test_box_qp_solver_matches_scipy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        A = rng.normal(size=(14, 80)) * 60.0
        b = rng.normal(size=14) * 150.0
        ours = solve_so_qp(A, b, 1.0)
        ref = lsq_linear(np.vstack([A, np.eye(80)]), np.r_[b, np.zeros(80)], bounds=(0, 1), method="bvls",
                         tol=1e-12).x
        cost = lambda x: x @ x + np.sum((A @ x - b) ** 2)  # noqa: E731
        assert ours.min() >= 0.0 and ours.max() <= 1.0
        assert cost(ours) <= cost(ref) * (1 + 1e-9) + 1e-9


def test_inverse_dynamics_balances_the_body_and_loads_the_knees(subject):
    path, trial = subject
    dyn = inverse_dynamics(str(path), trial.clean)
    model = osim.Model(str(path))
    mass = model.getTotalMass(model.initSystem())
    standing = slice(5, 20)
    assert dyn.grf["total_force"][standing, 1].mean() == pytest.approx(mass * 9.80665, rel=0.02)
    total = dyn.grf["force_r"] + dyn.grf["force_l"]
    assert np.allclose(total, dyn.grf["total_force"])
    pelvis = dyn.moments[30:-30, :6]
    assert np.abs(pelvis[:, :3]).max() < 1.0 and np.abs(pelvis[:, 3:]).max() < 2.0
    knee = dyn.moments[:, COORDINATES.index("knee_angle_r")]
    assert knee.min() < -0.4 * mass  # knee extension moment at the bottom (N m)
    start, end = trial.segments[0]
    rep = static_optimization(str(path), dyn, start, end)
    assert rep.activations.shape == (end - start, 80)
    assert 0.0 <= rep.activations.min() and rep.activations.max() <= 1.0
    assert np.abs(rep.reserves).max() < 5.0
    vasmed = rep.activations[:, rep.muscles.index("vasmed_r")]
    depth = dyn.coords_filtered[start:end, COORDINATES.index("knee_angle_r")]
    assert vasmed[np.argmax(depth)] > 2 * vasmed[0] + 0.05  # vasti work at the bottom, rest when standing

