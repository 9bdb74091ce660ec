"""Helpers shared by the benchmarks: machine description and robust timing."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable


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
    import torch

    return (f"{cpu}; {os.cpu_count()} cores; Python {platform.python_version()}; "
            f"numpy {numpy.__version__}; torch {torch.__version__} ({torch.get_num_threads()} threads)")


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
