#!/usr/bin/env python
"""Train the motion diffusion baseline (MDM style) on the training split.

    python train_mdm.py --exp-name MDM --total-iter 100000
    torchrun --nproc_per_node 2 train_mdm.py ...      # DDP, same flags
    python train_mdm.py --exp-name MDM --resume output/MDM/net_last.pth

Outputs: <out-dir>/<exp-name>/{run.log, tensorboard/, net_last.pth, net_best.pth}.
"""
from __future__ import annotations

import sys

from dataset.mcs import DatasetError
from options.mdm import get_args_parser
from utils.checkpoint import CheckpointError
from utils.fileio import OutputExistsError
from utils.mdm_training import train
from utils.motion_io import MotionFileError


def main(args) -> dict:
    return train(args)


if __name__ == "__main__":
    try:
        result = main(get_args_parser().parse_args())
    except (DatasetError, MotionFileError, CheckpointError, OutputExistsError, ValueError) as err:
        sys.exit(f"train_mdm: {err}")
    if result.get("stopped"):
        sys.exit(130)  # interrupted: net_last.pth holds the state, continue with --resume
