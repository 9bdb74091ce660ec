"""Train the motion VQ-VAE.

    python train_vq.py --batch-size 256 --lr 2e-4 --total-iter 300000 --lr-scheduler 200000 \
        --nb-code 512 --down-t 2 --depth 3 --dilation-growth-rate 3 --out-dir output --dataname mcs \
        --vq-act relu --quantizer ema_reset --loss-vel 0.5 --recons-loss l1_smooth --exp-name VQVAE9

The same command runs under ``torchrun --nproc_per_node N`` (DDP) or the
``deepspeed`` launcher. The loop lives in :mod:`utils.vq_training`.
"""
from options.vq import get_args_parser
from utils.cli import run as run_cli
from utils.vq_training import main

if __name__ == "__main__":
    run_cli(main, get_args_parser())
