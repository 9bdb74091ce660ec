"""Parse 1,000 .mot files of 200 rows x 120 columns with utils.motion_io, and
with a plain pure-Python line-by-line parser in the same run for comparison.

    .venv/bin/python bench/bench_motion_io.py [--files 1000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, median_time  # noqa: E402
from utils.motion_io import read_many, read_motion, write_mot  # noqa: E402


def naive_read(path: Path) -> np.ndarray:
    """What each script of the original did: split lines by hand after endheader."""
    rows, in_body, header_seen = [], False, False
    with open(path) as handle:
        for line in handle:
            if not in_body:
                in_body = line.strip() == "endheader"
                continue
            if not header_seen:
                header_seen = True
                continue
            rows.append([float(v) for v in line.split()])
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--cols", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.files):
            values = rng.normal(size=(args.rows, args.cols - 1)) * 30
            labels = [f"c{j}" for j in range(args.cols - 1)]
            paths.append(write_mot(Path(tmp) / f"f{i:04d}.mot", np.arange(args.rows) / 60, labels, values))
        t_naive = median_time(lambda: [naive_read(p) for p in paths], args.repeats)
        t_one = median_time(lambda: [read_motion(p) for p in paths], args.repeats)
        t_two = median_time(lambda: read_many(paths, workers=2), args.repeats)
    print(machine())
    print(f"{args.files} files x {args.rows} rows x {args.cols} columns, median of {args.repeats}")
    print(f"pure-Python line parser : {t_naive:7.2f} s")
    print(f"read_motion, 1 process  : {t_one:7.2f} s  ({t_naive / t_one:.1f}x)")
    print(f"read_many, 2 processes  : {t_two:7.2f} s  ({t_naive / t_two:.1f}x)")


if __name__ == "__main__":
    main()
