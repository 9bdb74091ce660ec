"""Options of the rendering scripts: ``plot_3.py``, ``render_compare.py`` and
``plot_samples.py``. The camera, floor and video flags mean the same in all three."""
from __future__ import annotations

import argparse

from options.common import add_data_root_arg, add_device_arg, int_at_least, metres_or_auto, positive_float
from render.animation import ANGLE_CURVES, GIF_MAX_FPS
from utils.constants import DEFAULT_DATA_ROOT


def add_camera_args(parser: argparse.ArgumentParser, azim: float = 55.0, elev: float = 12.0,
                    panel_height: int = 480) -> None:
    g = parser.add_argument_group("camera and floor (shared by every panel)")
    g.add_argument("--azim", type=float, default=azim,
                   help="camera azimuth in degrees about the vertical axis: 0 looks at the subject's front, "
                        f"90 at the right side (default {azim:g})")
    g.add_argument("--elev", type=float, default=elev,
                   help=f"camera elevation above the horizon in degrees (default {elev:g})")
    g.add_argument("--floor", type=metres_or_auto, default="auto",
                   help="floor height in metres, or 'auto': the OpenSim ground (y = 0) unless a motion's lowest "
                        "point sits more than 15 cm away from it (e.g. marker data with another origin), then "
                        "that lowest point")
    g.add_argument("--panel-height", type=int_at_least(1), default=panel_height,
                   help=f"height of each stick-figure panel in pixels at 100 dpi (width follows the motion's "
                        f"extent; default {panel_height})")


def add_video_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("video")
    g.add_argument("--fps", type=positive_float, default=None,
                   help="playback frames per second; default: real time (the data's rate, 60 Hz for MCS). "
                        f"GIF plays at most {GIF_MAX_FPS:g} fps and keeps every 2nd frame of 60 Hz data")
    g.add_argument("--stride", type=int_at_least(1), default=None,
                   help="keep every N-th frame (default 1 for MP4; for GIF as needed to stay within "
                        f"{GIF_MAX_FPS:g} fps)")
    g.add_argument("--sync", choices=("phase", "time"), default="phase",
                   help="phase: stretch every motion to the same cycle (frame i shows i/(N-1) of each); "
                        "time: play each at its own speed, holding the last frame of shorter ones")
    g.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def add_pose_model_args(parser: argparse.ArgumentParser, what: str) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=None,
                   help=f"OpenSim .osim whose forward kinematics pose {what}; default: the subject's scaled "
                        "model when the file lies in an MCS session folder (<session>/OpenSimData/Model/*.osim), "
                        "else the generic synthetic model")
    g.add_argument("--up", choices=("auto", "y", "z"), default="auto",
                   help="vertical axis of .trc marker data: y (OpenSim/OpenCap), z (converted), or auto: the "
                        "axis along which the markers spread most")


def plot3_parser() -> argparse.ArgumentParser:
    """Options of ``plot_3.py``."""
    p = argparse.ArgumentParser(
        prog="plot_3.py",
        description="Render one to three squat motions side by side as 3-D stick figures, to MP4 or GIF. "
                    "Kinematics (.mot/.sto, 33 OpenSim coordinates) are posed through the model's forward "
                    "kinematics; .trc markers are drawn as points (joined where they are OpenCap key points). "
                    "Every panel has the same camera, scale and floor; the yellow curve traces the hip centre "
                    "over the cycle, a bar and a clock show the time.",
        epilog="examples:\n"
               "  python plot_3.py output/guidance/BIGE/<session>/entry_{0,1,2}_BIGE.mot output/render/bige_3.mp4\n"
               "  python plot_3.py data/mcs_synthetic/Data/<session>/MarkerData/SQT01.trc\n"
               "  python plot_3.py a.mot b.trc out.gif --fps 30 --azim 90",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="FILE",
                   help="one to three motion files (.mot/.sto/.trc), optionally followed by the output path "
                        "(.mp4 or .gif); without it the video is written next to the first input as "
                        "<stem>.mp4 (one input) or <stem>_and_<n>_more.mp4")
    p.add_argument("--titles", nargs="+", default=None, metavar="TITLE",
                   help="panel titles, one per motion (default: the file names, with parent folders where "
                        "names repeat)")
    p.add_argument("--format", choices=("mp4", "gif"), default="mp4",
                   help="format of the default output path when none is given (default mp4)")
    p.add_argument("--curves", nargs="*", default=[], choices=sorted(ANGLE_CURVES), metavar="ANGLE",
                   help=f"joint-angle curves to draw under the panels, with a moving cursor: "
                        f"{', '.join(ANGLE_CURVES)} (kinematics inputs only)")
    add_pose_model_args(p, "the .mot inputs")
    add_camera_args(p)
    add_video_args(p)
    return p


def compare_parser() -> argparse.ArgumentParser:
    """Options of ``render_compare.py``."""
    p = argparse.ArgumentParser(
        prog="render_compare.py",
        description="Render a subject's motion-capture squat repetition next to a generated sample, with the "
                    "hip, knee, ankle and pelvis-tilt angle curves of both under the animation and a moving "
                    "cursor. Both motions are stretched to one cycle (--sync phase).",
        epilog="example:\n  python render_compare.py data/mcs_synthetic/Data/<session> "
               "output/guidance/BIGE/<session>/entry_0_BIGE.mot output/render/compare.mp4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("subject", help="the subject's session folder (<root>/Data/<session>)")
    p.add_argument("generated", help="generated motion (.mot with the 33 coordinates)")
    p.add_argument("output", help="video to write (.mp4 or .gif)")
    g = p.add_argument_group("reference repetition")
    g.add_argument("--trial", default=None, help="squat trial of the subject (default: the first, e.g. SQT01)")
    g.add_argument("--rep", type=int_at_least(1), default=1, help="1-based repetition of that trial (default 1)")
    g.add_argument("--source", choices=("kinematics", "dynamics"), default="kinematics",
                   help="take the repetition from the whole-trial inverse kinematics cut by the segmentation "
                        "(kinematics) or from the muscle-driven simulation file (dynamics)")
    g.add_argument("--markers", action="store_true",
                   help="add a third panel with the subject's .trc markers over the same frames")
    g.add_argument("--curves", nargs="*", default=list(ANGLE_CURVES), choices=sorted(ANGLE_CURVES),
                   metavar="ANGLE", help=f"angle curves under the animation (default: {' '.join(ANGLE_CURVES)})")
    add_pose_model_args(p, "both motions (default: the subject's scaled model)")
    add_camera_args(p)
    add_video_args(p)
    return p


def samples_parser() -> argparse.ArgumentParser:
    """Options of ``plot_samples.py``."""
    p = argparse.ArgumentParser(
        prog="plot_samples.py",
        description="The qualitative figure of guided samples: the subject's motion-capture reference and the "
                    "generated samples ordered by peak muscle activation, each drawn at its deepest frame, "
                    "with lines marking the squat depth (hip height) at 50% of the cycle for the reference "
                    "(red) and the sample (green); activation curves underneath when a surrogate is given. "
                    "Writes PNG and PDF.",
        epilog="reads <folder>/<session>/entry_<k>_<exp>.mot and <folder>/<session>/summary.json as guidance "
               "(LIMO_Surrogate.py) writes them; <folder> may be the experiment folder (every session) or one "
               "session folder.\n\nexample:\n  python plot_samples.py output/guidance/BIGE --surrogate "
               "output/surrogate/net_best.pth",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", help="guidance output folder: <out-dir>/<exp-name> or one <session> folder in it")
    p.add_argument("--session", nargs="+", default=None, help="only these session ids (default: all found)")
    p.add_argument("--out", default=None,
                   help="output path without or with extension (.png; a .pdf is written next to it); default "
                        "<folder>/<session>/qualitative.png (only with one session)")
    p.add_argument("--max-samples", type=int_at_least(1), default=6,
                   help="samples drawn per figure; with more, evenly spaced ranks by peak activation are kept, "
                        "always the lowest and the highest")
    add_data_root_arg(p, default=None,
                      help="dataset root holding Data/<session> for the reference; default: the data root recorded "
                           f"in summary.json's options, else {DEFAULT_DATA_ROOT}")
    p.add_argument("--reference", default=None,
                   help="the reference subject's session folder (default: <data-root>/Data/<session>)")
    p.add_argument("--surrogate", default=None,
                   help="surrogate checkpoint (surrogate_training.py) to draw the activation curves of the "
                        "samples and the reference")
    add_device_arg(p, "the surrogate")
    p.add_argument("--dpi", type=int_at_least(1), default=150, help="resolution of the PNG")
    add_pose_model_args(p, "the samples and the reference (default: the reference subject's scaled model)")
    add_camera_args(p, azim=70.0, elev=0.0, panel_height=330)
    p.add_argument("--overwrite", action="store_true", help="replace existing figures")
    return p
