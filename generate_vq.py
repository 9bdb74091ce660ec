#!/usr/bin/env python
"""Unguided VQ-VAE samples for each subject (the baseline guidance improves on).

    python generate_vq.py --vq-name output/VQVAE/net_last.pth --subject all --num-samples 20
    python generate_vq.py --vq-name output/VQVAE/net_last.pth --mode random --subject <session folder>

Outputs: <out-dir>/<exp-name>/<session>/entry_<k>_<exp-name>.{mot,npy} and summary.json
(default output/baselines/VQVAE-Generations), read by the metric scripts like guidance outputs.
"""
from __future__ import annotations

from options.generate_vq import get_args_parser
from utils.cli import run as run_cli
from engine.generation import generate_vq


def main(args) -> list:
    return generate_vq(args)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
