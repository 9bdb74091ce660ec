"""Reconstruct the test split with a trained VQ-VAE.

    python MOT_eval.py --dataname mcs --out-dir output --exp-name VQVAE9 --resume-pth output/VQVAE9/net_best.pth

Writes ``<out-dir>/<exp-name>/reconstruction_test/``: one OpenSim ``.mot`` per
repetition under ``mot/``, ``errors.csv`` and ``errors.json`` (MAE per
coordinate, degrees / cm), and prints the table.
"""
from options.vq import get_eval_parser
from utils.cli import run as run_cli
from utils.vq_eval import evaluate_checkpoint

if __name__ == "__main__":
    run_cli(evaluate_checkpoint, get_eval_parser())
