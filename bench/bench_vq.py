#!/usr/bin/env python
"""VQ-VAE training throughput in fp32 and bf16, against the machine's peak.

    .venv/bin/python bench/bench_vq.py                 # paper size, batch 32, 196 frames

Measures, in one run:

1. the peak rate of this machine per precision: the best of several runs of
   square matmuls (n and 2n) and of a 512-channel Conv1d (the VQ-VAE's main
   kernel), GFLOP/s; the fastest kernel defines the peak;
2. training steps (forward, backward, AdamW step) of the VQ-VAE at the paper's
   size (width 512, code dim 512, 512 codes, down_t 2, depth 3, 33 features,
   196 frames, batch 32) in fp32 and under bf16 autocast: median step time,
   clips/s, and the fraction of the same precision's peak reached (FLOPs
   counted by torch.utils.flop_counter).

Whether bf16 trains as well as fp32 is ``bench/bench_bf16_quality.py``.

Prints machine information (CPU, cores, load average: numbers taken while
other jobs share the CPU are noisy) and a markdown table.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bench.common import median_time, peak_rate  # noqa: E402
from models.vqvae import VQVAE  # noqa: E402
from utils.device import autocast, set_threads  # noqa: E402

PAPER = dict(n_features=33, nb_code=512, code_dim=512, width=512, down_t=2, depth=3, dilation_growth_rate=3)


def machine_info() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{cpu}; {os.cpu_count()} logical cores; torch {torch.__version__} "
            f"({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} threads; "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


def train_step_fn(model: VQVAE, x: torch.Tensor, precision: str):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99))
    device = x.device

    def step():
        with autocast(device, precision):
            x_hat, commit, _ = model(x)
        x_hat = x_hat.float()
        loss = torch.nn.functional.smooth_l1_loss(x_hat, x) + 0.02 * commit + 0.5 * torch.nn.functional.smooth_l1_loss(
            x_hat[:, 1:] - x_hat[:, :-1], x[:, 1:] - x[:, :-1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def step_flops(model: VQVAE, x: torch.Tensor) -> float:
    """FLOPs of one forward + backward."""
    with FlopCounterMode(display=False) as counter:
        x_hat, commit, _ = model(x)
        (x_hat.float().abs().mean() + commit).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def throughput(precision: str, batch: int, frames: int, repeats: int, config: dict) -> dict:
    torch.manual_seed(0)
    model = VQVAE(**config).train()
    x = torch.randn(batch, frames, config["n_features"])
    flops = step_flops(model, x)
    t = median_time(train_step_fn(model, x, precision), repeats)
    return {"step_s": t, "clips_s": batch / t, "gflops": flops / t / 1e9, "flops": flops}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=32, help="clips per training step")
    p.add_argument("--frames", type=int, default=196, help="frames per clip")
    p.add_argument("--repeats", type=int, default=5, help="timed training steps per precision (median)")
    p.add_argument("--bf16-repeats", type=int, default=3, help="timed steps for bf16 (slow on CPUs without bf16 units)")
    p.add_argument("--matmul-n", type=int, default=1024, help="size n of the peak matmuls (n and 2n are timed)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = p.parse_args()
    set_threads(args.threads)
    print(machine_info(), flush=True)
    measured = {"fp32": peak_rate(torch.float32, args.matmul_n, 5), "bf16": peak_rate(torch.bfloat16, args.matmul_n, 2)}
    peak = {k: v[0] for k, v in measured.items()}
    print("peak: " + ", ".join(f"{k} {v:.1f} GFLOP/s ({kernel})" for k, (v, kernel) in measured.items()), flush=True)
    rows = {}
    for precision, repeats in (("fp32", args.repeats), ("bf16", args.bf16_repeats)):
        r = throughput(precision, args.batch_size, args.frames, repeats, PAPER)
        rows[precision] = r
        print(f"{precision}: {r['step_s']:.3f} s/step, {r['clips_s']:.2f} clips/s, {r['gflops']:.1f} GFLOP/s "
              f"({r['flops'] / 1e9:.1f} GFLOP per step)", flush=True)
    print()
    print(f"Machine: {machine_info()}")
    print(f"Paper-size VQ-VAE (18.7 M parameters), batch {args.batch_size} x {args.frames} frames x 33 features, "
          f"one AdamW training step; median of {args.repeats} (fp32) / {args.bf16_repeats} (bf16) steps.")
    print()
    print("| precision | s/step | clips/s | GFLOP/s | peak GFLOP/s (kernel) | fraction of peak | speed vs fp32 |")
    print("|---|---|---|---|---|---|---|")
    for precision, r in rows.items():
        line = (f"| {precision} | {r['step_s']:.3f} | {r['clips_s']:.2f} | {r['gflops']:.1f} | "
                f"{peak[precision]:.1f} ({measured[precision][1]}) | "
                f"{r['gflops'] / peak[precision]:.0%} | {rows['fp32']['step_s'] / r['step_s']:.2f}x |")
        print(line)


if __name__ == "__main__":
    main()
