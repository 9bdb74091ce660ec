#!/usr/bin/env python
"""Train the token prior (T2M-GPT style) over a trained VQ-VAE's code indices.

    python train_t2m_trans.py --vq-name output/VQVAE/net_last.pth --exp-name T2M --total-iter 100000
    python train_t2m_trans.py --vq-name output/VQVAE/net_last.pth --cond subject --exp-name T2M_subject
    torchrun --nproc_per_node 2 train_t2m_trans.py ...          # DDP, same flags

Outputs: <out-dir>/<exp-name>/{run.log, tensorboard/, net_last.pth, net_best.pth}.
"""
from __future__ import annotations

from options.t2m import get_args_parser
from utils.cli import run as run_cli
from utils.t2m_training import train


def main(args) -> dict:
    return train(args)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
