"""Render 3 squat motions of 196 frames side by side to MP4 (the plot_3.py job)
and, in the same run, two straightforward ways of drawing the same video:

* ``full redraw``: the same 2-D figure, but every frame redraws the whole
  canvas (floor, titles, hip curves) instead of blitting the moving artists;
* ``mplot3d``: matplotlib's 3-D axes, one line per segment, full redraw per
  frame (how stick-figure animations are usually written).

All three encode with the same bundled ffmpeg (H.264). Timings are the median
of ``--repeats`` runs, wall clock, including encoding; model loading is not
timed (it is done once before).

    .venv/bin/python bench/bench_render.py [--repeats 3] [--frames 196]
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, median_time  # noqa: E402
from utils.constants import COORDINATES  # noqa: E402
from render.animation import (  # noqa: E402
    Animator, Camera, forward_kinematics, render_animation, track_from_coordinates, write_video,
)


def squat(n: int, depth: float) -> np.ndarray:
    """(n, 33) squat of relative ``depth``, degrees / metres."""
    d = depth * 0.5 * (1 - np.cos(2 * np.pi * np.linspace(0, 1, n)))
    x = np.zeros((n, len(COORDINATES)))
    for side in "rl":
        x[:, COORDINATES.index(f"hip_flexion_{side}")] = 95 * d
        x[:, COORDINATES.index(f"knee_angle_{side}")] = 110 * d
        x[:, COORDINATES.index(f"ankle_angle_{side}")] = 30 * d
        x[:, COORDINATES.index(f"arm_flex_{side}")] = 60 * d
    x[:, COORDINATES.index("pelvis_tilt")] = -20 * d
    x[:, COORDINATES.index("pelvis_ty")] = 0.93 - 0.35 * d
    x[:, COORDINATES.index("pelvis_tx")] = -0.1 * d
    return x


def full_redraw(tracks, out: Path) -> None:
    anim = Animator(tracks)
    for panel in anim.panels:
        for artist in panel.moving:
            artist.set_animated(False)

    def frames():
        for i in range(anim.n_frames):
            for panel, idx in zip(anim.panels, anim.index):
                panel.update(int(idx[i]), progress=i / (anim.n_frames - 1))
            anim.canvas.draw()
            yield np.asarray(anim.canvas.buffer_rgba())

    write_video(frames(), out, fps=60)


def mplot3d(tracks, out: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5.2), dpi=100)
    canvas = FigureCanvasAgg(fig)
    lines = []
    lo = np.min([t.positions.reshape(-1, 3).min(0) for t in tracks], axis=0)
    hi = np.max([t.positions.reshape(-1, 3).max(0) for t in tracks], axis=0)
    for k, t in enumerate(tracks):
        ax = fig.add_subplot(1, len(tracks), k + 1, projection="3d")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[2], hi[2])
        ax.set_zlim(0, hi[1])
        ax.set_title(t.title)
        ax.view_init(elev=12, azim=-35)
        ax.plot(t.hip[:, 0], t.hip[:, 2], t.hip[:, 1], color="#f2b705")
        lines.append([ax.plot([], [], [], lw=3)[0] for _ in t.segments])

    def frames():
        for i in range(tracks[0].n_frames):
            for t, segs in zip(tracks, lines):
                for (a, b), line in zip(t.segments, segs):
                    p = t.positions[i, [a, b]]
                    line.set_data_3d(p[:, 0], p[:, 2], p[:, 1])
            canvas.draw()
            yield np.asarray(canvas.buffer_rgba())

    write_video(frames(), out, fps=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=196, help="frames per motion")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (median reported)")
    parser.add_argument("--skip-baselines", action="store_true", help="time only render.animation")
    args = parser.parse_args()
    fk = forward_kinematics(None)
    tracks = [track_from_coordinates(squat(args.frames, d), fk, title=f"squat depth {d:g}")
              for d in (0.6, 0.8, 1.0)]
    print(machine())
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"load average at start: {load:.2f} (the CPU is shared; timings are wall clock)")
    print(f"3 motions x {args.frames} frames -> MP4, median of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.mp4"
        t0 = time.perf_counter()
        render_animation(tracks, out, camera=Camera())
        print(f"(first run {time.perf_counter() - t0:.1f} s, {out.stat().st_size / 1e6:.2f} MB)")
        t_ours = median_time(lambda: render_animation(tracks, out, camera=Camera()), args.repeats, warmup=0)
        print(f"render.animation (blitting)     : {t_ours:6.1f} s  ({args.frames / t_ours:5.1f} frames/s)")
        if not args.skip_baselines:
            t_full = median_time(lambda: full_redraw(tracks, out), args.repeats, warmup=0)
            print(f"full redraw per frame       : {t_full:6.1f} s  ({t_full / t_ours:.1f}x slower)")
            t_3d = median_time(lambda: mplot3d(tracks, out), args.repeats, warmup=0)
            print(f"mplot3d, full redraw        : {t_3d:6.1f} s  ({t_3d / t_ours:.1f}x slower)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"load average at end: {load:.2f}")


if __name__ == "__main__":
    main()
