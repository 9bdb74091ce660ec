"""The musculoskeletal model built in code (dataset/synthetic/osim_model.py), checked with OpenSim."""
from __future__ import annotations

import math

import opensim as osim
import pytest

from dataset.synthetic.osim_model import ANTHROPOMETRY_SOURCE, build_model, default_model_path, save_model
from utils.constants import COORDINATES, MUSCLES, TRANSLATIONS

REQUIRED = ("glmax1 glmax2 glmax3 glmed1 glmed2 glmed3 iliacus psoas recfem vasmed vaslat vasint bflh bfsh "
            "semimem semiten gasmed gaslat soleus tibant").split()


@pytest.fixture(scope="module")
def model():
    return build_model(1.80, 80.0)


def test_model_passes_init_system_with_the_33_coordinates_and_80_muscles(model):
    state = model.initSystem()
    coords = model.getCoordinateSet()
    names = [coords.get(i).getName() for i in range(coords.getSize())]
    assert sorted(names) == sorted(COORDINATES)
    for name in COORDINATES:
        motion = coords.get(name).getMotionType()
        assert (motion == osim.Coordinate.Translational) == (name in TRANSLATIONS), name
    muscles = model.getMuscles()
    muscle_names = {muscles.get(i).getName() for i in range(muscles.getSize())}
    assert muscle_names == set(MUSCLES)
    for base in REQUIRED:
        for side in ("r", "l"):
            m = osim.DeGrooteFregly2016Muscle.safeDownCast(muscles.get(f"{base}_{side}"))
            assert m is not None
            assert 50.0 < m.getMaxIsometricForce() < 6000.0
            assert 0.01 < m.getOptimalFiberLength() < 0.5
            assert m.getTendonSlackLength() > 0.0
    bodies = {model.getBodySet().get(i).getName() for i in range(model.getBodySet().getSize())}
    for b in ("pelvis", "torso", "femur_r", "tibia_l", "talus_r", "calcn_l", "toes_r", "humerus_l", "hand_r"):
        assert b in bodies
    assert model.getTotalMass(state) == pytest.approx(80.0, rel=1e-9)


@pytest.mark.parametrize("sex,thigh_pct", [("male", 14.16), ("female", 14.78)])
def test_segment_masses_follow_de_leva_1996(sex, thigh_pct):
    m = build_model(1.65, 60.0, sex)
    assert m.getBodySet().get("femur_r").getMass() == pytest.approx(0.6 * thigh_pct, rel=1e-9)
    assert "de Leva" in ANTHROPOMETRY_SOURCE


def test_segment_lengths_scale_with_height():
    knee_y = []
    for height in (1.5, 1.9):
        m = build_model(height, 70.0)
        frame = osim.PhysicalOffsetFrame.safeDownCast(m.getJointSet().get("walker_knee_r").getParentFrame())
        knee_y.append(-frame.get_translation().get(1))
    assert knee_y[1] / knee_y[0] == pytest.approx(1.9 / 1.5, rel=1e-9)


def test_saved_model_loads_in_opensim(tmp_path, model):
    path = save_model(model, tmp_path / "m.osim")
    loaded = osim.Model(str(path))
    loaded.initSystem()
    assert loaded.getNumCoordinates() == 33
    default = default_model_path()
    assert default.is_file() and default.suffix == ".osim"
    osim.Model(str(default)).initSystem()


@pytest.mark.parametrize("kwargs,word", [
    ({"height": -1.0}, "height"), ({"height": 3.5}, "height"), ({"mass": 0.0}, "mass"),
    ({"mass": float("nan")}, "mass"), ({"sex": "x"}, "sex"), ({"strength": 0.0}, "strength"),
])
def test_impossible_subject_is_a_clear_error(kwargs, word):
    with pytest.raises(ValueError, match=word):
        build_model(**kwargs)


def _moment_arm(model, state, muscle, coord, deg_pose):
    for name, value in deg_pose.items():
        model.getCoordinateSet().get(name).setValue(state, math.radians(value), False)
    model.realizePosition(state)
    c = model.getCoordinateSet().get(coord)
    return model.getMuscles().get(muscle).computeMomentArm(state, c)


@pytest.mark.parametrize("knee", [0.0, 45.0, 90.0, 130.0])
def test_moment_arms_have_anatomical_signs(model, knee):
    """OpenSim's own moment arms: quadriceps extend the knee over the whole
    squat range, hamstrings flex it, glutei and hamstrings extend the hip,
    soleus plantarflexes, tibialis anterior dorsiflexes."""
    state = model.initSystem()
    pose = {"knee_angle_r": knee, "hip_flexion_r": knee * 0.8, "ankle_angle_r": knee * 0.2}
    for m in ("vasmed_r", "vaslat_r", "vasint_r", "recfem_r"):
        assert -0.07 < _moment_arm(model, state, m, "knee_angle_r", pose) < -0.025, m
    for m in ("bflh_r", "semimem_r", "bfsh_r"):
        assert _moment_arm(model, state, m, "knee_angle_r", pose) > 0.003, m
    for m in ("glmax2_r", "glmax3_r", "bflh_r", "semimem_r"):
        assert _moment_arm(model, state, m, "hip_flexion_r", pose) < -0.01, m
    assert _moment_arm(model, state, "soleus_r", "ankle_angle_r", pose) < -0.03
    assert _moment_arm(model, state, "tibant_r", "ankle_angle_r", pose) > 0.02
    assert _moment_arm(model, state, "iliacus_r", "hip_flexion_r", pose) > 0.02
