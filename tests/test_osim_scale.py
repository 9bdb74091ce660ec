"""Scaling OpenCap's generic model with OpenSim's ScaleTool (utils/osim_scale.py)."""
from __future__ import annotations

import numpy as np
import opensim as osim
import pytest

from utils.constants import GENERIC_MODEL
from utils.osim_scale import GENERIC_HEIGHT_M, GENERIC_MASS_KG, ModelScaleError, scale_model


def _load(path) -> tuple[osim.Model, osim.State]:
    level = osim.Logger.getLevelString()
    osim.Logger.setLevelString("error")
    try:
        model = osim.Model(str(path))
        state = model.initSystem()
    finally:
        osim.Logger.setLevelString(level)
    model.realizePosition(state)
    return model, state


def _total_mass(model: osim.Model) -> float:
    bodies = model.getBodySet()
    return sum(bodies.get(i).getMass() for i in range(bodies.getSize()))


def _joint_centre(model: osim.Model, state: osim.State, joint: str) -> np.ndarray:
    p = model.getJointSet().get(joint).getChildFrame().getPositionInGround(state)
    return np.array([p.get(0), p.get(1), p.get(2)])


def _knee_to_ankle(model: osim.Model, state: osim.State) -> float:
    return float(np.linalg.norm(_joint_centre(model, state, "walker_knee_r") - _joint_centre(model, state, "ankle_r")))


@pytest.fixture(scope="module")
def generic():
    return _load(GENERIC_MODEL)


def test_generic_reference_height_and_mass_are_what_the_module_states(generic):
    model, state = generic
    assert _total_mass(model) == pytest.approx(GENERIC_MASS_KG, rel=1e-9)
    shoulder = _joint_centre(model, state, "acromial_r")[1]
    hip = _joint_centre(model, state, "hip_r")[1]
    assert shoulder / GENERIC_HEIGHT_M == pytest.approx(0.814, abs=0.002)
    assert hip / GENERIC_HEIGHT_M == pytest.approx(0.501, abs=0.002)


def test_uniform_scaling_sets_mass_and_scales_lengths_by_height_ratio(tmp_path, generic):
    out = scale_model(GENERIC_MODEL, tmp_path / "sub" / "scaled.osim", 1.78, 72.0)
    assert out == tmp_path / "sub" / "scaled.osim" and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["scaled.osim"]  # no temporary left behind
    model, state = _load(out)
    assert _total_mass(model) == pytest.approx(72.0, rel=1e-6)
    ratio = 1.78 / GENERIC_HEIGHT_M
    assert _knee_to_ankle(model, state) == pytest.approx(ratio * _knee_to_ankle(*generic), rel=1e-9)
    # mass distribution is preserved
    g_bodies, s_bodies = generic[0].getBodySet(), model.getBodySet()
    for name in ("pelvis", "femur_r", "torso"):
        share = g_bodies.get(name).getMass() / GENERIC_MASS_KG
        assert s_bodies.get(name).getMass() / 72.0 == pytest.approx(share, rel=1e-9)


def test_segment_factors_override_the_uniform_factor(tmp_path, generic):
    out = scale_model(GENERIC_MODEL, tmp_path / "scaled.osim", 1.70, 60.0,
                      segment_factors={"tibia_r": (1.0, 1.2, 1.0), "femur_l": 0.9})
    model, state = _load(out)
    # the tibia's length is along its y axis: the knee-ankle distance grows by ~1.2
    g_y = _joint_centre(*generic, "walker_knee_r")[1] - _joint_centre(*generic, "ankle_r")[1]
    s_y = _joint_centre(model, state, "walker_knee_r")[1] - _joint_centre(model, state, "ankle_r")[1]
    assert s_y == pytest.approx(1.2 * g_y, rel=0.02)
    def thigh(m, s):
        return float(np.linalg.norm(_joint_centre(m, s, "hip_l") - _joint_centre(m, s, "walker_knee_l")))
    assert thigh(model, state) == pytest.approx(0.9 * thigh(*generic), rel=1e-9)
    assert _knee_to_ankle(model, state) > 1.15 * _knee_to_ankle(*generic)
    assert _total_mass(model) == pytest.approx(60.0, rel=1e-6)


def test_bad_input_names_the_model_file(tmp_path):
    with pytest.raises(ModelScaleError, match="LaiUhlrich2022.osim: segment_factors name bodies"):
        scale_model(GENERIC_MODEL, tmp_path / "x.osim", 1.78, 72.0, segment_factors={"femur": 1.1})
    with pytest.raises(ModelScaleError, match="mass_kg must be a positive number"):
        scale_model(GENERIC_MODEL, tmp_path / "x.osim", 1.78, -1.0)
    broken = tmp_path / "broken.osim"
    broken.write_text("<OpenSimDocument><Model name='m'><BodySet><objects><Body name='a'>")
    with pytest.raises(ModelScaleError, match="broken.osim: OpenSim could not load"):
        scale_model(broken, tmp_path / "y.osim", 1.78, 72.0)
    with pytest.raises(ModelScaleError, match="missing.osim: no such OpenSim model file"):
        scale_model(tmp_path / "missing.osim", tmp_path / "z.osim", 1.78, 72.0)
    assert not (tmp_path / "x.osim").exists() and not (tmp_path / "y.osim").exists()
