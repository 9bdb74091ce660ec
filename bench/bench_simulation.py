"""Verification by simulation as guidance runs it: many motions of one subject
simulated a chunk at a time (``metrics.simulation.simulate_many``).

    .venv/bin/python bench/bench_simulation.py [--motions output/demo/BIGE/<subject>] \\
        [--data-root data/mcs_synthetic] [--chunk 5] [--workers 2] [--rounds 3]

Needs ``make demo`` first: reads every ``*.mot`` under ``--motions`` (a guided
subject folder; default the first one under ``output/demo/BIGE``), finds the
subject's scaled model in ``--data-root`` (the folder's name is the session
id) and simulates all of them in chunks of ``--chunk`` with ``--workers``
processes, as ``LIMO_Surrogate.py --verify`` does. Two modes per round, in
turn: ``kept`` (worker processes and loaded models kept between chunks, the
default behaviour) and ``fresh`` (workers stopped and the parent's model
cache emptied after every chunk, as every chunk started anew before). Prints
a markdown table: median seconds per motion over the rounds and the median of
the per-round ratios. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import machine  # noqa: E402
from dataset.mcs import session_model_for  # noqa: E402
from metrics import simulation  # noqa: E402
from utils.motion_io import read_motion  # noqa: E402


def _motions(folder: Path) -> tuple[np.ndarray, float]:
    files = sorted(folder.glob("*.mot"))
    if not files:
        raise SystemExit(f"{folder}: no .mot files")
    tables = [read_motion(f) for f in files]
    x = np.stack([t.coordinates() for t in tables])
    dt = float(np.mean([np.diff(t.times).mean() for t in tables]))
    return x, dt


def _run(models: list[str], x: np.ndarray, dt: float, chunk: int, workers: int, fresh: bool) -> float:
    start = time.perf_counter()
    for a in range(0, len(x), chunk):
        _, errors = simulation.simulate_many(models[a:a + chunk], x[a:a + chunk], dt, ("vasmed_r", "vasmed_l"),
                                             workers=workers)
        if any(errors):
            raise SystemExit(f"simulation failed: {next(e for e in errors if e)}")
        if fresh:
            simulation.shutdown_workers()
            simulation._loaded.clear()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--motions", type=Path, default=None,
                   help="folder of one subject's guided .mot files (default: the first under output/demo/BIGE)")
    p.add_argument("--data-root", type=Path, default=Path("data/mcs_synthetic"),
                   help="MCS-layout dataset holding the subject's scaled model")
    p.add_argument("--chunk", type=int, default=5,
                   help="motions per simulate_many call (LIMO: --min-samples; the demo's 10 samples in chunks of 5)")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of both modes")
    args = p.parse_args()
    if args.motions is None:
        found = sorted(p for p in Path("output/demo/BIGE").glob("*") if p.is_dir())
        if not found:
            raise SystemExit("no output/demo/BIGE/<subject> folder: run `make demo` first or pass --motions")
        args.motions = found[0]

    x, dt = _motions(args.motions)
    model = session_model_for(args.data_root / "Data" / args.motions.name / "OpenSimData" / "Kinematics" / "x.mot")
    if model is None:
        raise SystemExit(f"no scaled model for session {args.motions.name} in {args.data_root}")
    models = [str(model)] * len(x)
    times: dict[str, list[float]] = {"fresh": [], "kept": []}
    for _ in range(args.rounds):
        simulation.shutdown_workers()
        simulation._loaded.clear()
        for mode in ("fresh", "kept"):
            times[mode].append(_run(models, x, dt, args.chunk, args.workers, fresh=mode == "fresh"))
    simulation.shutdown_workers()
    ratios = [f / k for f, k in zip(times["fresh"], times["kept"])]
    print(f"{machine()}; load average {os.getloadavg()[0]:.2f}")
    print(f"{len(x)} motions of {x.shape[1]} frames, chunks of {args.chunk}, {args.workers} workers, "
          f"{args.rounds} rounds\n")
    print("| workers and models | s per motion (median) | vs fresh |\n| --- | ---: | ---: |")
    print(f"| fresh every chunk | {statistics.median(times['fresh']) / len(x):.3f} | 1.00x |")
    print(f"| kept between chunks | {statistics.median(times['kept']) / len(x):.3f} | "
          f"**{statistics.median(ratios):.2f}x** |")


if __name__ == "__main__":
    main()
