#!/usr/bin/env python
"""Run every benchmark in ``bench/`` one after another and keep their reports.

    .venv/bin/python bench/run_all.py                  # all of them (about 25 min on 2 cores)
    .venv/bin/python bench/run_all.py --only motion_io vq
    .venv/bin/python bench/run_all.py --out bench/results

Each benchmark runs in its own process (``bench/bench_<name>.py`` with the
arguments in :data:`BENCHMARKS`), so that one benchmark's threads and memory
do not disturb the next. Its standard output,
the markdown tables that ``docs/PERFORMANCE.md`` quotes, is printed and written
to ``<out>/<name>.md`` (atomically; an existing report is kept as
``<name>.<timestamp>.md`` rather than overwritten). Numbers taken while other
work shares the CPU are noisy: each report starts with the load average.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from utils.fileio import atomic_write_text  # noqa: E402

BENCHMARKS: dict[str, list[str]] = {
    "motion_io": ["--files", "1000", "--repeats", "3"],
    "vq": ["--repeats", "3", "--bf16-repeats", "1"],
    "surrogate": [],
    "guidance": ["--repeats", "3", "--batch", "32"],
    "guidance_step": ["--bank-clips", "100", "1000", "--rounds", "3"],
    "decoder_ceiling": ["--rounds", "5"],
    "precision": [],
    "bf16_quality": ["--seeds", "1", "2", "3", "4"],
    "metrics": ["--repeats", "3"],
    "render": [],
    "baselines": [],
    "simulation": ["--rounds", "3"],
    "opensim_stages": ["--rounds", "3"],
    "worker_start": ["--repeats", "3"],
}
"""Benchmark name -> extra arguments of ``bench/bench_<name>.py``."""


def run_one(name: str, extra: list[str], out: Path) -> tuple[int, float]:
    """Run ``bench_<name>.py``; write its output to ``out/<name>.md``. Returns (exit code, seconds)."""
    script = ROOT / "bench" / f"bench_{name}.py"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\n## {name}: {script.name} {' '.join(extra)} (load average {load[0]:.1f})", flush=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), *extra], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    print(proc.stdout, end="", flush=True)
    target = out / f"{name}.md"
    if target.exists():
        target.rename(out / f"{name}.{time.strftime('%Y%m%d-%H%M%S', time.localtime(target.stat().st_mtime))}.md")
    header = (f"<!-- {script.name} {' '.join(extra)}; exit {proc.returncode}; {seconds:.0f} s; "
              f"load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} -->\n")
    atomic_write_text(target, header + proc.stdout)
    return proc.returncode, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS),
                        help="benchmarks to run (default: all, in this order)")
    parser.add_argument("--out", default="bench/results", help="folder for the <name>.md reports")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.only:
        code, seconds = run_one(name, BENCHMARKS[name], out)
        print(f"-> {name}: exit {code}, {seconds:.0f} s, report {out / (name + '.md')}", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
