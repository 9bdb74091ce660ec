"""What ``--precision auto`` resolves to here, and bf16 against fp32 on this machine.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_precision.py [--rounds 3]

Prints the CPU, its bf16 support (``/proc/cpuinfo``: ``avx512_bf16`` /
``amx_bf16``), the resolution of ``--precision auto`` for the CPU (and CUDA
when present) with the reason that every script logs, and the machine's peak
rate in fp32 and in bf16 (``bench.common.peak_rate``: the best of 1024 / 2048
matmuls and the VQ-VAE's 512-channel Conv1d), measured in interleaved rounds
(fp32, bf16, fp32, bf16, ...) with the median of the per-round ratios.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, peak_rate  # noqa: E402
from utils.device import resolve_precision  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    with open("/proc/loadavg") as f:
        print(f"load average at start {' '.join(f.read().split()[:3])}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        print(f"{device.type}: {resolve_precision('auto', device)[1]}")
    rates: dict[str, list[tuple[float, str]]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        rates["fp32"].append(peak_rate(torch.float32, repeats=3))
        rates["bf16"].append(peak_rate(torch.bfloat16, repeats=2))
    ratio = statistics.median(b[0] / a[0] for a, b in zip(rates["fp32"], rates["bf16"]))
    print("\n| precision | peak GFLOP/s (median of rounds) | best kernel | vs fp32 (median of per-round ratios) |")
    print("| --- | ---: | --- | ---: |")
    for name, values in rates.items():
        best = max(values)
        print(f"| {name} | {statistics.median(v[0] for v in values):.1f} | {best[1]} | "
              f"{1.0 if name == 'fp32' else ratio:.2f}x |")
    with open("/proc/loadavg") as f:
        print(f"\nload average at end {' '.join(f.read().split()[:3])}")


if __name__ == "__main__":
    main()
