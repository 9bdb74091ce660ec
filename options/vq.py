"""Options of ``train_vq.py`` (VQ-VAE training) and ``MOT_eval.py`` (reconstruction)."""
from __future__ import annotations

import argparse

from models.quantizer import QUANTIZERS
from models.resnet import ACTIVATIONS, NORMS
from options.common import add_centre_arg, add_data_args, add_output_args, add_runtime_args, int_at_least, milestones

RECONS_LOSSES = ("l1", "l2", "l1_smooth")


def add_vq_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--nb-code", type=int, default=512, help="number of codebook entries")
    g.add_argument("--code-dim", type=int, default=512, help="dimension of a code vector (latent channels)")
    g.add_argument("--width", type=int, default=512, help="channels of the encoder/decoder convolutions")
    g.add_argument("--down-t", type=int, default=2,
                   help="temporal down-samplings by --stride-t (2 -> 196 frames become 49 latent steps)")
    g.add_argument("--stride-t", type=int, default=2, help="stride of each temporal down-sampling")
    g.add_argument("--depth", type=int, default=3, help="residual blocks per resolution")
    g.add_argument("--dilation-growth-rate", type=int, default=3,
                   help="dilation of residual block k is rate**k")
    g.add_argument("--vq-act", default="relu", choices=ACTIVATIONS, help="activation function")
    g.add_argument("--vq-norm", default="none", choices=NORMS, help="normalisation inside residual blocks")
    g.add_argument("--quantizer", default="ema_reset", choices=QUANTIZERS,
                   help="ema_reset: EMA codebook, dead codes reset (published); ema: no reset; "
                        "reset: gradient-learned codebook with resets; orig: original VQ-VAE")
    g.add_argument("--mu", type=float, default=0.99, help="EMA decay of the codebook statistics")


def get_args_parser() -> argparse.ArgumentParser:
    """Parser of ``train_vq.py``."""
    parser = argparse.ArgumentParser(
        "train_vq.py", description="Train the motion VQ-VAE on MCS squat repetitions (single process, "
        "torchrun DDP or the deepspeed launcher).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_args(parser)
    g = parser.add_argument_group("training")
    g.add_argument("--batch-size", type=int, default=256,
                   help="clips per optimiser step (per rank under torchrun/deepspeed)")
    g.add_argument("--window-size", type=int, default=0,
                   help="train on random windows of this many frames (multiple of stride_t**down_t); "
                        "0 = whole clips")
    g.add_argument("--total-iter", type=int, default=300000, help="optimiser steps in all")
    g.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (AdamW, betas 0.9/0.99)")
    g.add_argument("--warm-up-iter", type=int, default=1000, help="steps of linear learning-rate warm-up")
    g.add_argument("--lr-scheduler", type=milestones, default=[200000],
                   help="step(s) at which the learning rate is multiplied by --gamma, e.g. 200000 or "
                        "100000,200000")
    g.add_argument("--gamma", type=float, default=0.05, help="learning-rate decay factor at each milestone")
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    g.add_argument("--grad-clip", type=float, default=0.0, help="clip the gradient norm to this (0 = off)")
    g.add_argument("--commit", type=float, default=0.02, help="weight of the commitment loss")
    g.add_argument("--recons-loss", default="l1_smooth", choices=RECONS_LOSSES,
                   help="reconstruction loss on normalised features")
    g.add_argument("--loss-vel", type=float, default=0.5,
                   help="weight of the velocity loss (the same loss on frame-to-frame differences)")
    g.add_argument("--loss-smooth", type=float, default=0.0,
                   help="weight of BIGE's temporal smoothness term (mean squared second difference of "
                        "the reconstruction)")
    g.add_argument("--loss-acc", type=float, default=3000.0,
                   help="weight of the acceleration-matching term between the second differences of the "
                        "reconstruction and of its target (normalised features; target --acc-target, distance "
                        "--acc-loss). The default (3000, l2, dynamics) removes the decoder's frame-level jitter: in "
                        "the demo BIGE's pelvis acceleration 23.7 -> 3.9 m/s^2, foot sliding 70 -> 17 cm, all kept "
                        "samples in band by simulation, distribution metrics as close to the data as held-out motion "
                        "capture (docs/guidance.md 'Smooth and planted motion'); 0 = the published loss")
    g.add_argument("--acc-target", default="dynamics", choices=("input", "dynamics"),
                   help="what --loss-acc matches the reconstruction's second differences against: dynamics = the "
                        "noise-free kinematics of the same repetition from its Dynamics file (OpenCap's "
                        "muscle-driven tracking simulation; paired by session, trial and repetition, cropped to the "
                        "same window; clips without one fall back to input); input = the training clip itself "
                        "(motion-capture kinematics with their jitter: the squats come out ~8 cm shallower)")
    g.add_argument("--acc-loss", default="l2", choices=("l1", "l2"),
                   help="distance of --loss-acc: l2 = mean squared difference (its gradient vanishes as the "
                        "accelerations match, so the reconstruction term still corrects the clip edges); l1 = mean "
                        "absolute difference (weight ~30; its gradient never vanishes and at demo size the decoded "
                        "clip edges stay flexed: standing knee 20 deg against 3, docs/guidance.md)")
    g.add_argument("--loss-depth", type=float, default=0.0,
                   help="weight of a squat-depth term: L1 between the per-clip (per-window) minimum of the "
                        "normalised pelvis_ty of reconstruction and target; 0 = off")
    g.add_argument("--loss-pelvis-acc", type=float, default=0.0,
                   help="weight of the smooth-L1 pelvis acceleration of the reconstruction (towards zero), "
                        "m/s^2 at the training clips' median real frame rate (models/guidance_losses.py); "
                        "smoother still, but the squat's bottom is reconstructed 2 cm higher (docs/guidance.md)")
    g.add_argument("--loss-foot-slide", type=float, default=0.0,
                   help="weight of the foot sliding of the reconstruction, cm^2 per frame, by forward kinematics "
                        "of the first training session's scaled model (models/guidance_losses.py: foot_sliding); "
                        "about 2x slower training, and at 10 the squats came out half as deep (docs/guidance.md)")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of training sessions held out for validation (net_best, curves); "
                        "0 = validate on the test split as the published code did")
    g.add_argument("--eval-iter", type=int, default=1000,
                   help="validate and write net_last.pth every this many steps")
    g.add_argument("--print-iter", type=int, default=200, help="log training losses every this many steps")
    g.add_argument("--snapshot-iter", type=int, default=50000,
                   help="keep a numbered snapshot <step>.pth every this many steps (0 = none)")
    g.add_argument("--resume", default=None, metavar="PTH",
                   help="continue exactly from this checkpoint (e.g. output/VQVAE9/net_last.pth)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing non-empty experiment folder")
    g.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    add_centre_arg(g, "VQ-VAE (and make it generate)")
    add_vq_model_args(parser)
    add_runtime_args(parser)
    add_output_args(parser, default_exp="VQVAE")
    g = parser.add_argument_group("distributed")
    g.add_argument("--deepspeed", action="store_true",
                   help="train with DeepSpeed (implied when started by the deepspeed launcher)")
    g.add_argument("--deepspeed-config", default="configs/deepspeed_vq.json",
                   help="DeepSpeed configuration file (batch size and lr come from the flags above)")
    g.add_argument("--local_rank", "--local-rank", type=int, default=None, dest="local_rank",
                   help="set by the deepspeed launcher; do not pass by hand")
    return parser


def get_eval_parser() -> argparse.ArgumentParser:
    """Parser of ``MOT_eval.py``."""
    parser = argparse.ArgumentParser(
        "MOT_eval.py", description="Reconstruct the test split with a trained VQ-VAE, write each "
        "reconstruction as an OpenSim .mot and per-coordinate errors as CSV and JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--resume-pth", required=True, help="VQ-VAE checkpoint written by train_vq.py")
    parser.add_argument("--split", default="test", choices=("train", "test", "all"),
                        help="which sessions to reconstruct")
    parser.add_argument("--batch-size", type=int_at_least(1), default=64, help="clips per forward pass")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    add_data_args(parser, from_checkpoint=True)
    add_runtime_args(parser)
    add_output_args(parser, default_exp="VQVAE_eval")
    return parser
