"""Stick-figure rendering of squat motions: still images, GIF and MP4.

A motion becomes a :class:`Track`: 3-D point positions over time (metres,
OpenSim axes: x forward, **y up**, z to the subject's right), the segments that
join them, the hip-centre trajectory and a title. ``.mot`` kinematics go through
the model's forward kinematics (:mod:`utils.kinematics`); ``.trc`` markers are
drawn as points (joined where the names are known OpenCap key points).

Every panel of one rendering shares the same :class:`Camera` (orthographic,
azimuth/elevation), the same scale and the same floor: each track is shifted so
that its mean hip position is above the panel centre and its floor is at height
0. The hip trajectory of the whole cycle is traced in yellow (the paper's
"yellow curve"); a dot follows the current hip position; a time read-out and a
progress bar act as the time cursor. Optional joint-angle curves under the
panels carry a moving cursor line.

Drawing uses matplotlib's Agg canvas (headless) with blitting: the static parts
(floor, hip curve, titles, axes of the curves) are drawn once, each frame only
redraws the moving artists. MP4 goes through the ffmpeg bundled with
``imageio-ffmpeg``; GIF through Pillow. Outputs are written to a temporary file
in the destination folder and renamed, so a crash never leaves a partial video.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot-dependent imports
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402

from dataset.mcs import session_model_for  # noqa: E402
from dataset.plausibility import radians_as_degrees  # noqa: E402
from utils.constants import COORDINATES, FRAME_RATE  # noqa: E402
from utils.errors import BigeError  # noqa: E402
from utils.kinematics import STICK_SEGMENTS, ForwardKinematics, ModelError
from utils.motion_io import Motion, MotionFileError, read_motion  # noqa: E402

_LOG = logging.getLogger(__name__)

VIDEO_FORMATS = (".mp4", ".gif")
"""Output extensions :func:`render_animation` understands."""

GIF_MAX_FPS = 50.0
"""Browsers play GIF frame delays under 20 ms as 100 ms; faster GIFs skip frames."""

RIGHT_COLOR = "#d62728"
LEFT_COLOR = "#1f77b4"
CENTRE_COLOR = "#3a3a3a"
HIP_COLOR = "#f2b705"  # the yellow hip-trajectory curve
TRACK_COLORS = ("#222222", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
"""Identity colour of the k-th motion in curves and title underlines."""

ANGLE_CURVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "hip": ("Hip flexion", ("hip_flexion_r", "hip_flexion_l")),
    "knee": ("Knee flexion", ("knee_angle_r", "knee_angle_l")),
    "ankle": ("Ankle dorsiflexion", ("ankle_angle_r", "ankle_angle_l")),
    "pelvis_tilt": ("Pelvis tilt", ("pelvis_tilt",)),
}
"""Joint-angle curves drawn under :func:`render_animation` panels: key -> (title,
coordinates); the first coordinate is drawn solid (right side), the second dashed."""

# OpenCap's video key points, joined as a skeleton when a .trc has them.
OPENCAP_SEGMENTS: tuple[tuple[str, str], ...] = (
    ("Neck", "RShoulder"), ("RShoulder", "RElbow"), ("RElbow", "RWrist"),
    ("Neck", "LShoulder"), ("LShoulder", "LElbow"), ("LElbow", "LWrist"),
    ("Neck", "midHip"), ("midHip", "RHip"), ("midHip", "LHip"),
    ("RHip", "RKnee"), ("RKnee", "RAnkle"), ("RAnkle", "RHeel"), ("RAnkle", "RBigToe"),
    ("RHeel", "RBigToe"), ("RBigToe", "RSmallToe"),
    ("LHip", "LKnee"), ("LKnee", "LAnkle"), ("LAnkle", "LHeel"), ("LAnkle", "LBigToe"),
    ("LHeel", "LBigToe"), ("LBigToe", "LSmallToe"),
)

# OpenCap's augmented ("_study") anatomical markers, joined as a skeleton; the
# cluster markers (thigh1, sh1, ...) stay loose points.
_STUDY_SIDE_SEGMENTS = (
    ("{s}_shoulder", "{s}_lelbow"), ("{s}_lelbow", "{s}_lwrist"), ("{s}_lelbow", "{s}_melbow"),
    ("{s}_lwrist", "{s}_mwrist"), ("C7", "{s}_shoulder"),
    ("{S}HJC", "{s}_knee"), ("{s}_knee", "{s}_mknee"), ("{s}_knee", "{s}_ankle"),
    ("{s}_ankle", "{s}_mankle"), ("{s}_ankle", "{s}_calc"), ("{s}_calc", "{s}_5meta"), ("{s}_5meta", "{s}_toe"),
    ("{s}_calc", "{s}_toe"), ("{s}.ASIS", "{s}.PSIS"), ("{s}.ASIS", "{S}HJC"),
)
OPENCAP_STUDY_SEGMENTS: tuple[tuple[str, str], ...] = tuple(
    (a.format(s=s, S=S) + "_study", b.format(s=s, S=S) + "_study")
    for s, S in (("r", "R"), ("L", "L")) for a, b in _STUDY_SIDE_SEGMENTS
) + (("r.ASIS_study", "L.ASIS_study"), ("r.PSIS_study", "L.PSIS_study"), ("C7_study", "pelvis_centre"))

VIRTUAL_MARKERS: dict[str, tuple[str, ...]] = {
    "pelvis_centre": ("r.ASIS_study", "L.ASIS_study", "r.PSIS_study", "L.PSIS_study"),
}
"""Points added to marker data (mean of the named markers) so the skeleton can
join them; drawn only as segment ends, never as markers."""


class RenderError(BigeError, ValueError):
    """Input that cannot be rendered; the message names the file and the problem."""


# ----------------------------------------------------------------------------- tracks


@dataclass
class Track:
    """One motion ready to draw.

    ``positions`` (T, P, 3) metres, OpenSim axes (y up); ``segments`` (S, 2)
    point-index pairs; ``side`` (P,) +1 right / -1 left / 0 centre; ``hip``
    (T, 3) hip-centre trajectory, metres; ``times`` (T,) seconds;
    ``coordinates`` (T, 33) degrees / metres when the motion came from
    kinematics (``None`` for markers); ``kind`` is ``"model"`` or ``"markers"``;
    the last ``virtual`` points are construction points (segment ends only,
    not drawn as markers).
    """

    title: str
    positions: np.ndarray
    names: tuple[str, ...]
    segments: np.ndarray
    side: np.ndarray
    hip: np.ndarray
    times: np.ndarray
    kind: str = "model"
    coordinates: np.ndarray | None = None
    source: Path | None = None
    virtual: int = 0

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64)
        if self.positions.ndim != 3 or self.positions.shape[-1] != 3 or self.positions.shape[0] < 1:
            raise RenderError(f"{self.source or self.title}: positions must be (T, P, 3), got {self.positions.shape}")
        if not np.isfinite(self.positions).all():
            raise RenderError(f"{self.source or self.title}: non-finite positions")
        self.segments = np.asarray(self.segments, dtype=np.int64).reshape(-1, 2)
        self.side = np.asarray(self.side, dtype=np.int64)
        self.hip = np.asarray(self.hip, dtype=np.float64)
        self.times = np.asarray(self.times, dtype=np.float64)

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def frame_rate(self) -> float:
        if self.n_frames < 2 or self.times[-1] <= self.times[0]:
            return FRAME_RATE
        return float((self.n_frames - 1) / (self.times[-1] - self.times[0]))

    def deepest_frame(self) -> int:
        """Frame where the hip centre is lowest (the bottom of the squat)."""
        return int(np.argmin(self.hip[:, 1]))


def side_of(name: str) -> int:
    """+1 for a right-side point name, -1 for left, 0 for midline.

    Understands model names (``knee_r``, ``toe_l``) and marker names
    (``RKnee``, ``r.ASIS_study``, ``L_knee``, ``LHJC``).
    """
    low = name.lower()
    if low.endswith(("_r", ".r")) or low.startswith(("r.", "r_")):
        return 1
    if low.endswith(("_l", ".l")) or low.startswith(("l.", "l_")):
        return -1
    if len(name) > 1 and name[0] in "RL" and (name[1].isupper() or name[1].isdigit()):
        return 1 if name[0] == "R" else -1
    return 0


def _segments_from_names(names: Sequence[str], pairs: Iterable[tuple[str, str]]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    segs = [(index[a], index[b]) for a, b in pairs if a in index and b in index]
    return np.array(segs, dtype=np.int64).reshape(-1, 2)


def _hip_centre(names: Sequence[str], positions: np.ndarray) -> np.ndarray:
    """Hip-centre trajectory (T, 3) from named points: the midpoint of the two
    hip joint centres when present, else pelvis-like markers, else the centroid."""
    index = {n.lower(): i for i, n in enumerate(names)}
    for group in (("hip_r", "hip_l"), ("rhip", "lhip"), ("rhjc_study", "lhjc_study"), ("rhjc", "lhjc"),
                  ("midhip",), ("pelvis",),
                  ("r.asis_study", "l.asis_study", "r.psis_study", "l.psis_study"),
                  ("r.asis", "l.asis", "r.psis", "l.psis"), ("rasi", "lasi", "rpsi", "lpsi")):
        if all(g in index for g in group):
            return positions[:, [index[g] for g in group]].mean(axis=1)
    hipish = [i for n, i in index.items() if any(k in n for k in ("hip", "asi", "psi", "pelvis"))]
    chosen = hipish or list(range(positions.shape[1]))
    return positions[:, chosen].mean(axis=1)


def track_from_markers(names: Sequence[str], positions: np.ndarray, times: np.ndarray | None = None,
                       title: str = "markers", up: str = "auto", source: Path | None = None) -> Track:
    """A :class:`Track` of marker points. ``positions`` (T, M, 3) in metres.

    ``up`` names the vertical axis of the data: ``"y"`` (OpenSim / OpenCap),
    ``"z"`` (converted to y-up), or ``"auto"`` (the axis along which the
    markers spread most, i.e. the body's height).
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise RenderError(f"{source or title}: marker positions must be (T, M, 3), got {positions.shape}")
    valid = np.isfinite(positions).all(axis=(0, 2))
    if not valid.any():
        raise RenderError(f"{source or title}: no marker has finite positions")
    names = [n for n, v in zip(names, valid) if v]
    positions = positions[:, valid]
    if up == "auto":
        spread = np.median(positions.max(axis=1) - positions.min(axis=1), axis=0)  # (3,)
        up = "z" if spread[2] > 1.3 * spread[1] else "y"
    if up == "z":
        positions = np.stack([positions[..., 0], positions[..., 2], -positions[..., 1]], axis=-1)
    elif up != "y":
        raise RenderError(f"up must be 'y', 'z' or 'auto', got {up!r}")
    if times is None:
        times = np.arange(positions.shape[0]) / FRAME_RATE
    hip = _hip_centre(names, positions)
    index = {n: i for i, n in enumerate(names)}
    extra = [(v, parts) for v, parts in VIRTUAL_MARKERS.items()
             if v not in index and all(p in index for p in parts)]
    if extra:
        positions = np.concatenate(
            [positions] + [positions[:, [index[p] for p in parts]].mean(axis=1, keepdims=True) for _, parts in extra],
            axis=1)
        names = list(names) + [v for v, _ in extra]
    return Track(
        title=title, positions=positions, names=tuple(names),
        segments=_segments_from_names(names, OPENCAP_SEGMENTS + OPENCAP_STUDY_SEGMENTS),
        side=np.array([side_of(n) for n in names]), hip=hip,
        times=times, kind="markers", source=source, virtual=len(extra),
    )


def track_from_coordinates(coords: np.ndarray, fk, times: np.ndarray | None = None,
                           title: str = "motion", source: Path | None = None) -> Track:
    """A :class:`Track` of the model posed by ``coords`` (T, 33), canonical
    order, degrees / metres, through forward kinematics ``fk``
    (:class:`utils.kinematics.ForwardKinematics`)."""
    import torch

    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != len(COORDINATES):
        raise RenderError(f"{source or title}: coordinates must be (T, {len(COORDINATES)}), got {coords.shape}")
    with torch.no_grad():
        pos = fk(torch.as_tensor(coords, dtype=torch.float64)).cpu().numpy()
    names = tuple(fk.point_names)
    if times is None:
        times = np.arange(coords.shape[0]) / FRAME_RATE
    return Track(
        title=title, positions=pos, names=names, segments=_segments_from_names(names, STICK_SEGMENTS),
        side=np.array([side_of(n) for n in names]), hip=_hip_centre(names, pos),
        times=times, kind="model", coordinates=coords, source=source,
    )


@functools.lru_cache(maxsize=8)
def _cached_fk(model_path: str, mtime_ns: int):
    fk = ForwardKinematics.from_osim(model_path)
    with contextlib.suppress(Exception):
        fk = fk.double()
    return fk


def forward_kinematics(model: str | os.PathLike | None = None):
    """Forward kinematics of ``model`` (an ``.osim``; default: the generic model
    of :func:`dataset.synthetic.osim_model.default_model_path`), cached per file."""
    if model is None:
        from dataset.synthetic.osim_model import default_model_path

        model = default_model_path()
    path = Path(model)
    if not path.is_file():
        raise RenderError(f"{path}: model file does not exist (pass an .osim with --model)")

    try:
        return _cached_fk(str(path.resolve()), path.stat().st_mtime_ns)
    except ModelError as err:  # a model forward kinematics cannot represent: one line, no traceback
        raise RenderError(str(err)) from None


def quiet_opensim() -> None:
    """Keep OpenSim's informational log lines ("Loaded model ...") off the
    console of the rendering scripts; warnings and errors still show."""
    with contextlib.suppress(Exception):
        import opensim

        opensim.Logger.setLevelString("warn")


def load_track(path: str | os.PathLike, model: str | os.PathLike | None = None, title: str | None = None,
               up: str = "auto") -> Track:
    """Read a ``.mot``/``.sto`` (kinematics, posed through forward kinematics of
    ``model``; default: the session's scaled model when the file lies in an MCS
    session folder, else the generic model) or a ``.trc`` (markers, metres after
    the file's ``Units``)."""
    path = Path(path)
    try:
        motion: Motion = read_motion(path)
    except MotionFileError as err:
        raise RenderError(str(err)) from None
    title = title if title is not None else path.stem
    if path.suffix.lower() == ".trc":
        names, positions = motion.markers()
        return track_from_markers(names, positions, motion.times, title=title, up=up, source=path)
    try:
        coords = motion.coordinates(COORDINATES, degrees=True)
    except MotionFileError as err:
        raise RenderError(f"{err}; a kinematics .mot needs all {len(COORDINATES)} model coordinates") from None
    radians = radians_as_degrees(coords, moving=True)
    if radians is not None:  # drawn as written (a renderer shows any motion), but not without saying so
        _LOG.warning("%s: %s; drawn as written (set inDegrees=no in the header if they are)", path, radians)
    if model is None:
        model = session_model_for(path)
    return track_from_coordinates(coords, forward_kinematics(model), motion.times, title=title, source=path)


def titles_from_paths(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Panel titles from file names: the stem. Files with equal stems get
    their extension; files with equal names get the nearest parent folder in
    which their paths differ (``<session>/.../SQT01.trc``)."""
    paths = [Path(p).resolve() for p in paths]
    titles = [p.stem for p in paths]
    for i, p in enumerate(paths):
        same_stem = [q for q in paths if q.stem == p.stem]
        if len(same_stem) == 1:
            continue
        same_name = [q for q in same_stem if q.name == p.name]
        if len(same_name) == 1:
            titles[i] = p.name
            continue
        for level in range(1, len(p.parts)):
            parents = [q.parts[-1 - level] if len(q.parts) > level else "" for q in same_name]
            if parents.count(p.parts[-1 - level]) == 1:
                titles[i] = f"{p.parts[-1 - level]}/{'.../' if level > 1 else ''}{p.name}"
                break
        else:
            titles[i] = str(p)
    return titles


def fit_title(text: str, width: int, lines: int = 2) -> str:
    """``text`` wrapped at ``width`` characters on at most ``lines`` lines,
    the middle elided when it is longer."""
    wrapped = textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False)
    if len(wrapped) <= lines:
        return "\n".join(wrapped) or " "
    keep = width * lines - 3
    short = text[: keep // 2] + "..." + text[len(text) - (keep - keep // 2):]
    return "\n".join(textwrap.wrap(short, width, break_long_words=True, break_on_hyphens=False)[:lines])


# ----------------------------------------------------------------------------- camera and scene


@dataclass(frozen=True)
class Camera:
    """Orthographic camera looking at the subject.

    ``azim`` degrees about the vertical axis: 0 looks at the subject's front
    (from +x), 90 at the subject's right side (from +z). ``elev`` degrees
    above the horizon (0 = level). Screen coordinates are metres.
    """

    azim: float = 55.0
    elev: float = 12.0

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, towards-eye) unit vectors in OpenSim axes."""
        a = math.radians(self.azim)
        e = math.radians(max(-89.0, min(89.0, self.elev)))
        eye = np.array([math.cos(e) * math.cos(a), math.sin(e), math.cos(e) * math.sin(a)])
        right = np.cross(-eye, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, -eye)
        return right, up, eye

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) points -> (..., 2) screen metres and (...,) depth (larger is nearer)."""
        right, up, eye = self.basis()
        points = np.asarray(points, dtype=np.float64)
        return np.stack([points @ right, points @ up], axis=-1), points @ eye


def floor_height(track: Track, floor: float | str = "auto") -> float:
    """Height of the floor under ``track``, metres.

    ``"auto"``: the OpenSim ground (0) when the motion's lowest point sits near
    it (median over frames within 15 cm), else that median lowest point (marker
    data with another vertical origin). A number is used as given.
    """
    if floor != "auto":
        return float(floor)
    lowest = float(np.median(track.positions[..., 1].min(axis=1)))
    return 0.0 if abs(lowest) <= 0.15 else lowest


@dataclass
class Scene:
    """Shared framing of several tracks: per-track offsets (subtracted from
    positions so each motion is centred above the origin with its floor at
    height 0), the floor half-sizes along x and z, and the common screen
    limits (metres)."""

    camera: Camera
    offsets: np.ndarray  # (K, 3)
    floor_half: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    @property
    def aspect(self) -> float:
        return (self.xlim[1] - self.xlim[0]) / (self.ylim[1] - self.ylim[0])


def plan_scene(tracks: Sequence[Track], camera: Camera, floor: float | str = "auto",
               margin: float = 0.05, frames: Sequence[Sequence[int]] | None = None) -> Scene:
    """Frame every track with one camera, one scale and one floor size.

    Each track is centred on the middle of its horizontal extent over the
    whole motion; the floor is a rectangle 20 cm larger than the largest
    extent of any track, on every side. ``frames`` (one list of frame indices
    per track) restricts what must fit on screen to those frames and the hip
    path, with the floor clipped at the panel edges (for still images); by
    default every frame and the whole floor fit.
    """
    offsets, halves = [], []
    for t in tracks:
        lo = t.positions.reshape(-1, 3).min(axis=0)
        hi = t.positions.reshape(-1, 3).max(axis=0)
        centre = (lo + hi) / 2
        offsets.append([centre[0], floor_height(t, floor), centre[2]])
        halves.append((hi - lo)[[0, 2]] / 2)
    offsets = np.array(offsets)
    floor_half = np.ceil((np.max(halves, axis=0) + 0.2) / 0.25) * 0.25
    # videos keep the whole floor in view; stills frame the figures and clip the floor
    pts = [camera.project(_floor_corners(floor_half))[0]] if frames is None else []
    for k, (t, off) in enumerate(zip(tracks, offsets)):
        shown = t.positions if frames is None else np.concatenate([t.positions[list(frames[k])], t.hip[None]], 1)
        screen, _ = camera.project(shown - off)
        pts.append(screen.reshape(-1, 2))
    allp = np.concatenate(pts)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    pad = margin * (hi - lo).max()
    top_pad = pad + (0.07 * (hi[1] - lo[1]) if frames is None else 0.0)  # room for the time read-out
    return Scene(camera=camera, offsets=offsets, floor_half=(float(floor_half[0]), float(floor_half[1])),
                 xlim=(lo[0] - pad, hi[0] + pad), ylim=(lo[1] - pad, hi[1] + top_pad))


def _floor_corners(half: Sequence[float]) -> np.ndarray:
    """Corners (4, 3) of the floor rectangle of half-sizes (x, z), metres."""
    hx, hz = half
    return np.array([[-hx, 0, -hz], [hx, 0, -hz], [hx, 0, hz], [-hx, 0, hz]], dtype=np.float64)


# ----------------------------------------------------------------------------- drawing


class StickPanel:
    """One axes showing one track: static floor, hip curve and title; moving
    body, shadow, hip dot and time cursor (``animated`` artists for blitting)."""

    def __init__(self, ax, track: Track, scene: Scene, k: int, animated: bool = True,
                 show_time: bool = True, title_width: int = 30, title_color: str | None = None):
        self.ax, self.track, self.scene = ax, track, scene
        cam = scene.camera
        self.pos = track.positions - scene.offsets[k]
        self.screen, self.depth = cam.project(self.pos)  # (T, P, 2), (T, P)
        shadow = self.pos.copy()
        shadow[..., 1] = 0.0
        self.shadow_screen, _ = cam.project(shadow)
        hip_screen, _ = cam.project(track.hip - scene.offsets[k])
        self.hip_screen = hip_screen

        ax.set_xlim(*scene.xlim)
        ax.set_ylim(*scene.ylim)
        ax.set_aspect("equal", adjustable="box")
        ax.set_axis_off()
        self._draw_floor()
        ax.plot(hip_screen[:, 0], hip_screen[:, 1], color=HIP_COLOR, lw=2.2, alpha=0.95, zorder=3,
                solid_capstyle="round")
        ax.set_title(fit_title(track.title, title_width), fontsize=10.5, color=title_color or "black", pad=4)

        self.n_visible = track.positions.shape[1] - track.virtual
        side = track.side[: self.n_visible]
        colors = np.where(side > 0, RIGHT_COLOR, np.where(side < 0, LEFT_COLOR, CENTRE_COLOR))
        self.point_colors = colors
        self.seg_colors = [self._seg_color(a, b) for a, b in track.segments]
        self.shadow_lines = LineCollection([], colors="#000000", linewidths=3.0, alpha=0.12, zorder=2,
                                           animated=animated, capstyle="round")
        self.body = LineCollection([], linewidths=3.2, zorder=5, animated=animated, capstyle="round")
        ax.add_collection(self.shadow_lines)
        ax.add_collection(self.body)
        size = 16 if track.kind == "model" else 14
        self.points = ax.scatter(np.zeros(len(colors)), np.zeros(len(colors)), s=size, c=list(colors),
                                 zorder=6, animated=animated, linewidths=0)
        if track.kind == "markers" and len(track.segments) == 0:
            self.shadow_points = ax.scatter(np.zeros(len(colors)), np.zeros(len(colors)), s=size, c="#000000",
                                            alpha=0.12, zorder=2, animated=animated, linewidths=0)
        else:
            self.shadow_points = None
        (self.hip_dot,) = ax.plot([], [], "o", color=HIP_COLOR, mec="#7a5c00", mew=0.8, ms=7, zorder=7,
                                  animated=animated)
        self.moving = [self.shadow_lines, self.body, self.points, self.hip_dot]
        if self.shadow_points is not None:
            self.moving.insert(0, self.shadow_points)
        if show_time:
            x0, x1 = scene.xlim
            y0, y1 = scene.ylim
            self.time_text = ax.text(x0 + 0.03 * (x1 - x0), y1 - 0.025 * (y1 - y0), "", fontsize=9,
                                     va="top", ha="left", color="#333333", animated=animated,
                                     family="DejaVu Sans Mono")
            bar_y, bar_h = y0 + 0.008 * (y1 - y0), 0.012 * (y1 - y0)
            ax.add_patch(Rectangle((x0, bar_y), x1 - x0, bar_h, color="#e6e6e6", zorder=1, lw=0))
            self.bar = Rectangle((x0, bar_y), 0.0, bar_h, color="#7f7f7f", zorder=1.5, lw=0, animated=animated)
            ax.add_patch(self.bar)
            self.moving += [self.time_text, self.bar]
        else:
            self.time_text = self.bar = None

    def _seg_color(self, a: int, b: int) -> str:
        s = self.track.side
        if s[a] == s[b] and s[a] != 0:
            return RIGHT_COLOR if s[a] > 0 else LEFT_COLOR
        if s[a] != 0 and s[b] != 0:  # joins the two sides (e.g. hip to hip)
            return CENTRE_COLOR
        side = s[a] or s[b]
        # a midline-to-limb link (pelvis->hip, neck->shoulder) belongs to the trunk
        return CENTRE_COLOR if side == 0 else (RIGHT_COLOR if side > 0 else LEFT_COLOR)

    def _draw_floor(self) -> None:
        cam, half = self.scene.camera, self.scene.floor_half
        corners, _ = cam.project(_floor_corners(half))
        self.ax.add_patch(Polygon(corners, closed=True, facecolor="#eef0f3", edgecolor="#b8bec8", lw=1.0, zorder=0))
        hx, hz = half
        lines = []
        for v in np.arange(-hx, hx + 1e-9, 0.25):
            lines.append(cam.project(np.array([[v, 0, -hz], [v, 0, hz]]))[0])
        for v in np.arange(-hz, hz + 1e-9, 0.25):
            lines.append(cam.project(np.array([[-hx, 0, v], [hx, 0, v]]))[0])
        self.ax.add_collection(LineCollection(lines, colors="#cfd4dc", linewidths=0.6, zorder=0.5))

    def update(self, frame: int, progress: float | None = None) -> list:
        """Pose the moving artists at ``frame`` of the track; ``progress`` in
        [0, 1] sets the cursor bar (default: the frame's share of the track)."""
        t = self.track
        frame = int(min(max(frame, 0), t.n_frames - 1))
        scr, depth = self.screen[frame], self.depth[frame]
        if len(t.segments):
            seg_depth = depth[t.segments].mean(axis=1)
            order = np.argsort(seg_depth, kind="stable")  # far first, near drawn on top
            segs = t.segments[order]
            self.body.set_segments(scr[segs])
            self.body.set_colors([self.seg_colors[i] for i in order])
            self.shadow_lines.set_segments(self.shadow_screen[frame][segs])
        nv = self.n_visible
        order = np.argsort(depth[:nv], kind="stable")
        self.points.set_offsets(scr[:nv][order])
        self.points.set_color(self.point_colors[order])
        if self.shadow_points is not None:
            self.shadow_points.set_offsets(self.shadow_screen[frame][:nv])
        self.hip_dot.set_data([self.hip_screen[frame, 0]], [self.hip_screen[frame, 1]])
        if self.time_text is not None:
            if progress is None:
                progress = frame / max(1, t.n_frames - 1)
            self.time_text.set_text(f"{t.times[frame] - t.times[0]:.2f} s")
            self.bar.set_width(progress * (self.scene.xlim[1] - self.scene.xlim[0]))
        return self.moving


def angle_series(track: Track, coordinate: str) -> np.ndarray | None:
    """One coordinate of a kinematics track over time, degrees (``None`` for markers). (T,)"""
    if track.coordinates is None:
        return None
    return track.coordinates[:, COORDINATES.index(coordinate)]


class CurvesRow:
    """Joint-angle curves of every kinematics track against % of the cycle,
    with one moving cursor line per axes."""

    def __init__(self, axes: Sequence, tracks: Sequence[Track], keys: Sequence[str], animated: bool = True):
        self.axes = list(axes)
        self.cursors = []
        for ax, key in zip(self.axes, keys):
            title, coords = ANGLE_CURVES[key]
            for k, t in enumerate(tracks):
                for j, c in enumerate(coords):
                    y = angle_series(t, c)
                    if y is None:
                        continue
                    x = np.linspace(0, 100, len(y))
                    ax.plot(x, y, color=TRACK_COLORS[k % len(TRACK_COLORS)], lw=1.6 if j == 0 else 1.2,
                            ls="-" if j == 0 else "--")
            ax.set_title(f"{title} (deg)", fontsize=9.5, pad=3)
            ax.set_xlim(0, 100)
            ax.tick_params(labelsize=8)
            ax.set_xlabel("% of cycle", fontsize=8.5, labelpad=1)
            ax.grid(alpha=0.3, lw=0.5)
            self.cursors.append(ax.axvline(0, color="#555555", lw=1.0, animated=animated))

    def update(self, phase: float) -> list:
        for c in self.cursors:
            c.set_xdata([100 * phase, 100 * phase])
        return self.cursors


def frame_indices(tracks: Sequence[Track], sync: str = "phase") -> np.ndarray:
    """Which frame of each track to show at each output frame. (K, N)

    ``phase``: N = the longest track; each track is stretched to the same
    cycle (frame i shows phase i/(N-1) of every motion). ``time``: frame i of
    every track, holding the last frame of shorter ones.
    """
    n = max(t.n_frames for t in tracks)
    out = []
    for t in tracks:
        if sync == "phase":
            out.append(np.rint(np.linspace(0, t.n_frames - 1, n)).astype(np.int64))
        elif sync == "time":
            out.append(np.minimum(np.arange(n), t.n_frames - 1))
        else:
            raise RenderError(f"sync must be 'phase' or 'time', got {sync!r}")
    return np.stack(out)


@dataclass
class Layout:
    """Pixel layout of a rendering: panel size and optional curves row."""

    panel_height: int = 480
    title_px: int = 40
    curves_px: int = 240
    dpi: int = 100


class Animator:
    """Builds the figure for ``tracks`` and produces RGB frames by blitting.

    ``frames()`` yields (H, W, 3) uint8 arrays; H and W are even (as H.264
    with yuv420p needs).
    """

    def __init__(self, tracks: Sequence[Track], camera: Camera | None = None, floor: float | str = "auto",
                 curves: Sequence[str] | None = None, sync: str = "phase", layout: Layout | None = None):
        if not tracks:
            raise RenderError("nothing to render: no motion given")
        self.tracks = list(tracks)
        self.camera = camera or Camera()
        self.layout = layout or Layout()
        self.scene = plan_scene(self.tracks, self.camera, floor)
        self.index = frame_indices(self.tracks, sync)
        self.sync = sync
        lay = self.layout
        aspect = min(max(self.scene.aspect, 0.45), 1.6)
        panel_w = int(round(lay.panel_height * aspect))
        k = len(self.tracks)
        curves = [c for c in (curves or []) if any(t.coordinates is not None for t in self.tracks)]
        unknown = [c for c in curves if c not in ANGLE_CURVES]
        if unknown:
            raise RenderError(f"unknown angle curves {unknown}; choose from {list(ANGLE_CURVES)}")
        curve_h = lay.curves_px if curves else 0
        width = _even(max(k * panel_w, 260 * len(curves)))
        height = _even(lay.title_px + lay.panel_height + curve_h)
        self.size = (width, height)
        self.fig = Figure(figsize=(width / lay.dpi, height / lay.dpi), dpi=lay.dpi, facecolor="white")
        self.canvas = FigureCanvasAgg(self.fig)
        self.panels: list[StickPanel] = []
        chars = max(12, int(panel_w / 9.0))  # ~9 px per character at 10.5 pt
        for i, t in enumerate(self.tracks):
            left = (width - k * panel_w) / 2 + i * panel_w
            ax = self.fig.add_axes([left / width, curve_h / height, panel_w / width, lay.panel_height / height])
            self.panels.append(StickPanel(ax, t, self.scene, i, animated=True, title_width=chars,
                                          title_color=TRACK_COLORS[i % len(TRACK_COLORS)] if curves else None))
        self.curves = None
        if curves:
            n = len(curves)
            axes = []
            cell = width / n
            for j in range(n):
                rect = [(j * cell + 42) / width, 38 / height, (cell - 60) / width, (curve_h - 90) / height]
                axes.append(self.fig.add_axes(rect))
            self.curves = CurvesRow(axes, self.tracks, curves, animated=True)
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], color=TRACK_COLORS[i % len(TRACK_COLORS)], lw=2.5,
                              label=fit_title(t.title, 34, lines=1))
                       for i, t in enumerate(self.tracks) if t.coordinates is not None]
            handles += [Line2D([], [], color="#555555", lw=1.6, label="right"),
                        Line2D([], [], color="#555555", lw=1.2, ls="--", label="left")]
            self.fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
                            bbox_to_anchor=(0.5, (curve_h - 34) / height))
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)

    @property
    def n_frames(self) -> int:
        return self.index.shape[1]

    def render(self, i: int) -> np.ndarray:
        """RGB image of output frame ``i``. (H, W, 3) uint8"""
        return self.render_rgba(i)[..., :3].copy()

    def render_rgba(self, i: int) -> np.ndarray:
        """Output frame ``i`` as a view of the canvas, valid until the next
        call. (H, W, 4) uint8"""
        self.canvas.restore_region(self.background)
        n = self.n_frames
        phase = i / max(1, n - 1)
        for panel, idx in zip(self.panels, self.index):
            for artist in panel.update(int(idx[i]), progress=phase):
                panel.ax.draw_artist(artist)
        if self.curves is not None:
            for artist, ax in zip(self.curves.update(phase), self.curves.axes):
                ax.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())

    def frames(self, stride: int = 1, copy: bool = True) -> Iterator[np.ndarray]:
        """Every ``stride``-th output frame: (H, W, 3) uint8 copies, or with
        ``copy=False`` (H, W, 4) views of the canvas, each valid until the
        next frame is drawn (what :func:`write_video` needs; no copy)."""
        for i in range(0, self.n_frames, stride):
            yield self.render(i) if copy else self.render_rgba(i)


def _even(n: float) -> int:
    n = int(math.ceil(n))
    return n + (n % 2)


# ----------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path in ``path``'s folder, with the same extension, renamed
    to ``path`` when the block succeeds and removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a rendered file is for sharing
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float,
                progress: Callable[[int], None] | None = None) -> int:
    """Write frames (H, W, 3) RGB or (H, W, 4) RGBA uint8 to ``path`` (.mp4:
    H.264 through the ffmpeg bundled with imageio-ffmpeg; .gif: Pillow,
    looping, one palette for all frames), atomically. Each frame is consumed
    before the next is requested, so frames may be reused buffers. Returns the
    number of frames written."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in VIDEO_FORMATS:
        raise RenderError(f"{path}: unknown video format {ext!r}; expected one of {', '.join(VIDEO_FORMATS)}")
    count = 0
    with atomic_output(path) as tmp:
        if ext == ".mp4":
            import imageio_ffmpeg

            writer = None
            try:
                for frame in frames:
                    if writer is None:
                        h, w = frame.shape[:2]
                        writer = imageio_ffmpeg.write_frames(
                            str(tmp), (w, h), fps=fps, codec="libx264",
                            pix_fmt_in="rgba" if frame.shape[2] == 4 else "rgb24",
                            pix_fmt_out="yuv420p", quality=7, macro_block_size=2,
                            ffmpeg_log_level="error", output_params=["-movflags", "+faststart"],
                        )
                        writer.send(None)
                    writer.send(np.ascontiguousarray(frame))
                    count += 1
                    if progress:
                        progress(1)
            finally:
                if writer is not None:
                    writer.close()
        else:
            from PIL import Image

            images, palette = [], None
            for frame in frames:
                rgb = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
                if palette is None:
                    palette = _gif_palette(rgb)
                images.append(rgb.quantize(palette=palette, dither=Image.Dither.NONE))
                count += 1
                if progress:
                    progress(1)
            if not images:
                raise RenderError(f"{path}: no frames to write")
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=max(20, int(round(1000.0 / fps))), loop=0, disposal=1)
    if count == 0:
        raise RenderError(f"{path}: no frames to write")
    return count


def _gif_palette(first):
    """One 256-colour palette for every GIF frame: the drawing's own colours
    (so small features such as the yellow hip curve keep their colour) plus
    the colours of the first frame."""
    from matplotlib.colors import to_rgb
    from PIL import Image

    fixed = [RIGHT_COLOR, LEFT_COLOR, CENTRE_COLOR, HIP_COLOR, "#7a5c00", "#ffffff", "#000000", *TRACK_COLORS]
    fixed_rgb = [tuple(int(round(255 * c)) for c in to_rgb(col)) for col in fixed]
    adaptive = first.quantize(colors=256 - len(fixed_rgb), method=Image.Quantize.FASTOCTREE)
    pal = adaptive.getpalette()[: 3 * (256 - len(fixed_rgb))]
    pal += [v for rgb in fixed_rgb for v in rgb]
    image = Image.new("P", (1, 1))
    image.putpalette(pal[: 3 * 256])
    return image


def playback(ext: str, data_rate: float, fps: float | None = None, stride: int | None = None) -> tuple[float, int]:
    """Frames per second and frame stride for an output format.

    By default the video plays in real time at the data's rate; GIF cannot
    play faster than :data:`GIF_MAX_FPS`, so it keeps every ``stride``-th
    frame at ``data_rate / stride`` fps instead.
    """
    if stride is None:
        rate = fps if fps is not None else data_rate
        stride = max(1, math.ceil(rate / GIF_MAX_FPS)) if ext == ".gif" else 1
        if fps is None:
            fps = data_rate / stride
    elif fps is None:
        fps = data_rate / stride
    if stride < 1 or fps <= 0:
        raise RenderError(f"stride must be >= 1 and fps > 0 (got stride={stride}, fps={fps})")
    if ext == ".gif" and fps > GIF_MAX_FPS:
        raise RenderError(f"GIF plays at most {GIF_MAX_FPS:g} fps; use a lower --fps or a larger --stride")
    return float(fps), int(stride)


def render_animation(tracks: Sequence[Track], out: str | os.PathLike, fps: float | None = None,
                     stride: int | None = None, camera: Camera | None = None, floor: float | str = "auto",
                     curves: Sequence[str] | None = None, sync: str = "phase", layout: Layout | None = None,
                     show_progress: bool = False) -> Path:
    """Render ``tracks`` side by side to ``out`` (.mp4 or .gif), atomically.

    ``fps``/``stride``: see :func:`playback`; ``curves``: keys of
    :data:`ANGLE_CURVES` drawn under the panels; ``sync``: see
    :func:`frame_indices`. Returns the path written.
    """
    out = Path(out)
    ext = out.suffix.lower()
    if ext not in VIDEO_FORMATS:
        raise RenderError(f"{out}: unknown output format {ext!r}; expected .mp4 or .gif")
    anim = Animator(tracks, camera=camera, floor=floor, curves=curves, sync=sync, layout=layout)
    data_rate = max(t.frame_rate for t in tracks)
    fps, stride = playback(ext, data_rate, fps, stride)
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(range(0, anim.n_frames, stride)), desc=f"render {out.name}", unit="frame")
    try:
        write_video(anim.frames(stride, copy=False), out, fps, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    return out


def render_still(tracks: Sequence[Track], out: str | os.PathLike, frame: float | str = "deepest",
                 camera: Camera | None = None, floor: float | str = "auto", layout: Layout | None = None) -> Path:
    """One image (.png/.pdf/...) of ``tracks`` side by side, atomically.

    ``frame``: ``"deepest"`` (each track at its lowest hip position) or a
    phase in [0, 1] of each track's cycle."""
    anim = Animator(tracks, camera=camera, floor=floor, layout=layout)
    for panel in anim.panels:
        f = panel.track.deepest_frame() if frame == "deepest" else round(float(frame) * (panel.track.n_frames - 1))
        for artist in panel.update(f):
            artist.set_animated(False)
    return save_figure(anim.fig, out)


def save_figure(fig: Figure, out: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure to ``out`` (format from the extension), atomically."""
    out = Path(out)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".").lower() or "png", **kwargs)
    return out


def default_output(first_input: str | os.PathLike, n_inputs: int, ext: str = ".mp4") -> Path:
    """Where plot_3 writes without an output path: next to the first input,
    ``<stem>.mp4`` for one input, ``<stem>_and_<n-1>_more.mp4`` otherwise."""
    first = Path(first_input)
    name = first.stem if n_inputs == 1 else f"{first.stem}_and_{n_inputs - 1}_more"
    return first.with_name(name + ext)


def split_inputs(items: Sequence[str], default_ext: str = ".mp4", max_inputs: int = 3) -> tuple[list[Path], Path]:
    """plot_3's positional arguments: one to ``max_inputs`` motion files,
    optionally followed by an output video path (.mp4/.gif). Returns the
    inputs and the output (default: next to the first input)."""
    items = [Path(i) for i in items]
    out = None
    if items and items[-1].suffix.lower() in VIDEO_FORMATS:
        out = items.pop()
    bad = [p for p in items if p.suffix.lower() in VIDEO_FORMATS or p.suffix.lower() not in (".mot", ".sto", ".trc")]
    if bad:
        raise RenderError(f"{bad[0]}: not a motion file; inputs must be .mot, .sto or .trc and only the last "
                          "argument may be the output video (.mp4 or .gif)")
    if not 1 <= len(items) <= max_inputs:
        raise RenderError(f"expected 1 to {max_inputs} motion files, got {len(items)}")
    missing = [p for p in items if not p.is_file()]
    if missing:
        raise RenderError(f"{missing[0]}: file does not exist")
    return items, out or default_output(items[0], len(items), default_ext)


__all__ = [
    "ANGLE_CURVES", "Animator", "Camera", "CurvesRow", "Layout", "RenderError", "Scene", "StickPanel", "Track",
    "VIDEO_FORMATS", "atomic_output", "default_output", "fit_title", "floor_height", "forward_kinematics", "frame_indices",
    "load_track", "plan_scene", "playback", "quiet_opensim", "render_animation", "render_still", "save_figure",
    "side_of", "split_inputs", "titles_from_paths", "track_from_coordinates", "track_from_markers",
    "write_video",
]


def render_with_options(tracks, out, args) -> None:
    """``render_animation`` with the view flags shared by plot_3.py and
    render_compare.py (--fps --stride --azim --elev --floor --curves --sync
    --panel-height --quiet)."""
    render_animation(tracks, out, fps=args.fps, stride=args.stride, camera=Camera(args.azim, args.elev),
                     floor=args.floor, curves=args.curves, sync=args.sync,
                     layout=Layout(panel_height=args.panel_height), show_progress=not args.quiet)
