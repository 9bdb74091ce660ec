"""dataset/: discovery of an MCS layout, split, fixed-length repetitions,
normalisation, caching and in-memory batching."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dataset.clips import fit_length
from dataset.mcs import DatasetError, discover, load_segmentation
from dataset.normalization import CENTRED, Normalizer, static_features, std_floor
from dataset.plausibility import check_plausible
from dataset.repetitions import load_repetitions
from dataset.split import split_sessions
from dataset.torch_data import InMemoryBatches
from utils.constants import COORDINATES, TEST_SESSIONS
from utils.motion_io import MotionFileError, write_coordinates, write_mot

SESSIONS = ["aaaa-1", "bbbb-2", "cccc-3", "dddd-4", "eeee-5"]


def _trial(n: int, depth: float) -> np.ndarray:
    """A trial of three squats of knee depth ``depth`` degrees. (n, 33)"""
    t = np.linspace(0, 3 * 2 * np.pi, n)
    x = np.zeros((n, len(COORDINATES)))
    x[:, COORDINATES.index("knee_angle_r")] = depth * (1 - np.cos(t)) / 2
    x[:, COORDINATES.index("knee_angle_l")] = depth * (1 - np.cos(t)) / 2
    x[:, COORDINATES.index("pelvis_ty")] = 0.95 - 0.003 * x[:, COORDINATES.index("knee_angle_r")]
    return x


def make_layout(root: Path, sessions=SESSIONS, trial_name: str = "SQT01", with_dynamics: bool = True) -> Path:
    """Write a tiny MCS-layout root: per session a 300-frame trial cut into 3
    repetitions, Dynamics files for each repetition with two muscles."""
    for s_i, sid in enumerate(sessions):
        sess = root / "Data" / sid
        x = _trial(300, 40 + 10 * s_i)
        write_coordinates(sess / "OpenSimData" / "Kinematics" / f"{trial_name}.mot", x)
        (sess / "OpenSimData" / "Kinematics" / "Walk01.mot").write_text("not a squat, never read")
        bounds = [(0, 100), (100, 200), (200, 300)]
        seg = root / "squat-segmentation-data"
        seg.mkdir(parents=True, exist_ok=True)
        np.save(seg / f"{sid}.npy", {trial_name: bounds, "Walk01": [(0, 5)]}, allow_pickle=True)
        if with_dynamics:
            for k, (a, b) in enumerate(bounds, start=1):
                d = sess / "OpenSimData" / "Dynamics" / f"{trial_name}_segment_{k}"
                knee = x[a:b, COORDINATES.index("knee_angle_r")]
                write_coordinates(
                    d / f"kinematics_activations_{trial_name}_segment_{k}_muscle_driven.mot", x[a:b],
                    extra={"/forceset/vasmed_r/activation": knee / 100.0, "vasmed_l": knee / 110.0},
                )
    return root


def test_discover_finds_sessions_trials_repetitions_and_dynamics(tmp_path: Path) -> None:
    make_layout(tmp_path, trial_name="sqt01")
    sessions = discover(tmp_path)
    assert [s.id for s in sessions] == SESSIONS
    s = sessions[0]
    assert list(s.trials) == ["sqt01"]  # Walk01 is not a squat
    assert s.segments == {"sqt01": [(0, 100), (100, 200), (200, 300)]}
    reps = s.repetitions()
    assert [(r.trial, r.index, r.start, r.end) for r in reps] == [
        ("sqt01", 1, 0, 100), ("sqt01", 2, 100, 200), ("sqt01", 3, 200, 300)]
    assert all(r.dynamics is not None and r.dynamics.is_file() for r in reps)
    # the Data folder itself works as a root too
    assert [x.id for x in discover(tmp_path / "Data")] == SESSIONS


def test_discover_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        discover(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no 'Data' folder"):
        discover(tmp_path)
    (tmp_path / "Data" / "empty-session").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no session with squat repetitions"):
        discover(tmp_path)


def test_no_squat_repetitions_says_why(tmp_path: Path) -> None:
    """'no session with squat repetitions found' says what was missing in the sessions seen."""
    make_layout(tmp_path, with_dynamics=False)
    seg = tmp_path / "squat-segmentation-data"
    for f in seg.iterdir():
        f.unlink()
    with pytest.raises(DatasetError) as err:
        discover(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'Data'}: no session with squat repetitions found (5 session folders; "
                              f"none has {seg}/<session>.npy or OpenSimData/Dynamics/<trial>_segment_<k>/ with a "
                              "muscle-driven file; trials found: Walk01 (a squat trial's name must contain 'sqt'))")
    # a trial named freely ('squats1', as OpenCap users do): segmented, but not a squat by name
    make_layout(tmp_path / "named", sessions=["only"], trial_name="squats1")
    with pytest.raises(DatasetError) as err:
        discover(tmp_path / "named")
    assert str(err.value) == (f"{tmp_path / 'named' / 'Data'}: no session with squat repetitions found (1 session "
                              "folder; trials found: Walk01, squats1 (a squat trial's name must contain 'sqt'))")
    # a segmentation that lists no squat repetition
    make_layout(tmp_path / "empty", sessions=["only"], with_dynamics=False)
    np.save(tmp_path / "empty" / "squat-segmentation-data" / "only.npy", {"SQT01": []}, allow_pickle=True)
    with pytest.raises(DatasetError, match=r"\(1 session folder; its segmentation file lists no repetition of SQT01; "
                                           r"trials found: Walk01 "):
        discover(tmp_path / "empty")
    # the same reasons for a session folder named on its own (--subject <folder>)
    from dataset.subjects import resolve_subjects

    folder = tmp_path / "named" / "Data" / "only"
    with pytest.raises(DatasetError) as err:
        resolve_subjects(tmp_path / "named", [str(folder)])
    assert str(err.value) == (f"{folder}: session folder has no squat repetition (1 session folder; trials found: "
                              "Walk01, squats1 (a squat trial's name must contain 'sqt'))")


@pytest.mark.parametrize("case, holds", [
    ("misnamed", "Kinematics holds: SQT1.mot, Walk01.mot"),
    ("empty", "Kinematics is empty"),
    ("no-folder", "no OpenSimData/Kinematics folder in {session}"),
])
def test_segmented_trial_without_its_kinematics_file_is_an_error_naming_what_was_looked_for(
        tmp_path: Path, monkeypatch, case: str, holds: str) -> None:
    """A trial the segmentation names needs its Kinematics file: the error names the
    segmentation file, the session, the trial, the files looked for and what
    Kinematics holds; the repetitions' simulated Dynamics files never stand in for it."""
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path)  # every repetition also has a Dynamics file
    session = tmp_path / "Data" / SESSIONS[1]
    kin = session / "OpenSimData" / "Kinematics"
    if case == "misnamed":
        (kin / "SQT01.mot").rename(kin / "SQT1.mot")
    else:
        for f in kin.iterdir():
            f.unlink()
        if case == "no-folder":
            kin.rmdir()
    expected = (f"{tmp_path / 'squat-segmentation-data' / SESSIONS[1]}.npy: trial SQT01 of session {SESSIONS[1]} "
                f"has no OpenSimData/Kinematics/SQT01.mot or SQT01.sto ({holds.format(session=session)})")
    with pytest.raises(DatasetError) as err:
        load_repetitions(tmp_path, "all")
    assert str(err.value) == expected
    # the simulations alone are still usable where they are what is asked for
    assert len(load_repetitions(tmp_path, "all", source="dynamics")) == 15


def test_kinematics_saved_as_sto_is_the_trial(tmp_path: Path, monkeypatch) -> None:
    """OpenSim writes IK as .sto: Kinematics/SQT01.sto is trial SQT01, read like the .mot;
    both at once is refused rather than one chosen silently."""
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path, with_dynamics=False)
    as_mot = load_repetitions(tmp_path, "all")
    kin = tmp_path / "Data" / SESSIONS[3] / "OpenSimData" / "Kinematics"
    (kin / "SQT01.mot").rename(kin / "SQT01.sto")
    as_sto = load_repetitions(tmp_path, "all")
    np.testing.assert_array_equal(as_sto.motions, as_mot.motions)
    assert [Path(f).name for f in as_sto.files if SESSIONS[3] in f] == ["SQT01.sto"] * 3
    (kin / "SQT01.mot").write_bytes((kin / "SQT01.sto").read_bytes())
    with pytest.raises(DatasetError) as err:
        load_repetitions(tmp_path, "all")
    assert str(err.value) == (f"{kin}: SQT01.mot and SQT01.sto both hold trial SQT01 of session {SESSIONS[3]}; "
                              "keep one of them")


def test_repetitions_known_only_from_dynamics_folders_read_the_muscle_driven_files(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """A session without segmentation but with Dynamics folders: each muscle-driven
    file is a repetition (the documented fallback), in kinematics too."""
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path, sessions=["only"])
    (tmp_path / "squat-segmentation-data" / "only.npy").unlink()
    (tmp_path / "Data" / "only" / "OpenSimData" / "Kinematics" / "SQT01.mot").unlink()
    reps = load_repetitions(tmp_path, "all")
    assert [Path(f).name for f in reps.files] == [
        f"kinematics_activations_SQT01_segment_{k}_muscle_driven.mot" for k in (1, 2, 3)]
    assert reps.indices == [1, 2, 3]


def test_a_dynamics_repetition_the_segmentation_does_not_list_is_not_motion_capture(tmp_path: Path, monkeypatch,
                                                                                    caplog) -> None:
    """SQT01_segment_4 in Dynamics while the segmentation cuts SQT01 into three:
    the kinematics leave it out (it has no motion-capture frames) and say so;
    the dynamics source keeps it."""
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path, sessions=["only"])
    dyn = tmp_path / "Data" / "only" / "OpenSimData" / "Dynamics"
    extra = dyn / "SQT01_segment_4" / "kinematics_activations_SQT01_segment_4_muscle_driven.mot"
    extra.parent.mkdir()
    shutil.copy(dyn / "SQT01_segment_3" / "kinematics_activations_SQT01_segment_3_muscle_driven.mot", extra)
    with caplog.at_level("WARNING", logger="dataset.repetitions"):
        kin = load_repetitions(tmp_path, "all")
    assert kin.indices == [1, 2, 3] and all(Path(f).name == "SQT01.mot" for f in kin.files)
    assert [r.getMessage() for r in caplog.records] == [
        "1 repetition(s) of segmented trials are in a Dynamics folder but not in their segmentation file, so they "
        f"have no motion-capture frames; left out of the kinematics: {extra}"]
    assert load_repetitions(tmp_path, "all", source="dynamics").indices == [1, 2, 3, 4]


def test_bad_segmentation_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "s.npy"
    np.save(path, {"SQT01": [(10, 5)]}, allow_pickle=True)
    with pytest.raises(DatasetError, match=r"SQT01\[0\] = \(10, 5\) is not a frame range"):
        load_segmentation(path)


def test_split_prefers_published_test_sessions_then_seeded_fraction(tmp_path: Path) -> None:
    ids = ["x1", "x2", TEST_SESSIONS[0], "x3"]
    assert split_sessions(ids) == (["x1", "x2", "x3"], [TEST_SESSIONS[0]])
    ids = [f"s{i:02d}" for i in range(10)]
    train, test = split_sessions(ids, seed=3)
    assert len(test) == 2 and set(train) | set(test) == set(ids) and not set(train) & set(test)
    assert split_sessions(ids, seed=3) == (train, test)
    (tmp_path / "split.json").write_text(json.dumps({"train": ids[:7], "test": ids[7:]}))
    assert split_sessions(ids, root=tmp_path) == (ids[:7], ids[7:])


def test_fit_length_resample_and_tile() -> None:
    x = np.linspace(0, 1, 50)[:, None] * np.ones((1, 2))
    y = fit_length(x, 196, "resample")
    assert y.shape == (196, 2)
    np.testing.assert_allclose(y[:, 0], np.linspace(0, 1, 196), atol=1e-12)
    z = fit_length(x, 196, "tile")
    np.testing.assert_array_equal(z[:50], x)
    np.testing.assert_array_equal(z[50:100], x)
    assert z.shape == (196, 2)
    with pytest.raises(ValueError, match="unknown clip mode"):
        fit_length(x, 196, "stretch")


def test_load_repetitions_train_test_and_dynamics(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path)
    train = load_repetitions(tmp_path, "train", seed=0)
    test = load_repetitions(tmp_path, "test", seed=0)
    assert train.motions.shape == (12, 196, 33) and test.motions.shape == (3, 196, 33)
    assert not set(train.sessions) & set(test.sessions)
    # a repetition is one squat: knee starts and ends at 0, peaks at depth in the middle
    knee = train.motions[0, :, COORDINATES.index("knee_angle_r")]
    depth = 40 + 10 * SESSIONS.index(train.sessions[0])
    assert abs(knee[0]) < 0.5 and abs(knee.max() - depth) < 0.5
    dyn = load_repetitions(tmp_path, "all", source="dynamics")
    assert dyn.muscles == ("vasmed_r", "vasmed_l")
    assert dyn.activations.shape == (15, 196, 2)
    np.testing.assert_allclose(dyn.activations[..., 0], dyn.motions[..., COORDINATES.index("knee_angle_r")] / 100,
                               atol=1e-5)


def test_cache_is_reused_and_invalidated_by_mtime(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("BIGE_CACHE_DIR", str(cache))
    make_layout(tmp_path)
    first = load_repetitions(tmp_path, "all")
    files = sorted(cache.glob("reps_*.npz"))
    assert len(files) == 1
    second = load_repetitions(tmp_path, "all")
    np.testing.assert_array_equal(first.motions, second.motions)
    assert second.sessions == first.sessions
    assert sorted(cache.glob("reps_*.npz")) == files
    # rewrite one trial with other values: a new cache entry, new numbers
    trial = tmp_path / "Data" / SESSIONS[0] / "OpenSimData" / "Kinematics" / "SQT01.mot"
    write_coordinates(trial, _trial(300, 90.0))
    os.utime(trial, ns=(1, 1))
    third = load_repetitions(tmp_path, "all")
    assert len(list(cache.glob("reps_*.npz"))) == 2
    assert third.motions[0, :, COORDINATES.index("knee_angle_r")].max() > 89


def test_segmentation_beyond_trial_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path, sessions=["only"], with_dynamics=False)
    np.save(tmp_path / "squat-segmentation-data" / "only.npy", {"SQT01": [(0, 400)]}, allow_pickle=True)
    with pytest.raises(DatasetError, match=r"SQT01.mot: segmentation asks for frames 0-400 but the trial has 300"):
        load_repetitions(tmp_path, "all")


def test_normalizer_round_trip_and_save(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(8, 20, 33))
    norm = Normalizer.fit(x)
    z = norm.normalize(x)
    assert np.allclose(z.reshape(-1, 33).mean(0), 0, atol=1e-9)
    assert np.allclose(z.reshape(-1, 33).std(0), 1, atol=1e-9)
    back = Normalizer.load(norm.save(tmp_path / "n.json")).denormalize(torch.as_tensor(z))
    np.testing.assert_allclose(back.numpy(), x, atol=1e-9)


def test_normalizer_floors_the_std_of_coordinates_that_barely_move() -> None:
    """A locked joint must not turn a small later deviation into a huge input."""
    x = np.random.default_rng(1).normal(0.0, 5.0, size=(4, 50, 33))
    mtp, ty = COORDINATES.index("mtp_angle_r"), COORDINATES.index("pelvis_ty")
    x[..., mtp] = 0.0                  # never moves
    x[..., ty] = 0.9 + 1e-4 * x[..., ty]  # moves by micrometres
    norm = Normalizer.fit(x)
    assert norm.std[mtp] == 1.0 and norm.std[ty] == 0.01  # 1 degree, 1 cm
    assert np.allclose(norm.std[[0, 6, 20]], x[..., [0, 6, 20]].reshape(-1, 3).std(0))
    assert float(norm.normalize(x + 0.5)[..., mtp].max()) == pytest.approx(0.5)
    assert std_floor(["knee_angle_r", "pelvis_tx", "vasmed_r"]).tolist() == [1.0, 0.01, 1e-3]
    assert Normalizer.fit(x, min_std=1e-3).std[mtp] == 1e-3
    static = static_features(x)
    assert static[mtp] and not static[ty] and static.sum() == 1
    with pytest.raises(ValueError, match="33 features but 2 names"):
        static_features(x, ["a", "b"])


def test_centring_normalizer_ignores_where_the_subject_stands_and_faces(tmp_path: Path) -> None:
    """With ``centred``, moving a clip in the laboratory (pelvis_tx/tz) or
    turning it (pelvis_rotation) does not change its normalised form; the
    removed clip means come back with ``clip_offset``."""
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 3.0, size=(6, 40, 33))
    cols = [COORDINATES.index(c) for c in CENTRED]
    x[..., cols] += rng.uniform(-50, 50, size=(6, 1, 3))  # each clip somewhere else in the laboratory
    norm = Normalizer.fit(x, centred=CENTRED)
    assert norm.centred == CENTRED
    assert np.all(norm.std[cols] < 4.0)  # spread within clips, not across laboratory positions
    moved = x.copy()
    moved[..., cols] += np.array([1.5, -0.7, 40.0])
    np.testing.assert_allclose(norm.normalize(moved), norm.normalize(x), atol=1e-9)
    z = norm.normalize(torch.as_tensor(x))
    np.testing.assert_allclose(z.numpy(), norm.normalize(x), atol=1e-9)
    back = norm.denormalize(norm.normalize(x)) + norm.clip_offset(x)
    np.testing.assert_allclose(back, x, atol=1e-9)
    assert np.allclose(norm.denormalize(norm.normalize(x))[..., cols].mean(-2), 0, atol=1e-9)
    loaded = Normalizer.load(norm.save(tmp_path / "n.json"))
    assert loaded.centred == CENTRED
    np.testing.assert_allclose(loaded.normalize(x), norm.normalize(x))
    old = norm.state_dict()
    del old["centred"]  # written before centring existed: nothing centred
    assert Normalizer.from_state_dict(old).centred == ()
    with pytest.raises(ValueError, match="clips"):
        Normalizer.fit(x[:, 0], centred=CENTRED)
    with pytest.raises(ValueError, match="not among the names"):
        Normalizer.fit(x, centred=["nope"])


def test_in_memory_batches_resume_and_shard() -> None:
    x = torch.arange(10 * 196 * 2, dtype=torch.float32).reshape(10, 196, 2)
    a = InMemoryBatches(x, 4, window=64, seed=1)
    a.next()
    state = a.state_dict()
    expected = a.next()
    b = InMemoryBatches(x, 4, window=64, seed=1)
    b.load_state_dict(state)
    assert torch.equal(b.next(), expected)
    assert expected.shape == (4, 64, 2)
    r1 = InMemoryBatches(x, 4, seed=1, rank=1, world_size=2)
    clips = {int(v) // (196 * 2) for v in r1.tensors[0][:, 0, 0]}
    assert clips == {1, 3, 5, 7, 9}


def test_repetitions_keep_their_real_duration_through_resampling_and_tiling(tmp_path: Path, monkeypatch) -> None:
    """A 100-frame repetition at 60 Hz lasts 99/60 s whatever the clip mode;
    resampled to 196 frames its frames are 99/60/195 s apart, tiled 1/60 s;
    a Dynamics file on a 50 Hz mesh keeps its own rate."""
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path, sessions=SESSIONS[:2])
    dyn = tmp_path / "Data" / SESSIONS[0] / "OpenSimData" / "Dynamics" / "SQT01_segment_1"
    x = _trial(300, 40)[:100]
    write_mot(dyn / "kinematics_activations_SQT01_segment_1_muscle_driven.mot", np.arange(100) / 50.0,
              [*COORDINATES, "vasmed_r", "vasmed_l"], np.column_stack([x, np.zeros((100, 2))]))
    reps = load_repetitions(tmp_path, "all")
    np.testing.assert_allclose(reps.durations, 99 / 60)
    np.testing.assert_allclose(reps.frame_rates, 60.0)
    np.testing.assert_allclose(reps.time_steps(), 99 / 60 / 195)
    tiled = load_repetitions(tmp_path, "all", clip_mode="tile")
    np.testing.assert_allclose(tiled.time_steps(), 1 / 60)
    dynamics = load_repetitions(tmp_path, "all", source="dynamics")
    first = dynamics.select([s == SESSIONS[0] and i == 1 for s, i in zip(dynamics.sessions, dynamics.indices)])
    assert first.durations[0] == pytest.approx(99 / 50) and first.frame_rates[0] == pytest.approx(50.0)
    assert dynamics.mean_duration(SESSIONS[0]) == pytest.approx((99 / 50 + 2 * 99 / 60) / 3)
    # the durations survive the cache and the views
    again = load_repetitions(tmp_path, "all")
    np.testing.assert_allclose(again.durations, reps.durations)
    assert again.of_sessions([SESSIONS[1]]).durations.shape == (3,)


# ----------------------------------------------------------------------------- nothing silently wrong


def test_corrected_segmentation_is_never_shadowed_by_the_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path, with_dynamics=False)
    first = load_repetitions(tmp_path, "all")
    seg = tmp_path / "squat-segmentation-data" / f"{SESSIONS[0]}.npy"
    stat = seg.stat()
    # the corrected file has the same size and modification time: only its content differs
    np.save(seg, {"SQT01": [(0, 150), (150, 200), (200, 300)], "Walk01": [(0, 5)]}, allow_pickle=True)
    os.utime(seg, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert seg.stat().st_size == stat.st_size
    second = load_repetitions(tmp_path, "all")
    i = second.sessions.index(SESSIONS[0])
    assert not np.allclose(first.motions[i], second.motions[i]), "the corrected segmentation was used"
    # the split is in the key too: another split file, other sessions, no stale result
    split = tmp_path / "other_split.json"
    split.write_text(json.dumps({"train": SESSIONS[:2], "test": SESSIONS[2:4]}))
    assert set(load_repetitions(tmp_path, "test", split_file=split).sessions) == set(SESSIONS[2:4])


def test_split_ids_that_match_no_session_are_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path, with_dynamics=False)
    (tmp_path / "split.json").write_text(json.dumps({"train": SESSIONS[:3], "test": ["typo-4", SESSIONS[4]]}))
    with pytest.raises(DatasetError, match=r"split.json: 1 session id\(s\) match no session .*typo-4"):
        load_repetitions(tmp_path, "train")
    (tmp_path / "split.json").write_text(json.dumps({"test": ["x", "y"]}))  # nothing would be held out
    with pytest.raises(DatasetError, match=r"split.json: 2 session id\(s\)"):
        load_repetitions(tmp_path, "train")
    (tmp_path / "split.json").write_text('{"test": [\n1,')
    with pytest.raises(DatasetError, match=r"split.json:2:3: not valid JSON"):
        load_repetitions(tmp_path, "train")


@pytest.mark.parametrize("edit, words", [
    (lambda x: np.deg2rad(x), "knee_angle_r spans .* radians labelled as degrees"),
    (lambda x: x * np.where(np.isin(np.arange(33), [3, 4, 5]), 1000.0, 1.0), "pelvis_ty reaches 950, over 20 m"),
    (lambda x: x + np.where(np.arange(33) == COORDINATES.index("knee_angle_l"), 1e6, 0.0),
     "knee_angle_l reaches 1e\\+06 deg"),
])
def test_implausible_kinematics_are_refused_naming_file_and_column(tmp_path: Path, monkeypatch, edit, words) -> None:
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path, with_dynamics=False)
    trial = tmp_path / "Data" / SESSIONS[1] / "OpenSimData" / "Kinematics" / "SQT01.mot"
    write_coordinates(trial, edit(_trial(300, 50.0)))
    with pytest.raises(MotionFileError, match=f"{SESSIONS[1]}/OpenSimData/Kinematics/SQT01.mot: column {words}"):
        load_repetitions(tmp_path, "all")


def test_plausibility_accepts_a_shallow_squat_in_degrees() -> None:
    x = _trial(300, 12.0)
    check_plausible(x, "shallow.mot")  # knee range 12 deg: a real, shallow squat
    with pytest.raises(MotionFileError, match="shallow.mot: column pelvis_tilt: non-finite value at frame 3"):
        x[3, 0] = np.nan
        check_plausible(x, "shallow.mot")


def test_dynamics_file_missing_a_muscle_is_named_and_sto_files_are_read(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BIGE_CACHE_DIR", str(tmp_path / "cache"))
    make_layout(tmp_path)
    d = tmp_path / "Data" / SESSIONS[2] / "OpenSimData" / "Dynamics" / "SQT01_segment_2"
    mot = d / "kinematics_activations_SQT01_segment_2_muscle_driven.mot"
    x = _trial(300, 60.0)[100:200]
    mot.unlink()
    sto = mot.with_suffix(".sto")  # OpenCap also writes .sto: read, not ignored
    write_coordinates(sto, x, extra={"/forceset/vasmed_r/activation": np.full(100, 0.25)})
    with pytest.raises(DatasetError, match=r"segment_2_muscle_driven.sto: no activation column for vasmed_l"):
        load_repetitions(tmp_path, "all", source="dynamics")
    write_coordinates(sto, x, extra={"/forceset/vasmed_r/activation": np.full(100, 0.25), "vasmed_l": np.zeros(100)})
    dyn = load_repetitions(tmp_path, "all", source="dynamics")
    i = [k for k, f in enumerate(dyn.files) if f.endswith(".sto")]
    assert len(i) == 1 and dyn.muscles == ("vasmed_r", "vasmed_l")
    np.testing.assert_allclose(dyn.activations[i[0], :, 0], 0.25)


def test_segmentation_file_never_runs_code(tmp_path: Path) -> None:
    mark = tmp_path / "payload_ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {mark}",))

    np.save(tmp_path / "evil.npy", {"SQT01": [(0, 10)], "x": Evil()}, allow_pickle=True)
    with pytest.raises(DatasetError, match=r"evil.npy: refused: .*posix.system"):
        load_segmentation(tmp_path / "evil.npy")
    assert not mark.exists()
    # what MCS ships: a pickled dict of lists of tuples, NumPy integers and arrays included
    np.save(tmp_path / "ok.npy", {"SQT01": [(np.int64(3), 9)], "SQT02": np.array([[1, 5], [5, 9]])}, allow_pickle=True)
    assert load_segmentation(tmp_path / "ok.npy") == {"SQT01": [(3, 9)], "SQT02": [(1, 5), (5, 9)]}
