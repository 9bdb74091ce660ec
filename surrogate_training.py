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

from options.surrogate import get_args_parser
from utils.cli import run as run_cli
from utils.surrogate_training import main as run


def main(args: argparse.Namespace):
    """Train and evaluate as ``args`` asks; returns the evaluation dict (None with --stop-at)."""
    return run(args)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
