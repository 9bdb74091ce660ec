"""Render one to three squat motions side by side as stick figures (MP4 or GIF).

    python plot_3.py <motion-1> [<motion-2> [<motion-3>]] [output.mp4|output.gif]

Inputs are ``.mot``/``.sto`` kinematics (posed through the model's forward
kinematics) or ``.trc`` markers. Without an output path the video goes next to
the first input. ``--help`` lists the camera, floor and video options. The
drawing lives in :mod:`render.animation`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from options.render import plot3_parser
from render.animation import RenderError, load_track, render_with_options, split_inputs, titles_from_paths
from utils.cli import run as run_cli
from utils.fileio import ensure_writable


def main(args: argparse.Namespace) -> Path:
    """Render ``args.inputs`` and return the video written."""
    inputs, out = split_inputs(args.inputs, default_ext=f".{args.format}")
    ensure_writable(out, args.overwrite)
    titles = args.titles or titles_from_paths(inputs)
    if len(titles) != len(inputs):
        raise RenderError(f"--titles gives {len(titles)} title(s) for {len(inputs)} motion(s)")
    tracks = [load_track(p, model=args.model, title=t, up=args.up) for p, t in zip(inputs, titles)]
    render_with_options(tracks, out, args)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    from render.animation import quiet_opensim

    quiet_opensim()
    run_cli(main, plot3_parser())
