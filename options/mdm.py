"""Options of train_mdm.py (get_args_parser) and generate_mdm.py
(get_generate_parser): the motion diffusion baseline."""
from __future__ import annotations

import argparse

from models.mdm import NOISE_SCHEDULES, SAMPLERS
from options.common import (
    add_centre_arg, add_data_args, add_loop_args, add_output_args, add_runtime_args, int_at_least, milestones,
)
from options.generation import add_generation_args, add_generation_runtime_args, add_subject_data_args


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train a motion diffusion model (MDM style: transformer denoiser predicting the clean "
                    "motion, cosine noise schedule) on the training split's normalised 196 x 33 clips.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_args(p)
    add_runtime_args(p)
    add_output_args(p, default_exp="MDM")
    g = p.add_argument_group("model")
    add_centre_arg(g, "diffusion model (and make it generate)")
    g.add_argument("--latent-dim", type=int, default=512, help="transformer width")
    g.add_argument("--layers", type=int, default=8, help="transformer encoder layers")
    g.add_argument("--heads", type=int, default=4, help="attention heads")
    g.add_argument("--ff-size", type=int, default=1024, help="feed-forward width")
    g.add_argument("--dropout", type=float, default=0.1, help="dropout in the transformer")
    g.add_argument("--frames-per-token", type=int, default=1,
                   help="consecutive frames per transformer token (1 = one per frame as in MDM; 4 makes the "
                        "attention 16x cheaper, for CPU demos)")
    g.add_argument("--output-filter", type=int, default=5,
                   help="odd width of a learned per-coordinate temporal filter on the predicted motion, initialised "
                        "as a binomial smoother (cuts the jitter of briefly trained models); 0 = MDM's plain "
                        "linear read-out")
    g.add_argument("--diffusion-steps", type=int, default=1000, help="steps of the forward process")
    g.add_argument("--noise-schedule", default="cosine", choices=NOISE_SCHEDULES, help="beta schedule")
    g.add_argument("--cond", default="none", choices=["none", "subject"],
                   help="unconditional, or conditioned on the subject descriptor (per-coordinate mean and std "
                        "of the subject's normalised repetitions, so it exists for unseen test subjects)")
    g.add_argument("--cond-mask-prob", type=float, default=0.1,
                   help="probability of dropping the condition in training (enables classifier-free guidance)")
    t = p.add_argument_group("training")
    t.add_argument("--batch-size", type=int_at_least(1), default=64, help="clips per step (per process under torchrun)")
    t.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (AdamW)")
    t.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    t.add_argument("--total-iter", type=int, default=100000, help="optimisation steps in all")
    t.add_argument("--warm-up-iter", type=int, default=1000, help="linear learning-rate warm-up steps")
    t.add_argument("--lr-scheduler", type=milestones, default=[],
                   help="step(s) at which the lr is multiplied by --gamma, e.g. 50000 or 50000,80000")
    t.add_argument("--gamma", type=float, default=0.1, help="lr decay factor at each --lr-scheduler step")
    t.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clipping (0 = off)")
    t.add_argument("--lambda-vel", type=float, default=0.0,
                   help="weight of the velocity (frame-difference) term added to the x0 loss")
    add_loop_args(t, "denoising error on the test split (fixed noise)")
    return p


def get_generate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Sample squats from a trained motion diffusion model for each subject and write them as "
                    "OpenSim .mot files (plus .npy and summary.json) like guidance does.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model-path", default="output/MDM/net_last.pth", help="train_mdm.py checkpoint")
    g = p.add_argument_group("sampling")
    g.add_argument("--sampler", default="ddim", choices=SAMPLERS,
                   help="ddpm: ancestral sampling through every diffusion step; ddim: --ddim-steps steps")
    g.add_argument("--ddim-steps", type=int, default=50, help="DDIM steps")
    g.add_argument("--ddim-eta", type=float, default=0.0, help="DDIM stochasticity (0 = deterministic)")
    g.add_argument("--guidance-param", type=float, default=1.0,
                   help="classifier-free guidance scale for a subject-conditioned model (1 = plain conditional)")
    add_subject_data_args(p)
    add_generation_runtime_args(p)
    add_generation_args(p, default_exp="mdm_baseline", default_out="output/baselines")
    return p
