"""The synthetic subjects' model (dataset/synthetic/opencap_model.py): OpenCap's
LaiUhlrich2022 scaled with OpenSim's ScaleTool, with markers and foot stations."""
from __future__ import annotations

import numpy as np
import opensim as osim
import pytest

from dataset.synthetic.opencap_model import CONTACT_POINTS, MODEL_FILE, OsimPoints, subject_model
from utils.constants import COORDINATES


@pytest.fixture(scope="module")
def tall(tmp_path_factory):
    return subject_model(tmp_path_factory.mktemp("model") / MODEL_FILE, 1.87, 84.0, name="tall")


def test_mcs_file_name():
    assert MODEL_FILE == "LaiArnoldModified2017_poly_withArms_weldHand_scaled.osim"


def test_scaled_model_has_the_subjects_mass_muscles_and_markers(tall):
    model = osim.Model(str(tall))
    state = model.initSystem()
    assert model.getTotalMass(state) == pytest.approx(84.0, rel=1e-6)
    assert model.getMuscles().getSize() == 80
    markers = {model.getMarkerSet().get(i).getName() for i in range(model.getMarkerSet().getSize())}
    for name in ("r_knee_study", "L_knee_study", "r_calc_study", "L_toe_study", "r.ASIS_study", "C7_study",
                 "RHJC_study", "r_lwrist_study"):
        assert name in markers
    assert len(markers) >= 35


def test_feet_stand_flat_on_the_floor_and_scale_with_height(tall, tmp_path):
    short = subject_model(tmp_path / "short.osim", 1.55, 50.0)
    q = np.zeros((1, len(COORDINATES)))
    q[0, COORDINATES.index("pelvis_ty")] = 0.93
    heights = {}
    for label, path in (("tall", tall), ("short", short)):
        pts = OsimPoints(path)(q)[0].numpy()
        assert pts.shape == (len(CONTACT_POINTS), 3)
        assert np.ptp(pts[:, 1]) < 0.01  # the contact points lie on one level when standing
        heel, met1 = pts[CONTACT_POINTS.index("heel_r")], pts[CONTACT_POINTS.index("met1_r")]
        heights[label] = met1[0] - heel[0]
        assert pts[CONTACT_POINTS.index("met5_r"), 2] > pts[CONTACT_POINTS.index("met1_r"), 2]  # lateral is +z
    assert heights["tall"] / heights["short"] == pytest.approx(1.87 / 1.55, rel=0.02)


def test_points_and_centre_of_mass_come_from_opensim(tall):
    points = OsimPoints(tall)
    q = np.zeros((2, len(COORDINATES)))
    q[1, COORDINATES.index("knee_angle_r")] = 90.0
    q[1, COORDINATES.index("hip_flexion_r")] = 90.0
    com = points.center_of_mass(q).numpy()
    model = osim.Model(str(tall))
    state = model.initSystem()
    model.getCoordinateSet().get("knee_angle_r").setValue(state, np.pi / 2, False)
    model.getCoordinateSet().get("knee_angle_r_beta").setValue(state, np.pi / 2, False)
    model.getCoordinateSet().get("hip_flexion_r").setValue(state, np.pi / 2, False)
    for name in ("pelvis_tx", "pelvis_ty", "pelvis_tz"):
        model.getCoordinateSet().get(name).setValue(state, 0.0, False)
    model.realizePosition(state)
    ref = model.calcMassCenterPosition(state)
    assert com[1] == pytest.approx([ref.get(0), ref.get(1), ref.get(2)], abs=1e-9)
    assert com[1, 0] > com[0, 0] + 0.02  # the raised thigh moves the centre of mass forward


def test_missing_stations_are_a_clear_error(tmp_path):
    from utils.constants import GENERIC_MODEL

    with pytest.raises(ValueError, match="contact stations"):
        OsimPoints(GENERIC_MODEL)
