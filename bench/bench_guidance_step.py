"""Guidance step, side by side: this project's step with the exact reusing
nearest-latent search (``LatentBank(search="exact")``, the default) against
the same step with the earlier search (``search="matmul"``: one fp32 distance
product against the whole bank per step), and against the original BIGE code
when a checkout is given.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_guidance_step.py \\
        [--size paper] [--batch 32] [--bank-clips 100 1000 10000] [--rounds 6] [--precision fp32] \\
        [--original /path/to/BIGE --original-entry LIMO_Surrogate:make_benchmark_step]

What is timed: real consecutive Adam steps of guidance (``GuidanceObjective.terms``,
weighted loss, backward, update) on ``--batch`` latents of 49 steps started as
guidance starts them (:func:`models.guidance.initial_latents`: mean of 5 bank
clips plus noise of 10-200 % of the bank's standard deviation, lr 0.5 % of it),
randomly initialised models of the chosen size (the cost does not depend on
the weights) and a random latent bank of ``--bank-clips`` clips. Per bank size:
``--rounds`` proximity-only steps (the schedule's first and last phases, nothing
decoded) and then ``--rounds`` full steps (every term), variants interleaved
within each round (A B A B ...), so that load changes hit both. The first step
of each variant is reported separately (the exact search scans the bank once
per batch there) and left out of the medians. Ratios are medians of the
per-round ratios. "schedule-avg" weights proximity-only and full steps 1:1
as the published schedule does (500 + 1000 of 3000 iterations proximity only).

The original code (``--original PATH``) is imported from the user's checkout
(never copied here), in a child process (:mod:`bench.original_worker`) whose
import path holds only that checkout, since both projects have ``models`` and
``utils`` packages; the parent asks it for one step at a time, so its steps
interleave with ours. ``--original-entry MODULE:FACTORY`` names a factory in
the checkout (or in an adapter the user places there) called as
``FACTORY(batch=..., bank_clips=..., code_dim=..., seq_len=49, proximity_only=...)``
that returns a zero-argument callable doing one guidance step. Without a
checkout, or when the entry cannot be imported, that column is skipped with a
message saying why.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_guidance import SIZES, build  # noqa: E402
from bench.common import machine  # noqa: E402
from models import guidance_losses as L  # noqa: E402
from models.guidance import DEFAULT_WEIGHTS, initial_latents, weighted_total  # noqa: E402
from utils.device import bf16_support, set_threads  # noqa: E402


class OriginalStep:
    """The original code's guidance step, run in a child process
    (:mod:`bench.original_worker`) that imports it from the checkout."""

    def __init__(self, path: str, entry: str, batch: int, bank_clips: int, code_dim: int, seq_len: int = 49):
        worker = Path(__file__).resolve().parent / "original_worker.py"
        self.proc = subprocess.Popen([sys.executable, str(worker), path, entry, str(batch), str(bank_clips),
                                      str(code_dim), str(seq_len)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            self.close()
            raise RuntimeError(first.removeprefix("error ") or "the worker ended without a word")

    def __call__(self, proximity_only: bool) -> float:
        self.proc.stdin.write("prox\n" if proximity_only else "full\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=60)


def check_original(path: str | None) -> str | None:
    """Why the original column is skipped, or None when ``path`` is a directory."""
    if not path:
        return "original BIGE: skipped (no --original PATH given)"
    if not Path(path).is_dir():
        return f"original BIGE: skipped ({path} is not a directory)"
    return None


class Stepper:
    """Consecutive Adam steps of guidance on one batch of latents."""

    def __init__(self, objective, z0: torch.Tensor, lr: float):
        self.objective = objective
        self.z = z0.clone().requires_grad_(True)
        self.opt = torch.optim.Adam([self.z], lr=lr)

    def __call__(self, proximity_only: bool) -> float:
        start = time.perf_counter()
        terms, _ = self.objective.terms(self.z, proximity_only=proximity_only)
        loss = weighted_total(terms, DEFAULT_WEIGHTS, 0.0 if proximity_only else 1.0).sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - start


def run_bank(size: str, precision: str, batch: int, bank_clips: int, rounds: int, original) -> dict:
    objective, _ = build(size, precision, batch, bank_clips=1)
    code_dim = SIZES[size]["code_dim"]
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(bank_clips, code_dim, 49, generator=gen)
    exact = L.LatentBank(latents)
    matmul = copy.copy(exact)  # shares the vectors
    matmul.search = "matmul"
    del latents
    unit = exact.std / 100.0
    z0 = initial_latents(exact.vectors[:5 * 49].reshape(5, 49, code_dim).transpose(1, 2), batch, (10.0, 200.0),
                         unit, gen)
    variants: dict[str, Callable[[bool], float]] = {}
    for name, bank in (("matmul", matmul), ("exact", exact)):
        obj = copy.copy(objective)
        obj.bank = bank
        variants[name] = Stepper(obj, z0, lr=0.5 * unit)
    worker = None
    if original is not None:
        try:
            worker = OriginalStep(original[0], original[1], batch, bank_clips, code_dim)
            variants = {"original": worker, **variants}
        except RuntimeError as exc:
            print(f"original BIGE: skipped at {bank_clips} clips ({original[1]} from {original[0]}: {exc}); "
                  f"expected a FACTORY(batch, bank_clips, code_dim, seq_len, proximity_only) returning a "
                  "zero-argument step")
    out: dict = {"bank_clips": bank_clips, "bank_rows": len(exact)}
    for phase, prox in (("proximity-only", True), ("full", False)):
        times = {name: [] for name in variants}
        for r in range(rounds + (1 if phase == "proximity-only" else 0)):
            for name, fn in variants.items():
                times[name].append(fn(prox))
        if phase == "proximity-only":
            out["first"] = {name: t.pop(0) for name, t in times.items()}
        out[phase] = {name: statistics.median(t) for name, t in times.items()}
        out[phase + " ratio"] = {name: statistics.median(a / b for a, b in zip(t, times["exact"]))
                                 for name, t in times.items()}
    if worker is not None:
        worker.close()
    stats = exact.searcher.stats
    first_scan = batch * 49 if exact.unit == "frame" else batch
    out["reuse"] = stats.reused / max(1, stats.queries - first_scan)  # the first call scans by construction
    out["scanned_per_step"] = (stats.scanned - first_scan) / max(1, stats.calls - 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="paper", choices=list(SIZES))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--bank-clips", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--rounds", type=int, default=6, help="timed steps per phase and variant")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as set)")
    parser.add_argument("--original", default=None, help="checkout of the original BIGE code")
    parser.add_argument("--original-entry", default="LIMO_Surrogate:make_benchmark_step",
                        help="MODULE:FACTORY in the original checkout returning one guidance step")
    args = parser.parse_args()
    set_threads(args.threads)
    skipped = check_original(args.original)
    original = None if skipped else (str(Path(args.original).resolve()), args.original_entry)
    print(machine())
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"bf16: {bf16_support(torch.device('cpu'))[1]}; load average at start {load}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(skipped or f"original BIGE: {args.original_entry} from {args.original}, in a child process")
    print(f"\nguidance step, {args.size} size, {args.precision}, batch {args.batch} x 49 latent steps; "
          f"median of {args.rounds} interleaved rounds per phase (s)\n")
    for clips in args.bank_clips:
        r = run_bank(args.size, args.precision, args.batch, clips, args.rounds, original)
        names = [n for n in ("original", "matmul", "exact") if n in r["first"]]
        if clips == args.bank_clips[0]:
            head = " | ".join(f"{n} prox / full" for n in names)
            print(f"| bank clips (rows) | first step {' / '.join(names)} | {head} | schedule-avg speed-up vs "
                  "matmul | exact: reuse, rows scanned / step |")
            print("| --- | --- | " + " | ".join("---" for _ in names) + " | ---: | --- |")
        first = " / ".join(f"{r['first'][n]:.2f}" for n in names)
        cells = " | ".join(f"{r['proximity-only'][n]:.3f} / {r['full'][n]:.3f}" for n in names)
        sched = {n: 0.5 * (r["proximity-only"][n] + r["full"][n]) for n in names}
        speed = sched["matmul"] / sched["exact"]
        extra = ""
        if "original" in r["first"]:
            extra = f"; vs original {sched['original'] / sched['exact']:.1f}x"
        print(f"| {clips} ({r['bank_rows']}) | {first} | {cells} | **{speed:.1f}x** (per-round ratio prox "
              f"{r['proximity-only ratio']['matmul']:.1f}x, full {r['full ratio']['matmul']:.2f}x){extra} | "
              f"{r['reuse']:.1%}, {r['scanned_per_step']:.1f} |", flush=True)
    with open("/proc/loadavg") as f:
        print(f"\nload average at end {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
