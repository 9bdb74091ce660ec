#!/usr/bin/env python
"""Speed of the baselines at demo size: training steps and sampling.

    .venv/bin/python bench/bench_baselines.py
    .venv/bin/python bench/bench_baselines.py --threads 1 --repeats 5

Measures, in one run and on random data of the real shapes (196 x 33 clips,
49 codes):

1. one training step (forward, backward, AdamW) of the diffusion denoiser at
   the demo width and depth with one token per frame (MDM's layout), with
   this project's transformer blocks (fused ``scaled_dot_product_attention``,
   dropout on residual branches only) and, as the baseline, the same-size
   ``torch.nn.TransformerEncoder`` (MDM's choice, which also drops out the
   attention weights); then the demo model proper (4 frames per token); fp32
   and bf16;
2. drawing 20 motions with DDPM (every one of the 100 steps) and with DDIM
   (50 and 20 steps);
3. one training step of the token prior, and drawing 20 code sequences.

Prints machine information (CPU, cores, threads, load average: numbers taken
while other jobs share the CPU are noisy) and a markdown table of medians of
wall time and of this process's CPU time (the steadier number on a shared
machine).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.common import machine  # noqa: E402
from models.mdm import MDMConfig, build_mdm, sinusoidal_embedding  # noqa: E402
from models.token_prior import TokenPrior, TokenPriorConfig  # noqa: E402
from utils.device import autocast, set_threads  # noqa: E402

DEMO_MDM = MDMConfig(latent_dim=96, layers=3, heads=4, ff_size=192, diffusion_steps=100, cond_dim=66,
                     frames_per_token=4)
PER_FRAME = MDMConfig(**{**DEMO_MDM.__dict__, "frames_per_token": 1})
DEMO_T2M = TokenPriorConfig(nb_code=128, block_size=49, embed_dim=96, num_layers=3, n_head=4, cond_dim=66)


class TorchEncoderDenoiser(nn.Module):
    """The baseline: the same denoiser built on ``nn.TransformerEncoder``."""

    def __init__(self, c: MDMConfig):
        super().__init__()
        self.c = c
        d = c.latent_dim
        self.input_proj = nn.Linear(c.n_features, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.cond_proj = nn.Linear(c.cond_dim, d)
        self.register_buffer("pos", sinusoidal_embedding(torch.arange(c.n_frames + 1), d))
        layer = nn.TransformerEncoderLayer(d, c.heads, c.ff_size, c.dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.output_proj = nn.Linear(d, c.n_features)

    def forward(self, x, t, cond=None, cond_mask=None):
        token = self.time_mlp(sinusoidal_embedding(t, self.c.latent_dim)) + self.cond_proj(cond)
        h = torch.cat([token[:, None], self.input_proj(x)], 1) + self.pos[: x.shape[1] + 1]
        return self.output_proj(self.encoder(h)[:, 1:])


def median_time(fn, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """Median wall time and median CPU time (this process) of ``fn()``, seconds.
    On a shared CPU the CPU time is the steadier number."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def fmt(t: tuple[float, float], unit: str = "ms") -> str:
    k = 1e3 if unit == "ms" else 1.0
    return f"{t[0] * k:.0f} {unit} (CPU {t[1] * k:.0f} {unit})" if unit == "ms" else \
        f"{t[0]:.2f} s (CPU {t[1]:.2f} s)"


def train_step_time(model: nn.Module, step, precision: str, repeats: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def run():
        with autocast(torch.device("cpu"), precision):
            loss = step()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return median_time(run, repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    p.add_argument("--batch-size", type=int, default=32, help="training batch")
    args = p.parse_args()
    set_threads(args.threads)
    torch.manual_seed(0)
    load = os.getloadavg()
    print(f"machine: {machine()}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    rows = []
    b = args.batch_size
    x = torch.randn(b, 196, 33)
    cond = torch.randn(b, 66)

    model, diffusion = build_mdm(PER_FRAME)
    base = TorchEncoderDenoiser(PER_FRAME)
    demo, _ = build_mdm(DEMO_MDM)
    for precision in ("fp32", "bf16"):
        ours = train_step_time(model, lambda: diffusion.training_losses(model, x, cond, 0.1)["loss"],
                               precision, args.repeats)
        theirs = train_step_time(base, lambda: diffusion.training_losses(base, x, cond, 0.1)["loss"],
                                 precision, args.repeats)
        rows.append((f"MDM train step, 1 frame/token, batch {b}, {precision}", fmt(ours),
                     f"nn.TransformerEncoder: {fmt(theirs)}, {theirs[1] / ours[1]:.2f}x our CPU time"))
        patched = train_step_time(demo, lambda: diffusion.training_losses(demo, x, cond, 0.1)["loss"],
                                  precision, args.repeats)
        rows.append((f"MDM train step, 4 frames/token (demo), batch {b}, {precision}", fmt(patched),
                     f"{ours[1] / patched[1]:.1f}x less CPU than 1 frame/token"))
    model = demo
    model.eval()
    c20 = torch.randn(20, 66)
    for sampler, steps in (("ddpm", 100), ("ddim", 50), ("ddim", 20)):
        t = median_time(lambda: diffusion.sample(model, (20, 196, 33), c20, sampler=sampler, ddim_steps=steps),
                        max(1, args.repeats // 2))
        rows.append((f"MDM draw 20 motions, {sampler} {steps} steps", fmt(t, "s"),
                     f"CPU {t[1] / 20 * 1e3:.0f} ms/motion"))

    prior = TokenPrior(DEMO_T2M)
    codes = torch.randint(0, DEMO_T2M.nb_code, (b, 49))
    for precision in ("fp32", "bf16"):
        t = train_step_time(prior, lambda: prior.loss(codes, cond, 0.1, 0.5)["loss"], precision, args.repeats)
        rows.append((f"token prior train step, batch {b}, {precision}", fmt(t), ""))
    prior.eval()
    t = median_time(lambda: prior.sample(20, c20, top_k=50), max(1, args.repeats // 2))
    rows.append(("token prior draw 20 sequences of 49 codes", fmt(t, "s"), f"CPU {t[1] / 20 * 1e3:.0f} ms/sequence"))

    print(f"\nthreads {torch.get_num_threads()}; MDM demo {DEMO_MDM.latent_dim}x{DEMO_MDM.layers} layers, "
          f"{DEMO_MDM.frames_per_token} frames/token, "
          f"{DEMO_MDM.diffusion_steps} diffusion steps; token prior {DEMO_T2M.embed_dim}x{DEMO_T2M.num_layers}\n")
    print("| measurement | median | comparison |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
