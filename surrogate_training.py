#!/usr/bin/env python
"""Train the kinematics -> muscle-activation surrogate and evaluate it on the test subjects.

    python surrogate_training.py                                  # MLP, all muscles, embedded dataset
    python surrogate_training.py --arch transformer --exp-name surrogate_tf
    python surrogate_training.py --muscles vasmed_r,vasmed_l --epochs 200
    python surrogate_training.py --resume output/surrogate/net_last.pth
    python surrogate_training.py --eval-only --checkpoint output/surrogate/net_best.pth

Outputs in <out-dir>/<exp-name>/: net_best.pth, net_last.pth, run.log,
tensorboard/, eval_test.csv, eval_test.json, eval_test.png.
"""
from __future__ import annotations

import argparse
import sys

from dataset.mcs import DatasetError
from options.surrogate import get_args_parser
from utils.checkpoint import CheckpointError
from utils.fileio import OutputExistsError
from utils.motion_io import MotionFileError
from utils.surrogate_training import main as run


def main(args: argparse.Namespace):
    """Train and evaluate as ``args`` asks; returns the evaluation dict (None with --stop-at)."""
    return run(args)


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except (DatasetError, MotionFileError, CheckpointError, OutputExistsError, ValueError) as err:
        sys.exit(f"surrogate_training: error: {err}")
