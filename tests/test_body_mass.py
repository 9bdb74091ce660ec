"""Body mass from OpenSim models and OpenCap metadata (dataset.body_mass),
checked against OpenSim's own total mass and the synthetic subjects' records."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from dataset.body_mass import BodyMassError, file_masses, metadata_mass, model_mass, subject_mass
from dataset.mcs import session_folder
from tests.real_session import MUSCLE_DRIVEN_FILE, REAL, SUBJECT_MASS_KG, scaled_model
from utils.constants import GENERIC_MODEL

REAL_METADATA = REAL / "opencap-to-nwb" / "metadata.yaml"


def _opensim_total_mass(path: Path) -> float:
    import opensim as osim

    from utils.osim_log import opensim_quiet

    with opensim_quiet():
        model = osim.Model(str(path))
        return model.getTotalMass(model.initSystem())


@pytest.fixture(scope="module")
def real_scaled(tmp_path_factory) -> Path:
    """OpenCap's generic model scaled by OpenSim's ScaleTool to the real subject (1.78 m, 72 kg)."""
    return scaled_model(tmp_path_factory.mktemp("scaled") / "subject.osim")


def test_model_mass_is_opensims_total_mass_for_the_generic_and_a_scaled_model(real_scaled):
    for path in (Path(GENERIC_MODEL), real_scaled):
        assert model_mass(path) == pytest.approx(_opensim_total_mass(path), rel=1e-12)
    assert model_mass(GENERIC_MODEL) == pytest.approx(75.337, abs=1e-6)  # the generic OpenCap model
    assert model_mass(real_scaled) == pytest.approx(SUBJECT_MASS_KG, rel=1e-9)


def test_synthetic_subjects_mass_is_what_the_generator_recorded(synthetic_root):
    sessions = sorted((Path(synthetic_root) / "Data").iterdir())
    assert sessions
    for folder in sessions:
        recorded = json.loads((folder / "synthetic_session.json").read_text())["subject"]["mass_kg"]
        assert subject_mass(folder) == pytest.approx(recorded, rel=1e-9)
        kinematics = next((folder / "OpenSimData" / "Kinematics").iterdir())
        assert subject_mass(kinematics) == pytest.approx(recorded, rel=1e-9)  # a file inside the session
        # the session's OpenCap-style metadata states the same subject
        assert metadata_mass(folder / "sessionMetadata.yaml") == pytest.approx(recorded, abs=1e-4)


def test_opencap_metadata_gives_the_real_subjects_mass(tmp_path, caplog):
    assert metadata_mass(REAL_METADATA) == 72.0
    session = tmp_path / "Data" / "sub1"
    (session / "OpenSimData" / "Dynamics" / "SQT01_segment_1").mkdir(parents=True)
    motion = session / "OpenSimData" / "Dynamics" / "SQT01_segment_1" / "kinematics_activations.mot"
    shutil.copyfile(MUSCLE_DRIVEN_FILE, motion)
    with pytest.raises(BodyMassError, match="no OpenSimData/Model/\\*.osim and no sessionMetadata.yaml"):
        subject_mass(motion)
    shutil.copyfile(REAL_METADATA, session / "sessionMetadata.yaml")  # no model: OpenCap's metadata
    assert subject_mass(motion) == 72.0
    assert session_folder(motion) == session.resolve()
    (session / "OpenSimData" / "Model").mkdir()
    shutil.copyfile(GENERIC_MODEL, session / "OpenSimData" / "Model" / "generic.osim")  # the model wins
    with caplog.at_level("WARNING", logger="dataset.body_mass"):
        assert subject_mass(motion) == pytest.approx(75.337, abs=1e-6)
    # ... with a warning: the unscaled model weighs 4.6 % more than the metadata says
    assert len(caplog.records) == 1
    assert re.search(r"sessionMetadata.yaml: mass_kg is 72.0 kg but the scaled model .*generic.osim weighs 75.3 kg",
                     caplog.text)
    assert np.allclose(file_masses([motion, motion]), [75.337, 75.337])


def test_a_model_scaled_to_the_metadata_mass_agrees_silently(tmp_path, real_scaled, caplog):
    """OpenCap's case: the ScaleTool-scaled model weighs the metadata's 72 kg."""
    session = tmp_path / "sub1"
    (session / "OpenSimData" / "Model").mkdir(parents=True)
    shutil.copyfile(real_scaled, session / "OpenSimData" / "Model" / "subject_scaled.osim")
    shutil.copyfile(REAL_METADATA, session / "sessionMetadata.yaml")
    with caplog.at_level("WARNING", logger="dataset.body_mass"):
        assert subject_mass(session) == pytest.approx(SUBJECT_MASS_KG, rel=1e-9)
    assert not caplog.records
    (session / "sessionMetadata.yaml").write_text("mass_kg: n/a\n")  # unreadable: a warning, the model's mass
    with caplog.at_level("WARNING", logger="dataset.body_mass"):
        assert subject_mass(session) == pytest.approx(SUBJECT_MASS_KG, rel=1e-9)
    assert "line 1: mass_kg is 'n/a'" in caplog.text and "taken from" in caplog.text


def test_bad_files_name_the_file_and_what_was_expected(tmp_path):
    loose = tmp_path / "loose.mot"
    shutil.copyfile(MUSCLE_DRIVEN_FILE, loose)
    with pytest.raises(BodyMassError, match=r"loose.mot: not inside an MCS session folder.*--eval-body-mass"):
        subject_mass(loose)
    not_xml = tmp_path / "broken.osim"
    not_xml.write_text("<OpenSimDocument><Model>\n<BodySet>\n</Model>")
    with pytest.raises(BodyMassError, match=r"broken.osim, line 3, column \d+: not an OpenSim model"):
        model_mass(not_xml)
    empty = tmp_path / "empty.osim"
    empty.write_text("<OpenSimDocument><Model><BodySet><objects/></BodySet></Model></OpenSimDocument>")
    with pytest.raises(BodyMassError, match="empty.osim: no <BodySet><objects><Body>"):
        model_mass(empty)
    negative = tmp_path / "negative.osim"
    negative.write_text("<OpenSimDocument><Model><BodySet><objects><Body name='a'><mass>-2</mass></Body>"
                        "</objects></BodySet></Model></OpenSimDocument>")
    with pytest.raises(BodyMassError, match="body 'a' has mass -2.0"):
        model_mass(negative)
    with pytest.raises(BodyMassError, match="cannot read the model"):
        model_mass(tmp_path / "absent.osim")
    meta = tmp_path / "sessionMetadata.yaml"
    meta.write_text("height_m: 1.7\nmass_kg: heavy\n")
    with pytest.raises(BodyMassError, match=r"sessionMetadata.yaml, line 2: mass_kg is 'heavy'"):
        metadata_mass(meta)
    meta.write_text("height_m: 1.7\n  mass_kg: 70\n")  # nested: not the subject's
    with pytest.raises(BodyMassError, match="no top-level 'mass_kg:' line"):
        metadata_mass(meta)


def test_an_edited_model_is_read_again(tmp_path):
    path = tmp_path / "m.osim"
    body = "<Body name='b'><mass>{}</mass></Body>"
    path.write_text(f"<OpenSimDocument><Model><BodySet><objects>{body.format(10)}</objects></BodySet></Model>"
                    "</OpenSimDocument>")
    assert model_mass(path) == 10.0
    path.write_text(f"<OpenSimDocument><Model><BodySet><objects>{body.format(20)}{body.format(1.5)}</objects>"
                    "</BodySet></Model></OpenSimDocument>")
    assert model_mass(path) == 21.5
    before = path.stat()
    path.write_text(path.read_text().replace("1.5", "2.5"))  # same size: the modification time tells
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert path.stat().st_size == before.st_size and model_mass(path) == 22.5
