#!/usr/bin/env python
"""Sample squats from a trained motion diffusion model for each subject.

    python generate_mdm.py --model-path output/MDM/net_last.pth --subject all --num-samples 20
    python generate_mdm.py --model-path output/MDM/net_last.pth --sampler ddpm --subject <session folder>

Outputs: <out-dir>/<exp-name>/<session>/entry_<k>_<exp-name>.{mot,npy} and summary.json
(default <out-dir>/<exp-name> = output/baselines/mdm_baseline), read by
calculate_wasserstein.py and calculate_guidance.py like guidance outputs.
"""
from __future__ import annotations

from options.mdm import get_generate_parser
from utils.cli import run as run_cli
from engine.generation import generate_mdm


def main(args) -> list:
    return generate_mdm(args)


if __name__ == "__main__":
    run_cli(main, get_generate_parser())
