"""Options of train_t2m_trans.py (get_args_parser) and generate_t2m.py
(get_generate_parser): the token-prior (T2M-GPT style) baseline."""
from __future__ import annotations

import argparse

from options.common import add_data_args, add_loop_args, add_output_args, add_runtime_args, int_at_least, milestones
from options.generation import add_generation_args, add_generation_runtime_args, add_subject_data_args


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train an autoregressive transformer over the code indices a trained VQ-VAE gives the "
                    "training split's clips (T2M-GPT's second stage, unconditional or subject-conditioned).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--vq-name", default="output/VQVAE/net_last.pth",
                   help="train_vq.py checkpoint whose codes the prior models (frozen)")
    add_data_args(p)
    add_runtime_args(p)
    add_output_args(p, default_exp="T2M")
    g = p.add_argument_group("model")
    g.add_argument("--embed-dim-gpt", type=int, default=512, help="transformer width")
    g.add_argument("--num-layers", type=int, default=9, help="transformer blocks")
    g.add_argument("--n-head-gpt", type=int, default=8, help="attention heads")
    g.add_argument("--ff-rate", type=int, default=4, help="feed-forward width = ff-rate x width")
    g.add_argument("--drop-out-rate", type=float, default=0.1, help="dropout")
    g.add_argument("--cond", default="none", choices=["none", "subject"],
                   help="unconditional, or conditioned on the subject descriptor (per-coordinate mean and std "
                        "of the subject's normalised repetitions) given as the first token")
    g.add_argument("--cond-drop", type=float, default=0.1,
                   help="probability of replacing the condition by the learned null token in training")
    t = p.add_argument_group("training")
    t.add_argument("--batch-size", type=int_at_least(1), default=128,
                   help="code sequences per step (per process under torchrun)")
    t.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (AdamW)")
    t.add_argument("--weight-decay", type=float, default=1e-6, help="AdamW weight decay")
    t.add_argument("--total-iter", type=int, default=100000, help="optimisation steps in all")
    t.add_argument("--warm-up-iter", type=int, default=1000, help="linear learning-rate warm-up steps")
    t.add_argument("--lr-scheduler", type=milestones, default=[60000],
                   help="step(s) at which the lr is multiplied by --gamma, e.g. 60000 or 50000,80000")
    t.add_argument("--gamma", type=float, default=0.05, help="lr decay factor at each --lr-scheduler step")
    t.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clipping (0 = off)")
    t.add_argument("--pkeep", type=float, default=0.5,
                   help="fraction of input codes kept; the rest are replaced by random codes (T2M-GPT's corruption; "
                        "1 = off)")
    add_loop_args(t, "cross entropy on the test split's codes")
    return p


def get_generate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Sample code sequences from a trained token prior for each subject, decode them with the "
                    "VQ-VAE and write OpenSim .mot files (plus .npy and summary.json) like guidance does.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--resume-trans", default="output/T2M/net_last.pth", help="train_t2m_trans.py checkpoint")
    p.add_argument("--vq-name", default=None,
                   help="VQ-VAE checkpoint to decode with; default: the one the prior was trained on")
    g = p.add_argument_group("sampling")
    g.add_argument("--top-k", type=int, default=0, help="sample among the k most likely codes per step (0 = all)")
    g.add_argument("--temperature", type=float, default=1.0, help="logit temperature (0 = greedy)")
    add_subject_data_args(p)
    add_generation_runtime_args(p)
    add_generation_args(p, default_exp="t2m_baseline", default_out="output/baselines")
    return p
