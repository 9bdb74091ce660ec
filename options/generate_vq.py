"""Options of generate_vq.py: unguided samples of the VQ-VAE."""
from __future__ import annotations

import argparse

from options.generation import add_generation_args, add_generation_runtime_args, add_subject_data_args

MODES = ("subject", "random")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Unguided VQ-VAE samples (the paper's 'VQ-VAE' row): decode subject-initialised latents "
                    "(the mean of the subject's encoder latents plus Gaussian noise, quantised) or random code "
                    "sequences, without any guidance; written like guidance outputs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--vq-name", default="output/VQVAE/net_last.pth", help="train_vq.py checkpoint")
    g = p.add_argument_group("sampling")
    g.add_argument("--mode", default="subject", choices=MODES,
                   help="subject: mean of the subject's encoder latents + noise, quantised and decoded (guidance's "
                        "initialisation without the optimisation); random: every code drawn uniformly from the "
                        "codes the training split uses")
    g.add_argument("--noise-scale", type=float, default=1.0,
                   help="subject mode: noise standard deviation as a multiple of the standard deviation of the "
                        "subject's latent values")
    g.add_argument("--noise-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="subject mode: instead, draw each sample's absolute noise standard deviation from "
                        "U(LOW, HIGH) in latent units, as guidance initialises (published: 10 200)")
    add_subject_data_args(p)
    add_generation_runtime_args(p)
    add_generation_args(p, default_exp="VQVAE-Generations", default_out="output/baselines")
    return p
