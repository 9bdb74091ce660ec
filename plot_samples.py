"""The qualitative figure of guided samples (PNG and PDF).

    python plot_samples.py <guidance output folder> [--surrogate <checkpoint>]

For every session folder of a guidance run (``<out-dir>/<exp-name>/<session>``
with ``entry_<k>_<exp>.mot`` and ``summary.json``): the subject's motion-capture
reference and the samples ordered by peak muscle activation, each at its
deepest frame, with the squat depth at 50 % of the cycle marked for the
reference (red) and the sample (green), and activation curves when a surrogate
is given. The figure is built in :mod:`render.figures`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dataset.body_mass import subject_mass
from models.surrogate import load_surrogate
from options.render import samples_parser
from render.animation import Camera, RenderError
from render.figures import (
    guidance_sessions, load_reference, read_guidance_session, reference_folder, samples_figure_for_session,
)
from utils.cli import run as run_cli
from utils.fileio import ensure_writable


def main(args: argparse.Namespace) -> list[Path]:
    """Draw one figure per session; returns the files written."""
    folders = guidance_sessions(args.folder)
    if args.session:
        wanted = set(args.session)
        folders = [f for f in folders if f.name in wanted]
        missing = wanted - {f.name for f in folders}
        if missing:
            raise RenderError(f"{args.folder}: no samples for session(s) {', '.join(sorted(missing))}")
    if args.out and len(folders) > 1:
        raise RenderError(f"--out names one figure but {len(folders)} sessions were found; use --session")
    sessions = [read_guidance_session(f) for f in folders]
    outs = [Path(args.out).with_suffix("") if args.out else f / "qualitative" for f in folders]
    for out in outs:  # refuse before drawing anything
        for ext in (".png", ".pdf"):
            ensure_writable(out.with_suffix(ext), args.overwrite)
    subject_dirs = [reference_folder(session, args.data_root, args.reference) for session in sessions]
    surrogate = None
    if args.surrogate:
        surrogate = load_surrogate(args.surrogate, args.device)
    surrogates = [subject_surrogate(surrogate, d, session.folder) for session, d in zip(sessions, subject_dirs)]
    written = []
    for session, out, folder, bound in zip(sessions, outs, subject_dirs, surrogates):
        reference = None
        if folder is not None:
            reference = load_reference(folder, model=args.model, muscles=session.muscles)
        else:
            print(f"{session.folder}: reference subject {session.session} not found (pass --data-root or "
                  "--reference); drawing the samples alone", file=sys.stderr)
        written += samples_figure_for_session(
            session, out, reference, max_samples=args.max_samples, model=args.model, surrogate=bound,
            camera=Camera(args.azim, args.elev), floor=args.floor, dpi=args.dpi,
            panel_height_in=args.panel_height / 100.0,
        )
    for path in written:
        print(f"wrote {path}")
    return written


def subject_surrogate(surrogate, folder: Path | None, where: Path):
    """``surrogate`` bound to the body mass of the subject in ``folder`` when it
    takes one (None, with a note, when that subject was not found)."""
    if surrogate is None or not surrogate.uses_body_mass:
        return surrogate
    if folder is None:
        print(f"{where}: no activation curves: the surrogate takes the subject's body mass and the subject was "
              "not found", file=sys.stderr)
        return None
    return surrogate.for_subject(subject_mass(folder))


if __name__ == "__main__":
    from render.animation import quiet_opensim

    quiet_opensim()
    run_cli(main, samples_parser())
