#!/usr/bin/env python
"""Train the token prior (T2M-GPT style) over a trained VQ-VAE's code indices.

    python train_t2m_trans.py --vq-name output/VQVAE/net_last.pth --exp-name T2M --total-iter 100000
    python train_t2m_trans.py --vq-name output/VQVAE/net_last.pth --cond subject --exp-name T2M_subject
    torchrun --nproc_per_node 2 train_t2m_trans.py ...          # DDP, same flags

Outputs: <out-dir>/<exp-name>/{run.log, tensorboard/, net_last.pth, net_best.pth}.
"""
from __future__ import annotations

import sys

from dataset.mcs import DatasetError
from options.t2m import get_args_parser
from utils.checkpoint import CheckpointError
from utils.fileio import OutputExistsError
from utils.motion_io import MotionFileError
from utils.t2m_training import train


def main(args) -> dict:
    return train(args)


if __name__ == "__main__":
    try:
        result = main(get_args_parser().parse_args())
    except (DatasetError, MotionFileError, CheckpointError, OutputExistsError, ValueError) as err:
        sys.exit(f"train_t2m_trans: {err}")
    if result.get("stopped"):
        sys.exit(130)  # interrupted: net_last.pth holds the state, continue with --resume
