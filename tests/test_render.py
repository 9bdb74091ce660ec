"""render/animation.py, render/figures.py and the scripts plot_3.py,
render_compare.py, plot_samples.py: real renders of small motions, read back
with imageio."""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from utils.constants import COORDINATES, TRANSLATIONS
from utils.fileio import OutputExistsError
from utils.motion_io import write_coordinates, write_mot, write_trc
from render.animation import (
    Animator, Camera, Layout, RenderError, frame_indices, load_track, playback, render_animation, side_of,
    split_inputs, titles_from_paths, track_from_markers, write_video,
)

SMALL = Layout(panel_height=160, title_px=24, curves_px=150)


def squat_coordinates(n: int, depth: float = 1.0) -> np.ndarray:
    """A smooth squat of ``n`` frames, canonical order, degrees / metres,
    with the feet near the floor of the generic model. (n, 33)"""
    d = depth * 0.5 * (1 - np.cos(2 * np.pi * np.linspace(0, 1, n)))
    x = np.zeros((n, len(COORDINATES)))

    def put(name: str, v) -> None:
        x[:, COORDINATES.index(name)] = v

    for side in "rl":
        put(f"hip_flexion_{side}", 95 * d)
        put(f"knee_angle_{side}", 110 * d)
        put(f"ankle_angle_{side}", 30 * d)
        put(f"arm_flex_{side}", 60 * d)
    put("pelvis_tilt", -20 * d)
    put("pelvis_ty", 0.93 - 0.35 * d)
    return x


def marker_squat(n: int) -> tuple[list[str], np.ndarray]:
    """OpenCap-named key points of a crude squatting figure, metres, y up. (n, M, 3)"""
    d = 0.5 * (1 - np.cos(2 * np.pi * np.linspace(0, 1, n)))[:, None]
    pts = {}
    for s, z in (("R", 0.1), ("L", -0.1)):
        pts[f"{s}Ankle"] = np.hstack([0 * d, 0.08 + 0 * d, z + 0 * d])
        pts[f"{s}Knee"] = pts[f"{s}Ankle"] + np.hstack([0.3 * d, 0.43 - 0.1 * d, 0 * d])
        pts[f"{s}Hip"] = pts[f"{s}Knee"] + np.hstack([-0.4 * d, 0.45 - 0.3 * d, 0 * d])
        pts[f"{s}Heel"] = pts[f"{s}Ankle"] + [-0.05, -0.06, 0]
        pts[f"{s}BigToe"] = pts[f"{s}Ankle"] + [0.15, -0.07, 0]
    pts["midHip"] = (pts["RHip"] + pts["LHip"]) / 2
    pts["Neck"] = pts["midHip"] + np.hstack([0.3 * d, 0.5 - 0.1 * d, 0 * d])
    names = list(pts)
    return names, np.stack([pts[k] for k in names], axis=1)


@pytest.fixture(scope="module")
def motion_files(tmp_path_factory) -> dict[str, Path]:
    """Two .mot squats (24 and 30 frames) and the same marker squat as .trc in
    metres and in millimetres."""
    folder = tmp_path_factory.mktemp("motions")
    names, pos = marker_squat(24)
    times = np.arange(24) / 60.0
    return {
        "mot_a": write_coordinates(folder / "deep_squat.mot", squat_coordinates(24, 1.0)),
        "mot_b": write_coordinates(folder / "shallow_squat.mot", squat_coordinates(30, 0.5)),
        "trc_m": write_trc(folder / "markers_m.trc", times, names, pos, units="m"),
        "trc_mm": write_trc(folder / "markers_mm.trc", times, names, pos * 1000.0, units="mm"),
    }


def read_video(path: Path) -> np.ndarray:
    """All frames of a GIF or MP4 as (N, H, W, 3) uint8."""
    frames = iio.imread(path, index=None) if path.suffix == ".gif" else _read_mp4(path)
    return np.asarray(frames)[..., :3]


def _read_mp4(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader])


def assert_moving(frames: np.ndarray) -> None:
    """Frames change over time: first vs middle frame differ on many pixels."""
    diff = np.abs(frames[0].astype(int) - frames[len(frames) // 2].astype(int)).sum(-1)
    assert (diff > 30).sum() > 200, "the video does not move"


# ----------------------------------------------------------------------------- videos


def test_gif_of_mot_and_trc_side_by_side_has_expected_frames_size_and_motion(motion_files, tmp_path):
    tracks = [load_track(motion_files["mot_a"]), load_track(motion_files["trc_m"])]
    out = render_animation(tracks, tmp_path / "pair.gif", layout=SMALL)
    anim = Animator(tracks, layout=SMALL)
    frames = read_video(out)
    # 60 Hz data in a GIF: every 2nd frame at 30 fps
    assert len(frames) == 12
    assert frames.shape[1:3] == (anim.size[1], anim.size[0])
    assert anim.size[0] % 2 == 0 and anim.size[1] % 2 == 0
    assert_moving(frames)
    # the two panels differ (a model and markers), and both halves change
    left, right = frames[:, :, : anim.size[0] // 2], frames[:, :, anim.size[0] // 2:]
    assert_moving(left)
    assert_moving(right)
    assert not list(tmp_path.glob(".*.tmp*")), "temporary file left behind"


def test_mp4_of_three_motions_has_every_frame_and_even_size(motion_files, tmp_path):
    tracks = [load_track(motion_files[k]) for k in ("mot_a", "mot_b", "trc_mm")]
    out = render_animation(tracks, tmp_path / "three.mp4", layout=SMALL, fps=60)
    frames = read_video(out)
    assert len(frames) == 30  # phase sync: the longest motion's frame count
    anim = Animator(tracks, layout=SMALL)
    assert frames.shape[1:3] == (anim.size[1], anim.size[0])
    assert_moving(frames)


def test_angle_curves_add_a_row_with_a_moving_cursor(motion_files, tmp_path):
    tracks = [load_track(motion_files["mot_a"]), load_track(motion_files["mot_b"])]
    plain = Animator(tracks, layout=SMALL)
    with_curves = Animator(tracks, layout=SMALL, curves=["knee", "pelvis_tilt"])
    assert with_curves.size[1] == plain.size[1] + SMALL.curves_px
    first, last = with_curves.render(0), with_curves.render(with_curves.n_frames - 1)
    band = slice(with_curves.size[1] - SMALL.curves_px, None)
    assert np.abs(first[band].astype(int) - last[band].astype(int)).sum() > 0


def test_video_frames_are_posed_at_the_synchronised_frame(motion_files):
    a, b = load_track(motion_files["mot_a"]), load_track(motion_files["mot_b"])
    idx = frame_indices([a, b], "phase")
    assert idx.shape == (2, 30) and idx[0, -1] == 23 and idx[1, -1] == 29 and idx[0, 0] == 0
    idx = frame_indices([a, b], "time")
    assert idx[0, -1] == 23 and idx[0, 25] == 23 and idx[1, 25] == 25


def test_playback_defaults_are_real_time_and_gif_safe():
    assert playback(".mp4", 60.0) == (60.0, 1)
    assert playback(".gif", 60.0) == (30.0, 2)
    assert playback(".gif", 60.0, fps=20) == (20.0, 1)
    assert playback(".mp4", 60.0, stride=3) == (20.0, 3)
    with pytest.raises(ValueError, match="GIF plays at most"):
        playback(".gif", 60.0, fps=60, stride=1)


def test_failed_render_leaves_no_file(tmp_path):
    def frames():
        yield np.zeros((16, 16, 3), np.uint8)
        raise RuntimeError("boom")

    for ext in (".mp4", ".gif"):
        with pytest.raises(RuntimeError, match="boom"):
            write_video(frames(), tmp_path / f"broken{ext}", fps=10)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- geometry


def test_trc_in_millimetres_and_metres_give_the_same_track(motion_files):
    a, b = load_track(motion_files["trc_m"]), load_track(motion_files["trc_mm"])
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-9)
    assert a.kind == "markers" and len(a.segments) > 10
    # hip centre = midpoint of RHip and LHip
    names = list(a.names)
    expected = (a.positions[:, names.index("RHip")] + a.positions[:, names.index("LHip")]) / 2
    np.testing.assert_allclose(a.hip, expected)


def test_z_up_markers_are_turned_y_up():
    names, pos = marker_squat(10)
    z_up = np.stack([pos[..., 0], -pos[..., 2], pos[..., 1]], axis=-1)  # y-up -> z-up
    for up in ("auto", "z"):
        track = track_from_markers(names, z_up, up=up)
        np.testing.assert_allclose(track.positions, pos, atol=1e-12)
    assert np.allclose(track_from_markers(names, pos, up="auto").positions, pos)


def test_model_track_is_y_up_with_feet_on_the_floor(motion_files):
    track = load_track(motion_files["mot_a"])
    names = list(track.names)
    head, toe = names.index("head"), names.index("toe_r")
    assert (track.positions[:, head, 1] > track.positions[:, toe, 1] + 1.0).all()
    assert abs(track.positions[0, :, 1].min()) < 0.1  # standing on y = 0
    assert track.deepest_frame() in (11, 12)  # the middle of the squat
    assert track.coordinates.shape == (24, 33)


def test_camera_projects_up_as_up_and_forward_to_the_right_from_the_right_side():
    cam = Camera(azim=90.0, elev=0.0)
    screen, depth = cam.project(np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float))
    np.testing.assert_allclose(screen[1], [0, 1], atol=1e-12)   # y up is screen up
    np.testing.assert_allclose(screen[2], [1, 0], atol=1e-12)   # forward (+x) is screen right
    assert depth[3] > depth[0]                                   # the right side (+z) faces the camera
    right, up, eye = Camera(azim=37.0, elev=20.0).basis()
    np.testing.assert_allclose(np.array([right, up, eye]) @ np.array([right, up, eye]).T, np.eye(3), atol=1e-12)
    assert abs(right[1]) < 1e-12  # the horizon stays horizontal


def test_shared_floor_and_scale_keep_every_panel_inside_the_frame(motion_files):
    tracks = [load_track(motion_files["mot_a"]), load_track(motion_files["trc_m"])]
    anim = Animator(tracks, layout=SMALL)
    scene = anim.scene
    assert scene.offsets[:, 1].tolist() == [0.0, 0.0]  # both stand on the OpenSim ground
    for panel in anim.panels:
        x, y = panel.screen[..., 0], panel.screen[..., 1]
        assert x.min() > scene.xlim[0] and x.max() < scene.xlim[1]
        assert y.min() > scene.ylim[0] and y.max() < scene.ylim[1]


def test_floor_follows_marker_data_with_another_vertical_origin():
    names, pos = marker_squat(10)
    lifted = track_from_markers(names, pos + [0, 0.8, 0], up="y")
    from render.animation import floor_height

    assert floor_height(track_from_markers(names, pos, up="y")) == 0.0
    assert floor_height(lifted) == pytest.approx(0.8 + pos[..., 1].min(axis=1).mean(), abs=0.01)
    assert floor_height(lifted, 0.5) == 0.5


def test_side_of_point_names():
    assert [side_of(n) for n in ("knee_r", "toe_l", "RKnee", "LBigToe", "r.ASIS_study", "L_knee", "pelvis",
                                 "Neck", "midHip")] == [1, -1, 1, -1, 1, -1, 0, 0, 0]


# ----------------------------------------------------------------------------- inputs and errors


def test_split_inputs_finds_the_output_and_defaults_next_to_the_first_input(motion_files, tmp_path):
    a, b = motion_files["mot_a"], motion_files["trc_m"]
    assert split_inputs([str(a), str(b), str(tmp_path / "x.gif")]) == ([a, b], tmp_path / "x.gif")
    assert split_inputs([str(a)])[1] == a.with_name("deep_squat.mp4")
    assert split_inputs([str(a), str(b)], default_ext=".gif")[1] == a.with_name("deep_squat_and_1_more.gif")
    with pytest.raises(RenderError, match="1 to 3 motion files"):
        split_inputs([str(a)] * 4)
    with pytest.raises(RenderError, match="not a motion file"):
        split_inputs([str(tmp_path / "x.mp4"), str(a)])
    with pytest.raises(RenderError, match="does not exist"):
        split_inputs([str(tmp_path / "missing.mot")])


def test_titles_tell_equal_file_names_apart(tmp_path):
    paths = [tmp_path / "s1" / "SQT01.trc", tmp_path / "s2" / "SQT01.trc", tmp_path / "x.mot"]
    assert titles_from_paths(paths) == ["s1/SQT01.trc", "s2/SQT01.trc", "x"]
    paths = [tmp_path / s / "OpenSimData" / "Dynamics" / "seg_1" / "sim.mot" for s in ("aaa", "bbb")]
    assert titles_from_paths(paths) == ["aaa/.../sim.mot", "bbb/.../sim.mot"]
    paths = [tmp_path / "s1" / "SQT01.mot", tmp_path / "s1" / "SQT01.trc", tmp_path / "s1" / "entry_0.mot"]
    assert titles_from_paths(paths) == ["SQT01.mot", "SQT01.trc", "entry_0"]


def test_long_titles_fit_on_two_lines_keeping_both_ends():
    from render.animation import fit_title

    assert fit_title("short", 20) == "short"
    long = "6c763add-0716-47b5-b1e4-ca39a9297a19/.../kinematics_activations_SQT01_segment_2_muscle_driven.mot"
    lines = fit_title(long, 30).split("\n")
    assert len(lines) == 2 and all(len(line) <= 30 for line in lines)
    assert lines[0].startswith("6c763add") and lines[1].endswith("driven.mot") and "..." in "".join(lines)


def test_radians_labelled_as_degrees_are_drawn_with_a_warning(tmp_path, caplog):
    squat = squat_coordinates(60)
    rot = [i for i, n in enumerate(COORDINATES) if n not in TRANSLATIONS]
    squat[:, rot] = np.deg2rad(squat[:, rot])  # the numbers of radians, under inDegrees=yes
    path = write_coordinates(tmp_path / "radians.mot", squat)
    with caplog.at_level("WARNING", logger="render.animation"):
        track = load_track(path)
    assert len(track.times) == 60
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: column knee_angle_r spans 1.92 deg and no angle exceeds pi: these are radians labelled as "
        "degrees; drawn as written (set inDegrees=no in the header if they are)"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="render.animation"):
        load_track(write_coordinates(tmp_path / "degrees.mot", squat_coordinates(60)))
        load_track(write_coordinates(tmp_path / "still.mot", np.zeros((10, len(COORDINATES)))))
    assert not caplog.records, "a squat in degrees, or a pose held still, is not flagged"


def test_mot_without_the_model_coordinates_is_refused_with_its_name(tmp_path):
    path = write_mot(tmp_path / "partial.mot", np.arange(5) / 60, ["knee_angle_r"], np.zeros((5, 1)))
    with pytest.raises(RenderError, match=r"partial\.mot.*missing required coordinates"):
        load_track(path)


def test_plot3_writes_next_to_the_first_input_and_never_overwrites_silently(motion_files, tmp_path):
    import plot_3
    from options.render import plot3_parser

    src = tmp_path / "in.mot"
    src.write_bytes(motion_files["mot_b"].read_bytes())
    args = plot3_parser().parse_args([str(src), str(motion_files["trc_m"]), "--format", "gif", "--quiet",
                                      "--panel-height", "120", "--stride", "6", "--fps", "10"])
    out = plot_3.main(args)
    assert out == tmp_path / "in_and_1_more.gif"
    assert len(read_video(out)) == 5  # 30 frames, every 6th
    before = out.stat().st_mtime_ns
    with pytest.raises(OutputExistsError):
        plot_3.main(args)
    assert out.stat().st_mtime_ns == before
    args.overwrite = True
    plot_3.main(args)


def test_plot3_help_explains_every_flag():
    from options.render import compare_parser, plot3_parser, samples_parser

    for parser in (plot3_parser(), compare_parser(), samples_parser()):
        for action in parser._actions:
            assert action.help, f"{parser.prog}: {action.dest} has no help"
        parser.format_help()


# ----------------------------------------------------------------------------- dataset-based scripts


def _write_session(root: Path) -> Path:
    """Fallback one-subject MCS layout until the shared ``synthetic_root``
    fixture exists: a trial of two squats cut by segmentation, Dynamics files
    with vasmed activations, the subject's model and markers written from it."""
    import shutil

    import torch

    from dataset.synthetic.osim_model import default_model_path
    from render.animation import forward_kinematics

    sid = "0000aaaa-1111-2222-3333-444455556666"
    sess = root / "Data" / sid
    x = np.concatenate([squat_coordinates(40, 0.8), squat_coordinates(40, 1.0)])
    write_coordinates(sess / "OpenSimData" / "Kinematics" / "SQT01.mot", x)
    (root / "squat-segmentation-data").mkdir(parents=True)
    np.save(root / "squat-segmentation-data" / f"{sid}.npy", {"SQT01": [(0, 40), (40, 80)]}, allow_pickle=True)
    for k, (a, b) in enumerate([(0, 40), (40, 80)], start=1):
        knee = x[a:b, COORDINATES.index("knee_angle_r")]
        write_coordinates(
            sess / "OpenSimData" / "Dynamics" / f"SQT01_segment_{k}" /
            f"kinematics_activations_SQT01_segment_{k}_muscle_driven.mot", x[a:b],
            extra={"/forceset/vasmed_r/activation": knee / 250, "/forceset/vasmed_l/activation": knee / 260},
        )
    model_dir = sess / "OpenSimData" / "Model"
    model_dir.mkdir(parents=True)
    shutil.copy(default_model_path(), model_dir / "subject_scaled.osim")
    fk = forward_kinematics(model_dir / "subject_scaled.osim")
    with torch.no_grad():
        pos = fk(torch.as_tensor(x)).numpy()
    write_trc(sess / "MarkerData" / "SQT01.trc", np.arange(len(x)) / 60, list(fk.point_names), pos * 1000, "mm")
    return sess


@pytest.fixture(scope="module")
def mcs_session(request, tmp_path_factory) -> Path:
    """One session folder of the shared synthetic dataset (``synthetic_root``)
    when that fixture exists, else of the small fallback layout."""
    from dataset.mcs import discover

    try:
        root = Path(request.getfixturevalue("synthetic_root"))
    except pytest.FixtureLookupError:
        return _write_session(tmp_path_factory.mktemp("mcs"))
    return discover(root)[0].path


def _repetition(session_folder: Path, rep: int):
    from dataset.mcs import find_session

    session = find_session(session_folder)
    trial = sorted(session.trials)[0]
    return session, trial, next(r for r in session.repetitions() if r.trial == trial and r.index == rep)


def test_render_compare_draws_mocap_generated_and_markers_with_curves(mcs_session, motion_files, tmp_path):
    import render_compare
    from options.render import compare_parser

    _, _, rep = _repetition(mcs_session, 2)
    out = tmp_path / "compare.gif"
    args = compare_parser().parse_args([str(mcs_session), str(motion_files["mot_a"]), str(out), "--rep", "2",
                                        "--markers", "--quiet", "--panel-height", "140", "--stride", "8",
                                        "--fps", "8"])
    render_compare.main(args)
    frames = read_video(out)
    n_sync = max(rep.end - rep.start, 24)  # the repetition and the 24-frame sample, phase-synchronised
    assert len(frames) == len(range(0, n_sync, 8))
    assert frames.shape[2] > 2 * frames.shape[1]  # three panels side by side
    assert_moving(frames)
    with pytest.raises(RenderError, match="not 99"):
        render_compare.main(compare_parser().parse_args([str(mcs_session), str(motion_files["mot_a"]),
                                                         str(tmp_path / "x.gif"), "--rep", "99"]))
    with pytest.raises(RenderError, match="no squat trial 'SQT99'"):
        render_compare.main(compare_parser().parse_args([str(mcs_session), str(motion_files["mot_a"]),
                                                         str(tmp_path / "x.gif"), "--trial", "SQT99"]))


def test_reference_is_the_segmented_repetition_of_the_subject(mcs_session):
    from render.figures import load_reference
    from utils.motion_io import read_motion

    session, trial, rep = _repetition(mcs_session, 2)
    ref = load_reference(mcs_session, rep=2, with_markers=True)
    n = rep.end - rep.start
    assert ref.track.n_frames == n and ref.trial == trial and ref.rep == 2
    whole = read_motion(session.trials[trial]).coordinates()
    np.testing.assert_allclose(ref.track.coordinates, whole[rep.start:rep.end], atol=1e-9)
    # the markers of the same span: same frame count, hip centres agree with the model's within 3 cm
    assert ref.markers is not None and ref.markers.n_frames == n
    assert np.abs(ref.markers.hip - ref.track.hip).max() < 0.03
    # standing on the floor at the start (y up), the hips lowest mid-repetition
    assert abs(ref.track.positions[0, :, 1].min()) < 0.1
    assert 0.2 * n < ref.track.deepest_frame() < 0.8 * n
    assert ref.muscles == ("vasmed_r", "vasmed_l")
    assert ref.activations.shape[1] == 2 and 0 <= ref.activations.min() and ref.activations.max() <= 1


def test_reference_of_a_segmented_trial_without_its_kinematics_is_an_error_not_its_simulation(tmp_path):
    """The MoCap panel of a segmented trial comes from its Kinematics file; when that
    file is missing (here misnamed), the error names it, and the repetition's
    simulated Dynamics file is not drawn as MoCap in its place."""
    from render.figures import load_reference

    sess = tmp_path / "Data" / "s1"
    x = squat_coordinates(40, 0.8)
    write_coordinates(sess / "OpenSimData" / "Kinematics" / "SQT1.mot", x)
    seg = tmp_path / "squat-segmentation-data" / "s1.npy"
    seg.parent.mkdir()
    np.save(seg, {"SQT01": [(0, 40)]}, allow_pickle=True)
    knee = x[:, COORDINATES.index("knee_angle_r")]
    write_coordinates(sess / "OpenSimData" / "Dynamics" / "SQT01_segment_1" /
                      "kinematics_activations_SQT01_segment_1_muscle_driven.mot", x[::2],
                      extra={"/forceset/vasmed_r/activation": knee[::2] / 250})
    with pytest.raises(RenderError) as err:
        load_reference(sess)
    assert str(err.value) == (f"{seg}: trial SQT01 of session s1 has no OpenSimData/Kinematics/SQT01.mot or "
                              "SQT01.sto (Kinematics holds: SQT1.mot)")
    assert load_reference(sess, source="dynamics").track.n_frames == 20  # asked for: the simulation


def _surrogate_checkpoint(path: Path) -> Path:
    """A small (untrained) surrogate saved the way surrogate_training.py does."""
    import torch

    from models.surrogate import SurrogateModel
    from utils.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = SurrogateModel("mlp", muscles=("vasmed_r", "vasmed_l"), window=3, hidden=16, layers=1)
    save_checkpoint(path, model=model.state_dict(), model_config=model.model_config(),
                    coordinates=list(COORDINATES), muscles=list(model.muscles))
    return path


def test_plot_samples_orders_by_peak_activation_and_writes_png_and_pdf(mcs_session, tmp_path):
    import plot_samples
    from options.render import samples_parser
    from render.figures import pick_evenly, read_guidance_session

    exp = tmp_path / "guidance" / "EXP"
    folder = exp / mcs_session.name
    peaks = [0.42, 0.21, 0.37, 0.30]
    records = []
    for k, peak in enumerate(peaks):
        write_coordinates(folder / f"entry_{k}_EXP.mot", squat_coordinates(30, 0.4 + peak))
        records.append({"index": k, "mot": f"entry_{k}_EXP.mot", "peak_activation_mean": peak,
                        "in_band": 0.35 <= peak <= 0.45})
    (folder / "summary.json").write_text(json.dumps({
        "session": mcs_session.name, "muscles": ["vasmed_r", "vasmed_l"], "band": [0.35, 0.45],
        "samples": records, "options": {"data_root": str(mcs_session.parent.parent)}}))

    session = read_guidance_session(folder)
    assert [s.peak for s in session.samples] == peaks and session.band == (0.35, 0.45)
    assert pick_evenly(10, 4) == [0, 3, 6, 9] and pick_evenly(3, 6) == [0, 1, 2]

    args = samples_parser().parse_args([str(exp), "--max-samples", "3", "--dpi", "60"])
    written = plot_samples.main(args)
    assert sorted(p.name for p in written) == ["qualitative.pdf", "qualitative.png"]
    image = iio.imread(folder / "qualitative.png")
    assert image.shape[0] > 200 and image.shape[1] > 400
    # the sample's depth lines (green, #2ca02c) are drawn
    green = (np.abs(image[..., :3].astype(int) - [44, 160, 44]).sum(-1) < 80).sum()
    assert green > 100
    assert (folder / "qualitative.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(OutputExistsError):
        plot_samples.main(args)

    # with a surrogate: the samples' activation curves are drawn (a curves row is
    # added, or, when the reference's simulated activations made one already, it changes)
    ckpt = _surrogate_checkpoint(tmp_path / "surrogate.pth")
    args = samples_parser().parse_args([str(exp), "--max-samples", "3", "--dpi", "60", "--surrogate", str(ckpt),
                                        "--out", str(tmp_path / "with_curves.png")])
    plot_samples.main(args)
    curves = iio.imread(tmp_path / "with_curves.png")
    assert (tmp_path / "with_curves.pdf").is_file()
    if curves.shape == image.shape:
        rows = image.shape[0] // 3
        assert np.abs(curves[-rows:].astype(int) - image[-rows:].astype(int)).sum() > 1000
    else:
        assert curves.shape[0] > image.shape[0] + 100


def test_samples_are_ordered_by_peak_activation_and_thinned_evenly(tmp_path):
    from render.figures import Sample, choose_samples

    samples = [Sample(tmp_path / f"entry_{k}_X.mot", k, peak) for k, peak in enumerate([0.5, 0.1, 0.3, 0.2, 0.4])]
    assert [s.index for s in choose_samples(samples, 3)] == [1, 2, 0]      # lowest, middle, highest
    assert [s.index for s in choose_samples(samples, 9)] == [1, 3, 2, 4, 0]
    unknown = [Sample(tmp_path / f"entry_{k}_X.mot", k, None) for k in range(3)]
    assert [s.index for s in choose_samples(unknown, 2)] == [0, 2]        # file order without peaks
