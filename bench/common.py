"""Helpers shared by the benchmarks: machine description and robust timing."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import torch


def machine() -> str:
    """One line naming the CPU, core count, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numpy

    return (f"{cpu}; {os.cpu_count()} cores; Python {platform.python_version()}; "
            f"numpy {numpy.__version__}; torch {torch.__version__} ({torch.get_num_threads()} threads)")


def wall_times(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> list[float]:
    """Wall time of each of ``repeats`` calls of ``fn()`` after ``warmup`` untimed ones, seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, seconds."""
    return statistics.median(wall_times(fn, repeats, warmup))


def best_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Shortest wall time of ``fn()`` over ``repeats`` runs, seconds (a peak, not a typical time)."""
    return min(wall_times(fn, repeats, warmup))


@torch.no_grad()
def peak_rate(dtype: torch.dtype, n: int = 1024, repeats: int = 5) -> tuple[float, str]:
    """The machine's measured peak in ``dtype``: the best GFLOP/s over dense
    kernels, n and 2n square matmuls and a 512-channel, width-3 Conv1d on
    32 x 196 frames (the VQ-VAE's main kernel; on some CPUs the convolution
    library is faster than the matmul). Returns (GFLOP/s, kernel name)."""
    rates = {}
    for size in (n, 2 * n):
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        rates[f"matmul {size}"] = 2 * size ** 3 / best_time(lambda: a @ b, repeats) / 1e9
    conv = torch.nn.Conv1d(512, 512, 3, padding=1).to(dtype)
    x = torch.randn(32, 512, 196).to(dtype)
    rates["conv1d 512"] = 2 * 32 * 196 * 512 * 512 * 3 / best_time(lambda: conv(x), repeats) / 1e9
    kernel = max(rates, key=rates.get)
    return rates[kernel], kernel
