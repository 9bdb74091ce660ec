#!/usr/bin/env python
"""What each difference between the published protocol and the project's
does to the numbers, measured on a dataset root's motion capture; and the
effect of the original code's two defects that ``--protocol published``
does not reproduce (implemented here, never in the product path):

* the pelvis tilt at peak activation indexed ``x[:, peak_frames, tilt]``, a
  (N, N) block that mixes every motion's tilt with every motion's peak frame;
* the motion-capture row averaged the W2^2 of cumulative prefixes of the
  session list (sessions[:1], sessions[:2], ...) instead of evaluating the
  sessions once.

    .venv/bin/python bench/bench_published.py --data-root data/mcs_synthetic [--split-file split.json]

Prints Markdown tables (docs/metrics.md quotes them). Activations are the
muscle-driven simulation's, so no surrogate is needed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dataset.repetitions import load_repetitions  # noqa: E402
from metrics.distribution import published_entropy, published_w2  # noqa: E402
from metrics.guidance import kinematic_metrics  # noqa: E402
from metrics.published import (  # noqa: E402
    folders_of, published_fidelity, published_guidance_per_folder, published_summary,
)
from utils.constants import COORD_INDEX, FRAME_RATE, GUIDED_MUSCLES  # noqa: E402

TILT = COORD_INDEX["pelvis_tilt"]


def buggy_tilt_at_peak(motions: np.ndarray, activations: np.ndarray) -> float:
    """The original's indexing: every motion's tilt at every motion's peak frame, averaged."""
    peaks = activations.mean(axis=2).argmax(axis=1)
    return float(motions[:, peaks, TILT].mean())


def cumulative_prefix_w2sq(motions: np.ndarray, sessions: list[str], reference: np.ndarray) -> tuple[float, float]:
    """The original MoCap row: W2^2 of sessions[:1], sessions[:2], ... against the reference, mean and std."""
    order = list(dict.fromkeys(sessions))
    labels = np.asarray(sessions)
    values = [published_w2(motions[np.isin(labels, order[:k])], reference)["w2_squared"]
              for k in range(1, len(order) + 1)]
    return float(np.mean(values)), float(np.std(values))


def fmt(mean: float, std: float | None = None, digits: int = 3) -> str:
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="data/mcs_synthetic")
    p.add_argument("--split-file", default=None)
    args = p.parse_args(argv)
    kw = dict(split_file=args.split_file)
    test_res = load_repetitions(args.data_root, "test", **kw)
    test_tile = load_repetitions(args.data_root, "test", clip_mode="tile", **kw)
    train_res = load_repetitions(args.data_root, "train", **kw)
    dyn_tile = load_repetitions(args.data_root, "test", source="dynamics", clip_mode="tile", **kw)
    ref = dyn_tile.motions.astype(np.float64)
    n_folders = len(set(test_tile.sessions))
    print(f"dataset {args.data_root}: {len(test_tile)} test repetitions in {n_folders} sessions, "
          f"{len(train_res)} training repetitions; {len(dyn_tile)} test Dynamics repetitions (reference)\n")

    print("| MoCap row | W2^2 | entropy (nats) |\n| --- | ---: | ---: |")
    pooled = published_w2(test_res.motions, train_res.motions)["w2_squared"]
    print(f"| project protocol: pooled, test vs training repetitions, resampled | {fmt(pooled)} | "
          f"{fmt(published_entropy(test_res.motions))} |")
    pub = published_fidelity(test_tile.motions.astype(np.float64), test_tile.sessions, ref)
    print(f"| published protocol: per session vs test Dynamics, tiled (mean ± std over {n_folders}) | "
          f"{fmt(pub['w2sq'], pub['w2sq_std'])} | {fmt(pub['entropy'], pub['entropy_std'])} |")
    pooled_tile = published_w2(test_tile.motions, ref)["w2_squared"]
    print(f"| the same reference, all test sessions pooled | {fmt(pooled_tile)} | - |")
    bug = cumulative_prefix_w2sq(test_tile.motions.astype(np.float64), test_tile.sessions, ref)
    print(f"| original defect: mean over cumulative session prefixes | {fmt(*bug)} | - |\n")

    # guidance numbers on the test sessions, simulated activations, tiled as the published protocol
    order = [dyn_tile.muscles.index(m) for m in GUIDED_MUSCLES]
    act = dyn_tile.activations[..., order].astype(np.float64)
    dt_tile = dyn_tile.time_steps()
    per = published_guidance_per_folder(ref, dyn_tile.sessions, dt_tile, act)
    row = published_summary(per, "test")
    bug_tilt = {f: buggy_tilt_at_peak(ref[idx], act[idx]) for f, idx in folders_of(dyn_tile.sessions).items()}
    bt = np.array(list(bug_tilt.values()))
    print("| pelvis tilt at peak activation (deg), test Dynamics, per session | mean ± std over sessions |")
    print("| --- | ---: |")
    print(f"| each motion at its own peak (published protocol) | "
          f"{fmt(row['pelvis_tilt_at_peak_deg'], row['pelvis_tilt_at_peak_deg_std'], 2)} |")
    print(f"| original defect: every tilt at every peak | {fmt(bt.mean(), bt.std(), 2)} |\n")

    x = dyn_tile.motions.astype(np.float64)
    res = load_repetitions(args.data_root, "test", source="dynamics", **kw)
    real = kinematic_metrics(res.motions, res.time_steps())
    at60 = kinematic_metrics(res.motions, 1.0 / FRAME_RATE)
    tiled = kinematic_metrics(x, dt_tile)
    print("| rates, test Dynamics repetitions (mean over motions) | resampled, real time | resampled, 60 Hz "
          "assumed | tiled, real time | published protocol (tiled, per session) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, pkey, label in (
            ("pelvis_velocity_rms_m_s", "pelvis_velocity_rms_m_s", "pelvis velocity RMS (m/s)"),
            ("pelvis_acceleration_rms_m_s2", "pelvis_acceleration_rms_m_s2", "pelvis acceleration RMS (m/s^2)"),
            ("angular_velocity_rms_deg_s", "angular_velocity_rms_deg_s",
             "omega RMS (deg/s): 30 rotations; published: 7 coordinates")):
        print(f"| {label} | {fmt(real[key].mean())} | {fmt(at60[key].mean())} | {fmt(tiled[key].mean())} | "
              f"{fmt(row[pkey], row[pkey + '_std'])} |")
    dur = res.durations
    print(f"\nrepetition durations {dur.min():.2f}-{dur.max():.2f} s (mean {dur.mean():.2f} s); 196 frames at "
          f"60 Hz would be {195 / FRAME_RATE:.2f} s")


if __name__ == "__main__":
    main()
