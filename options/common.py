"""Flags shared by every script, so they mean the same thing everywhere."""
from __future__ import annotations

import argparse
import math

from dataset.clips import CLIP_MODES
from utils.constants import CLIP_LENGTH, DEFAULT_DATA_ROOT
from utils.device import DEVICES, PRECISIONS, is_device_name


def int_at_least(minimum: int):
    """An argparse ``type``: an integer ``>= minimum``; anything else is a
    one-line usage error naming the flag."""
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return n

    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_float(value: str) -> float:
    """An argparse ``type``: a finite number > 0; anything else is a one-line
    usage error naming the flag."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value}")
    return x


positive_float.__name__ = "number > 0"

MIN_CLIP_LENGTH = 2
"""Fewest frames a clip may be brought to (velocities need two)."""


def metres_or_auto(value: str) -> float | str:
    """A height in metres, or ``auto`` (argparse ``type=`` of the floor flags)."""
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a height in metres, got {value!r}") from None


def milestones(text: str) -> list[int]:
    """An argparse ``type``: ``"100000,200000"`` or ``"100000 200000"`` ->
    [100000, 200000], sorted; every step number >= 0."""
    try:
        values = sorted(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step numbers like '200000' or '100000,200000', got {text!r}")
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"milestones must be >= 0, got {text!r}")
    return values


ROOT_HELP = (f"MCS-layout dataset root (holds Data/ and squat-segmentation-data/); default: the embedded "
             f"synthetic dataset at {DEFAULT_DATA_ROOT}")


def add_data_root_arg(group, default: str | None = DEFAULT_DATA_ROOT, help: str = ROOT_HELP) -> None:
    """``--data-root``: the one definition of the flag (each script says what the root is for)."""
    group.add_argument("--data-root", default=default, help=help)


def add_data_args(parser: argparse.ArgumentParser, *, root_default: str | None = DEFAULT_DATA_ROOT,
                  root_help: str = ROOT_HELP, clips: bool = True, from_checkpoint: bool = False) -> None:
    """``--data-root --dataname --split-file`` and, with ``clips``, ``--clip-length
    --clip-mode``. ``from_checkpoint``: every default is the value stored in the
    checkpoint the script reads (``None`` here)."""
    stored = "; default: as stored in the checkpoint"
    g = parser.add_argument_group("data")
    if from_checkpoint:
        root_default, root_help = None, root_help.split("; default")[0] + stored
    add_data_root_arg(g, root_default, root_help)
    g.add_argument("--dataname", default="mcs", choices=["mcs"],
                   help="dataset kind; only the MCS layout is supported (kept for the published commands)")
    g.add_argument("--split-file", default=None,
                   help="JSON {'train': [...], 'test': [...]} of session ids"
                        + (stored if from_checkpoint else "; default: <data-root>/split.json, else the 21 published "
                           "test sessions, else a seeded 20%% of sessions"))
    if not clips:
        return
    g.add_argument("--clip-length", type=int_at_least(MIN_CLIP_LENGTH), default=None if from_checkpoint else CLIP_LENGTH,
                   help="frames per repetition after length normalisation" + (stored if from_checkpoint else ""))
    g.add_argument("--clip-mode", default=None if from_checkpoint else "resample", choices=CLIP_MODES,
                   help="bring repetitions to --clip-length by linear time normalisation (resample) or by "
                        "repeating short clips as the original code did (tile)" + (stored if from_checkpoint else ""))


def add_centre_arg(group, what: str = "model") -> None:
    """``--no-centre``: keep the absolute laboratory position and heading.

    By default the horizontal pelvis position and the heading (``pelvis_tx``,
    ``pelvis_tz``, ``pelvis_rotation``) are taken relative to their clip mean:
    where the subject stood in the laboratory carries nothing about the squat.
    """
    group.add_argument("--no-centre", dest="centre", action="store_false",
                       help=f"feed the {what} the absolute horizontal pelvis position and heading (pelvis_tx, "
                            "pelvis_tz, pelvis_rotation) instead of their values relative to the clip mean")


def device_name(value: str) -> str:
    """An argparse ``type``: ``auto``, ``cpu``, ``cuda`` or ``cuda:<index>`` (:func:`utils.device.is_device_name`)."""
    if is_device_name(value):
        return value
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(DEVICES)} or cuda:<index>, got {value!r}")


def add_device_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str = "") -> None:
    """``--device auto|cpu|cuda|cuda:N`` (auto = CUDA when available, else the CPU);
    ``what`` names what runs there when it is not the whole script."""
    where = f"device of {what}; " if what else ""
    parser.add_argument("--device", default="auto", type=device_name, metavar="{auto,cpu,cuda,cuda:N}",
                        help=f"{where}auto = CUDA when available, else CPU; cuda:N picks GPU N")


def add_runtime_args(parser: argparse.ArgumentParser,
                     seed_help: str = "random seed (data order, initialisation)") -> None:
    g = parser.add_argument_group("runtime")
    add_device_arg(g)
    g.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="bf16 runs matmuls and convolutions in bfloat16 autocast (weights, quantiser distances, "
                        "EMA updates and losses stay fp32); auto = fp32, or bf16 on hardware with native bf16 "
                        "(CUDA compute capability >= 8, CPUs with avx512_bf16 / amx_bf16) once bf16 is validated "
                        "for the script's stage (utils.device.BF16_VALIDATED) or BIGE_AUTO_BF16=1 "
                        "(docs/PERFORMANCE.md); the choice is logged")
    g.add_argument("--seed", type=int, default=123, help=seed_help)
    g.add_argument("--num-workers", type=int_at_least(0), default=0,
                   help="worker processes for file parsing; batches come from memory")
    g.add_argument("--num-threads", type=int_at_least(0), default=0,
                   help="CPU threads PyTorch may use per process (0 = PyTorch's default, or the cores shared out "
                        "under torchrun; 1 is much faster for small models on a CPU shared with other jobs)")


def add_output_args(parser: argparse.ArgumentParser, default_exp: str) -> None:
    g = parser.add_argument_group("output")
    g.add_argument("--out-dir", default="output", help="parent folder of experiment folders")
    g.add_argument("--exp-name", default=default_exp, help="experiment folder name under --out-dir")


def add_loop_args(group: argparse._ArgumentGroup, eval_what: str) -> None:
    """Logging, evaluation, snapshot and resume flags of the shared training loop
    (``engine/training.py``); ``eval_what`` says what the periodic evaluation measures."""
    group.add_argument("--print-iter", type=int, default=200, help="log losses every N steps")
    group.add_argument("--eval-iter", type=int, default=5000,
                       help=f"every N steps: {eval_what}, net_best.pth, net_last.pth")
    group.add_argument("--snapshot-iter", type=int, default=0,
                       help="also keep a numbered snapshot <step>.pth every N steps (0 = off); with N = --total-iter "
                            "it appears only when training completes")
    group.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    group.add_argument("--resume", default=None, help="continue exactly from this checkpoint (net_last.pth)")
    group.add_argument("--overwrite", action="store_true",
                       help="start afresh in an experiment folder that holds a model")
