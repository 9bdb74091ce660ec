"""Figures built on :mod:`render.animation`: a subject's motion-capture reference
repetition as a drawable track, and the qualitative figure of guided samples.

The samples figure (the paper's qualitative diagram): the reference and the
generated samples ordered by peak muscle activation, each drawn at its deepest
frame with one camera and one floor; a red line marks the reference's squat
depth (hip-centre height at 50 % of its cycle) and a green line the sample's;
underneath, the activation curves of the guided muscles (from a surrogate, and
for the reference also from its muscle-driven simulation when present).
"""
from __future__ import annotations

import io
import json
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dataset.mcs import DatasetError, find_session, session_model_for
from render.animation import (
    Camera, RenderError, StickPanel, Track, forward_kinematics, load_track, plan_scene, save_figure,
    track_from_coordinates, track_from_markers,
)
from utils.constants import COORD_INDEX, COORDINATES, DEFAULT_DATA_ROOT, FRAME_RATE, GUIDED_MUSCLES
from utils.fileio import atomic_open
from utils.motion_io import MotionFileError, read_motion

SAMPLE_FILE = re.compile(r"^entry_(\d+)_.+\.mot$")
"""Guidance sample files: ``entry_<k>_<exp-name>.mot``."""

REFERENCE_COLOR = "#d62728"  # squat depth of the reference
SAMPLE_DEPTH_COLOR = "#2ca02c"  # squat depth of the sample


# ----------------------------------------------------------------------------- the reference


@dataclass
class Reference:
    """A motion-capture repetition of one subject, ready to draw.

    ``track`` holds the model posed by the repetition's kinematics;
    ``markers`` the subject's ``.trc`` markers over the same time span (or
    ``None``); ``activations`` (T, M) from the muscle-driven simulation file of
    that repetition for ``muscles`` (or ``None``).
    """

    track: Track
    session: str
    trial: str
    rep: int
    markers: Track | None = None
    activations: np.ndarray | None = None
    muscles: tuple[str, ...] = ()


def load_reference(session_folder: str | os.PathLike, trial: str | None = None, rep: int = 1,
                   source: str = "kinematics", model: str | os.PathLike | None = None,
                   muscles: Sequence[str] = GUIDED_MUSCLES, with_markers: bool = False,
                   up: str = "auto") -> Reference:
    """Load repetition ``rep`` (1-based) of ``trial`` (default: the first squat
    trial) of the session in ``session_folder``.

    ``source="kinematics"`` cuts the whole-trial inverse kinematics with the
    segmentation (a segmented trial without its Kinematics file is an error;
    a repetition known only from a Dynamics folder, its trial not in the
    segmentation, is read from that file); ``"dynamics"`` reads the
    muscle-driven simulation file.
    The model is ``model`` or the subject's scaled model or the generic one.
    """
    folder = Path(session_folder)
    try:
        session = find_session(folder)
    except DatasetError as err:
        raise RenderError(str(err)) from None
    reps = session.repetitions()
    if not reps:
        raise RenderError(f"{folder}: no squat repetition (no segmented squat trial and no Dynamics file)")
    trials = sorted({r.trial for r in reps})
    trial = trial or trials[0]
    chosen = [r for r in reps if r.trial == trial]
    if not chosen:
        raise RenderError(f"{folder}: no squat trial {trial!r}; found {', '.join(trials)}")
    match = [r for r in chosen if r.index == rep]
    if not match:
        raise RenderError(f"{folder}: trial {trial} has repetitions {', '.join(str(r.index) for r in chosen)}, "
                          f"not {rep}")
    r = match[0]
    fk = forward_kinematics(model or session.model)
    title = f"MoCap {session.id[:8]} {trial} #{rep}"
    try:
        if source == "kinematics" and r.start is not None:
            trial_file = session.trial_file(trial)  # a segmented trial without IK is an error, not its simulation
            motion = read_motion(trial_file)
            if r.end > motion.n_frames:
                raise RenderError(f"{trial_file}: segmentation asks for frames {r.start}-{r.end} but "
                                  f"the trial has {motion.n_frames}")
            coords = motion.coordinates(COORDINATES)[r.start:r.end]
            times = motion.times[r.start:r.end]
        elif r.dynamics is not None:
            motion = read_motion(r.dynamics)
            coords, times = motion.coordinates(COORDINATES), motion.times
        else:
            raise RenderError(f"{folder}: {trial} #{rep} has neither a segmented trial nor a Dynamics file")
    except (MotionFileError, DatasetError) as err:
        raise RenderError(str(err)) from None
    if len(coords) < 2:
        raise RenderError(f"{folder}: {trial} #{rep} has fewer than 2 frames")
    track = track_from_coordinates(coords, fk, times, title=title, source=Path(motion.source or folder))

    markers = None
    if with_markers:
        trc = session.markers.get(trial)
        if trc is None:
            raise RenderError(f"{folder}: no MarkerData/{trial}.trc for the marker panel")
        m = read_motion(trc)
        keep = (m.times >= times[0] - 1e-6) & (m.times <= times[-1] + 1e-6)
        if keep.sum() < 2:
            raise RenderError(f"{trc}: no marker frames between {times[0]:.3f} s and {times[-1]:.3f} s")
        names, pos = m.markers()
        markers = track_from_markers(names, pos[keep], m.times[keep], title=f"Markers {trial} #{rep}", up=up,
                                     source=trc)

    acts, found = None, ()
    if r.dynamics is not None:
        with_acts = read_motion(r.dynamics)
        found = tuple(m for m in muscles if with_acts.has(m))
        if found:
            acts = with_acts.columns(found)
    return Reference(track=track, session=session.id, trial=trial, rep=rep, markers=markers,
                     activations=acts, muscles=found)


# ----------------------------------------------------------------------------- guidance outputs


@dataclass
class Sample:
    """One generated sample of a guidance run."""

    path: Path
    index: int
    peak: float | None = None
    in_band: bool | None = None


@dataclass
class GuidanceSession:
    """The samples of one session folder of a guidance run and its summary."""

    folder: Path
    session: str
    samples: list[Sample]
    muscles: tuple[str, ...]
    band: tuple[float, float] | None
    summary: dict


def guidance_sessions(folder: str | os.PathLike) -> list[Path]:
    """Session folders of a guidance output: ``folder`` itself when it holds
    ``entry_*.mot`` files, else its sub-folders that do."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RenderError(f"{folder}: guidance output folder does not exist")
    if any(SAMPLE_FILE.match(f.name) for f in folder.iterdir()):
        return [folder]
    found = sorted(d for d in folder.iterdir()
                   if d.is_dir() and not d.name.startswith(".") and any(SAMPLE_FILE.match(f.name) for f in d.iterdir()))
    if not found:
        raise RenderError(f"{folder}: no entry_<k>_<exp>.mot samples here or in its session folders")
    return found


def read_guidance_session(folder: str | os.PathLike) -> GuidanceSession:
    """Samples of one guidance session folder with their peak activations
    (``summary.json``: per sample ``peak_activation_mean`` or the mean of
    ``peak_activation``), the guided muscles and the target band."""
    folder = Path(folder)
    files = sorted((f for f in folder.iterdir() if SAMPLE_FILE.match(f.name)),
                   key=lambda f: int(SAMPLE_FILE.match(f.name).group(1)))
    if not files:
        raise RenderError(f"{folder}: no entry_<k>_<exp>.mot samples")
    summary: dict = {}
    summary_path = folder / "summary.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except json.JSONDecodeError as err:
            raise RenderError(f"{summary_path}:{err.lineno}: not valid JSON ({err.msg})") from None
    by_file = {}
    for record in summary.get("samples", []):
        name = record.get("mot")
        if name:
            by_file[Path(name).name] = record
    samples = []
    for f in files:
        record = by_file.get(f.name, {})
        peak = record.get("peak_activation_mean")
        if peak is None and isinstance(record.get("peak_activation"), dict) and record["peak_activation"]:
            peak = float(np.mean(list(record["peak_activation"].values())))
        elif peak is None and isinstance(record.get("peak_activation"), (int, float)):
            peak = float(record["peak_activation"])
        samples.append(Sample(path=f, index=int(SAMPLE_FILE.match(f.name).group(1)),
                              peak=None if peak is None else float(peak), in_band=record.get("in_band")))
    band = summary.get("band")
    return GuidanceSession(
        folder=folder, session=str(summary.get("session", folder.name)), samples=samples,
        muscles=tuple(summary.get("muscles", GUIDED_MUSCLES)),
        band=(float(band[0]), float(band[1])) if band and len(band) == 2 else None, summary=summary,
    )


def pick_evenly(n: int, k: int) -> list[int]:
    """``k`` of ``n`` ranks, evenly spaced, always the first and the last."""
    if n <= k:
        return list(range(n))
    if k == 1:
        return [n - 1]
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)})


def choose_samples(samples: Sequence[Sample], max_samples: int) -> list[Sample]:
    """The samples to draw: ordered by peak activation (ascending; by entry
    index when a peak is unknown), ``max_samples`` evenly spaced ranks."""
    ordered = list(samples)
    if all(s.peak is not None for s in ordered):
        ordered.sort(key=lambda s: (s.peak, s.index))
    else:
        ordered.sort(key=lambda s: s.index)
    return [ordered[i] for i in pick_evenly(len(ordered), max_samples)]


def surrogate_activations(model, coords: Sequence[np.ndarray], muscles: Sequence[str]) -> list[np.ndarray]:
    """Predicted activations (T, len(muscles)) of each (T, 33) motion."""
    missing = [m for m in muscles if m not in model.muscles]
    if missing:
        raise RenderError(f"the surrogate does not predict {', '.join(missing)}; it predicts "
                          f"{', '.join(model.muscles)}")
    return [model.predict(np.asarray(x)[None], muscles)[0] for x in coords]


# ----------------------------------------------------------------------------- the samples figure


def depth_at_half_cycle(track: Track, floor: float) -> float:
    """Hip-centre height above the floor at 50 % of the cycle, metres."""
    return float(track.hip[round(0.5 * (track.n_frames - 1)), 1] - floor)


def samples_figure(samples: Sequence[Track], out: str | os.PathLike, reference: Track | None = None,
                   peaks: Sequence[float | None] | None = None, in_band: Sequence[bool | None] | None = None,
                   activations: Sequence[np.ndarray] | None = None, reference_activations: dict | None = None,
                   muscles: Sequence[str] = (), band: tuple[float, float] | None = None,
                   camera: Camera | None = None, floor: float | str = "auto", title: str = "",
                   panel_height_in: float = 3.3, dpi: int = 150, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Draw the qualitative figure and save it as ``out`` with each extension
    of ``formats``. Returns the paths written.

    ``samples`` are drawn in the order given (sort them by peak activation
    first), each at its deepest frame, after ``reference``; ``peaks`` and
    ``in_band`` annotate them. ``activations`` (one (T, M) per sample, for
    ``muscles``) and ``reference_activations`` ({label: (T, M)}) make the
    curves row; ``band`` shades the target band.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    camera = camera or Camera(azim=70.0, elev=0.0)
    tracks = ([reference] if reference is not None else []) + list(samples)
    if not tracks:
        raise RenderError("nothing to draw: no sample and no reference")
    scene = plan_scene(tracks, camera, floor, margin=0.08, frames=[[t.deepest_frame()] for t in tracks])
    n = len(tracks)
    ranks = colormaps["viridis"](np.linspace(0.0, 0.75, max(len(samples), 1)))
    colors = (["#000000"] if reference is not None else []) + [ranks[i] for i in range(len(samples))]
    aspect = min(max(scene.aspect, 0.35), 1.2)
    panel_w = max(panel_height_in * aspect, 1.9)  # room for the labels under each figure
    has_curves = bool(muscles) and (bool(activations) or bool(reference_activations))
    curves_h = 2.3 if has_curves else 0.0
    fig_w = max(n * panel_w, 7.0)
    title_lines = textwrap.wrap(title, max(30, int(fig_w * 72 / 6.6))) if title else []  # ~6.6 pt per char at 11 pt
    head = 0.45 + 0.22 * len(title_lines)  # the suptitle plus up to two lines of panel title
    legend_cols = 4 if fig_w >= 10.5 else 2
    legend_h = 0.3 * (1 if legend_cols == 4 else 2)
    fig_h = head + panel_height_in + 0.7 + curves_h + legend_h
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    if title_lines:
        fig.suptitle("\n".join(title_lines), fontsize=11, y=1 - 0.08 / fig_h, va="top")

    ref_depth = depth_at_half_cycle(reference, scene.offsets[0, 1]) if reference is not None else None
    _, up, _ = camera.basis()
    for i, track in enumerate(tracks):
        left = (fig_w - n * panel_w) / 2 + i * panel_w
        ax = fig.add_axes([left / fig_w, (legend_h + curves_h + 0.7) / fig_h, panel_w / fig_w,
                           panel_height_in / fig_h])
        panel = StickPanel(ax, track, scene, i, animated=False, show_time=False,
                           title_width=max(10, int(panel_w * 9.5)))
        panel.update(track.deepest_frame())
        is_ref = reference is not None and i == 0
        ax.title.set_color(colors[i] if not is_ref else "black")
        x0, x1 = scene.xlim
        depth = depth_at_half_cycle(track, scene.offsets[i, 1])
        lines = [(ref_depth, REFERENCE_COLOR)] if ref_depth is not None else []
        if not is_ref:
            lines.append((depth, SAMPLE_DEPTH_COLOR))
        for h, color in lines:
            y = h * up[1]  # screen height of a point at height h above the panel's floor centre
            ax.plot([x0, x1], [y, y], color=color, lw=1.3, ls="-", zorder=8, alpha=0.9)
        j = i - (1 if reference is not None else 0)
        if is_ref:
            label = f"reference\nhip at 50%: {100 * depth:.0f} cm"
        else:
            peak = None if peaks is None else peaks[j]
            band_ok = None if in_band is None else in_band[j]
            label = ("peak act. n/a" if peak is None else f"peak act. {peak:.2f}")
            if band_ok is not None:
                label += ", in band" if band_ok else ", out of band"
            label += f"\nhip at 50%: {100 * depth:.0f} cm"
            if ref_depth is not None:
                diff = int(round(100 * (depth - ref_depth)))
                label += f" ({diff:+d})" if diff else " (same)"
        fig.text((left + panel_w / 2) / fig_w, (legend_h + curves_h + 0.65) / fig_h, label, ha="center", va="top",
                 fontsize=8, color="black")

    handles = []
    from matplotlib.lines import Line2D

    if reference is not None:
        handles.append(Line2D([], [], color=REFERENCE_COLOR, lw=1.5, label="reference depth at 50% of cycle"))
    handles.append(Line2D([], [], color=SAMPLE_DEPTH_COLOR, lw=1.5, label="sample depth at 50% of cycle"))
    handles.append(Line2D([], [], color="#f2b705", lw=2.2, label="hip path over the cycle"))
    if has_curves:
        n_m = len(muscles)
        cell = fig_w / n_m
        for k, muscle in enumerate(muscles):
            ax = fig.add_axes([(k * cell + 0.65) / fig_w, (legend_h + 0.45) / fig_h, (cell - 0.95) / fig_w,
                               (curves_h - 0.75) / fig_h])
            if band is not None:
                ax.axhspan(band[0], band[1], color="#2ca02c", alpha=0.12, lw=0)
            for label, acts in (reference_activations or {}).items():
                a = np.asarray(acts)
                ax.plot(np.linspace(0, 100, len(a)), a[:, k], color="black",
                        ls="-" if "sim" in label else "--", lw=1.6, label=label)
            for j, acts in enumerate(activations or []):
                a = np.asarray(acts)
                ax.plot(np.linspace(0, 100, len(a)), a[:, k], color=ranks[j], lw=1.3)
            ax.set_xlim(0, 100)
            ax.set_ylim(0, 1)
            ax.set_title(f"{muscle} activation", fontsize=9.5, pad=3)
            ax.set_xlabel("% of cycle", fontsize=8.5, labelpad=1)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3, lw=0.5)
            if k == 0:
                ax.set_ylabel("activation", fontsize=8.5)
                if reference_activations:
                    ax.legend(fontsize=7.5, loc="upper left", frameon=False)
        if band is not None:
            from matplotlib.patches import Patch

            handles.append(Patch(color="#2ca02c", alpha=0.25, label=f"target band [{band[0]:g}, {band[1]:g}]"))
    fig.legend(handles=handles, loc="lower center", ncol=legend_cols, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.02 / fig_h))
    out = Path(out)
    written = []
    for ext in formats:
        written.append(save_figure(fig, out.with_suffix(f".{ext}"), dpi=dpi))
    return written


def samples_figure_for_session(session: GuidanceSession, out: str | os.PathLike, reference: Reference | None,
                               max_samples: int = 6, model: str | os.PathLike | None = None, surrogate=None,
                               camera: Camera | None = None, floor: float | str = "auto", dpi: int = 150,
                               panel_height_in: float = 3.3) -> list[Path]:
    """The qualitative figure of one guidance session (see :func:`samples_figure`).

    Samples are ordered by peak activation (ascending; file order when no peak
    is known) and ``max_samples`` evenly spaced ranks are drawn. With a
    ``surrogate`` (``models.surrogate.SurrogateModel``) the activation curves
    of the drawn samples and of the reference are predicted; the reference's
    simulated activations are drawn when its Dynamics file has them.
    """
    chosen = choose_samples(session.samples, max_samples)
    if model is None and reference is not None and reference.track.source is not None:
        model = session_model_for(reference.track.source)
    tracks = [load_track(s.path, model=model, title=s.path.stem) for s in chosen]
    muscles = tuple(session.muscles)
    acts, ref_acts = None, {}
    if reference is not None and reference.activations is not None and reference.muscles == muscles:
        ref_acts["reference (simulation)"] = reference.activations
    if surrogate is not None:
        muscles = tuple(m for m in muscles if m in surrogate.muscles) or tuple(surrogate.muscles[:2])
        acts = surrogate_activations(surrogate, [t.coordinates for t in tracks], muscles)
        if reference is not None:
            ref_acts["reference (surrogate)"] = surrogate_activations(surrogate, [reference.track.coordinates],
                                                                      muscles)[0]
        if "reference (simulation)" in ref_acts and reference.muscles != muscles:
            del ref_acts["reference (simulation)"]
        peaks = [s.peak if s.peak is not None else float(a.max(axis=0).mean()) for s, a in zip(chosen, acts)]
    else:
        peaks = [s.peak for s in chosen]
    n_total = len(session.samples)
    title = (f"Session {session.session}: {len(chosen)} of {n_total} samples, ordered by peak activation of "
             f"{', '.join(muscles) or 'the guided muscles'}")
    return samples_figure(
        tracks, out, reference=reference.track if reference is not None else None, peaks=peaks,
        in_band=[s.in_band for s in chosen], activations=acts, reference_activations=ref_acts or None,
        muscles=muscles if (acts is not None or ref_acts) else (), band=session.band, camera=camera,
        floor=floor, title=title, dpi=dpi, panel_height_in=panel_height_in,
    )


def reference_folder(session: GuidanceSession, data_root: str | os.PathLike | None = None,
                     reference: str | os.PathLike | None = None) -> Path | None:
    """Where the reference subject of a guidance session lives: ``reference``,
    else ``<data_root>/Data/<session>``, with ``data_root`` defaulting to the
    one recorded in ``summary.json`` then to the embedded dataset. ``None`` if
    that folder does not exist."""
    if reference is not None:
        return Path(reference)
    options = session.summary.get("options", {}) if isinstance(session.summary.get("options"), dict) else {}
    candidates = []
    if data_root is not None:
        candidates.append(Path(data_root))
    else:
        if options.get("data_root"):
            candidates.append(Path(options["data_root"]))
        for subj in options.get("subject", []) if isinstance(options.get("subject"), list) else []:
            p = Path(str(subj))
            if p.name == session.session and p.is_dir():
                return p
        candidates.append(Path(DEFAULT_DATA_ROOT))
    for root in candidates:
        for folder in (root / "Data" / session.session, root / session.session):
            if folder.is_dir():
                return folder
    return None


def plot_samples(path: str | Path, activations: np.ndarray, motions: np.ndarray, muscles: Sequence[str],
                 low: float, high: float, title: str = "", fs: float = FRAME_RATE) -> Path:
    """PNG of the kept samples: activation curves (band shaded) and pelvis
    trajectories (height over time and sagittal path). (K, T, M), (K, T, 33)"""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, t = activations.shape[:2]
    time_s = np.arange(t) / fs
    colors = plt.cm.viridis(np.linspace(0, 1, max(k, 1)))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    styles = ["-", "--", ":", "-."]
    for i in range(k):
        for j in range(activations.shape[2]):
            axes[0].plot(time_s, activations[i, :, j], styles[j % 4], color=colors[i], lw=1)
        tx, ty = motions[i, :, COORD_INDEX["pelvis_tx"]], motions[i, :, COORD_INDEX["pelvis_ty"]]
        axes[1].plot(time_s, ty, color=colors[i], lw=1)
        axes[2].plot(tx, ty, color=colors[i], lw=1)
    axes[0].axhspan(low, high, color="tab:green", alpha=0.15, label=f"band [{low}, {high}]")
    axes[0].set(xlabel="time (s)", ylabel="activation", ylim=(0, 1),
                title="activation (" + ", ".join(f"{m} {s}" for m, s in zip(muscles, styles)) + ")")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].set(xlabel="time (s)", ylabel="pelvis_ty (m)", title="pelvis height")
    axes[2].set(xlabel="pelvis_tx (m)", ylabel="pelvis_ty (m)", title="pelvis sagittal path")
    fig.suptitle(f"{title}: {k} kept samples, ordered by peak activation (dark = lowest)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    with atomic_open(path, "wb") as handle:
        handle.write(buf.getvalue())
    return Path(path)


def plot_activation_curves(path: str | Path, pred: np.ndarray, target: np.ndarray, muscles: Sequence[str],
                           show: Sequence[str], labels: Sequence[str], title: str = "") -> Path:
    """PNG grid: one row per repetition, one column per muscle of ``show``;
    simulated (solid) vs predicted (dashed) activation over the repetition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [muscles.index(m) for m in show]
    n_rows = len(pred)
    fig, axes = plt.subplots(n_rows, len(cols), figsize=(4.2 * len(cols), 2.3 * n_rows), squeeze=False,
                             sharex=True, sharey=True)
    phase = np.linspace(0, 100, pred.shape[1])
    for i in range(n_rows):
        for k, (j, name) in enumerate(zip(cols, show)):
            ax = axes[i][k]
            ax.plot(phase, target[i, :, j], color="black", lw=1.6, label="simulated")
            ax.plot(phase, pred[i, :, j], color="tab:red", lw=1.4, ls="--", label="surrogate")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(name)
            if k == 0:
                ax.set_ylabel(f"{labels[i]}\nactivation", fontsize=8)
            if i == n_rows - 1:
                ax.set_xlabel("repetition (%)")
    axes[0][0].legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
