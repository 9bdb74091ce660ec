"""Inverse dynamics and static optimisation (dataset/synthetic/muscle_dynamics.py) with
OpenSim, on OpenCap's LaiUhlrich2022 model scaled for a subject."""
from __future__ import annotations

import numpy as np
import opensim as osim
import pytest
from scipy.optimize import lsq_linear

from dataset.synthetic.muscle_dynamics import (ACTIVATION_FLOOR, SO_COORDINATES, DynamicsModel, MuscleModel,
                                               StateSetter, _moment_arms, _path_lengths, _perturbed, _to_si,
                                               active_force_length, coordinate_groups, foot_ground_force,
                                               force_velocity, grf_storage, inverse_dynamics, passive_force_length,
                                               solve_so_qp, solve_so_qp_status, static_optimization, tendon_stretch)
from dataset.synthetic.opencap_model import OsimPoints, subject_model
from dataset.synthetic.squat_kinematics import SquatStyle, generate_trial
from tests.real_session import IK_FILE, scaled_model
from utils.constants import COORDINATES, FRAME_RATE
from utils.motion_io import read_motion


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    path = subject_model(tmp_path_factory.mktemp("dyn") / "subject.osim", 1.72, 68.0)
    style = SquatStyle(depth=95.0, depth_jitter=0.0, noise=0.0, jitter=0.0, asymmetry=0.0, heading=5.0, balance=0.6)
    trial = generate_trial(OsimPoints(path), style, 1, np.random.default_rng(1))
    return path, trial


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    """OpenCap's generic LaiUhlrich2022 scaled by OpenSim's ScaleTool to the real subject."""
    return scaled_model(tmp_path_factory.mktemp("real") / "real_scaled.osim")


def test_muscle_curves_equal_opensims_de_groote_fregly_muscle():
    ref = osim.DeGrooteFregly2016Muscle()
    for x in (0.5, 0.8, 1.0, 1.2, 1.5):
        assert active_force_length(x) == pytest.approx(ref.calcActiveForceLengthMultiplier(x), abs=1e-12)
        assert passive_force_length(x) == pytest.approx(ref.calcPassiveForceMultiplier(x), abs=1e-12)
    for v in (-1.0, -0.3, 0.0, 0.4, 1.0):
        assert force_velocity(v) == pytest.approx(ref.calcForceVelocityMultiplier(v), abs=1e-12)
    assert tendon_stretch(0.0) == pytest.approx(1.0, abs=2e-3) and 1.04 < tendon_stretch(1.0) < 1.055


def test_knee_beta_follows_the_coupler_and_moment_arms_agree_with_opensim(subject):
    path, _ = subject
    mm = MuscleModel(path)
    q = np.zeros(len(COORDINATES))
    for name, deg in (("hip_flexion_r", 50.0), ("knee_angle_r", 60.0), ("ankle_angle_r", 10.0),
                      ("hip_flexion_l", 20.0), ("knee_angle_l", 30.0)):
        q[COORDINATES.index(name)] = deg
    q_si = _to_si(q[None])[0]
    ours = _moment_arms(mm.model, mm.state, mm.setter, q_si, mm.muscles, mm.sides, {})
    mm.setter.set(mm.state, q_si)
    cs = mm.model.getCoordinateSet()
    assert cs.get("knee_angle_r_beta").getValue(mm.state) == pytest.approx(np.deg2rad(60.0))
    mm.model.realizePosition(mm.state)
    diffs = []
    for j, coord in enumerate(SO_COORDINATES):
        c = cs.get(coord)
        for i, m in enumerate(mm.muscles):
            if m.getName()[-1] == coord[-1]:
                diffs.append(abs(ours[j, i] - m.computeMomentArm(mm.state, c)))
    # -dL/dq equals OpenSim's moment arm except where a wrap switches on or off
    # within the finite-difference step (then the one-sided slope is kept)
    diffs = np.asarray(diffs)
    assert np.median(diffs) < 1e-5 and np.mean(diffs > 1e-3) < 0.02 and diffs.max() < 0.015, f"{diffs.max():.4f} m"
    vasmed = mm.names.index("vasmed_r")
    assert ours[SO_COORDINATES.index("knee_angle_r"), vasmed] < -0.015  # a knee extensor (flexion positive)


def test_coordinate_groups_never_share_a_muscle():
    crossing = {0: np.array([1, 2]), 1: np.array([2, 3]), 2: np.array([4]), 3: np.array([1])}
    assert coordinate_groups(crossing) == [(0, 2), (1, 3)]
    assert coordinate_groups({j: np.array([7]) for j in range(3)}) == [(0,), (1,), (2,)]


@pytest.mark.parametrize("which", ["synthetic", "real"])
def test_grouped_moment_arms_equal_the_per_coordinate_ones(which, subject, real_model):
    """On a synthetic subject's model and on OpenCap's model scaled to the real
    subject, over OpenCap's IK of five squats: the coordinate pairs perturbed
    together (hip flexion with ankle, hip adduction with subtalar, hip
    rotation with mtp, the knee alone) give the moment arms of the pairs
    perturbed one at a time with every muscle read, to rounding (1e-16 m of
    length over the 1e-6 rad step); the muscles a pair's crossing set leaves
    out keep their length when it moves 0.3 rad (the patella, coupled to the
    knee, moves only with the knee)."""
    mm = MuscleModel(subject[0] if which == "synthetic" else real_model)
    poses = _to_si(read_motion(IK_FILE).coordinates())[::100]
    crossing: dict[int, np.ndarray] = {}
    grouped = np.stack([_moment_arms(mm.model, mm.state, mm.setter, q, mm.muscles, mm.sides, crossing) for q in poses])
    each = np.stack([_moment_arms(mm.model, mm.state, mm.setter, q, mm.muscles, mm.sides) for q in poses])
    groups = coordinate_groups(crossing)
    assert groups == [(0, 4), (1, 5), (2, 6), (3,)]
    for group in groups:
        members = np.concatenate([crossing[j] for j in group])
        assert len(np.unique(members)) == len(members)
    spans = {(SO_COORDINATES[j][:-2], mm.names[i][:-2]) for j, idx in crossing.items() for i in idx}
    assert ("knee_angle", "vasmed") in spans and ("ankle_angle", "gasmed") in spans and ("knee_angle", "gasmed") in spans
    assert ("hip_flexion", "soleus") not in spans and ("hip_flexion", "vasmed") not in spans
    assert np.abs(grouped - each).max() < 2e-9
    outside = np.ones((len(SO_COORDINATES), len(mm.muscles)), dtype=bool)
    for j, idx in crossing.items():
        outside[j, idx] = outside[j + len(crossing), idx] = False
    assert np.all(grouped[:, outside] == 0.0) and np.abs(each[:, outside]).max() < 2e-9
    for q in poses[::2]:
        base = _path_lengths(mm.model, mm.state, mm.setter, q, mm.muscles)
        for j, idx in crossing.items():
            others = np.setdiff1d(np.arange(len(mm.muscles)), idx)
            for move in (0.3, -0.3):
                moved = _path_lengths(mm.model, mm.state, mm.setter, _perturbed(q, (j,), move), mm.muscles)
                assert np.abs(moved - base)[others].max() < 1e-13, (SO_COORDINATES[j], move)


def test_box_qp_solver_matches_scipy_with_a_floor():
    rng = np.random.default_rng(0)
    for lower in (0.0, ACTIVATION_FLOOR):
        for _ in range(4):
            A = rng.normal(size=(14, 80)) * 60.0
            b = rng.normal(size=14) * 150.0
            ours, ok = solve_so_qp_status(A, b, 1.0, lower=lower)
            ref = lsq_linear(np.vstack([A, np.eye(80)]), np.r_[b, np.zeros(80)], bounds=(lower, 1), method="bvls",
                             tol=1e-12).x
            cost = lambda x: x @ x + np.sum((A @ x - b) ** 2)  # noqa: E731
            assert ok and ours.min() >= lower and ours.max() <= 1.0
            assert cost(ours) <= cost(ref) * (1 + 1e-9) + 1e-9
            assert np.array_equal(solve_so_qp(A, b, 1.0, lower=lower), ours)


def test_inverse_dynamics_balances_the_body_and_loads_the_knees(subject):
    path, trial = subject
    dyn = inverse_dynamics(str(path), trial.clean)
    model = osim.Model(str(path))
    mass = model.getTotalMass(model.initSystem())
    assert mass == pytest.approx(68.0, rel=1e-6)
    standing = slice(5, 20)
    assert dyn.grf["total_force"][standing, 1].mean() == pytest.approx(mass * 9.80665, rel=0.02)
    total = dyn.grf["force_r"] + dyn.grf["force_l"]
    assert np.allclose(total, dyn.grf["total_force"])
    pelvis = dyn.moments[30:-30, :6]
    assert np.abs(pelvis[:, :3]).max() < 1.0 and np.abs(pelvis[:, 3:]).max() < 2.0
    knee = dyn.moments[:, COORDINATES.index("knee_angle_r")]
    assert knee.min() < -0.6 * mass  # knee extension moment at the bottom (N m)
    start, end = trial.segments[0]
    rep = static_optimization(str(path), dyn, start, end)
    assert rep.activations.shape == (end - start, 80)
    assert ACTIVATION_FLOOR - 1e-12 <= rep.activations.min() and rep.activations.max() <= 1.0
    not_rotation = [i for i, c in enumerate(SO_COORDINATES) if not c.startswith("hip_rotation")]
    assert np.abs(rep.reserves[:, not_rotation]).max() < 1.0
    assert rep.summary["solver_unconverged_frames"] == 0 and rep.summary["saturated_antagonist_frames"] == 0
    vasmed = rep.activations[:, rep.muscles.index("vasmed_r")]
    soleus = rep.activations[:, rep.muscles.index("soleus_r")]
    depth = dyn.coords_filtered[start:end, COORDINATES.index("knee_angle_r")]
    bottom = int(np.argmax(depth))
    assert vasmed[bottom] > 2 * vasmed[0] + 0.1  # vasti work at the bottom, rest when standing
    assert soleus[bottom] > 0.1  # the plantarflexors hold the forward-leaning shank


def test_ground_reactions_on_the_loaded_model_equal_external_forces_on_a_second_model(subject):
    """The feet's body forces added on the one DynamicsModel give the generalised
    forces OpenSim's ExternalForces give on a second model reading the ground
    reactions from a Storage (the way inverse dynamics used to apply them)."""
    path, trial = subject
    base = DynamicsModel(path)
    dyn = inverse_dynamics(str(path), trial.clean, base=base)
    q = _to_si(dyn.coords_filtered)
    times = np.arange(len(q)) / FRAME_RATE

    model = osim.Model(str(path))
    forces = model.updForceSet()
    for i in range(forces.getSize()):
        forces.get(i).set_appliesForce(False)
    storage = grf_storage(times, dyn.grf)
    for side in ("r", "l"):
        ef = foot_ground_force(side)
        ef.setDataSource(storage)
        model.addForce(ef)
    state = model.initSystem()
    setter = StateSetter(model, state)
    solver = osim.InverseDynamicsSolver(model)
    ref = np.zeros_like(dyn.moments)
    for k in range(len(q)):
        state.setTime(float(times[k]))
        setter.set(state, q[k], dyn.speeds[k])
        tau = solver.solve(state, setter.accelerations(q[k], dyn.speeds[k], dyn.accelerations[k])).to_numpy()
        ref[k] = setter.generalized_forces(q[k], tau)

    weight = base.mass * 9.80665
    assert np.abs(dyn.grf["total_force"][:, 1]).max() > 0.9 * weight  # the feet carry the body
    assert np.abs(ref[:, COORDINATES.index("pelvis_ty")]).max() < 0.05 * weight  # so the pelvis residual is small
    assert np.abs(dyn.moments - ref).max() < 1e-9 * np.abs(ref).max()
    again = inverse_dynamics(str(path), trial.clean[::-1].copy(), base=base)  # another motion in between
    assert again.moments.shape == dyn.moments.shape
    np.testing.assert_array_equal(inverse_dynamics(str(path), trial.clean, base=base).moments, dyn.moments)


def test_state_setter_rejects_nothing_it_cannot_place(subject):
    path, _ = subject
    model = osim.Model(str(path))
    state = model.initSystem()
    setter = StateSetter(model, state)
    assert len(setter.couplers) == 2  # knee_angle_r_beta and knee_angle_l_beta
    q = np.zeros(len(COORDINATES))
    q[COORDINATES.index("knee_angle_l")] = 1.2
    u = np.zeros(len(COORDINATES))
    u[COORDINATES.index("knee_angle_l")] = 0.5
    setter.set(state, q, u)
    beta = model.getCoordinateSet().get("knee_angle_l_beta")
    assert beta.getValue(state) == pytest.approx(1.2) and beta.getSpeedValue(state) == pytest.approx(0.5)


def test_path_geometry_between_evaluated_frames_matches_opensim(subject):
    """Lengths from the moment arms of the nearest evaluated pose (every 5th)
    stay within half a millimetre of OpenSim's path lengths over a squat."""
    from dataset.synthetic.muscle_dynamics import filter_kinematics, path_geometry

    path, trial = subject
    mm = MuscleModel(path)
    start, end = trial.segments[0]
    q = _to_si(filter_kinematics(trial.clean)[0])[start:end]
    arms, lengths = path_geometry(mm, q)
    exact = mm.lengths(q)
    assert arms.shape == (end - start, len(SO_COORDINATES), 80)
    assert np.abs(lengths - exact).max() < 5e-4
    assert np.abs(lengths[::5] - exact[::5]).max() < 1e-9  # evaluated frames are OpenSim's own


def test_dropped_repetitions_are_counted_and_never_written(tmp_path, monkeypatch):
    import json

    import dataset.synthetic.synthesize as synth

    monkeypatch.setitem(synth.QUALITY_LIMITS, "max_abs_pelvis_residual_force_N", -1.0)  # fails every repetition
    summary = synth.build_session(tmp_path, 5, 0, 2)
    assert summary["repetitions_dropped"] == 2 and summary["segments"] == []
    assert all(r["segment"] is None and r["failed"] == ["max_abs_pelvis_residual_force_N"]
               for r in summary["repetitions"])
    assert not list(tmp_path.rglob("*_muscle_driven.mot"))
    seg = np.load(tmp_path / "squat-segmentation-data" / f"{summary['session']}.npy", allow_pickle=True).item()
    assert seg == {"SQT01": []}
    report = synth._write_quality(tmp_path, [summary["session"]])
    assert report["dropped"] == 2 and report["written"] == 0
    assert report["failed_checks"] == {"max_abs_pelvis_residual_force_N": 2}
    assert json.loads((tmp_path / synth.QUALITY_FILE).read_text())["repetitions"] == 2
