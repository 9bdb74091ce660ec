"""The whole pipeline, script by script as a user runs it, on an MCS-layout root
assembled from real OpenCap files (``tests/real_session.py``), at tiny sizes.

Each stage must complete, and the numbers must be sane: the repetitions come
from the real IK at 100 Hz cut by the segmentation, the activations read from
the real muscle-driven file match the file, and the real motion capture's feet
stay on the floor through the project's forward kinematics of the subject's
ScaleTool-scaled model.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dataset.repetitions import load_repetitions
from tests.real_session import MUSCLE_DRIVEN_FILE, SUBJECT_MASS_KG, build_real_root
from utils.motion_io import read_motion

REPO = Path(__file__).resolve().parents[1]
THREADS = ["--num-threads", "1"]


def run(script: str, *args, expect_ok: bool = True) -> subprocess.CompletedProcess:
    """Run a root script as a user does; fail the test with its output when it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    if expect_ok and proc.returncode != 0:
        pytest.fail(f"{script} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n"
                    f"{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def real_root(tmp_path_factory) -> Path:
    return build_real_root(tmp_path_factory.mktemp("real_mcs") / "root")


@pytest.fixture(scope="module")
def trained(real_root, tmp_path_factory) -> dict[str, Path]:
    """A tiny VQ-VAE and a tiny surrogate trained on the real root."""
    out = tmp_path_factory.mktemp("real_out")
    run("train_vq.py", "--data-root", real_root, "--out-dir", out, "--exp-name", "vq", "--width", "32",
        "--code-dim", "16", "--nb-code", "32", "--depth", "2", "--batch-size", "8", "--window-size", "64",
        "--total-iter", "30", "--warm-up-iter", "5", "--eval-iter", "30", "--snapshot-iter", "30", "--lr", "2e-3",
        "--no-progress", "--device", "cpu", *THREADS)
    run("surrogate_training.py", "--data-root", real_root, "--out-dir", out, "--exp-name", "sur",
        "--muscles", "vasmed_r", "vasmed_l", "--hidden", "32", "--epochs", "20", "--batch-size", "2",
        "--val-fraction", "0.34", "--plot-reps", "1", "--device", "cpu", "--eval-data", MUSCLE_DRIVEN_FILE,
        "--eval-name", "real", "--eval-body-mass", str(SUBJECT_MASS_KG), *THREADS)
    return {"out": out, "vq": out / "vq" / "net_best.pth", "sur": out / "sur" / "net_best.pth"}


def test_the_surrogate_takes_the_mass_of_the_sessions_scaled_model(trained):
    """Every session holds the generic model scaled by OpenSim's ScaleTool to
    the real subject's 72 kg: the surrogate's mass input was fitted on that."""
    from models.surrogate import load_surrogate

    model = load_surrogate(trained["sur"])
    assert model.uses_body_mass
    mean, std = model.body_mass
    assert mean == pytest.approx(SUBJECT_MASS_KG, rel=1e-9) and std == 1.0  # one mass: the 1 kg floor


def test_vq_trains_and_reconstructs_the_real_test_session(trained, real_root):
    out = trained["out"]
    run("MOT_eval.py", "--data-root", real_root, "--out-dir", out, "--exp-name", "vq", "--resume-pth",
        trained["vq"], "--device", "cpu", *THREADS)
    errors = json.loads((out / "vq" / "reconstruction_test" / "errors.json").read_text())
    written = sorted((out / "vq" / "reconstruction_test" / "mot").glob("*.mot"))
    assert len(written) == 5  # the five squats of the test session's real IK
    assert errors["n_clips"] == 5
    assert np.isfinite(errors["mae_deg"]) and 0.0 < errors["mae_deg"] < 60.0  # 30 steps: sane, not good
    assert np.isfinite(errors["mae_cm"]) and errors["mae_cm"] < 50.0
    back = read_motion(written[0]).coordinates()
    assert back.shape[1] == 33 and np.isfinite(back).all()


def test_acceleration_target_refuses_a_dynamics_file_of_another_motion(trained, real_root):
    """The test root's Dynamics file is a real muscle-driven repetition of another subject's squat
    (peak knee ~103 deg against the IK's ~88): paired by index with the IK's first repetition, it
    must not become that repetition's acceleration target."""
    from dataset.paired_dynamics import PAIR_TOLERANCE_DEG, paired_dynamics
    from utils.constants import ROTATION_MASK

    train = load_repetitions(real_root, "train")
    dyn = load_repetitions(real_root, "train", source="dynamics", length=train.motions.shape[1])
    assert np.abs(dyn.motions[0][:, ROTATION_MASK] - train.motions[0][:, ROTATION_MASK]).mean() > PAIR_TOLERANCE_DEG
    clean, n = paired_dynamics(train, real_root, dict(length=train.motions.shape[1], clip_mode="resample",
                                                      split_file=None))
    assert n == 0 and np.array_equal(clean, train.motions)
    log = (trained["out"] / "vq" / "run.log").read_text()  # the default training said so
    assert "noise-free Dynamics kinematics for 0 of" in log and "this is --acc-target input" in log


def test_surrogate_reads_the_real_activations_exactly(trained):
    report = json.loads((trained["out"] / "sur" / "eval_real.json").read_text())
    real = read_motion(MUSCLE_DRIVEN_FILE)
    for row in report["muscles"]:
        # the report's simulated peak is the file's own (resampled by time: within 1 %)
        assert row["sim_peak"] == pytest.approx(real.column(row["muscle"]).max(), rel=0.01)
    test_report = json.loads((trained["out"] / "sur" / "eval_test.json").read_text())
    assert test_report["n_repetitions"] == 1 and test_report["sessions"] == ["real03"]


def test_generation_and_distribution_metrics_on_the_real_root(trained, real_root, tmp_path):
    out = trained["out"]
    run("generate_vq.py", "--data-root", real_root, "--out-dir", out, "--exp-name", "VQVAE", "--vq-name",
        trained["vq"], "--subject", "all", "--num-samples", "3", "--device", "cpu", *THREADS)
    generated = sorted((out / "VQVAE").rglob("*.mot"))
    assert [p.parent.name for p in generated] == ["real03"] * 3  # "all" = every test subject
    assert read_motion(generated[0]).coordinates().shape == (196, 33)
    run("wasserstein_mocap.py", "--file_type", "mot", "--folder_path", real_root / "Data", "--out", tmp_path / "ref",
        "--bootstrap", "5", "--projections", "16", "--no-progress")
    run("calculate_wasserstein.py", "--file_type", "mot", "--folder_path", out / "VQVAE", "--data-root", real_root,
        "--out", tmp_path / "gen", "--bootstrap", "5", "--projections", "16", "--no-progress", "--own-subject")
    for folder in (tmp_path / "ref", tmp_path / "gen"):
        tables = list(folder.glob("*.json"))
        assert tables, folder
        text = tables[0].read_text()
        assert "NaN" not in text and "Infinity" not in text
    # the samples against the real subject's own motion capture: one subject, found, at a finite distance
    row = json.loads((tmp_path / "gen" / "wasserstein.json").read_text())["rows"][0]
    assert row["own_subjects"] == 1 and row["own_missing"] == ""
    assert row["own_w1_rot_deg_real03"] == row["own_w1_rot_deg"] > 0 and row["own_emd_w2"] > 0


def test_real_feet_stay_on_the_floor_through_the_project_fk(real_root):
    """OpenCap's muscle-driven kinematics of a 1.78 m subject through the
    project's FK of the generic model scaled to that subject by ScaleTool: the
    lowest point of each foot stays within 3 cm of the floor over the squat
    (floor: the median lowest point, as a user with an unknown floor would set
    it) and within 3.5 cm of OpenCap's y = 0 (the subject's own marker-scaled
    model is not public; uniform scaling leaves the feet 2-3 cm high)."""
    import torch

    from utils.kinematics import ForwardKinematics

    model = next((real_root / "Data" / "real00" / "OpenSimData" / "Model").glob("*.osim"))
    fk = ForwardKinematics.from_osim(model)
    feet = fk.foot_contact_indices()
    assert [fk.point_names[i] for i in feet] == ["heel_r", "met1_r", "met5_r", "toe_r",
                                                 "heel_l", "met1_l", "met5_l", "toe_l"]
    # the heel point is the calcaneus origin: the session's .trc holds OpenSim's own
    # calcn_r / calcn_l origins posed by the session's IK, an independent reference
    session = real_root / "Data" / "real00"
    names, trc = read_motion(session / "MarkerData" / "SQT01.trc").markers()
    ik = torch.tensor(read_motion(session / "OpenSimData" / "Kinematics" / "SQT01.mot").coordinates(),
                      dtype=torch.float64)
    heels = fk(ik, points=[fk.point_index("heel_r"), fk.point_index("heel_l")]).numpy()
    assert np.abs(heels - trc[:, [names.index("calcn_r"), names.index("calcn_l")]]).max() < 1e-6
    coords = torch.tensor(read_motion(MUSCLE_DRIVEN_FILE).coordinates(), dtype=torch.float64)
    height = fk(coords, points=feet)[..., 1].numpy()  # (T, 8)
    for lowest in (height[:, :4].min(1), height[:, 4:].min(1)):
        floor = float(np.median(lowest))
        assert np.abs(lowest - floor).max() < 0.03
        assert 0.0 < lowest.min() and lowest.max() < 0.035


def test_verify_and_refine_simulate_with_the_real_scaled_model(trained, real_root):
    """--verify on the real session: every guided run is simulated with OpenSim on the session's scaled
    LaiArnold model (its 80 real muscles), in one worker pool kept across chunks; with a band no squat
    reaches, every chunk refines the surrogate on what was simulated and the closest run is kept, flagged."""
    out = trained["out"]
    run("LIMO_Surrogate.py", "--data-root", real_root, "--out-dir", out, "--exp-name", "VER", "--vq-name",
        trained["vq"], "--surrogate", trained["sur"], "--subject", "all", "--seq-len", "49", "--total-iter", "12",
        "--num-runs", "4", "--batch-size", "4", "--min-samples", "2", "--low", "0.0", "--high", "0.005",
        "--verify", "--verify-rounds", "0", "--workers", "2", "--no-progress", "--no-plot", "--device", "cpu",
        *THREADS)
    summary = json.loads((out / "VER" / "real03" / "summary.json").read_text())
    ver = summary["verification"]
    assert ver["runs_simulated"] == 4 and ver["simulations_failed"] == 0 and ver["in_band_by_simulation"] == 0
    refs = ver["refinements"]
    assert [r["examples"] for r in refs] == [2, 4]
    assert all(r["peak_mad_after"] < r["peak_mad_before"] for r in refs)
    data = np.load(out / "VER" / "real03" / "verification.npz")
    sim = data["simulated"]
    assert sim.shape == (4, 196, 2) and np.isfinite(sim).all()
    assert 0.05 <= sim.min() and sim.max() <= 1.0  # OpenCap's activation floor, physical range
    assert len(summary["samples"]) == 1 and summary["samples"][0]["simulated"]["in_band"] is False


def test_guidance_and_guidance_metrics_with_the_session_model(trained, real_root, tmp_path):
    out = trained["out"]
    run("LIMO_Surrogate.py", "--data-root", real_root, "--out-dir", out, "--exp-name", "BIGE", "--vq-name",
        trained["vq"], "--surrogate", trained["sur"], "--subject", "all", "--seq-len", "49", "--total-iter", "12",
        "--num-runs", "4", "--batch-size", "4", "--min-samples", "1", "--low", "0.0", "--high", "1.0",
        "--no-progress", "--no-plot", "--device", "cpu", *THREADS)
    summary = json.loads((out / "BIGE" / "real03" / "summary.json").read_text())
    # the floor is estimated from the session's own scaled model posed by the session's IK; that IK is of
    # another (unknown) subject than the model's, so its feet stand 12-25 cm above OpenCap's y = 0
    from models.guidance import estimate_floor
    from utils.kinematics import ForwardKinematics

    model = next((real_root / "Data" / "real03" / "OpenSimData" / "Model").glob("*.osim"))
    ik = read_motion(real_root / "Data" / "real03" / "OpenSimData" / "Kinematics" / "SQT01.mot").coordinates()
    expected = estimate_floor(ForwardKinematics.from_osim(model), ik[None])
    assert 0.10 < summary["floor_height_m"] < 0.25
    assert summary["floor_height_m"] == pytest.approx(expected, abs=0.03)
    kept = sorted((out / "BIGE" / "real03").glob("entry_*_BIGE.mot"))
    assert kept and read_motion(kept[0]).coordinates().shape == (196, 33)

    run("calculate_guidance.py", "--file_type", "mocap", "--folder_path", real_root, "--surrogate", trained["sur"],
        "--out", tmp_path / "mocap", "--no-progress")
    run("calculate_guidance.py", "--file_type", "mot", "--folder_path", out / "BIGE", "--data-root", real_root,
        "--surrogate", trained["sur"], "--out", tmp_path / "bige", "--no-progress")
    row = json.loads((tmp_path / "mocap" / "guidance.json").read_text())["rows"][0]
    assert row["subject"] == "real03" and row["n"] == 5
    assert all(np.isfinite(v) for v in row.values() if isinstance(v, float))
    assert 75.0 < row["knee_flexion_peak_deg"] < 95.0  # the real squats reach ~81-88 deg
    # feet through the session model (another subject's IK): their lowest point, relative to y = 0,
    # is what the forward kinematics above gives, 12-13 cm; no penetration
    assert 10.0 < row["foot_height_min_cm"] < 20.0 and row["floor_penetration_cm"] == 0.0
    # so no foot point ever comes within --contact-height of y = 0: the foot sliding of 0 is flagged
    notes = json.loads((tmp_path / "mocap" / "guidance.json").read_text())["notes"]
    assert any("WARNING 5 of 5 motions never bring a foot point within 0.03 m of the floor at y = 0.0 m" in n
               for n in notes), notes
    bige = json.loads((tmp_path / "bige" / "guidance.json").read_text())["rows"][0]
    assert bige["subject"] == "real03" and np.isfinite(bige["activation_peak"])

    # --floor-height auto: the subject's floor from its motion capture, for the motion capture and for BIGE
    # (from --data-root), the floor guidance estimated within a few mm (guidance: its 196-frame clips)
    run("calculate_guidance.py", "--data-root", real_root, "--compare", real_root, out / "BIGE", "--labels",
        "MoCap", "BIGE", "--activations", "none", "--floor-height", "auto", "--out", tmp_path / "auto",
        "--no-progress")
    result = json.loads((tmp_path / "auto" / "guidance_compare.json").read_text())
    said = [n for n in result["notes"] if "--floor-height auto): the median lowest foot point" in n]
    assert [n.split(":")[0] for n in said] == ["MoCap", "BIGE"] and not any("WARNING" in n for n in result["notes"])
    floors = [float(n.rsplit("real03 ", 1)[1].split(" m")[0]) for n in said]
    assert floors[0] == floors[1] == pytest.approx(summary["floor_height_m"], abs=0.005)
    mocap_auto, bige_auto = result["rows"]
    # the feet now reach the floor, so contact and sliding are measured (0 at y = 0 above); the floor is a
    # median, and the feet of another subject's IK on this model rise and sink a few cm over the squat
    assert mocap_auto["foot_slide_cm"] > 0.0 and 0.0 < mocap_auto["floor_penetration_cm"] < 6.0
    # guidance put BIGE's feet on the floor it estimated, which is this one: nothing goes through it
    assert bige_auto["floor_penetration_cm"] < 0.5 and bige_auto["foot_slide_cm"] > 0.0


def test_rendering_real_files_with_the_real_model(trained, real_root, tmp_path):
    session = real_root / "Data" / "real03"
    run("plot_3.py", session / "OpenSimData" / "Kinematics" / "SQT01.mot", session / "MarkerData" / "SQT01.trc",
        tmp_path / "ik.gif", "--stride", "40", "--fps", "4")
    assert (tmp_path / "ik.gif").stat().st_size > 1000
    generated = sorted((trained["out"] / "VQVAE" / "real03").glob("*.mot"))
    if not generated:
        run("generate_vq.py", "--data-root", real_root, "--out-dir", trained["out"], "--exp-name", "VQVAE",
            "--vq-name", trained["vq"], "--subject", "all", "--num-samples", "1", "--device", "cpu", *THREADS)
        generated = sorted((trained["out"] / "VQVAE" / "real03").glob("*.mot"))
    run("render_compare.py", session, generated[0], tmp_path / "compare.gif", "--stride", "40", "--fps", "4",
        "--quiet")
    assert (tmp_path / "compare.gif").stat().st_size > 1000
