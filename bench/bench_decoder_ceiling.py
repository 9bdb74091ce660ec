"""How fast can a guidance step get? The VQ-VAE decoder's forward and
input-gradient backward pass, the bulk of a full step (docs/PERFORMANCE.md,
"Guidance step and the nearest-latent search"), against this machine's
measured peak, and one exact alternative for its backward.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_decoder_ceiling.py [--size paper] [--batch 32] [--rounds 5]

What is timed, on ``--batch`` latents of 49 steps with a randomly initialised
decoder of the chosen size, frozen as guidance freezes it (the cost does not
depend on the weights), fp32:

* ``forward``: the decoder alone;
* ``forward + backward``: forward, then the gradient of a scalar loss with
  respect to the latents (PyTorch's convolution backward);
* ``... flipped-weight backward``: the same gradient, each frozen convolution's
  input gradient computed as a forward convolution of the output gradient
  with its weights transposed and flipped in time (exact for stride 1 and
  "same" padding; the largest relative difference to PyTorch's gradient is
  printed). This variant lives here only: the project keeps PyTorch's.

The two backward variants alternate within each round; ratios are medians of
the per-round ratios. GFLOP counts every convolution's multiply-adds (two
FLOPs each) from its real input and output sizes. The peak is
:func:`bench.common.peak_rate` in the same run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_guidance import SIZES  # noqa: E402
from bench.common import machine, peak_rate  # noqa: E402
from models.encdec import Decoder  # noqa: E402
from utils.device import set_threads  # noqa: E402


class FlippedBackwardConv(torch.autograd.Function):
    """A frozen stride-1 "same" Conv1d whose input gradient is a forward
    convolution with the weights transposed and flipped in time."""

    @staticmethod
    def forward(ctx, x, weight, bias, dilation: int):
        ctx.save_for_backward(weight)
        ctx.dilation = dilation
        return F.conv1d(x, weight, bias, padding=dilation * (weight.shape[2] // 2), dilation=dilation)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        d = ctx.dilation
        flipped = weight.transpose(0, 1).flip(2)
        return F.conv1d(grad, flipped, None, padding=d * (weight.shape[2] // 2), dilation=d), None, None, None


def with_flipped_backward(decoder: Decoder) -> None:
    """Route every Conv1d of ``decoder`` through :class:`FlippedBackwardConv` (in place)."""
    for conv in decoder.modules():
        if isinstance(conv, torch.nn.Conv1d):
            if conv.stride[0] != 1 or conv.padding[0] != conv.dilation[0] * (conv.kernel_size[0] // 2):
                raise ValueError(f"{conv}: not a stride-1 'same' convolution")
            conv.forward = (lambda x, c=conv: FlippedBackwardConv.apply(x, c.weight, c.bias, c.dilation[0]))


def conv_gflop(decoder: Decoder, z: torch.Tensor) -> float:
    """GFLOP of one forward pass: 2 x multiply-adds of every Conv1d at its real sizes."""
    total = []

    def hook(conv, inputs, output):
        total.append(2 * output.numel() * conv.in_channels * conv.kernel_size[0] / conv.groups)

    handles = [m.register_forward_hook(hook) for m in decoder.modules() if isinstance(m, torch.nn.Conv1d)]
    with torch.no_grad():
        decoder(z)
    for h in handles:
        h.remove()
    return sum(total) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="paper", choices=list(SIZES), help="decoder size (bench.bench_guidance)")
    parser.add_argument("--batch", type=int, default=32, help="latents per step")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as set)")
    args = parser.parse_args()
    set_threads(args.threads)
    size = SIZES[args.size]
    torch.manual_seed(0)
    base = Decoder(33, size["code_dim"], size["width"], 2, 2, size["depth"]).eval().requires_grad_(False)
    flipped = Decoder(33, size["code_dim"], size["width"], 2, 2, size["depth"]).eval().requires_grad_(False)
    flipped.load_state_dict(base.state_dict())
    with_flipped_backward(flipped)
    z = torch.randn(args.batch, size["code_dim"], 49, requires_grad=True)
    target = torch.randn(args.batch, 33, 49 * 4)

    def step(decoder: Decoder) -> torch.Tensor:
        z.grad = None
        ((decoder(z) - target).square().mean()).backward()
        return z.grad

    g_base, g_flip = step(base).clone(), step(flipped).clone()
    rel = float((g_base - g_flip).abs().max() / g_base.abs().max())
    gflop = conv_gflop(base, z.detach())
    peak, kernel = peak_rate(torch.float32)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(machine())
    print(f"load average at start {load}; decoder {args.size} size {size}, batch {args.batch} x 49 latent steps "
          f"-> 196 frames, fp32; {gflop:.1f} GFLOP per forward; peak {peak:.1f} GFLOP/s ({kernel})\n")

    times: dict[str, list[float]] = {"forward": [], "forward + backward": [], "flipped": []}
    for r in range(args.rounds + 1):
        start = time.perf_counter()
        with torch.no_grad():
            base(z)
        t_fwd = time.perf_counter() - start
        start = time.perf_counter()
        step(base)
        t_fb = time.perf_counter() - start
        start = time.perf_counter()
        step(flipped)
        t_flip = time.perf_counter() - start
        if r:  # round 0 warms up
            for key, t in (("forward", t_fwd), ("forward + backward", t_fb), ("flipped", t_flip)):
                times[key].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = statistics.median(a / b for a, b in zip(times["forward + backward"], times["flipped"]))
    print("| pass | median s | GFLOP/s | share of peak |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| forward | {med['forward']:.3f} | {gflop / med['forward']:.1f} | "
          f"{gflop / med['forward'] / peak:.0%} |")
    print(f"| forward + backward (PyTorch) | {med['forward + backward']:.3f} | "
          f"{2 * gflop / med['forward + backward']:.1f} | {2 * gflop / med['forward + backward'] / peak:.0%} |")
    print(f"| forward + flipped-weight backward | {med['flipped']:.3f} | {2 * gflop / med['flipped']:.1f} | "
          f"{2 * gflop / med['flipped'] / peak:.0%} |")
    print(f"\nflipped-weight backward: {ratio:.2f}x PyTorch's (median of per-round ratios), largest gradient "
          f"difference {rel:.1e} of the largest gradient")
    print(f"decoder forward + backward at the measured peak: {2 * gflop / peak:.3f} s (a floor for a full "
          "guidance step of this size in fp32 on this machine)")
    with open("/proc/loadavg") as f:
        print(f"load average at end {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
