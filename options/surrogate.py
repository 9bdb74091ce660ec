"""Command-line options of ``surrogate_training.py``."""
from __future__ import annotations

import argparse

from models.surrogate import ARCHS, DEFAULT_CONFIG
from options.common import (
    add_centre_arg, add_data_args, add_output_args, add_runtime_args, int_at_least, positive_float,
)
from utils.errors import UserError

_MLP = DEFAULT_CONFIG["mlp"]
_TF = DEFAULT_CONFIG["transformer"]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train the surrogate that maps squat kinematics (T x 33, degrees/metres) to muscle "
                    "activations on the muscle-driven Dynamics files of the training split, early-stopped "
                    "on held-out validation subjects, then evaluate it on the test subjects "
                    "(per-muscle RMSE, R^2, peak-activation error; CSV, JSON, PNG in the experiment folder).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_data_args(p)
    add_runtime_args(p)
    add_output_args(p, default_exp="surrogate")

    g = p.add_argument_group("model")
    g.add_argument("--arch", default="mlp", choices=ARCHS,
                   help="mlp: an MLP over a temporal window of frames (fast, smooth gradients); "
                        "transformer: the published 3-layer transformer with learned positional encoding")
    g.add_argument("--muscles", nargs="+", default=["all"],
                   help="muscles to predict: 'all' (every muscle the Dynamics files hold) or names "
                        "separated by commas and/or spaces, e.g. vasmed_r,vasmed_l")
    g.add_argument("--window", type=int, default=_MLP["window"],
                   help="mlp: frames seen per prediction (odd; centred on the predicted frame)")
    g.add_argument("--stride", type=int, default=_MLP["stride"],
                   help="mlp: evaluate the MLP every this many frames and interpolate its output linearly "
                        "in between (1 = every frame)")
    g.add_argument("--hidden", type=int, default=_MLP["hidden"], help="mlp: hidden units per layer")
    g.add_argument("--layers", type=int, default=None,
                   help=f"number of layers (default: {_MLP['layers']} for mlp, {_TF['layers']} for the "
                        "transformer's encoder layers)")
    g.add_argument("--d-model", type=int, default=_TF["d_model"],
                   help="transformer: embedding width (divisible by --heads)")
    g.add_argument("--heads", type=int, default=_TF["heads"], help="transformer: attention heads")
    g.add_argument("--ff", type=int, default=_TF["ff"], help="transformer: feed-forward width")
    g.add_argument("--dropout", type=float, default=None,
                   help=f"dropout (default: {_MLP['dropout']} for mlp, {_TF['dropout']} for the transformer)")

    add_centre_arg(g, "surrogate")
    g.add_argument("--body-mass", dest="body_mass", action=argparse.BooleanOptionalAction, default=True,
                   help="give the model each subject's body mass (kg, from the session's scaled model, else its "
                        "sessionMetadata.yaml) as an input beside the kinematics: the same squat asks more of a "
                        "heavier subject's muscles. --no-body-mass: kinematics only, as published")

    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=120, help="maximum passes over the training clips")
    g.add_argument("--batch-size", type=int_at_least(1), default=16, help="clips per optimisation step")
    g.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (cosine decay to 1%%)")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    g.add_argument("--warmup-epochs", type=int, default=5, help="epochs of linear learning-rate warm-up")
    g.add_argument("--loss-beta", type=float, default=0.05,
                   help="smooth-L1 threshold between the quadratic and the linear part (activation units)")
    g.add_argument("--noise", type=float, default=0.05,
                   help="std of Gaussian noise added to the input kinematics during training, in units of each "
                        "coordinate's standard deviation")
    g.add_argument("--no-mirror", dest="mirror", action="store_false",
                   help="do not add the left/right mirror image of every training repetition (coordinates and "
                        "activations swap sides)")
    g.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of the training sessions (subjects) held out for validation and early stopping")
    g.add_argument("--patience", type=int, default=30,
                   help="stop after this many epochs without a better validation loss (0: never stop early)")
    g.add_argument("--save-every", type=int, default=10,
                   help="write net_last.pth every this many epochs (and at the end); net_best.pth is written "
                        "whenever the validation loss improves")
    g.add_argument("--stop-at", type=int, default=None,
                   help="end this run after this epoch (checkpoint saved, no evaluation); continue later with "
                        "--resume, e.g. to split a long run across time-limited jobs")
    g.add_argument("--resume", default=None, metavar="CHECKPOINT",
                   help="continue a run exactly from its net_last.pth (model, optimiser, scheduler, RNG, "
                        "batch order, early-stopping state, validation subjects)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing, non-empty experiment folder")

    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-only", action="store_true",
                   help="skip training; evaluate --checkpoint (default: <experiment>/net_best.pth)")
    g.add_argument("--checkpoint", default=None, help="checkpoint evaluated with --eval-only")
    g.add_argument("--eval-split", default="test", choices=["test", "train", "all"],
                   help="split whose repetitions are evaluated after training")
    g.add_argument("--eval-data", nargs="+", default=None, metavar="PATH",
                   help="also (with --eval-only: only) evaluate on these muscle-driven files or folders "
                        "(searched recursively for .mot/.sto), e.g. real OpenCap kinematics_activations*.mot; "
                        "each file is one repetition resampled by its time column. Reports per-muscle R^2, RMSE, "
                        "temporal correlation and peak error as eval_<--eval-name>.csv/.json/.png")
    g.add_argument("--eval-body-mass", type=positive_float, default=None, metavar="KG",
                   help="body mass of the subject of every --eval-data file, for a surrogate trained with "
                        "--body-mass (default: each file's session model or sessionMetadata.yaml)")
    g.add_argument("--eval-name", default=None,
                   help="name of the --eval-data reports (default: the first path's stem)")
    g.add_argument("--plot-reps", type=int, default=4,
                   help="test repetitions drawn in the predicted-vs-simulated activation figure")
    return p


def parse_muscles(values: list[str] | str) -> list[str] | None:
    """``['all']`` -> None (every muscle); ``['a,b', 'c']`` -> ['a', 'b', 'c']."""
    if isinstance(values, str):
        values = [values]
    names = [n for v in values for n in v.replace(",", " ").split() if n]
    if not names or names == ["all"]:
        return None
    if "all" in names:
        raise UserError("--muscles: 'all' cannot be combined with muscle names")
    return names


def model_config_from_args(args: argparse.Namespace) -> dict:
    """The architecture options of ``args`` for :class:`models.surrogate.SurrogateModel`."""
    base = DEFAULT_CONFIG[args.arch]
    layers = args.layers if args.layers is not None else base["layers"]
    dropout = args.dropout if args.dropout is not None else base["dropout"]
    if args.arch == "mlp":
        return {"window": args.window, "hidden": args.hidden, "layers": layers, "stride": args.stride,
                "dropout": dropout}
    return {"d_model": args.d_model, "heads": args.heads, "layers": layers, "ff": args.ff, "dropout": dropout,
            "max_len": args.clip_length}
