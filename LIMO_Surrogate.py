"""BIGE guidance: optimise VQ-VAE latents under biomechanical constraints.

    python LIMO_Surrogate.py --exp-name TestBIGE --vq-name output/VQVAE/net_best.pth --dataname mcs \
        --seq-len 49 --total-iter 3000 --lr 0.5 --num-runs 3000 --min-samples 20 \
        --subject data/mcs_synthetic/Data/<session> --low 0.35 --high 0.45 \
        --surrogate output/surrogate/best.pth

``--subject all`` guides every test-split session. The method lives in
:mod:`models.guidance`; see ``docs/guidance.md``.
"""
from pathlib import Path

from options.guidance import get_args_parser
from models.guidance import run
from utils.cli import run as run_cli
from utils.fileio import exclusive_run


def main(args):
    """Guide the subjects ``args`` names, one writer per results folder."""
    with exclusive_run(Path(args.out_dir) / args.exp_name):
        return run(args)


if __name__ == "__main__":
    run_cli(main, get_args_parser())
