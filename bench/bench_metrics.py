"""Time the metrics of 1,000 motions of 196 frames against a reference set of
1,000 motions: the distribution numbers (Gaussian W2^2 and entropy, exact
per-coordinate W1, EMD W2 on 300 + 100 bootstrap resamples, sliced W2 with 256
directions + 100 bootstrap resamples) and the guidance metrics (surrogate of
the default MLP size, forward kinematics of the foot points, kinematics).

Baseline measured in the same run: the straightforward per-sample /
per-coordinate loops (``np.histogram`` per sample, ``scipy.stats.
wasserstein_distance`` per coordinate, kinematic metrics one motion at a time).

    .venv/bin/python bench/bench_metrics.py [--motions 1000] [--repeats 3] [--threads 1]

Every part is reported as wall time and as CPU time of the process (all its
threads). With ``--threads 1`` (the default; BLAS and torch on one thread) the
CPU time is what the part costs on one idle core, which stays meaningful when
other jobs share the machine and inflate the wall time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # thread counts must be set before numpy / torch load
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    if _threads != "0":
        for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[_var] = _threads

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine  # noqa: E402
from metrics.distribution import (  # noqa: E402
    TRANSLATION_MASK, compare_sets, emd_w2, per_coordinate_w1, published_entropy, published_w2, sliced_w2,
)
from metrics.evaluate import foot_positions, load_forward_kinematics, surrogate_activations  # noqa: E402
from metrics.guidance import activation_metrics, foot_metrics, kinematic_metrics  # noqa: E402
from utils.constants import COORD_INDEX, COORDINATES, GUIDED_MUSCLES  # noqa: E402
from utils.device import set_threads  # noqa: E402


def squats(n: int, seed: int) -> np.ndarray:
    """``n`` squat-like motions (n, 196, 33), degrees / metres."""
    rng = np.random.default_rng(seed)
    s = (1 - np.cos(np.linspace(0, 2 * np.pi, 196))) / 2
    x = rng.normal(0.0, 2.0, size=(n, 196, len(COORDINATES)))
    x[..., TRANSLATION_MASK] *= 0.005
    depth = rng.uniform(60, 110, size=(n, 1))
    for side in "lr":
        x[..., COORD_INDEX[f"knee_angle_{side}"]] += depth * s
        x[..., COORD_INDEX[f"hip_flexion_{side}"]] += 0.9 * depth * s
    x[..., COORD_INDEX["pelvis_ty"]] += 0.95 - 0.0035 * depth * s
    return x.astype(np.float32)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall time and median process CPU time of ``fn()`` over ``repeats`` runs, seconds."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def baseline_distribution(a: np.ndarray, b: np.ndarray) -> None:
    """Published numbers and per-coordinate W1 with per-sample / per-coordinate loops."""
    import scipy.stats

    published_w2(a, b)
    for x in a:
        counts, _ = np.histogram(x.ravel(), bins=10)
        p = counts[counts > 0] / counts.sum()
        -(p * np.log(p)).sum()
    fa, fb = a.reshape(-1, 33).astype(np.float64), b.reshape(-1, 33).astype(np.float64)
    for k in range(33):
        scipy.stats.wasserstein_distance(fa[:, k], fb[:, k])


def baseline_kinematics(a: np.ndarray) -> None:
    for x in a:
        kinematic_metrics(x[None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--motions", type=int, default=1000)
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS / torch threads (0: library defaults)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    import torch

    set_threads(args.threads)

    from models.surrogate import SurrogateModel
    from utils.checkpoint import save_checkpoint
    from metrics.evaluate import load_surrogate_model

    a, b = squats(args.motions, 0), squats(args.reference, 1)
    fk, note = load_forward_kinematics()
    with tempfile.TemporaryDirectory() as tmp:  # the surrogate goes through its checkpoint, as in the script
        model = SurrogateModel("mlp", muscles=GUIDED_MUSCLES)
        save_checkpoint(Path(tmp) / "s.pth", model=model.state_dict(), model_config=model.model_config(),
                        coordinates=list(COORDINATES), muscles=list(model.muscles))
        surrogate = load_surrogate_model(Path(tmp) / "s.pth", "cpu", GUIDED_MUSCLES)

    parts = {
        "Gaussian W2^2 + entropy": lambda: (published_w2(a, b), published_entropy(a)),
        "per-coordinate W1 (exact)": lambda: per_coordinate_w1(a, b),
        "EMD W2, 300x300, 100 bootstrap": lambda: emd_w2(a, b, 300, 100),
        "sliced W2, 256 dirs, 100 bootstrap": lambda: sliced_w2(a, b, 256, 100),
        "surrogate activations + band": lambda: activation_metrics(
            surrogate_activations(a, surrogate, GUIDED_MUSCLES, progress=False), GUIDED_MUSCLES),
        "forward kinematics + foot metrics": lambda: foot_metrics(foot_positions(a, fk, threads=None)[0]),
        "kinematic metrics": lambda: kinematic_metrics(a),
    }
    times = {name: timed(fn, args.repeats) for name, fn in parts.items()}

    def everything() -> None:
        compare_sets(a, b)
        acts = surrogate_activations(a, surrogate, GUIDED_MUSCLES, progress=False)
        activation_metrics(acts, GUIDED_MUSCLES)
        foot_metrics(foot_positions(a, fk, threads=None)[0])
        kinematic_metrics(a)

    t_all = timed(everything, args.repeats)
    t_base_dist = timed(lambda: baseline_distribution(a, b), args.repeats)
    t_new_dist = timed(lambda: (published_w2(a, b), published_entropy(a), per_coordinate_w1(a, b)), args.repeats)
    t_base_kin = timed(lambda: baseline_kinematics(a), args.repeats)

    print(machine())
    print(f"load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after the run, {os.cpu_count()} cores")
    print(f"{args.motions} motions x 196 frames vs a reference of {args.reference}; median of {args.repeats} runs")
    print(f"  {'part':40s} {'wall s':>8s} {'CPU s':>8s}")
    for name, (w, c) in times.items():
        print(f"  {name:40s} {w:8.2f} {c:8.2f}")
    print(f"  {'all metrics of the set (budget 30 s)':40s} {t_all[0]:8.2f} {t_all[1]:8.2f}")
    print("baseline (per-sample / per-coordinate loops) in the same run, CPU s:")
    print(f"  Gaussian W2^2 + entropy + W1: loops {t_base_dist[1]:6.2f}, vectorised {t_new_dist[1]:6.2f} "
          f"({t_base_dist[1] / t_new_dist[1]:.1f}x)")
    print(f"  kinematic metrics: per motion {t_base_kin[1]:6.2f}, batched {times['kinematic metrics'][1]:6.2f} "
          f"({t_base_kin[1] / times['kinematic metrics'][1]:.1f}x)")
    print(f"torch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"(benchmark wall time {time.time() - t0:.0f} s)")
