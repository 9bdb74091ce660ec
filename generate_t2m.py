#!/usr/bin/env python
"""Sample the token prior for each subject and decode with the VQ-VAE.

    python generate_t2m.py --resume-trans output/T2M/net_last.pth --subject all --num-samples 20 --top-k 50

Outputs: <out-dir>/<exp-name>/<session>/entry_<k>_<exp-name>.{mot,npy} and summary.json
(default output/baselines/t2m_baseline), read by the metric scripts like guidance outputs.
"""
from __future__ import annotations

from options.t2m import get_generate_parser
from utils.cli import run as run_cli
from engine.generation import generate_t2m


def main(args) -> list:
    return generate_t2m(args)


if __name__ == "__main__":
    run_cli(main, get_generate_parser())
