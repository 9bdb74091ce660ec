"""Options of the metric scripts: ``calculate_wasserstein.py``,
``wasserstein_mocap.py`` and ``calculate_guidance.py``.

The published commands use ``--file_type`` / ``--folder_path``; the dashed
spellings ``--file-type`` / ``--folder-path`` work too.
"""
from __future__ import annotations

import argparse

from dataset.clips import CLIP_MODES
from metrics.published import PROTOCOLS
from options.common import MIN_CLIP_LENGTH, add_data_root_arg, add_device_arg, int_at_least, metres_or_auto
from utils.constants import CLIP_LENGTH, GUIDED_MUSCLES, PEAK_WINDOW_S

SET_KINDS = ("auto", "mocap", "mot", "npy")


def _input_args(parser: argparse.ArgumentParser, kinds: tuple[str, ...], default_kind: str,
                compare: bool = True, folder_help: str | None = None) -> None:
    g = parser.add_argument_group("input")
    g.add_argument("--file_type", "--file-type", dest="file_type", default=default_kind, choices=kinds,
                   help="what --folder_path " + ("(and every --compare folder) " if compare else "")
                        + "holds: mot = OpenSim .mot files, "
                        "npy = arrays (T, 33) or (N, T, 33) in canonical order, degrees / metres, mocap = an "
                        "MCS dataset root (its segmented repetitions); auto = detect per folder (an MCS root is "
                        "mocap; a folder with .mot and .npy twins, as guidance writes them, reads the .npy)")
    g.add_argument("--folder_path", "--folder-path", dest="folder_path", default=None,
                   help=folder_help or "folder of generated motions, searched recursively (one sub-folder per "
                                       "subject, as guidance writes them)")
    if compare:
        g.add_argument("--compare", nargs="+", metavar="FOLDER", default=None,
                       help="paper-style table with one row per folder (MoCap root, baselines, VQ-VAE, BIGE), "
                            "each folder's kind detected (see --file_type) or given by --kinds")
        g.add_argument("--labels", nargs="+", default=None,
                       help="row names for --compare folders (e.g. MoCap MDM T2M-GPT VQ-VAE BIGE); "
                            "default: MoCap for an MCS root, else the folder name")
        g.add_argument("--kinds", nargs="+", default=None, choices=SET_KINDS,
                       help="the kind of each --compare folder, in order (default: --file_type for all)")
    g.add_argument("--split", default="test", choices=("test", "train", "all"),
                   help="which sessions' repetitions a motion-capture (MCS root) set uses")
    g.add_argument("--split-file", default=None,
                   help="JSON {'train': [...], 'test': [...]} of session ids; default: <root>/split.json, "
                        "else the 21 published test sessions, else a seeded 20%% of sessions")
    g.add_argument("--clip-length", type=int_at_least(MIN_CLIP_LENGTH), default=CLIP_LENGTH,
                   help="frames every motion is brought to (motions of another length are time-normalised "
                        "and reported)")
    g.add_argument("--clip-mode", default=None, choices=CLIP_MODES,
                   help="how motions of another length are brought to --clip-length: linear time "
                        "normalisation (resample, the project protocol's default) or repetition of short clips "
                        "as the original code did (tile, the published protocol's)")
    g.add_argument("--protocol", default="project", choices=PROTOCOLS,
                   help="project: this project's metrics (per motion, mean ± std over motions); published: the "
                        "paper's protocol for comparability (per subject folder, mean ± std over folders, the test "
                        "sessions' Dynamics kinematics as reference, clips tiled, omega over 7 coordinates); "
                        "see docs/metrics.md")
    if compare:  # the scripts that read folders of generated motions
        g.add_argument("--strict", action="store_true",
                       help="stop on any unusable file instead of skipping and listing it")
        g.add_argument("--workers", type=int_at_least(1), default=1, help="processes for reading motion files (and for --simulate)")


def _distance_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("distances")
    g.add_argument("--ot-samples", type=int_at_least(2), default=300,
                   help="motions per set (seeded subsample) for the exact earth mover's distance; its cost "
                        "grows as the cube of this number")
    g.add_argument("--bootstrap", type=int_at_least(0), default=100,
                   help="bootstrap resamples for the confidence intervals of the multivariate distances (0: none)")
    g.add_argument("--projections", type=int_at_least(1), default=256,
                   help="random directions of the sliced Wasserstein distance")
    g.add_argument("--confidence", type=float, default=0.95, help="level of the bootstrap intervals")
    g.add_argument("--seed", type=int, default=0, help="seed of subsamples, directions and bootstrap")
    g.add_argument("--absolute-horizontal", action="store_true",
                   help="compare pelvis_tx/tz as stored; by default the honest distances measure them from each "
                        "motion's first frame, because where a subject stood in the lab differs per session "
                        "(the Gaussian W2^2 and the entropy always use the stored values)")
    g.add_argument("--no-multivariate", action="store_true",
                   help="skip the earth mover's and sliced distances (Gaussian W2^2, entropy and per-coordinate "
                        "W1 only)")


def _output_args(parser: argparse.ArgumentParser, default_stem: str, compare: bool = True) -> None:
    g = parser.add_argument_group("output")
    g.add_argument("--out", default=None,
                   help="folder for the CSV, JSON and Markdown results; unset: the evaluated folder"
                        + (" (output/metrics with --compare)" if compare else ""))
    g.add_argument("--out-name", default=None,
                   help=f"file name stem of the results; unset: {default_stem}"
                        + (f" ({default_stem}_compare with --compare)" if compare else ""))
    g.add_argument("--overwrite", action="store_true", help="replace existing result files of the same name")
    g.add_argument("--verbose", action="store_true",
                   help="also print the per-coordinate / per-motion details and every skipped file")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def get_wasserstein_parser() -> argparse.ArgumentParser:
    """``calculate_wasserstein.py``: distribution distances of generated motion
    sets against the training split of the dataset."""
    p = argparse.ArgumentParser(
        description="Distances between a set of generated motions and the training split of the motion-capture "
                    "dataset: the Gaussian W2^2 and entropy, exact per-coordinate W1, and earth mover's "
                    "and sliced W2 between whole motions with bootstrap intervals (--protocol project); or the "
                    "paper's per-subject-folder W2^2 and entropy against the test sessions' Dynamics kinematics "
                    "(--protocol published).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _input_args(p, SET_KINDS, "auto")
    g = p.add_argument_group("reference")
    add_data_root_arg(g, help="MCS dataset root (or its Data folder) whose repetitions are the reference")
    g.add_argument("--reference-split", default=None, choices=("train", "test", "all"),
                   help="which sessions of --data-root form the reference set; unset: train (project protocol), "
                        "test (published protocol, their Dynamics kinematics)")
    g.add_argument("--dataname", default="mcs", choices=["mcs"], help="dataset kind (kept for the published commands)")
    g.add_argument("--own-subject", action="store_true",
                   help="also measure each subject folder against that subject's own motion-capture repetitions "
                        "in --data-root (any split): Gaussian W2^2, W1 of the rotations and EMD W2, mean ± std "
                        "over subjects, in a second table (--protocol project only)")
    _distance_args(p)
    _output_args(p, "wasserstein")
    return p


def get_wasserstein_mocap_parser() -> argparse.ArgumentParser:
    """``wasserstein_mocap.py``: the reference row, motion capture's own test
    sessions against its training sessions."""
    p = argparse.ArgumentParser(
        description="The reference row of the distance table: the segmented motion-capture repetitions of the "
                    "test sessions against those of the training sessions, with the numbers of "
                    "calculate_wasserstein.py (--protocol project); or, per test session, against the test "
                    "sessions' Dynamics kinematics (--protocol published).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _input_args(p, ("mot", "mocap"), "mot", compare=False,
                folder_help="MCS dataset root, or its Data folder (kept as --folder_path for the published command)")
    g = p.add_argument_group("reference")
    g.add_argument("--reference-split", default=None, choices=("train", "test", "all"),
                   help="which sessions of the same root form the reference set; unset: train (project "
                        "protocol), test (published protocol: their Dynamics kinematics)")
    _distance_args(p)
    _output_args(p, "wasserstein_mocap", compare=False)
    return p


def get_guidance_parser() -> argparse.ArgumentParser:
    """``calculate_guidance.py``: guidance metrics per subject and pooled."""
    p = argparse.ArgumentParser(
        description="Guidance metrics of a set of motions, per subject and pooled: peak activation of the guided "
                    "muscles and the constraint band, squat depth, pelvis tilt, asymmetry, smoothness, foot "
                    "sliding and floor penetration.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _input_args(p, SET_KINDS, "auto",
                folder_help="folder of generated motions (searched recursively, one sub-folder per subject), "
                            "or an MCS dataset root with --file_type mocap")
    g = p.add_argument_group("activations")
    g.add_argument("--activations", default="surrogate", choices=("surrogate", "simulation", "none"),
                   help="where activations come from: the surrogate, or (motion capture only) the muscle-driven "
                        "simulation files; none skips the activation columns")
    g.add_argument("--surrogate", default=None,
                   help="surrogate checkpoint; unset: output/surrogate/net_best.pth or "
                        "output/demo/surrogate/net_best.pth if present, else the activation columns are "
                        "skipped and the output says so")
    g.add_argument("--muscles", nargs="+", default=list(GUIDED_MUSCLES), help="the guided muscles")
    g.add_argument("--low", type=float, default=0.35, help="lower edge of the activation band")
    g.add_argument("--high", type=float, default=0.45, help="upper edge of the activation band")
    g.add_argument("--peak-window", type=float, default=PEAK_WINDOW_S, metavar="SECONDS",
                   help="the windowed columns hold the peak of each guided muscle's activation averaged over this "
                        "many seconds of real time (each motion's own frame interval), next to the raw per-frame "
                        "peak; see docs/guidance.md for the choice")
    g.add_argument("--simulate", action="store_true",
                   help="also run OpenSim inverse dynamics and static optimisation (metrics/simulation.py) on every "
                        "motion with its subject's scaled model and report the simulated peak activation (raw and "
                        "windowed), the fraction in band by simulation and the surrogate-simulation agreement; "
                        "about 0.5 s per motion per worker (--workers; docs/PERFORMANCE.md)")
    g.add_argument("--sim-cache", default=None, metavar="DIR",
                   help="with --simulate: keep every simulated motion's activations in this folder, keyed by the "
                        "model file's bytes, the motion and the simulation code (metrics/sim_cache.py), and "
                        "simulate only the motions it does not hold; the results are the same bit for bit. "
                        "Unset: no cache")
    add_device_arg(g, "the surrogate")
    g.add_argument("--batch-size", type=int_at_least(1), default=256, help="motions per surrogate batch")
    g = p.add_argument_group("kinematics")
    g.add_argument("--frame-rate", type=float, default=None,
                   help="override: assume this frame rate (Hz) for every stored clip; unset, rates are in real "
                        "time from each .mot file's time column (a .npy's .mot twin) and each motion-capture "
                        "repetition's real duration")
    g.add_argument("--lowpass", type=float, default=0.0, metavar="HZ",
                   help="post-hoc zero-lag 4th-order Butterworth low-pass of every motion of every set alike "
                        "(motion capture, baselines, BIGE) at this cut-off before any metric, in real time; the "
                        "table's notes say so. 0 = the motions as written")
    g.add_argument("--osim", default="subject",
                   help="model for forward kinematics of the foot points: 'subject' = each subject's own scaled "
                        "model (OpenSimData/Model/*.osim of its session in the motion-capture root, or in "
                        "--data-root for generated folders), the generic model for subjects without one; "
                        "'generic' = the project's generic model (dataset.synthetic.osim_model.default_model_path()) for "
                        "all; or the path of one .osim file for all")
    add_data_root_arg(g, help="MCS root whose session models are used for generated folders: their feet with "
                              "--osim subject, and each subject's body mass for a surrogate that takes it")
    g.add_argument("--no-fk", action="store_true", help="skip foot sliding and floor penetration")
    g.add_argument("--floor-height", type=metres_or_auto, default=0.0, metavar="METRES|auto",
                   help="height of the floor, metres (y up; 0 = OpenSim's ground, where OpenCap and the synthetic "
                        "data stand), or 'auto': per subject, the median lowest foot point of the subject's motion "
                        "capture through the same model (the set itself for a motion-capture root, --data-root's "
                        "sessions for generated folders), as LIMO_Surrogate.py estimates the floor it guides on")
    g.add_argument("--contact-height", type=float, default=0.03,
                   help="a foot point closer than this to the floor (metres) is in contact")
    _output_args(p, "guidance")
    return p
