#!/usr/bin/env python
"""Train the motion diffusion baseline (MDM style) on the training split.

    python train_mdm.py --exp-name MDM --total-iter 100000
    torchrun --nproc_per_node 2 train_mdm.py ...      # DDP, same flags
    python train_mdm.py --exp-name MDM --resume output/MDM/net_last.pth

Outputs: <out-dir>/<exp-name>/{run.log, tensorboard/, net_last.pth, net_best.pth}.
"""
from __future__ import annotations

from options.mdm import get_args_parser
from utils.cli import run as run_cli
from utils.mdm_training import train


def main(args) -> dict:
    return train(args)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
