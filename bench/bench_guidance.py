"""Guidance throughput, step profile and batched vs per-sample proximity.

    .venv/bin/python bench/bench_guidance.py [--repeats 3] [--sizes demo paper] [--batch 64]

For each model size (``demo``: width 128, code_dim 64, 128 codes, depth 2;
``paper``: width 512, code_dim 512, 512 codes, depth 3; both seq_len 49 ->
196 frames) and precision (fp32, bf16), with randomly initialised models (the
cost does not depend on the weights):

* latent-iterations/s of one full guidance step (all terms, forward and
  backward, Adam update) on a batch of ``--batch`` latents, and the achieved
  FLOP rate (FLOPs counted by ``torch.utils.flop_counter``) against the
  machine's peak rate measured in the same run (``bench.common.peak_rate``);
* the schedule-averaged rate: with the published schedule half of the
  iterations evaluate the proximity term alone;
* the step profile: decoder, proximity, forward kinematics and surrogate,
  each forward + backward timed alone on the same batch, as a share of the
  full step;
* proximity: the straightforward per-sample version (a Python loop over
  samples and over chunks of the latent bank, ``torch.cdist`` per pair, as the
  original did) against the batched ``LatentBank(search="matmul")`` (one
  product against the whole bank), with the ratio, and the exact search's full
  scan without reuse (what it costs on the first step of a batch; later steps
  reuse it: ``bench_guidance_step.py``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, median_time, peak_rate  # noqa: E402
from dataset.normalization import Normalizer  # noqa: E402
from dataset.synthetic.osim_model import default_model_path  # noqa: E402
from models import guidance_losses as L  # noqa: E402
from models.guidance import DEFAULT_WEIGHTS, GuidanceObjective, weighted_total  # noqa: E402
from models.surrogate import SurrogateModel  # noqa: E402
from models.vqvae import VQVAE  # noqa: E402
from utils.constants import COORD_INDEX, COORDINATES, GUIDED_MUSCLES, MUSCLES  # noqa: E402
from utils.kinematics import ForwardKinematics  # noqa: E402

SIZES = {
    "demo": dict(width=128, code_dim=64, nb_code=128, depth=2),
    "paper": dict(width=512, code_dim=512, nb_code=512, depth=3),
}


def per_sample_nearest(z: torch.Tensor, bank: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """The straightforward search: for each sample, for each chunk of the
    bank, ``torch.cdist`` and a running minimum. (B, C, L), (N', C) -> (B, C, L)"""
    out = []
    for zi in z:                                   # loop over samples
        q = zi.T                                   # (L, C)
        best_d = torch.full((q.shape[0],), float("inf"))
        best_v = torch.zeros_like(q)
        for s in range(0, bank.shape[0], chunk):   # loop over bank chunks
            d = torch.cdist(q, bank[s:s + chunk])
            v, i = d.min(1)
            better = v < best_d
            best_d = torch.where(better, v, best_d)
            best_v = torch.where(better[:, None], bank[s:s + chunk][i], best_v)
        out.append(best_v.T)
    return torch.stack(out)


def build(size: str, precision: str, batch: int, bank_clips: int, seed: int = 0):
    torch.manual_seed(seed)
    vq = VQVAE(**SIZES[size]).eval()
    norm = Normalizer(np.zeros(33), np.ones(33))
    norm.mean[COORD_INDEX["pelvis_ty"]] = 0.95
    norm.std[:] = 10.0
    norm.std[[COORD_INDEX[c] for c in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]] = 0.05
    sur = SurrogateModel("mlp", muscles=MUSCLES, body_mass=(70.0, 10.0)).eval().for_subject(72.0)  # as trained by default
    fk = ForwardKinematics.from_osim(default_model_path())
    code_dim = SIZES[size]["code_dim"]
    bank = L.LatentBank(torch.randn(bank_clips, code_dim, 49))
    obj = GuidanceObjective(vq, norm, sur, GUIDED_MUSCLES, fk, bank, 0.35, 0.45, 0.0, precision=precision)
    z = torch.randn(batch, code_dim, 49)
    return obj, z


def bench_size(size: str, precision: str, batch: int, bank_clips: int, repeats: int, peak: float) -> dict:
    obj, z0 = build(size, precision, batch, bank_clips)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.005)

    def step(factor: float = 1.0):
        terms, _ = obj.terms(z, proximity_only=factor == 0.0)
        loss = weighted_total(terms, DEFAULT_WEIGHTS, factor).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_step = median_time(step, repeats=repeats)
    t_prox_only = median_time(lambda: step(0.0), repeats=repeats)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()

    x_deg = obj.decode(z0)[1].detach()

    def decoder():
        zz = z0.clone().requires_grad_(True)
        obj.decode(zz)[1].sum().backward()

    def proximity():
        zz = z0.clone().requires_grad_(True)
        L.proximity(zz, obj.bank).sum().backward()

    def kinematics():
        x = x_deg.clone().requires_grad_(True)
        obj.foot_positions(x).sum().backward()

    def surrogate():
        x = x_deg.clone().requires_grad_(True)
        obj.activations(x).sum().backward()

    parts = {name: median_time(fn, repeats=repeats) for name, fn in
             (("decoder", decoder), ("proximity", proximity), ("kinematics", kinematics), ("surrogate", surrogate))}
    # published schedule: 1/2 of the iterations proximity alone, 1/6 ramp + 1/3 all terms
    t_sched = 0.5 * t_prox_only + 0.5 * t_step
    return dict(size=size, precision=precision, batch=batch, step_s=t_step, rate=batch / t_step,
                sched_rate=batch / t_sched, gflops=flops / t_step / 1e9, peak=peak,
                parts={k: v / t_step for k, v in parts.items()}, parts_s=parts)


def bench_proximity(code_dim: int, batch: int, bank_clips: int, repeats: int) -> dict:
    torch.manual_seed(0)
    bank_lat = torch.randn(bank_clips, code_dim, 49)
    bank = L.LatentBank(bank_lat, search="matmul")
    scan = L.LatentBank(bank_lat, reuse=False)  # the exact search's full scan, every call
    z = torch.randn(batch, code_dim, 49)
    ref = per_sample_nearest(z, bank.vectors)
    assert torch.allclose(ref, bank.nearest(z), atol=1e-4), "per-sample and batched searches disagree"
    assert torch.equal(scan.nearest(z), bank.nearest(z)), "exact scan and batched search disagree"
    t_loop = median_time(lambda: per_sample_nearest(z, bank.vectors), repeats=repeats)
    t_batched = median_time(lambda: bank.nearest(z), repeats=repeats)
    t_scan = median_time(lambda: scan.nearest(z), repeats=repeats)
    return dict(code_dim=code_dim, batch=batch, bank=len(bank), loop_s=t_loop, batched_s=t_batched,
                ratio=t_loop / t_batched, scan_s=t_scan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["demo", "paper"], choices=list(SIZES))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=64, help="latents per step")
    parser.add_argument("--bank-clips", type=int, default=100,
                        help="training clips in the latent bank (x 49 latent steps); the synthetic demo has ~100")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    measured = {p: peak_rate(torch.float32 if p == "fp32" else torch.bfloat16, repeats=5 if p == "fp32" else 2)
                for p in args.precisions}
    peaks = {p: v[0] for p, v in measured.items()}
    print("peak: " + ", ".join(f"{p} {v:.1f} GFLOP/s ({kernel})" for p, (v, kernel) in measured.items()))
    print(f"\nfull guidance step, batch {args.batch}, seq_len 49 (196 frames), bank {args.bank_clips} clips")
    print("| size | precision | step (s) | latent-it/s | schedule-avg latent-it/s | GFLOP/s | % of peak | "
          "decoder | proximity | kinematics | surrogate | prox+FK+surr |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        for prec in args.precisions:
            r = bench_size(size, prec, args.batch, args.bank_clips, args.repeats, peaks[prec])
            p = r["parts"]
            other = p["proximity"] + p["kinematics"] + p["surrogate"]
            print(f"| {size} | {prec} | {r['step_s']:.3f} | {r['rate']:.1f} | {r['sched_rate']:.1f} | "
                  f"{r['gflops']:.1f} | {100 * r['gflops'] / r['peak']:.0f}% | {100 * p['decoder']:.0f}% | "
                  f"{100 * p['proximity']:.1f}% | {100 * p['kinematics']:.1f}% | {100 * p['surrogate']:.1f}% | "
                  f"{100 * other:.1f}% |", flush=True)
    print(f"\nnearest training latent, batch {args.batch}")
    print("| code_dim | bank steps | per-sample loop (s) | batched matmul (s) | speed-up | exact scan, no reuse (s) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        r = bench_proximity(SIZES[size]["code_dim"], args.batch, args.bank_clips, args.repeats)
        print(f"| {r['code_dim']} | {r['bank']} | {r['loop_s']:.3f} | {r['batched_s']:.4f} | {r['ratio']:.0f}x | "
              f"{r['scan_s']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
