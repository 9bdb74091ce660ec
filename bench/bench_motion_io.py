"""Parse .mot files of 200 rows x 120 columns with utils.motion_io (its C
parser, and its numpy fallback) and with a plain pure-Python line-by-line
parser, in interleaved rounds of one process; ratios are medians of the
per-round ratios, so a machine whose speed drifts still compares fairly.

    .venv/bin/python bench/bench_motion_io.py [--files 1000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, wall_times  # noqa: E402
from utils import fastparse  # noqa: E402
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
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.files):
            values = rng.normal(size=(args.rows, args.cols - 1)) * 30
            labels = [f"c{j}" for j in range(args.cols - 1)]
            paths.append(write_mot(Path(tmp) / f"f{i:04d}.mot", np.arange(args.rows) / 60, labels, values))
        c_parser = fastparse._C_PARSER

        def with_numpy() -> list:
            fastparse._C_PARSER = None
            try:
                return [read_motion(p) for p in paths]
            finally:
                fastparse._C_PARSER = c_parser

        rounds = {"naive": [], "C": [], "numpy": [], "two": []}
        for _ in range(args.repeats):
            rounds["naive"].append(wall_times(lambda: [naive_read(p) for p in paths], 1, 0)[0])
            rounds["C"].append(wall_times(lambda: [read_motion(p) for p in paths], 1, 0)[0])
            rounds["numpy"].append(wall_times(with_numpy, 1, 0)[0])
            rounds["two"].append(wall_times(lambda: read_many(paths, workers=2), 1, 0)[0])
    med = {k: float(np.median(v)) for k, v in rounds.items()}
    ratio = {k: float(np.median(np.array(rounds["naive"]) / np.array(v))) for k, v in rounds.items()}
    print(machine())
    print(f"{args.files} files x {args.rows} rows x {args.cols} columns, {args.repeats} interleaved rounds "
          f"(median; ratio = median of per-round ratios to the line parser); parser backend: {fastparse.backend()}")
    print(f"pure-Python line parser           : {med['naive']:7.3f} s")
    print(f"read_motion, C parser, 1 process  : {med['C']:7.3f} s  ({ratio['C']:.1f}x)")
    print(f"read_motion, numpy, 1 process     : {med['numpy']:7.3f} s  ({ratio['numpy']:.1f}x)")
    print(f"read_many, C parser, 2 processes  : {med['two']:7.3f} s  ({ratio['two']:.1f}x)")


if __name__ == "__main__":
    main()
