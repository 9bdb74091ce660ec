"""The metric scripts end to end on a small MCS-layout dataset and folders of
generated motions written with utils.motion_io: the reference row equals the
same repetitions read back from files, compare mode, output files that are
never overwritten silently, the surrogate and simulation activation paths, and
clear errors for bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import calculate_guidance
import calculate_wasserstein
import wasserstein_mocap
from dataset.repetitions import load_repetitions
from metrics.guidance import kinematic_metrics
from models.surrogate import SurrogateModel
from options.metrics import get_guidance_parser, get_wasserstein_mocap_parser, get_wasserstein_parser
from utils.checkpoint import save_checkpoint
from utils.constants import COORD_INDEX, COORDINATES, GUIDED_MUSCLES
from utils.errors import UserError
from utils.fileio import OutputExistsError, atomic_save_npy
from utils.motion_io import write_coordinates
from metrics.motion_sets import MotionSetError

REPO = Path(__file__).resolve().parents[1]
SESSIONS = [f"{i:08x}-1111-4222-8333-{i:012x}" for i in range(1, 7)]
TRAIN, TEST = SESSIONS[:4], SESSIONS[4:]


def _squat(frames: int, depth: float, rng: np.random.Generator) -> np.ndarray:
    """One squat repetition (frames, 33), degrees / metres, feet fixed."""
    s = (1 - np.cos(np.linspace(0, 2 * np.pi, frames))) / 2
    x = rng.normal(0.0, 0.5, size=(frames, len(COORDINATES)))
    for side in "lr":
        x[:, COORD_INDEX[f"knee_angle_{side}"]] += depth * s
        x[:, COORD_INDEX[f"hip_flexion_{side}"]] += 0.9 * depth * s
        x[:, COORD_INDEX[f"ankle_angle_{side}"]] += 0.35 * depth * s
    x[:, COORD_INDEX["pelvis_tilt"]] += 0.2 * depth * s
    x[:, [COORD_INDEX["pelvis_tx"], COORD_INDEX["pelvis_tz"]]] *= 0.002
    x[:, COORD_INDEX["pelvis_ty"]] = 0.95 - 0.0035 * depth * s
    return x


def _activation(x: np.ndarray) -> np.ndarray:
    """A made-up vasmed activation following knee flexion, in [0, 1]. (T,)"""
    return np.clip(x[:, COORD_INDEX["knee_angle_r"]] / 200.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def mcs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 sessions x 3 repetitions of varying length, trials cut by the
    segmentation, muscle-driven Dynamics files with two activations, and a
    split.json (4 train, 2 test)."""
    root = tmp_path_factory.mktemp("mcs")
    rng = np.random.default_rng(0)
    for i, sid in enumerate(SESSIONS):
        reps = [_squat(int(rng.integers(150, 240)), 70 + 6 * i + 4 * k, rng) for k in range(3)]
        bounds = np.cumsum([0] + [len(r) for r in reps])
        write_coordinates(root / "Data" / sid / "OpenSimData" / "Kinematics" / "SQT01.mot", np.concatenate(reps))
        seg = root / "squat-segmentation-data"
        seg.mkdir(exist_ok=True)
        np.save(seg / f"{sid}.npy", {"SQT01": [(int(bounds[k]), int(bounds[k + 1])) for k in range(3)]},
                allow_pickle=True)
        for k, rep in enumerate(reps, start=1):
            d = root / "Data" / sid / "OpenSimData" / "Dynamics" / f"SQT01_segment_{k}"
            act = _activation(rep)
            write_coordinates(d / f"kinematics_activations_SQT01_segment_{k}_muscle_driven.mot", rep,
                              extra={"/forceset/vasmed_r/activation": act, "/forceset/vasmed_l/activation": 0.9 * act})
    (root / "split.json").write_text(json.dumps({"train": TRAIN, "test": TEST}))
    return root


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Guidance-style folder: <folder>/<session>/entry_<k>_<exp>.mot plus .npy twins."""
    folder = tmp_path_factory.mktemp("gen")
    rng = np.random.default_rng(1)
    for sid in TEST:
        for k in range(4):
            x = _squat(196, 140.0, rng)  # deeper than any session (70-112 deg)
            write_coordinates(folder / sid / f"entry_{k}_BIGE.mot", x)
            atomic_save_npy(folder / sid / f"entry_{k}_BIGE.npy", x.astype(np.float32))
    return folder


def _args(parser, *argv: str):
    return parser.parse_args([str(a) for a in argv])


FAST = ("--bootstrap", "10", "--projections", "32", "--no-progress")


def test_reference_row_equals_the_same_repetitions_read_from_files(mcs_root: Path, tmp_path: Path) -> None:
    ref_row = wasserstein_mocap.main(_args(get_wasserstein_mocap_parser(), "--file_type", "mot", "--folder_path",
                                           mcs_root / "Data", "--out", tmp_path / "ref", *FAST))
    reps = load_repetitions(mcs_root, split="test")
    assert ref_row["n"] == len(reps) == 6 and ref_row["reference_n"] == 12
    export = tmp_path / "export"
    for k, (sid, motion) in enumerate(zip(reps.sessions, reps.motions)):
        write_coordinates(export / sid / f"entry_{k}_mocap.mot", motion)
    row = calculate_wasserstein.main(_args(get_wasserstein_parser(), "--file_type", "mot", "--folder_path", export,
                                           "--data-root", mcs_root, *FAST))[0]
    for key in ("gaussian_w2sq", "entropy", "w1_mean_rot_deg", "w1_mean_trans_cm", "emd_w2", "sliced_w2"):
        assert row[key] == pytest.approx(ref_row[key], rel=1e-5, abs=1e-6), key
    assert 0 < row["emd_w2_ci_low"] <= row["emd_w2"] <= row["emd_w2_ci_high"]
    # written into the folder: CSV, JSON (with every per-coordinate W1 and the units), Markdown
    out = json.loads((export / "wasserstein.json").read_text())
    assert out["rows"][0]["w1_knee_angle_r"] == pytest.approx(row["w1_knee_angle_r"])
    assert out["reference"]["n"] == 12 and out["sets"][0]["skipped"] == []
    assert "project protocol" in out["units"]["gaussian_w2sq"]
    md = (export / "wasserstein.md").read_text()
    assert "| set | n | Gaussian W2^2 (pooled) |" in md and "knee_angle_r (deg)" in md
    assert (export / "wasserstein.csv").read_text().startswith("label,kind,n,")
    # the Data folder or the root: same numbers
    again = wasserstein_mocap.main(_args(get_wasserstein_mocap_parser(), "--folder_path", mcs_root,
                                         "--out", tmp_path / "ref2", *FAST))
    assert again["gaussian_w2sq"] == ref_row["gaussian_w2sq"]


def test_compare_mode_builds_one_row_per_folder_and_never_overwrites(
        mcs_root: Path, generated: Path, tmp_path: Path) -> None:
    argv = ["--compare", mcs_root, generated, generated, "--kinds", "auto", "auto", "mot",
            "--labels", "MoCap", "BIGE-npy", "BIGE-mot", "--data-root", mcs_root, "--out", tmp_path, *FAST]
    rows = calculate_wasserstein.main(_args(get_wasserstein_parser(), *argv))
    assert [r["label"] for r in rows] == ["MoCap", "BIGE-npy", "BIGE-mot"]
    assert [r["kind"] for r in rows] == ["mocap", "npy", "mot"]
    assert rows[1]["gaussian_w2sq"] == pytest.approx(rows[2]["gaussian_w2sq"], rel=1e-5)
    assert rows[1]["w1_mean_rot_deg"] > rows[0]["w1_mean_rot_deg"]  # deeper squats than the data
    assert (tmp_path / "wasserstein_compare.md").is_file()
    with pytest.raises(OutputExistsError, match="wasserstein_compare.csv.*--overwrite"):
        calculate_wasserstein.main(_args(get_wasserstein_parser(), *argv))
    calculate_wasserstein.main(_args(get_wasserstein_parser(), *argv, "--out-name", "second"))
    assert (tmp_path / "second.json").is_file()
    calculate_wasserstein.main(_args(get_wasserstein_parser(), *argv, "--overwrite", "--no-multivariate"))
    assert "emd_w2" not in json.loads((tmp_path / "wasserstein_compare.json").read_text())["rows"][0]


def test_own_subject_measures_each_folder_against_its_subjects_motion_capture(mcs_root: Path, tmp_path: Path) -> None:
    """--own-subject: a subject's own repetitions are at 0; the same shifted by
    5 deg in one coordinate are at W1 5/30 deg, EMD 5 and the Gaussian W2^2 of
    the pooled values; a subject without motion capture is listed, not scored."""
    reps = load_repetitions(mcs_root, split="test")
    same, shifted = tmp_path / "same", tmp_path / "shifted"
    for k, (sid, motion) in enumerate(zip(reps.sessions, reps.motions)):
        write_coordinates(same / sid / f"entry_{k}_mocap.mot", motion)
        moved = motion.copy()
        if sid == TEST[0]:
            moved[:, COORD_INDEX["knee_angle_r"]] += 5.0
        write_coordinates(shifted / sid / f"entry_{k}_mocap.mot", moved)
    stranger = "ffffffff-1111-4222-8333-ffffffffffff"
    write_coordinates(shifted / stranger / "entry_0_mocap.mot", reps.motions[0])
    argv = ["--compare", same, shifted, "--labels", "same", "shifted", "--data-root", mcs_root, "--own-subject",
            "--out", tmp_path / "o", *FAST]
    rows = calculate_wasserstein.main(_args(get_wasserstein_parser(), *argv))
    assert rows[0]["own_subjects"] == 2 and rows[0]["own_missing"] == ""
    for key in ("own_w2sq", "own_w1_rot_deg", "own_emd_w2"):
        assert rows[0][key] == pytest.approx(0.0, abs=1e-3), key
    first = [m for m, s in zip(reps.motions, reps.sessions) if s == TEST[0]]
    own, moved = np.stack(first).astype(np.float64), np.stack(first).astype(np.float64)
    moved[:, :, COORD_INDEX["knee_angle_r"]] += 5.0
    w2sq = (moved.mean() - own.mean()) ** 2 + (moved.std() - own.std()) ** 2
    r = rows[1]
    assert r["own_subjects"] == 2 and r["own_missing"] == stranger
    assert r[f"own_w1_rot_deg_{TEST[0]}"] == pytest.approx(5.0 / 30, abs=1e-3)
    assert r[f"own_emd_w2_{TEST[0]}"] == pytest.approx(5.0, abs=1e-3)
    assert r[f"own_w2sq_{TEST[0]}"] == pytest.approx(w2sq, rel=1e-3)
    assert r[f"own_emd_w2_{TEST[1]}"] == pytest.approx(0.0, abs=1e-3)
    assert r["own_emd_w2"] == pytest.approx(2.5, abs=1e-3) and r["own_emd_w2_std"] == pytest.approx(2.5, abs=1e-3)
    md = (tmp_path / "o" / "wasserstein_compare.md").read_text()
    assert "## Against each subject's own motion capture" in md and "| set | subjects | Gaussian W2^2 |" in md
    with pytest.raises(MotionSetError, match="--own-subject is a measure of the project protocol"):
        calculate_wasserstein.main(_args(get_wasserstein_parser(), *argv, "--protocol", "published", "--overwrite"))


@pytest.fixture(scope="module")
def surrogate_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small (untrained) surrogate checkpoint in the format surrogate training writes."""
    torch.manual_seed(0)
    model = SurrogateModel("mlp", muscles=GUIDED_MUSCLES, hidden=16, layers=2)
    path = tmp_path_factory.mktemp("sur") / "net_best.pth"
    save_checkpoint(path, model=model.state_dict(), model_config=model.model_config(),
                    coordinates=list(COORDINATES), muscles=list(model.muscles))
    return path


def test_guidance_script_per_subject_with_surrogate_and_forward_kinematics(
        generated: Path, surrogate_ckpt: Path, tmp_path: Path) -> None:
    rows = calculate_guidance.main(_args(get_guidance_parser(), "--file_type", "mot", "--folder_path", generated,
                                         "--surrogate", surrogate_ckpt, "--out", tmp_path, "--no-progress"))
    assert [r["subject"] for r in rows] == [*TEST, "all"]
    assert [r["n"] for r in rows] == [4, 4, 8]
    pooled = rows[-1]
    assert 0.0 <= pooled["activation_peak"] <= 1.0
    assert pooled["in_band"] + pooled["violating"] == pytest.approx(1.0)
    for key in ("pelvis_tilt_at_peak_deg", "foot_slide_cm", "floor_penetration_cm", "asymmetry_deg"):
        assert np.isfinite(pooled[key]), key
    motions = np.stack([np.loadtxt(p, skiprows=7)[:, 1:] for p in sorted(generated.rglob("*.mot"))])
    assert pooled["depth_cm"] == pytest.approx(kinematic_metrics(motions)["depth_cm"].mean(), rel=1e-5)
    per_motion = (tmp_path / "guidance_motions.csv").read_text().splitlines()
    assert len(per_motion) == 9 and per_motion[0].startswith("set,subject,file,activation_peak,")
    out = json.loads((tmp_path / "guidance.json").read_text())
    assert any("surrogate" in n for n in out["notes"]) and len(out["rows"]) == 3


def test_floor_height_auto_needs_the_subjects_motion_capture(generated: Path, tmp_path: Path) -> None:
    parser = get_guidance_parser()
    assert _args(parser, "--floor-height", "auto").floor_height == "auto"
    assert _args(parser, "--floor-height", "0.12").floor_height == 0.12
    with pytest.raises(SystemExit):
        _args(parser, "--floor-height", "floor")
    with pytest.raises(UserError, match="--floor-height auto for .* needs its subjects. motion capture in "
                                        "--data-root: .*no-root"):
        calculate_guidance.main(_args(parser, "--file_type", "mot", "--folder_path", generated, "--activations",
                                      "none", "--floor-height", "auto", "--data-root", tmp_path / "no-root",
                                      "--out", tmp_path, "--no-progress"))


def test_guidance_without_surrogate_says_so_and_simulation_activations_on_mocap(
        mcs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no default surrogate checkpoint below the working directory
    rows = calculate_guidance.main(_args(get_guidance_parser(), "--file_type", "mocap", "--folder_path", mcs_root,
                                         "--out", tmp_path / "a", "--no-fk", "--no-progress"))
    assert "activation_peak" not in rows[-1] and "foot_slide_cm" not in rows[-1]
    notes = json.loads((tmp_path / "a" / "guidance.json").read_text())["notes"]
    assert any("no surrogate checkpoint" in n and "skipped" in n for n in notes)
    rows = calculate_guidance.main(_args(get_guidance_parser(), "--file_type", "mocap", "--folder_path", mcs_root,
                                         "--activations", "simulation", "--out", tmp_path / "b", "--no-fk",
                                         "--split", "all", "--no-progress"))
    reps = load_repetitions(mcs_root, split="all", source="dynamics")
    peaks = reps.activations.max(axis=1)  # (N, 2): vasmed_r, vasmed_l in file order
    order = [reps.muscles.index(m) for m in GUIDED_MUSCLES]
    assert rows[-1]["n"] == 18
    assert rows[-1]["activation_peak"] == pytest.approx(peaks[:, order].mean(), rel=1e-5)
    with pytest.raises(MotionSetError, match="needs motion-capture roots"):
        calculate_guidance.main(_args(get_guidance_parser(), "--compare", mcs_root, tmp_path / "a",
                                      "--kinds", "mocap", "mot", "--activations", "simulation"))


def test_guidance_compare_mode_one_row_per_folder(mcs_root: Path, generated: Path, tmp_path: Path) -> None:
    rows = calculate_guidance.main(_args(get_guidance_parser(), "--compare", mcs_root, generated, "--labels",
                                         "MoCap", "BIGE", "--out", tmp_path, "--activations", "none", "--no-fk",
                                         "--no-progress"))
    assert [r["subject"] for r in rows] == ["MoCap", "BIGE"]
    assert rows[1]["knee_flexion_peak_deg"] > rows[0]["knee_flexion_peak_deg"]
    assert "| set | n |" in (tmp_path / "guidance_compare.md").read_text()


def test_bad_input_gives_clear_errors(mcs_root: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MotionSetError, match=r"empty: no \.mot or \.npy files"):
        calculate_wasserstein.main(_args(get_wasserstein_parser(), "--folder_path", empty, "--data-root", mcs_root))
    bad = tmp_path / "bad"
    atomic_save_npy(bad / "s1" / "nan.npy", np.full((196, 33), np.nan))
    atomic_save_npy(bad / "s1" / "cols.npy", np.zeros((196, 12)))
    with pytest.raises(MotionSetError, match=r"(?s)none of the 2 .*cols\.npy: shape \(196, 12\).*nan\.npy: 6468 non"):
        calculate_guidance.main(_args(get_guidance_parser(), "--folder_path", bad, "--no-fk"))
    with pytest.raises(MotionSetError, match="not an MCS dataset root"):
        wasserstein_mocap.main(_args(get_wasserstein_mocap_parser(), "--folder_path", bad))
    with pytest.raises(MotionSetError, match="--labels names 1 row"):
        calculate_wasserstein.main(_args(get_wasserstein_parser(), "--compare", bad, mcs_root, "--labels", "x"))
    # from the command line: one clear line on stderr, exit status 2 (user error), nothing written
    proc = subprocess.run([sys.executable, "calculate_wasserstein.py", "--file_type", "npy", "--folder_path",
                           str(bad), "--data-root", str(mcs_root)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("calculate_wasserstein.py: error: ") and "nan.npy" in proc.stderr and "Traceback" not in proc.stderr
    assert not (bad / "wasserstein.json").exists()


# ----------------------------------------------------------------------------- the published protocol


def test_published_protocol_distribution_rows_per_session_against_tiled_dynamics(
        mcs_root: Path, generated: Path, tmp_path: Path) -> None:
    """--protocol published: each test session's repetitions (tiled) against
    the test sessions' Dynamics kinematics (tiled), mean ± std over sessions;
    the MoCap row of calculate_wasserstein.py equals wasserstein_mocap.py's."""
    rows = calculate_wasserstein.main(_args(get_wasserstein_parser(), "--compare", mcs_root, generated, "--labels",
                                            "MoCap", "BIGE", "--data-root", mcs_root, "--protocol", "published",
                                            "--out", tmp_path, *FAST))
    mocap = load_repetitions(mcs_root, "test", clip_mode="tile")
    ref = load_repetitions(mcs_root, "test", source="dynamics", clip_mode="tile").motions.astype(np.float64)
    # tiled, not resampled: a 150-240-frame repetition starts again after its last frame
    first = mocap.motions[0].astype(np.float64)
    n0 = int(round(mocap.durations[0] * 60)) + 1
    np.testing.assert_allclose(first[n0:2 * n0][:196 - n0], first[:196 - n0], atol=1e-5)
    per = []
    for sid in TEST:
        x = mocap.motions[np.asarray(mocap.sessions) == sid].astype(np.float64)
        per.append((x.mean() - ref.mean()) ** 2 + (x.std() - ref.std()) ** 2)
    assert rows[0]["folders"] == 2 and rows[0]["reference_n"] == 6
    assert rows[0]["published_w2sq"] == pytest.approx(np.mean(per), rel=1e-5)
    assert rows[0]["published_w2sq_std"] == pytest.approx(np.std(per), rel=1e-5)
    assert rows[1]["folders"] == 2 and rows[1]["n"] == 8
    md = (tmp_path / "wasserstein_compare.md").read_text()
    assert "published protocol" in md and "W2^2 (published protocol)" in md and "Gaussian W2^2" not in md
    assert json.loads((tmp_path / "wasserstein_compare.json").read_text())["protocol"] == "published"
    row = wasserstein_mocap.main(_args(get_wasserstein_mocap_parser(), "--folder_path", mcs_root, "--protocol",
                                       "published", "--out", tmp_path / "m", *FAST))
    assert row["published_w2sq"] == pytest.approx(rows[0]["published_w2sq"], rel=1e-9)
    # the project protocol names itself, and the published words stay away from its numbers
    calculate_wasserstein.main(_args(get_wasserstein_parser(), "--folder_path", generated, "--data-root", mcs_root,
                                     "--out", tmp_path / "p", "--no-multivariate", *FAST))
    md = (tmp_path / "p" / "wasserstein.md").read_text()
    assert "project protocol" in md and "published" not in md
    with pytest.raises(MotionSetError, match="--protocol published fits clips by tiling"):
        calculate_wasserstein.main(_args(get_wasserstein_parser(), "--folder_path", generated, "--data-root",
                                         mcs_root, "--protocol", "published", "--clip-mode", "resample"))


def test_published_protocol_guidance_per_session_in_real_time(mcs_root: Path, tmp_path: Path) -> None:
    rows = calculate_guidance.main(_args(get_guidance_parser(), "--file_type", "mocap", "--folder_path", mcs_root,
                                         "--protocol", "published", "--activations", "simulation",
                                         "--out", tmp_path, "--no-progress"))
    assert [r["subject"] for r in rows] == [*TEST, "all"]
    assert "foot_slide_cm" not in rows[-1] and rows[-1]["folders"] == 2
    reps = load_repetitions(mcs_root, "test", source="dynamics", clip_mode="tile")
    x = reps.motions.astype(np.float64)
    omega_idx = [COORD_INDEX[c] for c in ("hip_flexion_l", "hip_flexion_r", "knee_angle_l", "knee_angle_r",
                                          "ankle_angle_l", "ankle_angle_r", "pelvis_tilt")]
    per = []
    for sid in TEST:
        mine = np.asarray(reps.sessions) == sid
        w = np.diff(x[mine][:, :, omega_idx], axis=1) * 60.0  # the files are at 60 Hz, tiled clips keep it
        per.append(np.sqrt(np.mean(w ** 2)))
    assert rows[-1]["angular_velocity_rms_deg_s"] == pytest.approx(np.mean(per), rel=1e-5)
    assert rows[-1]["angular_velocity_rms_deg_s_std"] == pytest.approx(np.std(per), rel=1e-5)
    md = (tmp_path / "guidance.md").read_text()
    assert "published protocol" in md and "omega, 7 coords (deg/s)" in md
    assert not (tmp_path / "guidance_motions.csv").exists()


# ----------------------------------------------------------------------------- the synthetic OpenSim dataset


def test_metrics_on_the_synthetic_dataset(synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real generated data (OpenSim model, kinematics with floor contact,
    muscle-driven simulations): the reference row, and guidance metrics with
    simulated activations and each subject's own scaled model."""
    monkeypatch.chdir(tmp_path)
    ref = wasserstein_mocap.main(_args(get_wasserstein_mocap_parser(), "--file_type", "mot", "--folder_path",
                                       synthetic_root / "Data", "--out", tmp_path / "w", *FAST))
    test_reps = load_repetitions(synthetic_root, split="test")
    assert ref["n"] == len(test_reps) and ref["reference_n"] == len(load_repetitions(synthetic_root, split="train"))
    assert np.isfinite([ref["gaussian_w2sq"], ref["emd_w2"], ref["sliced_w2"]]).all()
    assert 0.0 < ref["entropy"] < np.log(10)

    rows = calculate_guidance.main(_args(get_guidance_parser(), "--file_type", "mocap", "--folder_path",
                                         synthetic_root, "--split", "all", "--activations", "simulation",
                                         "--out", tmp_path / "g", "--no-progress"))
    pooled = rows[-1]
    assert pooled["n"] == len(load_repetitions(synthetic_root, split="all"))
    assert 0.0 < pooled["activation_peak"] <= 1.0
    assert 10.0 < pooled["depth_cm"] < 80.0 and 45.0 < pooled["knee_flexion_peak_deg"] < 150.0
    assert pooled["floor_penetration_cm"] < 0.2  # feet on the floor by construction, with the subjects' models
    notes = json.loads((tmp_path / "g" / "guidance.json").read_text())["notes"]
    assert any("4 subject(s) with the model of their session's Model/ folder" in n for n in notes)

    # generated folders named by session use that session's model from --data-root: same foot numbers
    export = tmp_path / "export"
    for k, (sid, motion) in enumerate(zip(test_reps.sessions, test_reps.motions)):
        write_coordinates(export / sid / f"entry_{k}_copy.mot", motion)
    copy = calculate_guidance.main(_args(get_guidance_parser(), "--folder_path", export, "--data-root",
                                         synthetic_root, "--activations", "none", "--no-progress"))[-1]
    mocap = calculate_guidance.main(_args(get_guidance_parser(), "--file_type", "mocap", "--folder_path",
                                          synthetic_root, "--activations", "none", "--out", tmp_path / "m",
                                          "--no-progress"))[-1]
    for key in ("foot_slide_cm", "floor_penetration_cm", "depth_cm", "asymmetry_deg"):
        assert copy[key] == pytest.approx(mocap[key], rel=1e-4, abs=1e-4), key

    # a surrogate that takes body mass gets each generated motion's subject's mass from --data-root:
    # the mean peak equals the prediction with the masses the generator recorded for those subjects
    torch.manual_seed(1)
    model = SurrogateModel("mlp", muscles=GUIDED_MUSCLES, hidden=16, layers=2, body_mass=(65.0, 10.0)).eval()
    ckpt = tmp_path / "mass.pth"
    save_checkpoint(ckpt, model=model.state_dict(), model_config=model.model_config(),
                    coordinates=list(COORDINATES), muscles=list(model.muscles))
    with_mass = calculate_guidance.main(_args(get_guidance_parser(), "--folder_path", export, "--data-root",
                                              synthetic_root, "--surrogate", ckpt, "--no-fk", "--out",
                                              tmp_path / "mass", "--no-progress"))[-1]
    records = {sid: json.loads((synthetic_root / "Data" / sid / "synthetic_session.json").read_text())
               ["subject"]["mass_kg"] for sid in set(test_reps.sessions)}
    expected = model.predict(test_reps.motions, body_mass=[records[s] for s in test_reps.sessions]).max(1).mean()
    assert with_mass["activation_peak"] == pytest.approx(float(expected), rel=1e-4)
    with pytest.raises(MotionSetError, match="no session folder of that name under .*point --data-root"):
        calculate_guidance.main(_args(get_guidance_parser(), "--folder_path", export, "--data-root", tmp_path,
                                      "--surrogate", ckpt, "--no-fk", "--out", tmp_path / "none", "--no-progress"))


def test_a_folder_mixing_generation_settings_is_refused(generated: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(generated, mixed)
    for sid, band in zip(TEST, ([0.35, 0.45], [0.55, 0.65])):  # e.g. after --overwrite on one subject
        (mixed / sid / "summary.json").write_text(json.dumps({"method": "BIGE guidance", "band": band}))
    with pytest.raises(MotionSetError, match=rf"{TEST[1]}/summary.json: generated with other settings .*band"):
        calculate_guidance.main(_args(get_guidance_parser(), "--folder_path", mixed, "--no-fk", "--out", tmp_path))
    # each subject's clips span its own real repetition duration: frame rates differ by design
    for sid, rate in zip(TEST, (92.3, 104.3)):
        (mixed / sid / "summary.json").write_text(json.dumps(
            {"method": "BIGE guidance", "band": [0.35, 0.45], "frame_rate": rate,
             "time_source": "mean real duration of the subject's repetitions"}))
    rows = calculate_guidance.main(_args(get_guidance_parser(), "--folder_path", mixed, "--no-fk", "--out", tmp_path,
                                         "--activations", "none"))
    assert [r["subject"] for r in rows] == [*TEST, "all"]
