"""Render a subject's motion-capture squat next to a generated sample, with
joint-angle curves under the animation.

    python render_compare.py <subject folder> <generated .mot> <output.mp4|.gif>

The reference is one repetition of the subject (``--trial``, ``--rep``) from
the MCS layout; both motions are posed with the subject's scaled model unless
``--model`` says otherwise. The drawing lives in :mod:`render.animation`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dataset.mcs import find_session
from options.render import compare_parser
from render.animation import VIDEO_FORMATS, RenderError, load_track, render_with_options
from render.figures import load_reference
from utils.cli import run as run_cli
from utils.constants import GUIDED_MUSCLES
from utils.fileio import ensure_writable


def main(args: argparse.Namespace) -> Path:
    """Render the comparison and return the video written."""
    out = Path(args.output)
    if out.suffix.lower() not in VIDEO_FORMATS:
        raise RenderError(f"{out}: output must end in .mp4 or .gif")
    generated = Path(args.generated)
    if not generated.is_file():
        raise RenderError(f"{generated}: generated motion file does not exist")
    ensure_writable(out, args.overwrite)
    ref = load_reference(args.subject, trial=args.trial, rep=args.rep, source=args.source, model=args.model,
                         muscles=GUIDED_MUSCLES, with_markers=args.markers, up=args.up)
    model = args.model
    if model is None:
        model = find_session(args.subject).model
    gen = load_track(generated, model=model, title=f"Generated {generated.stem}")
    tracks = [ref.track, gen] + ([ref.markers] if ref.markers is not None else [])
    render_with_options(tracks, out, args)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    from render.animation import quiet_opensim

    quiet_opensim()
    run_cli(main, compare_parser())
