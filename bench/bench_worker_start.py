"""Start N workers of utils.process_map that import what a guidance subject
worker needs (torch, torch._dynamo, OpenSim and the dynamics), spawned or
forked from a forkserver that preloaded them; each measurement in a new
interpreter (the forkserver is one per process), the two variants in
alternating rounds. Reports the wall time until every worker has answered
once and the CPU seconds of the whole process tree.

    .venv/bin/python bench/bench_worker_start.py [--workers 5] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODULES = ("torch", "torch._dynamo", "dataset.synthetic.muscle_dynamics")


def _ready(_: int) -> int:
    """What a subject worker pays before its first item: the imports."""
    import importlib

    for name in MODULES:
        importlib.import_module(name)
    return 0


def _one(context: str, workers: int) -> None:
    """One measurement, in this (new) interpreter: prints JSON."""
    import torch  # noqa: F401  the owner has torch loaded, as LIMO_Surrogate.py does

    from utils.process_map import process_map

    start = time.perf_counter()
    list(process_map(_ready, list(range(workers)), workers, preload=MODULES, context=context))
    wall = time.perf_counter() - start
    print(json.dumps({"wall": wall}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=5, help="worker processes per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds of the two variants")
    parser.add_argument("--one", choices=["spawn", "forkserver"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args.one, args.workers)
        return
    from bench.common import machine

    import ctypes
    import os

    # become the reaper of orphaned descendants (the forkserver outlives its owner for a moment),
    # so their CPU time reaches RUSAGE_CHILDREN once waited for
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER

    def reap_all() -> None:
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return

    rounds: dict[str, dict[str, list[float]]] = {c: {"wall": [], "cpu": []} for c in ("spawn", "forkserver")}
    for _ in range(args.repeats):
        for context in rounds:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run([sys.executable, __file__, "--one", context, "--workers", str(args.workers)],
                                 check=True, capture_output=True, text=True, cwd=ROOT)
            reap_all()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            rounds[context]["wall"].append(json.loads(out.stdout.strip().splitlines()[-1])["wall"])
            rounds[context]["cpu"].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    print(machine())
    print(f"{args.workers} workers importing {', '.join(MODULES)}; {args.repeats} alternating rounds, median; "
          "CPU = user + system seconds of the measuring interpreter and all its processes")
    for context, r in rounds.items():
        print(f"{context:10s}: until every worker answered {np.median(r['wall']):6.2f} s, "
              f"CPU {np.median(r['cpu']):6.2f} s")
    ratio_wall = np.median(np.array(rounds["spawn"]["wall"]) / np.array(rounds["forkserver"]["wall"]))
    ratio_cpu = np.median(np.array(rounds["spawn"]["cpu"]) / np.array(rounds["forkserver"]["cpu"]))
    print(f"spawn / forkserver: wall {ratio_wall:.2f}x, CPU {ratio_cpu:.2f}x (median of per-round ratios)")


if __name__ == "__main__":
    main()
