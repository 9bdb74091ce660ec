"""The embedded synthetic dataset (dataset/synthetic/synthesize.py and the modules it
drives), checked on the tiny dataset of the ``synthetic_root`` fixture with
real OpenSim."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import opensim as osim
import pytest
from scipy.signal import butter, sosfiltfilt
from scipy.stats import spearmanr

from dataset.synthetic.muscle_dynamics import saturated_antagonist_frames
from dataset.synthetic.opencap_model import OsimPoints
from dataset.synthetic.squat_kinematics import STYLE_RANGES, SquatStyle, SubjectParams, generate_trial
from dataset.synthetic.synthesize import (MODEL_FILE, QUALITY_FILE, QUALITY_LIMITS, TRIAL, build_dataset, get_args_parser,
                                main, session_uuid)
from utils.constants import COORDINATES, MUSCLES
from utils.errors import UserError
from utils.motion_io import read_motion

N_SUBJECTS, N_REPS = 4, 3


def _sessions(root: Path) -> list[Path]:
    return sorted(p for p in (root / "Data").iterdir() if p.is_dir())


def _written(session: Path) -> int:
    """Repetitions of the session that passed the quality checks (written as Dynamics files)."""
    return len(json.loads((session / "synthetic_session.json").read_text())["segments"])


def _dynamics_file(session: Path, k: int) -> Path:
    return (session / "OpenSimData" / "Dynamics" / f"{TRIAL}_segment_{k}"
            / f"kinematics_activations_{TRIAL}_segment_{k}_muscle_driven.mot")


def test_layout_is_the_mcs_layout(synthetic_root):
    root = Path(synthetic_root)
    ids = [session_uuid(0, i) for i in range(N_SUBJECTS)]
    assert sorted(p.name for p in _sessions(root)) == sorted(ids)
    for sid in ids:
        session = root / "Data" / sid
        assert (session / "OpenSimData" / "Kinematics" / f"{TRIAL}.mot").is_file()
        assert (session / "OpenSimData" / "Model" / MODEL_FILE).is_file()
        assert (session / "MarkerData" / f"{TRIAL}.trc").is_file()
        seg = np.load(root / "squat-segmentation-data" / f"{sid}.npy", allow_pickle=True).item()
        assert list(seg) == [TRIAL] and len(seg[TRIAL]) == _written(session) >= 1
        n_frames = read_motion(session / "OpenSimData" / "Kinematics" / f"{TRIAL}.mot").n_frames
        for k, (start, end) in enumerate(seg[TRIAL], start=1):
            assert 0 <= start < end <= n_frames
            assert _dynamics_file(session, k).is_file()
        assert not _dynamics_file(session, len(seg[TRIAL]) + 1).exists()  # dropped repetitions are not data
    split = json.loads((root / "split.json").read_text())
    with_data = [sid for sid in ids if _written(root / "Data" / sid)]  # a session of dropped repetitions only is in neither
    assert sorted(split["train"] + split["test"]) == sorted(with_data)
    assert len(split["test"]) == 1 and not set(split["train"]) & set(split["test"])
    assert "synthetic" in (root / "README.txt").read_text().lower()


def test_every_file_loads_in_opensim(synthetic_root):
    for session in _sessions(Path(synthetic_root)):
        for mot in session.rglob("*.mot"):
            table = osim.TimeSeriesTable(str(mot))
            assert table.getNumRows() > 10
        for sto in session.rglob("*.sto"):
            assert osim.TimeSeriesTable(str(sto)).getNumRows() > 10
        trc = osim.TimeSeriesTableVec3(str(session / "MarkerData" / f"{TRIAL}.trc"))
        assert trc.getNumColumns() >= 30
        model = osim.Model(str(session / "OpenSimData" / "Model" / MODEL_FILE))
        model.initSystem()


def test_kinematics_are_60_hz_degrees_with_the_33_coordinates(synthetic_root):
    session = _sessions(Path(synthetic_root))[0]
    motion = read_motion(session / "OpenSimData" / "Kinematics" / f"{TRIAL}.mot")
    assert motion.in_degrees and motion.frame_rate == pytest.approx(60.0)
    q = motion.coordinates()
    knee = q[:, COORDINATES.index("knee_angle_r")]
    assert knee.max() > 40.0 and knee.min() < 10.0  # squats in degrees, standing in between


def test_feet_stay_on_the_floor_in_every_frame(synthetic_root):
    for session in _sessions(Path(synthetic_root)):
        points = OsimPoints(session / "OpenSimData" / "Model" / MODEL_FILE)  # OpenSim's own kinematics
        q = read_motion(session / "OpenSimData" / "Kinematics" / f"{TRIAL}.mot").coordinates()
        lowest = points(q)[:, :, 1].min(dim=1).values.numpy()
        assert np.abs(lowest).max() < 0.01, f"{session.name}: lowest foot point {np.abs(lowest).max():.4f} m off"


def test_squats_look_like_real_opencap_squats(synthetic_root):
    """Ranges measured on the shipped real OpenCap files (trunk 55-87 deg from
    vertical at the bottom, hip/knee flexion 0.86-1.27, 1.5-1.7 s per
    repetition) and bodyweight-squat studies (docs/synthetic_data.md)."""
    c = COORDINATES.index
    trunk, ratio, duration, depth = [], [], [], []
    for session in _sessions(Path(synthetic_root)):
        for k in range(1, _written(session) + 1):
            motion = read_motion(_dynamics_file(session, k))
            q = motion.coordinates()
            knee = q[:, [c("knee_angle_r"), c("knee_angle_l")]].mean(1)
            b = int(np.argmax(knee))
            trunk.append(-(q[b, c("pelvis_tilt")] + q[b, c("lumbar_extension")]))
            depth.append(knee[b])
            ratio.append(q[b, [c("hip_flexion_r"), c("hip_flexion_l")]].mean() / knee[b])
            moving = np.flatnonzero(knee > knee.min() + 5.0)
            duration.append((moving[-1] - moving[0]) / motion.frame_rate)
    trunk, ratio, duration, depth = map(np.asarray, (trunk, ratio, duration, depth))
    assert 10.0 < trunk.min() and trunk.max() < 100.0, trunk
    assert np.all(trunk[depth >= 80.0] > 40.0), (trunk, depth)  # deep squats lean forwards
    assert 0.75 < ratio.min() and ratio.max() < 1.4, ratio
    assert 0.9 < duration.min() and duration.max() < 2.2, duration


def test_written_kinematics_carry_video_like_jitter(synthetic_root):
    """SQT01.mot (what video IK would give) has 3-12 Hz jitter of the size
    measured on real OpenCap IK; the Dynamics files keep the smooth motion."""
    sos = butter(4, 4.0 / 30.0, output="sos")
    for session in _sessions(Path(synthetic_root)):
        knee = read_motion(session / "OpenSimData" / "Kinematics" / f"{TRIAL}.mot").column("knee_angle_r")
        residual = (knee - sosfiltfilt(sos, knee))[30:-30].std()
        assert 0.05 < residual < 1.0, f"{session.name}: {residual:.3f} deg above 4 Hz"
        dyn = read_motion(_dynamics_file(session, 1)).column("/jointset/walker_knee_r/knee_angle_r/value")
        assert np.abs(np.diff(dyn, 2)).max() < 0.5  # smooth (degrees per frame^2)


def test_markers_follow_the_model(synthetic_root):
    session = _sessions(Path(synthetic_root))[0]
    markers = read_motion(session / "MarkerData" / f"{TRIAL}.trc")
    names, pos = markers.markers()
    assert "r_calc_study" in names and "L_knee_study" in names
    heel = pos[:, names.index("r_calc_study")]
    assert np.all(np.abs(heel[:, 1]) < 0.1)  # a heel marker stays near the floor


def test_activations_are_in_unit_interval_for_all_80_muscles(synthetic_root):
    for session in _sessions(Path(synthetic_root)):
        for k in range(1, _written(session) + 1):
            motion = read_motion(_dynamics_file(session, k))
            acts = motion.columns([f"/forceset/{m}/activation" for m in MUSCLES])
            assert acts.min() >= 0.05 - 1e-9 and acts.max() <= 1.0  # OpenCap's activation floor, 0.05
            assert motion.coordinates().shape[1] == len(COORDINATES)


def test_deeper_squats_need_more_vasti(synthetic_root):
    """Rank correlation between repetition depth (peak knee flexion) and peak
    vastus medialis activation across all repetitions of the dataset."""
    depth, vasmed = [], []
    for session in _sessions(Path(synthetic_root)):
        for k in range(1, _written(session) + 1):
            motion = read_motion(_dynamics_file(session, k))
            q = motion.coordinates()
            depth.append(q[:, [COORDINATES.index("knee_angle_r"), COORDINATES.index("knee_angle_l")]].mean(1).max())
            vasmed.append(motion.columns(["/forceset/vasmed_r/activation", "/forceset/vasmed_l/activation"])
                          .mean(1).max())
    rho = spearmanr(depth, vasmed).statistic
    assert rho > 0.8, f"Spearman rho {rho:.3f} between depth and peak vasmed activation"


def test_residuals_are_reported_and_small(synthetic_root):
    for session in _sessions(Path(synthetic_root)):
        summary = json.loads((session / "synthetic_session.json").read_text())
        assert summary["synthetic"] is True and len(summary["repetitions"]) == N_REPS
        for rep in summary["repetitions"]:
            assert math.isfinite(rep["max_abs_reserve_Nm"]) and math.isfinite(rep["max_abs_hip_rotation_reserve_Nm"])
            if rep["segment"] is not None:  # written: every check passed
                assert rep["max_abs_pelvis_residual_force_N"] < 5.0
                assert rep["max_abs_pelvis_residual_moment_Nm"] < 5.0
                assert rep["max_abs_reserve_Nm"] <= 1.0 and rep["saturated_antagonist_frames"] == 0
        ids = read_motion(session / "OpenSimData" / "Dynamics" / f"{TRIAL}_segment_1"
                          / f"inverse_dynamics_{TRIAL}_segment_1.sto")
        assert ids.has("knee_angle_r_moment") and ids.has("knee_angle_r_reserve")
        # knee extension moment (negative: flexion is positive) during the squat
        assert ids.column("knee_angle_r_moment").min() < -10.0


def test_quality_record_counts_every_repetition(synthetic_root):
    report = json.loads((Path(synthetic_root) / QUALITY_FILE).read_text())
    assert report["limits"] == QUALITY_LIMITS
    assert report["repetitions"] == N_SUBJECTS * N_REPS == report["written"] + report["dropped"]
    assert report["written"] == sum(_written(s) for s in _sessions(Path(synthetic_root)))
    assert report["written"] >= 0.75 * report["repetitions"]
    for row in report["records"]:
        assert (row["segment"] is None) == bool(row["failed"])
        if not row["failed"]:
            assert row["saturated_antagonist_frames"] == 0 and row["solver_unconverged_frames"] == 0


def test_saturated_antagonists_are_detected():
    acts = np.full((4, len(MUSCLES)), 0.05)
    assert saturated_antagonist_frames(acts, MUSCLES) == 0
    acts[1, MUSCLES.index("vaslat_r")] = 1.0       # an agonist at its bound alone: not a failure
    assert saturated_antagonist_frames(acts, MUSCLES) == 0
    acts[1, MUSCLES.index("bflh_l")] = 1.0         # antagonist on the other side: not a pair
    assert saturated_antagonist_frames(acts, MUSCLES) == 0
    acts[1, MUSCLES.index("semimem_r")] = 0.96
    acts[3, [MUSCLES.index("tibant_l"), MUSCLES.index("soleus_l")]] = 0.99
    assert saturated_antagonist_frames(acts, MUSCLES) == 2


def test_a_seed_gives_identical_files_whatever_the_workers(synthetic_root, tmp_path):
    again = build_dataset(tmp_path / "again", n_subjects=1, n_reps=N_REPS, seed=0, workers=1, progress=False)
    sid = session_uuid(0, 0)
    first = sorted(p.relative_to(synthetic_root) for p in Path(synthetic_root).rglob("*")
                   if p.is_file() and sid in str(p))
    second = sorted(p.relative_to(again) for p in Path(again).rglob("*") if p.is_file() and sid in str(p))
    assert first == second and len(first) >= 5 + 2
    for rel in first:
        assert (Path(synthetic_root) / rel).read_bytes() == (Path(again) / rel).read_bytes(), rel
    assert session_uuid(1, 0) != sid and session_uuid(0, 1) != sid


def test_complete_sessions_are_skipped(synthetic_root):
    files = sorted(p for p in Path(synthetic_root).rglob("*.mot"))
    stamps = [p.stat().st_mtime_ns for p in files]
    start = time.perf_counter()
    build_dataset(synthetic_root, n_subjects=N_SUBJECTS, n_reps=N_REPS, seed=0, workers=1, progress=False)
    assert time.perf_counter() - start < 5.0
    assert [p.stat().st_mtime_ns for p in files] == stamps


@pytest.mark.parametrize("field,value", [("depth", 170.0), ("depth", -5.0), ("noise", -1.0),
                                         ("descent", 0.0), ("heel_rise", float("nan"))])
def test_bad_style_parameters_are_clear_errors(field, value):
    with pytest.raises(ValueError, match=field):
        SquatStyle(**{field: value})
    assert field in STYLE_RANGES


@pytest.mark.parametrize("kwargs,word", [({"height": -1.7}, "height"), ({"mass": -3.0}, "mass"),
                                         ({"sex": "other"}, "sex")])
def test_bad_subject_parameters_are_clear_errors(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SubjectParams(**kwargs)


def test_bad_build_arguments_are_clear_errors(tmp_path):
    for kwargs, word in (({"n_subjects": 0}, "n_subjects"), ({"n_subjects": 1, "n_reps": 0}, "n_reps"),
                         ({"n_subjects": 1, "seed": -1}, "seed"), ({"n_subjects": 1, "workers": 0}, "workers")):
        with pytest.raises(ValueError, match=word):
            build_dataset(tmp_path / "x", **kwargs)
    with pytest.raises(ValueError, match="n_reps"):
        generate_trial(None, SquatStyle(), 0, np.random.default_rng(0))
    with pytest.raises(UserError, match="n_subjects"):
        main(get_args_parser().parse_args(["--out", str(tmp_path / "y"), "--subjects", "0", "--no-progress"]))


def test_command_line_help_describes_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        get_args_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--subjects", "--seed", "--reps", "--workers", "synthetic"):
        assert option in text
