"""How the dataset layout treats real OpenCap files a user arranges by hand
(``tests/data/real_opencap``): the IK saved by OpenSim as ``.sto``, a
segmented trial whose IK is missing next to a real muscle-driven simulation,
a session known only from its Dynamics folder. No model is needed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import opensim as osim
import pytest

from dataset.mcs import DatasetError
from dataset.repetitions import load_repetitions
from tests.real_session import IK_FILE, MUSCLE_DRIVEN_FILE, segment_squats
from utils.constants import COORDINATES, GENERIC_MODEL
from utils.motion_io import read_motion

REPO = Path(__file__).resolve().parents[1]
DYNAMICS = (Path("OpenSimData") / "Dynamics" / "SQT01_segment_1"
            / "kinematics_activations_SQT01_segment_1_muscle_driven.mot")


def real_root(root: Path, ik_name: str | None = "SQT01.mot", segments: dict | None = None,
              sessions: tuple[str, ...] = ("real00", "real01")) -> Path:
    """Sessions holding the real IK as ``Kinematics/<ik_name>`` (none when
    ``None``), the real muscle-driven file as repetition 1's Dynamics file, and
    ``segments`` (default: the IK's five squats) as their segmentation (none
    when ``{}``); the last session is the test split."""
    if segments is None:
        segments = {"SQT01": segment_squats(read_motion(IK_FILE).column("knee_angle_r"))}
    for sid in sessions:
        kin = root / "Data" / sid / "OpenSimData" / "Kinematics"
        kin.mkdir(parents=True)
        if ik_name:
            shutil.copyfile(IK_FILE, kin / ik_name)
        (root / "Data" / sid / DYNAMICS).parent.mkdir(parents=True)
        shutil.copyfile(MUSCLE_DRIVEN_FILE, root / "Data" / sid / DYNAMICS)
        if segments:
            (root / "squat-segmentation-data").mkdir(exist_ok=True)
            np.save(root / "squat-segmentation-data" / f"{sid}.npy", segments, allow_pickle=True)
    (root / "split.json").write_text(json.dumps({"train": list(sessions[:-1]), "test": [sessions[-1]]}))
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))


def test_ik_printed_by_opensim_as_radians_sto_gives_the_same_repetitions(tmp_path: Path) -> None:
    """OpenSim's own .sto of the IK (converted to radians by the model, printed by
    Storage) is the trial's Kinematics file: the same repetitions as the .mot."""
    as_mot = load_repetitions(real_root(tmp_path / "mot"), "all")
    root = real_root(tmp_path / "sto", ik_name=None)
    model = osim.Model(GENERIC_MODEL)
    model.initSystem()
    storage = osim.Storage(str(IK_FILE))
    model.getSimbodyEngine().convertDegreesToRadians(storage)
    storage.printResult(storage, "SQT01", str(tmp_path), -1, ".sto")
    assert "inDegrees=no" in (tmp_path / "SQT01.sto").read_text()[:400]
    for sid in ("real00", "real01"):
        shutil.copyfile(tmp_path / "SQT01.sto", root / "Data" / sid / "OpenSimData" / "Kinematics" / "SQT01.sto")
    as_sto = load_repetitions(root, "all")
    assert len(as_sto) == len(as_mot) == 10
    assert {Path(f).name for f in as_sto.files} == {"SQT01.sto"}
    np.testing.assert_allclose(as_sto.motions, as_mot.motions, atol=1e-4)
    np.testing.assert_allclose(as_sto.frame_rates, 100.0)
    knee = as_sto.motions[..., COORDINATES.index("knee_angle_r")].max(axis=1)
    assert 75 < knee.mean() < 90  # degrees, as the file's own peaks (~87)


@pytest.mark.parametrize("ik_name, holds", [(None, "Kinematics is empty"), ("SQT1.mot", "Kinematics holds: SQT1.mot")])
def test_segmented_trial_without_ik_is_an_error_not_its_muscle_driven_simulation(tmp_path: Path, ik_name,
                                                                                  holds) -> None:
    """The segmentation names SQT01 repetition 1, whose IK is missing while the real
    muscle-driven file of that repetition exists: an error naming what is
    missing, never the ~50 Hz simulation passed off as motion capture."""
    root = real_root(tmp_path, ik_name=ik_name, segments={"SQT01": [(4, 163)]})
    seg = root / "squat-segmentation-data" / "real00.npy"
    message = (f"{seg}: trial SQT01 of session real00 has no OpenSimData/Kinematics/SQT01.mot or SQT01.sto "
               f"({holds})")
    with pytest.raises(DatasetError) as err:
        load_repetitions(root, "all")
    assert str(err.value) == message
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BIGE_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(REPO / "wasserstein_mocap.py"), "--file_type", "mot",
                           "--folder_path", str(root / "Data"), "--out", str(tmp_path / "out"), "--bootstrap", "2",
                           "--projections", "4"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "None" not in proc.stderr and "Traceback" not in proc.stderr
    # what the Dynamics file is for still works: the simulation with its activations
    dyn = load_repetitions(root, "all", source="dynamics")
    assert len(dyn) == 2 and dyn.activations is not None


def test_session_with_only_a_dynamics_folder_reads_the_muscle_driven_file(tmp_path: Path) -> None:
    """No segmentation, no IK, a Dynamics folder: its muscle-driven file is the
    repetition (the documented fallback), at the file's own rate."""
    reps = load_repetitions(real_root(tmp_path, ik_name=None, segments={}), "all")
    assert [Path(f).name for f in reps.files] == [DYNAMICS.name] * 2
    sim = read_motion(MUSCLE_DRIVEN_FILE)
    np.testing.assert_allclose(reps.durations, sim.times[-1] - sim.times[0])
    assert 40 < reps.frame_rates[0] < 60  # OpenCap's ~50 Hz simulation mesh, not the 100 Hz IK


def test_trial_named_without_sqt_says_why_nothing_was_found(tmp_path: Path) -> None:
    """A real trial saved as 'squats1' (OpenCap users name trials freely) and
    segmented under that name: the error says the name lacks 'sqt'."""
    segments = {"squats1": segment_squats(read_motion(IK_FILE).column("knee_angle_r"))}
    root = real_root(tmp_path, ik_name="squats1.mot", segments=segments)
    shutil.rmtree(root / "Data" / "real00" / DYNAMICS.parents[0])
    shutil.rmtree(root / "Data" / "real01" / DYNAMICS.parents[0])
    with pytest.raises(DatasetError) as err:
        load_repetitions(root, "all")
    assert str(err.value) == (f"{root / 'Data'}: no session with squat repetitions found (2 session folders; "
                              "trials found: squats1 (a squat trial's name must contain 'sqt'))")
