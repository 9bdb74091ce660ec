"""metrics/ (with metrics/motion_sets): distances on known distributions, the
published numbers against hand computations, guidance metrics of motions whose
answers are known, forward-kinematics foot metrics, result tables, and loading
folders of motions with every kind of bad file."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from metrics.distribution import (
    compare_sets, emd_w2, per_coordinate_w1, published_entropy, published_w2, sample_entropies, sliced_w2,
    wasserstein_1d,
)
from metrics.evaluate import foot_positions, load_forward_kinematics
from metrics.guidance import (activation_metrics, floor_contact_warning, foot_metrics, kinematic_metrics,
                              subject_floors, summarise)
from metrics.report import Column, csv_text, markdown_table, output_paths, text_table
from utils.constants import COORD_INDEX, COORDINATES, FRAME_RATE
from utils.fileio import OutputExistsError, atomic_save_npy
from utils.generation_output import write_subject_samples
from utils.motion_io import write_coordinates, write_mot
from metrics.motion_sets import MotionSetError, as_written, detect_kind, load_folder, load_motion_set, subject_of

KNEE_R = COORD_INDEX["knee_angle_r"]
TY = COORD_INDEX["pelvis_ty"]
SID = "d66330dc-7884-4915-9dbb-0520932294c4"


def squats(n: int, seed: int = 0, frames: int = 196) -> np.ndarray:
    """``n`` varied squat-like motions (n, frames, 33), degrees / metres."""
    rng = np.random.default_rng(seed)
    s = (1 - np.cos(np.linspace(0, 2 * np.pi, frames))) / 2  # 0 -> 1 -> 0
    x = rng.normal(0.0, 2.0, size=(n, frames, len(COORDINATES)))
    x[:, :, [COORD_INDEX["pelvis_tx"], COORD_INDEX["pelvis_tz"]]] *= 0.005  # metres: 1 cm noise
    depth = rng.uniform(60, 110, size=(n, 1))
    x[:, :, COORD_INDEX["knee_angle_l"]] += depth * s
    x[:, :, KNEE_R] += depth * s
    x[:, :, COORD_INDEX["hip_flexion_l"]] += 0.9 * depth * s
    x[:, :, COORD_INDEX["hip_flexion_r"]] += 0.9 * depth * s
    x[:, :, TY] = 0.95 - 0.003 * depth * s + rng.normal(0, 0.005, size=(n, frames))
    return x


# ----------------------------------------------------------------------------- distributions


def test_identical_sets_have_distance_zero() -> None:
    a = squats(40)
    res = compare_sets(a, a.copy(), ot_samples=40, bootstrap=0, n_projections=64)
    assert res["gaussian_w2sq"] == 0.0
    assert max(res["w1"].values()) == 0.0
    assert res["emd_w2"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert res["sliced_w2"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert res["entropy"] == res["reference_entropy"]


@pytest.mark.parametrize("coord, shift, unit_scale", [("knee_angle_r", 7.5, 1.0), ("pelvis_ty", 0.02, 100.0)])
def test_shift_in_one_coordinate_gives_that_w1_and_zero_elsewhere(coord: str, shift: float, unit_scale: float) -> None:
    a = squats(30)
    b = a.copy()
    b[:, :, COORD_INDEX[coord]] += shift
    w1 = per_coordinate_w1(b, a)
    k = COORD_INDEX[coord]
    assert w1[k] == pytest.approx(shift * unit_scale, rel=1e-9)  # degrees, or cm for translations
    assert np.abs(np.delete(w1, k)).max() == 0.0
    # an independent sample of the same distribution, shifted: W1 ~ c there, ~0 elsewhere
    c = squats(400, seed=1)
    c[:, :, KNEE_R] += 7.5
    w1 = per_coordinate_w1(c, squats(400, seed=2))
    assert w1[KNEE_R] == pytest.approx(7.5, abs=0.6)
    assert np.delete(w1, [KNEE_R, TY]).max() < 0.6


def test_lab_placement_is_ignored_by_honest_distances_unless_absolute() -> None:
    a = squats(50)
    b = a.copy()
    offsets = np.random.default_rng(4).uniform(-0.5, 0.5, size=(50, 1))  # each motion stood elsewhere, metres
    b[:, :, COORD_INDEX["pelvis_tx"]] += offsets
    rel = compare_sets(b, a, ot_samples=50, bootstrap=0, n_projections=32)
    assert rel["horizontal"] == "relative"
    assert rel["w1"]["pelvis_tx"] == pytest.approx(0.0, abs=1e-9)
    assert rel["emd_w2"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert rel["gaussian_w2sq"] > 0  # the Gaussian W2^2 sees stored values
    ab = compare_sets(b, a, ot_samples=50, bootstrap=0, n_projections=32, horizontal="absolute")
    assert ab["w1"]["pelvis_tx"] == pytest.approx(per_coordinate_w1(b, a)[COORD_INDEX["pelvis_tx"]])
    assert ab["w1"]["pelvis_tx"] > 10.0 and ab["emd_w2"]["value"] > 10.0  # cm


def test_wasserstein_1d_matches_scipy_for_unequal_sizes() -> None:
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=1234), rng.gamma(2.0, size=777)
    assert wasserstein_1d(u, v) == pytest.approx(scipy.stats.wasserstein_distance(u, v), rel=1e-10)
    assert wasserstein_1d(u, u + 2.5) == pytest.approx(2.5)
    # p = 2 of two point masses: |a - b|
    assert wasserstein_1d(np.full(5, 1.0), np.full(3, 4.0), p=2.0) == pytest.approx(3.0)


def test_published_gaussian_formula_matches_hand_computation() -> None:
    # set a: one motion all 1, one all 3 -> pool mean 2, std 1
    # set b: one motion all 4, one all 8 -> pool mean 6, std 2
    a = np.stack([np.full((10, 33), 1.0), np.full((10, 33), 3.0)])
    b = np.stack([np.full((7, 33), 4.0), np.full((7, 33), 8.0)])
    res = published_w2(a, b)
    assert (res["mu_a"], res["sigma_a"], res["mu_b"], res["sigma_b"]) == (2.0, 1.0, 6.0, 2.0)
    assert res["w2_squared"] == pytest.approx((2 - 6) ** 2 + (1 - 2) ** 2)  # 17
    assert res["w2"] == pytest.approx(math.sqrt(17.0))


def test_entropy_of_uniform_sample_is_near_log10_and_known_cases() -> None:
    rng = np.random.default_rng(0)
    uniform = rng.uniform(-50, 50, size=(20, 196, 33))
    assert published_entropy(uniform) == pytest.approx(math.log(10), abs=0.01)
    two_values = np.stack([np.where(np.arange(196 * 33).reshape(196, 33) % 2 == 0, 0.0, 5.0)])
    assert sample_entropies(two_values)[0] == pytest.approx(math.log(2))
    assert sample_entropies(np.zeros((1, 196, 33)))[0] == 0.0
    # matches numpy's histogram convention
    x = rng.normal(size=(3, 50, 33))
    for i in range(3):
        counts, _ = np.histogram(x[i].ravel(), bins=10)
        p = counts[counts > 0] / counts.sum()
        assert sample_entropies(x)[i] == pytest.approx(-(p * np.log(p)).sum())


def test_emd_and_sliced_grow_with_a_shift_and_emd_of_a_translate_is_the_shift() -> None:
    a = squats(60)
    emd, sliced = [], []
    for c in (0.0, 2.0, 5.0, 10.0):
        b = a.copy()
        b[:, :, KNEE_R] += c
        emd.append(emd_w2(b, a, max_samples=100, bootstrap=0).value)
        sliced.append(sliced_w2(b, a, n_projections=256, bootstrap=0).value)
    assert emd == pytest.approx([0.0, 2.0, 5.0, 10.0], abs=1e-6)  # translation is the optimal plan
    assert all(x < y for x, y in zip(sliced, sliced[1:]))
    assert sliced[3] == pytest.approx(10.0, rel=0.3)  # sqrt(D)-scaled: ~ the shift
    other = squats(60, seed=5)
    grown = [emd_w2(other + np.eye(33)[KNEE_R] * c, a, bootstrap=0).value for c in (0.0, 10.0, 30.0)]
    assert grown[0] < grown[1] < grown[2]


def test_bootstrap_intervals_are_seeded_and_bracket_the_value() -> None:
    a, b = squats(80, seed=1), squats(70, seed=2)
    b[:, :, KNEE_R] += 3.0
    d1 = emd_w2(a, b, max_samples=50, bootstrap=30, seed=4)
    d2 = emd_w2(a, b, max_samples=50, bootstrap=30, seed=4)
    assert d1 == d2
    assert d1.n_a == 50 and d1.n_b == 50
    assert d1.ci_low <= d1.value <= d1.ci_high and d1.ci_high > d1.ci_low
    s = sliced_w2(a, b, n_projections=64, bootstrap=30, seed=4)
    assert s == sliced_w2(a, b, n_projections=64, bootstrap=30, seed=4)
    assert s.ci_low <= s.value <= s.ci_high


def test_distances_refuse_nan_and_wrong_shapes() -> None:
    a = squats(5)
    bad = a.copy()
    bad[2, 10, 4] = np.nan
    with pytest.raises(ValueError, match="1 motion"):
        published_w2(bad, a)
    with pytest.raises(ValueError, match=r"\(N>=1, T, 33\)"):
        per_coordinate_w1(a[..., :30], a)


# ----------------------------------------------------------------------------- guidance metrics


def test_kinematic_metrics_of_constructed_motions() -> None:
    t = np.arange(196)
    x = np.zeros((1, 196, 33))
    x[0, :, TY] = 1.0 - 0.3 * np.sin(np.pi * t / 195)  # drop of 30 cm at mid-motion
    x[0, :, KNEE_R] = 100 * np.sin(np.pi * t / 195)
    x[0, :, COORD_INDEX["knee_angle_l"]] = x[0, :, KNEE_R] + 3.0  # one pair 3 deg apart
    x[0, :, COORD_INDEX["pelvis_tilt"]] = t * 0.1
    m = kinematic_metrics(x)
    assert m["depth_cm"][0] == pytest.approx(30.0, abs=0.01)
    assert m["knee_flexion_peak_deg"][0] == pytest.approx(101.5, abs=0.01)
    lowest = int(np.argmin(x[0, :, TY]))
    assert m["pelvis_tilt_at_depth_deg"][0] == pytest.approx(0.1 * lowest)
    assert m["asymmetry_deg"][0] == pytest.approx(math.sqrt(9.0 / 3.0))  # RMS over 3 pairs

    y = np.zeros((1, 196, 33))
    y[0, :, COORD_INDEX["hip_rotation_r"]] = t * 1.0  # 1 deg per frame = 60 deg/s on 1 of 30 rotations
    y[0, :, COORD_INDEX["pelvis_tx"]] = t * 0.01  # 0.6 m/s
    y[0, :, TY] = 0.5 * 2.0 * (t / FRAME_RATE) ** 2  # 2 m/s^2 downward curve
    m = kinematic_metrics(y)
    assert m["angular_velocity_rms_deg_s"][0] == pytest.approx(60.0 / math.sqrt(30.0))
    assert m["pelvis_acceleration_rms_m_s2"][0] == pytest.approx(2.0, rel=1e-6)
    vy = np.diff(y[0, :, TY]) * FRAME_RATE
    assert m["pelvis_velocity_rms_m_s"][0] == pytest.approx(np.sqrt(np.mean(0.6 ** 2 + vy ** 2)))


def test_activation_band_hinge_and_fractions() -> None:
    a = np.zeros((3, 50, 2))
    a[0, 10] = [0.40, 0.38]  # both inside [0.35, 0.45]
    a[1, 20] = [0.50, 0.40]  # right too high by 0.05
    a[2, 30] = [0.20, 0.30]  # both too low: 0.15 and 0.05
    m = activation_metrics(a, ("vasmed_r", "vasmed_l"), 0.35, 0.45)
    np.testing.assert_allclose(m["activation_peak_vasmed_r"], [0.40, 0.50, 0.20])
    np.testing.assert_allclose(m["activation_peak"], [0.39, 0.45, 0.25])
    np.testing.assert_allclose(m["in_band"], [1, 0, 0])
    np.testing.assert_allclose(m["violation"], [0.0, 0.025, 0.10])
    np.testing.assert_allclose(m["violating"], [0, 1, 1])


def test_windowed_peak_in_real_time_per_motion() -> None:
    a = np.zeros((2, 196, 1))
    a[:, 50:54] = 0.40             # a 4-frame spike in both motions
    a[:, 100:120] = 0.30           # 20 frames held at 0.30
    dt = np.array([2.0, 4.0]) / 195  # 2 s and 4 s repetitions: a 0.1 s window is 10 and 5 frames
    m = activation_metrics(a, ("vasmed_r",), 0.35, 0.45, window_s=0.1, dt=dt)
    np.testing.assert_allclose(m["activation_peak"], [0.40, 0.40])
    np.testing.assert_allclose(m["in_band"], [1, 1])
    np.testing.assert_allclose(m["activation_peak_windowed"], [0.30, 0.32])  # 10 frames: held part; 5: 1.6/5
    np.testing.assert_allclose(m["in_band_windowed"], [0, 0])
    np.testing.assert_allclose(m["violation_windowed"], [0.05, 0.03])
    zero = activation_metrics(a, ("vasmed_r",), 0.35, 0.45, window_s=0.0, dt=dt)
    np.testing.assert_allclose(zero["activation_peak_windowed"], zero["activation_peak"])
    assert set(activation_metrics(a, ("vasmed_r",), prefix="sim_")) >= {"sim_in_band", "sim_activation_peak_windowed"}


def test_lowpass_motions_removes_jitter_in_each_motions_real_time() -> None:
    from metrics.guidance import lowpass_motions

    t = np.arange(196)
    x = np.zeros((2, 196, 33))
    x[:, :, 4] = 0.9 - 0.2 * (1 - np.cos(2 * np.pi * t / 195)) / 2   # pelvis_ty: one squat
    x[:, :, 4] += 0.001 * (-1.0) ** t                                  # 1 mm alternating jitter
    dt = np.array([3.0, 1.0]) / 195                                    # 65 Hz and 195 Hz clips
    before = kinematic_metrics(x, dt)["pelvis_acceleration_rms_m_s2"]
    y = lowpass_motions(x, dt, 6.0)
    after = kinematic_metrics(y, dt)["pelvis_acceleration_rms_m_s2"]
    assert (before > 10).all() and (after < 0.05 * before).all()
    assert np.abs(y - x).max() < 0.01  # the squat itself is kept
    np.testing.assert_array_equal(lowpass_motions(x, dt, 0.0), x)


def test_surrogate_simulation_agreement() -> None:
    from metrics.guidance import surrogate_simulation_agreement

    sim = np.array([0.1, 0.2, 0.3, 0.4, np.nan])
    out = surrogate_simulation_agreement(np.array([0.15, 0.25, 0.35, 0.30, 0.9]), sim)
    assert out["surrogate_sim_mad"] == pytest.approx(0.0625)  # NaN (not simulated) left out
    assert out["surrogate_sim_bias"] == pytest.approx(0.0125)
    assert out["surrogate_sim_spearman"] == pytest.approx(0.8)
    assert np.isnan(surrogate_simulation_agreement(sim[:2], sim[:2])["surrogate_sim_spearman"])  # too few


def test_foot_metrics_slide_only_while_in_contact_and_penetration() -> None:
    p = np.zeros((1, 121, 1, 3))
    p[0, :, 0, 0] = np.arange(121) * 0.001  # 0.06 m/s sideways the whole time
    p[0, 60:, 0, 1] = 0.10  # lifted from frame 60: steps 0-1 .. 58-59 in contact, 59 x 0.1 cm
    m = foot_metrics(p, floor_height=0.0, contact_height=0.03)
    assert m["foot_slide_cm"][0] == pytest.approx(5.9)
    assert m["foot_slide_speed_cm_s"][0] == pytest.approx(6.0)
    assert m["floor_penetration_cm"][0] == 0.0
    p[0, 5, 0, 1] = -0.012
    assert foot_metrics(p)["floor_penetration_cm"][0] == pytest.approx(1.2)


def test_a_set_whose_feet_never_reach_the_floor_is_flagged() -> None:
    p = np.zeros((3, 50, 2, 3))
    p[..., 0] = np.linspace(0, 0.2, 50)[None, :, None]  # sliding 20 cm sideways
    p[1:, :, :, 1] = [[[0.12]], [[0.151]]]  # two motions hover 12 and 15.1 cm up
    m = foot_metrics(p, contact_height=0.03)
    assert m["foot_slide_cm"].tolist() == pytest.approx([20.0, 0.0, 0.0])
    warning = floor_contact_warning("MoCap", m["foot_height_min_cm"], 0.0, 0.03)
    assert warning.startswith("MoCap: WARNING 2 of 3 motions never bring a foot point within 0.03 m of the "
                              "floor at y = 0.0 m (lowest foot point 12.0-15.1 cm above it)")
    assert floor_contact_warning("MoCap", m["foot_height_min_cm"][:1], 0.0, 0.03) is None
    lifted = foot_metrics(p, floor_height=0.13, contact_height=0.03)
    assert floor_contact_warning("MoCap", lifted["foot_height_min_cm"], 0.13, 0.03) is None


def test_subject_floors_are_median_lowest_foot_points_and_feed_per_motion_floors() -> None:
    p = np.zeros((3, 40, 2, 3))
    p[0, :, 0, 1], p[0, :, 1, 1] = 0.20, 0.25                     # subject a: lowest point 0.20 throughout
    p[1, :, :, 1] = np.r_[np.full(30, 0.22), np.full(10, 0.30)][:, None]  # a again: lowest 0.22 / 0.30
    p[2, :, :, 1] = -0.05                                          # subject b: standing 5 cm below y = 0
    floors = subject_floors(p, ["a", "a", "b"])
    assert floors == {"a": pytest.approx(np.median(np.r_[np.full(40, 0.20), np.full(30, 0.22), np.full(10, 0.30)])),
                      "b": pytest.approx(-0.05)}
    m = foot_metrics(p, floor_height=np.array([floors["a"], floors["a"], floors["b"]]))
    assert m["foot_height_min_cm"].tolist() == pytest.approx([-1.0, 1.0, 0.0])
    assert m["floor_penetration_cm"].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_foot_metrics_from_forward_kinematics_of_the_model() -> None:
    fk, note = load_forward_kinematics()
    assert fk is not None, note
    stand = np.zeros((1, 120, 33))
    feet0, names = foot_positions(stand, fk)
    assert names == ["heel_r", "met1_r", "met5_r", "toe_r", "heel_l", "met1_l", "met5_l", "toe_l"]
    floor = feet0[..., 1].min()  # put the floor under the soles of the standing model
    still = foot_metrics(feet0, floor_height=floor)
    assert still["foot_slide_cm"][0] == pytest.approx(0.0, abs=1e-4)
    assert still["floor_penetration_cm"][0] == pytest.approx(0.0, abs=1e-4)
    moving = stand.copy()
    moving[0, :, COORD_INDEX["pelvis_tx"]] = np.linspace(0.0, 0.10, 120)  # the whole body glides 10 cm
    moving[0, :, TY] = -0.02  # and sinks 2 cm into the floor
    m = foot_metrics(foot_positions(moving, fk)[0], floor_height=floor)
    assert m["foot_slide_cm"][0] == pytest.approx(10.0, rel=1e-3)
    assert m["floor_penetration_cm"][0] == pytest.approx(2.0, abs=1e-3)


def test_summarise_per_group_and_pooled() -> None:
    rows = summarise({"depth_cm": np.array([10.0, 20.0, 40.0])}, ["b", "a", "b"])
    assert [r["subject"] for r in rows] == ["a", "b", "all"]
    assert [r["n"] for r in rows] == [1, 2, 3]
    assert rows[1]["depth_cm"] == 25.0 and rows[1]["depth_cm_std"] == 15.0
    assert rows[2]["depth_cm"] == pytest.approx(70.0 / 3)


# ----------------------------------------------------------------------------- tables


def test_tables_align_and_outputs_refuse_to_overwrite(tmp_path: Path) -> None:
    rows = [{"set": "MoCap", "x": 1.23456, "x_std": 0.1, "d": 2.0, "d_ci_low": 1.5, "d_ci_high": 2.5},
            {"set": "BIGE-long-name", "x": float("nan"), "d": 3.0}]
    cols = [Column("set", "set", ""), Column("x", "x (cm)", ".2f", std=True), Column("d", "d", ".1f", ci=True)]
    lines = text_table(rows, cols).splitlines()
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule equally wide
    assert "1.23 ± 0.10" in lines[2] and "2.0 [1.5, 2.5]" in lines[2]
    assert lines[3].split()[1] == "-"  # NaN shown as '-'
    assert markdown_table(rows, cols).splitlines()[1] == "| --- | ---: | ---: |"
    assert csv_text(rows).splitlines()[0] == "set,x,x_std,d,d_ci_low,d_ci_high"
    paths = output_paths(tmp_path, "res", overwrite=False)
    paths["json"].write_text("{}")
    with pytest.raises(OutputExistsError, match="res.json.*--overwrite"):
        output_paths(tmp_path, "res", overwrite=False)
    assert output_paths(tmp_path, "res", overwrite=True) == paths


# ----------------------------------------------------------------------------- loading folders


def test_load_folder_reads_mot_and_npy_lists_skipped_and_refits(tmp_path: Path) -> None:
    x = squats(4)
    write_coordinates(tmp_path / SID / "entry_0_bige.mot", x[0])
    write_coordinates(tmp_path / SID / "entry_1_bige.mot", x[1][:150])  # 150 frames: refitted
    write_coordinates(tmp_path / "subjB" / "entry_0_bige.mot", x[2])
    write_mot(tmp_path / "subjB" / "broken.mot", np.arange(5) / 60, ["knee_angle_r"], np.zeros((5, 1)))
    lines = (tmp_path / "subjB" / "entry_0_bige.mot").read_text().splitlines()
    row = lines.index("endheader") + 3  # third data row (0-based), line row + 1 of the file
    fields = lines[row].split("\t")
    fields[5] = "nan"
    lines[row] = "\t".join(fields)
    (tmp_path / "subjB" / "nan.mot").write_text("\n".join(lines) + "\n")
    s = load_folder(tmp_path, "mot", progress=False)
    assert s.motions.shape == (3, 196, 33) and s.motions.dtype == np.float32
    assert sorted(s.subjects) == sorted([SID, SID, "subjB"])
    np.testing.assert_allclose(s.motions[0], x[0], atol=1e-4)
    assert [(Path(p).name, n) for p, n in s.refitted] == [("entry_1_bige.mot", 150)]
    assert s.motions[1, 0] == pytest.approx(x[1][0].astype(np.float32), abs=1e-4)
    skipped = {Path(p).name: r for p, r in s.skipped}
    assert "missing required coordinates (32)" in skipped["broken.mot"]
    assert skipped["nan.mot"] == f"line {row + 1}: non-finite value nan in column 6"
    with pytest.raises(MotionSetError, match=r"(?s)2 unusable file.*broken.mot: missing.*nan.mot: line"):
        load_folder(tmp_path, "mot", strict=True, progress=False)

    npy = tmp_path / "npy"
    stack = squats(3, seed=2)
    stack[1, 7, 5] = np.nan
    atomic_save_npy(npy / SID / "samples.npy", stack)
    atomic_save_npy(npy / SID / "one.npy", squats(1, seed=3)[0])
    atomic_save_npy(npy / SID / "wrong.npy", np.zeros((196, 30)))
    s = load_folder(npy, "npy", progress=False)
    assert len(s) == 3 and set(s.subjects) == {SID}
    assert any(f.endswith("samples.npy[2]") for f in s.files)
    reasons = dict(s.skipped)
    assert "frame 7 (pelvis_tz = nan)" in reasons[str(npy / SID / "samples.npy[1]")]
    assert "shape (196, 30)" in reasons[str(npy / SID / "wrong.npy")]


def test_load_folder_errors_name_the_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(MotionSetError, match="does not exist"):
        load_folder(tmp_path / "missing", "mot")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MotionSetError, match=r"empty: no \.mot files found"):
        load_folder(tmp_path / "empty", "mot")
    atomic_save_npy(tmp_path / "only_npy" / "a.npy", squats(1)[0])
    with pytest.raises(MotionSetError, match="use --file_type npy"):
        load_folder(tmp_path / "only_npy", "mot")
    atomic_save_npy(tmp_path / "bad" / "short.npy", np.zeros((1, 33)))
    with pytest.raises(MotionSetError, match=r"(?s)none of the 1 \.npy.*short\.npy: 1 frame"):
        load_folder(tmp_path / "bad", "npy")


def test_detect_kind_and_subject_names(tmp_path: Path) -> None:
    x = squats(1)[0]
    write_coordinates(tmp_path / "twins" / SID / "entry_0_e.mot", x)
    atomic_save_npy(tmp_path / "twins" / SID / "entry_0_e.npy", x)
    assert detect_kind(tmp_path / "twins") == "npy"
    write_coordinates(tmp_path / "twins" / SID / "extra.mot", x)
    with pytest.raises(MotionSetError, match="not twins"):
        detect_kind(tmp_path / "twins")
    folder = tmp_path / "gen"
    assert subject_of(folder / f"latents_subject_run_{SID}" / "entry_0.mot", folder) == SID
    assert subject_of(folder / "subj7" / "deep" / "a.mot", folder) == "subj7"
    assert subject_of(folder / "a.mot", folder) == "gen"


def test_rates_are_in_real_time_from_the_files_time_column(tmp_path: Path) -> None:
    """A pelvis moving at 0.5 m/s for 98 frames at 60 Hz, resampled to 196
    frames, still moves at 0.5 m/s (an assumed 60 Hz would say 0.25); its
    .npy twin gets the same time; a lone .npy gets 60 Hz and a warning."""
    t = np.arange(99) / FRAME_RATE
    x = np.zeros((99, 33))
    x[:, COORD_INDEX["pelvis_tx"]] = 0.5 * t
    x[:, COORD_INDEX["knee_angle_r"]] = 30.0 * t  # 30 deg/s on 1 of 30 rotations
    write_coordinates(tmp_path / "a" / SID / "entry_0_x.mot", x)
    atomic_save_npy(tmp_path / "a" / SID / "entry_0_x.npy", x.astype(np.float32))
    for kind in ("mot", "npy"):
        mset = load_folder(tmp_path / "a", kind, progress=False)
        assert mset.time_steps[0] == pytest.approx(98 / 60 / 195)
        m = kinematic_metrics(mset.motions, mset.time_steps)
        assert m["pelvis_velocity_rms_m_s"][0] == pytest.approx(0.5, rel=1e-5)
        assert m["pelvis_acceleration_rms_m_s2"][0] == pytest.approx(0.0, abs=1e-3)
        assert m["angular_velocity_rms_deg_s"][0] == pytest.approx(30.0 / math.sqrt(30.0), rel=1e-5)
        assert kinematic_metrics(mset.motions)["pelvis_velocity_rms_m_s"][0] == pytest.approx(0.5 * 98 / 195,
                                                                                               rel=1e-5)
    tiled = load_folder(tmp_path / "a", "mot", clip_mode="tile", progress=False)
    assert tiled.time_steps[0] == pytest.approx(1 / 60)
    atomic_save_npy(tmp_path / "b" / "lone.npy", x.astype(np.float32))
    lone = load_folder(tmp_path / "b", "npy", progress=False)
    assert lone.time_steps[0] == pytest.approx(98 / 60 / 195)  # 99 frames at an assumed 60 Hz
    assert any("without a time column" in w for w in lone.warnings)


def test_as_written_gives_what_the_reader_reads_back_from_the_writers_files(tmp_path: Path) -> None:
    """12 float32 squats (entry_10 sorts before entry_2) and one with a NaN:
    the finite ones come back in their order, bit for bit (float32 survives
    the .npy and the .mot's 10 printed digits), with the time step the reader
    takes from the written time column, 1e-12 s from (T - 1) / duration;
    the NaN one comes back as it is, with a NaN step."""
    x = squats(13).astype(np.float32)
    x[7, 50, KNEE_R] = np.nan
    duration = 1.8731234567891  # a subject's mean repetition duration: not a round number
    motions, steps = as_written(x, duration)
    finite = np.arange(13) != 7
    np.testing.assert_array_equal(motions, x)  # NaN included, as it was
    assert np.isnan(steps[7]) and np.isfinite(steps[finite]).all() and len(set(steps[finite])) == 1
    assert steps[0] == pytest.approx(duration / 195, rel=1e-9) and steps[0] != duration / 195
    write_subject_samples(tmp_path / "BIGE", "subject", x[finite], "BIGE", duration=duration)
    for kind in ("npy", "mot"):
        again, again_steps = as_written(x[finite], duration, kind=kind)
        np.testing.assert_array_equal(again, x[finite])
        np.testing.assert_array_equal(again_steps, steps[finite])
        read = load_motion_set(tmp_path / "BIGE", kind, progress=False)
        entry = [int(Path(f).stem.split("_")[1]) for f in read.files]
        np.testing.assert_array_equal(read.motions, again[entry])
        np.testing.assert_array_equal(read.frame_times(), again_steps[entry])
    _, at_60 = as_written(x[:2])
    np.testing.assert_array_equal(at_60, [1 / FRAME_RATE] * 2)
    with pytest.raises(ValueError, match="expected motions"):
        as_written(x[0])


def test_kinematic_and_foot_rates_scale_with_each_motions_time_step() -> None:
    x = squats(2)
    x[1] = x[0]
    m = kinematic_metrics(x, np.array([1 / 60, 1 / 30]))
    assert m["pelvis_velocity_rms_m_s"][1] == pytest.approx(m["pelvis_velocity_rms_m_s"][0] / 2)
    assert m["pelvis_acceleration_rms_m_s2"][1] == pytest.approx(m["pelvis_acceleration_rms_m_s2"][0] / 4)
    assert m["angular_velocity_rms_deg_s"][1] == pytest.approx(m["angular_velocity_rms_deg_s"][0] / 2)
    p = np.zeros((2, 11, 1, 3))
    p[:, :, 0, 0] = np.linspace(0, 0.1, 11)  # 10 cm slide in contact over 10 steps
    f = foot_metrics(p, dt=np.array([0.01, 0.02]))
    np.testing.assert_allclose(f["foot_slide_cm"], [10.0, 10.0])
    np.testing.assert_allclose(f["foot_slide_speed_cm_s"], [100.0, 50.0])
    with pytest.raises(ValueError, match="positive finite time step"):
        kinematic_metrics(x, np.array([1 / 60, 0.0]))


# ----------------------------------------------------------------------------- the published protocol


def test_published_w2_is_per_folder_and_can_flip_the_pooled_ranking() -> None:
    """Folder A all 1, folder B all 3, reference half 0 half 2 (mean 1, std 1):
    W2^2 per folder 0 + 1 = 1 and 4 + 1 = 5, so 3 ± 2 over folders; pooled,
    A and B are mean 2, std 1: W2^2 = 1 + 0 = 1."""
    from metrics.published import published_fidelity

    x = np.ones((4, 6, 33))
    x[2:] = 3.0
    ref = np.zeros((2, 6, 33))
    ref[1] = 2.0
    res = published_fidelity(x, ["A", "A", "B", "B"], ref)
    assert res["per_folder"]["A"]["w2sq"] == pytest.approx(1.0) and res["per_folder"]["B"]["w2sq"] == pytest.approx(5.0)
    assert res["w2sq"] == pytest.approx(3.0) and res["w2sq_std"] == pytest.approx(2.0)
    assert res["folders"] == 2
    assert published_w2(x, ref)["w2_squared"] == pytest.approx(1.0)
    # entropy: A holds one sample split half 0 half 1 (ln 2), B two constant samples (0)
    y = np.zeros((3, 6, 33))
    y[0, :3] = 1.0
    ent = published_fidelity(y, ["A", "B", "B"], ref)
    assert ent["entropy"] == pytest.approx(math.log(2) / 3)  # mean over motions
    assert ent["entropy_std"] == pytest.approx(math.log(2) / 2)  # std of the folder means ln 2 and 0


def _published_guidance_set() -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Three 3-frame motions: folder A = a moving motion (dt 0.5 s) and a still
    one (dt 1/60 s), folder B = a still one; two guided muscles."""
    x = np.zeros((3, 3, 33))
    x[0, :, COORD_INDEX["pelvis_tx"]] = [0.0, 1.0, 3.0]  # velocity 2, 4 m/s; acceleration 4 m/s^2
    x[0, :, COORD_INDEX["knee_angle_l"]] = [2.0, 3.0, 4.0]  # 2 deg/s, 2 deg left of right
    x[0, :, KNEE_R] = [0.0, 1.0, 2.0]  # 2 deg/s
    x[0, :, COORD_INDEX["hip_rotation_r"]] = [0.0, 10.0, 20.0]  # not one of the 7 omega coordinates
    x[0, :, COORD_INDEX["pelvis_tilt"]] = [10.0, 20.0, 30.0]
    x[1, :, COORD_INDEX["pelvis_tilt"]] = [-5.0, 0.0, 0.0]
    act = np.zeros((3, 3, 2))
    act[0] = [[0.1, 0.1], [0.5, 0.3], [0.2, 0.55]]  # peaks 0.5, 0.55; mean peaks at frame 1
    act[1] = [[0.4, 0.4], [0.3, 0.1], [0.2, 0.1]]  # peaks 0.4, 0.4; frame 0
    act[2] = [[0.2, 0.2], [0.3, 0.3], [0.2, 0.2]]  # peaks 0.3, 0.3; frame 1
    return x, ["A", "A", "B"], np.array([0.5, 1 / 60, 1 / 60]), act


def test_published_guidance_numbers_by_hand() -> None:
    from metrics.published import published_guidance_per_folder, published_summary

    x, folders, dt, act = _published_guidance_set()
    per = published_guidance_per_folder(x, folders, dt, act, low=0.35, high=0.45)
    a, b = per["A"], per["B"]
    assert a["n"] == 2 and b["n"] == 1
    # one RMS over the folder's motions and frames
    assert a["asymmetry_deg"] == pytest.approx(math.sqrt((4 / 3 + 0) / 2))  # (l - r)^2 = 4 on 1 of 3 pairs
    # omega over the 7 coordinates: motion 0 has knees at 2 deg/s and tilt at 20 deg/s in both steps,
    # motion 1 tilt at 5 deg / (1/60 s) = 300 deg/s in one of its two steps; hip rotation is not counted
    assert a["angular_velocity_rms_deg_s"] == pytest.approx(math.sqrt(((4 + 4 + 400) / 7 + 300 ** 2 / 14) / 2))
    assert a["pelvis_velocity_rms_m_s"] == pytest.approx(math.sqrt((4 + 16) / 2 / 2))
    assert a["pelvis_acceleration_rms_m_s2"] == pytest.approx(math.sqrt(16 / 2))
    assert a["violation"] == pytest.approx(math.sqrt((0.05 ** 2 + 0.1 ** 2) / 2 / 2))
    assert a["activation_peak"] == pytest.approx((0.525 + 0.4) / 2)
    assert a["pelvis_tilt_at_peak_deg"] == pytest.approx((20.0 - 5.0) / 2)  # each motion at its own peak
    assert b["violation"] == pytest.approx(0.05) and b["pelvis_velocity_rms_m_s"] == 0.0
    row = published_summary(per, "set")
    assert row["n"] == 3 and row["folders"] == 2
    assert row["asymmetry_deg"] == pytest.approx(math.sqrt(2 / 3) / 2)
    assert row["asymmetry_deg_std"] == pytest.approx(math.sqrt(2 / 3) / 2)
    assert row["pelvis_tilt_at_peak_deg"] == pytest.approx(3.75) and row["pelvis_tilt_at_peak_deg_std"] == 3.75
    # the original's indexing x[:, peaks, tilt] mixes every motion's tilt with every peak: (20+10+0-5)/4
    peaks = act[:2].mean(axis=2).argmax(axis=1)
    assert x[:2][:, peaks, COORD_INDEX["pelvis_tilt"]].mean() == pytest.approx(6.25) != a["pelvis_tilt_at_peak_deg"]
