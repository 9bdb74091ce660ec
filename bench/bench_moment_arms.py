"""One simulation (inverse dynamics + static optimisation) of a motion with the
model loaded, with this checkout's moment arms and with another checkout's,
in the same process, interleaved: time per simulation and the largest
activation difference.

    .venv/bin/python bench/bench_moment_arms.py --reference /work/main \\
        [--data-root data/mcs_synthetic] [--motions 4] [--frames 196] [--rounds 5] [--real]

``--reference`` is a checkout of the project whose
``dataset/synthetic/muscle_dynamics.py`` provides the "before" moment arms
(its ``_moment_arms`` replaces this one's for the "before" runs; everything
else is this checkout's). Motions are the first ``--motions`` repetitions
(``kinematics_activations_*.mot``) of ``--data-root`` (or, with ``--frames``,
the first frames of its first sessions' kinematics), each simulated with its
session's scaled model as ``metrics.simulation.simulate_activations`` does;
``--real`` adds OpenCap's IK of five squats (tests/data/real_opencap) with
the generic model scaled by OpenSim's ScaleTool to its subject. Prints a
markdown table: median seconds per simulation over the rounds, the median of
the per-round ratios, and max |activation before - after|. A benchmark, not
a test.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.common import machine  # noqa: E402
from dataset.mcs import session_model_for  # noqa: E402
from dataset.synthetic import muscle_dynamics  # noqa: E402
from metrics import simulation  # noqa: E402
from utils.motion_io import read_motion  # noqa: E402
from utils.osim_log import opensim_quiet  # noqa: E402

REAL_IK = Path(__file__).resolve().parents[1] / "tests" / "data" / "real_opencap" / "opencap-processing" / \
    "squats1_videoAndMocap.mot"


def _reference_moment_arms(checkout: Path):
    """``_moment_arms`` of another checkout's muscle_dynamics.py."""
    path = checkout / "dataset" / "synthetic" / "muscle_dynamics.py"
    spec = importlib.util.spec_from_file_location("reference_muscle_dynamics", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module._moment_arms


def _synthetic_motions(root: Path, n: int, frames: int | None = None
                       ) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(label, model, coords (T, 33), times (T,)) of the first ``n`` repetitions
    under ``root``, or with ``frames`` the first ``frames`` frames of the first
    ``n`` sessions' kinematics."""
    pattern = "Data/*/OpenSimData/Kinematics/*.mot" if frames else \
        "Data/*/OpenSimData/Dynamics/*/kinematics_activations_*.mot"
    out = []
    for f in sorted(root.glob(pattern))[:n]:
        table = read_motion(f)
        name = f.stem if frames else f.parent.name
        out.append((f"{f.parents[3 if not frames else 2].name[:8]}/{name}", str(session_model_for(f)),
                    table.coordinates()[:frames], table.times[:frames]))
    return out


def _real_motion(tmp: Path) -> tuple[str, str, np.ndarray, np.ndarray]:
    from tests.real_session import scaled_model

    with opensim_quiet():
        model = scaled_model(tmp / "real_scaled.osim")
    table = read_motion(REAL_IK)
    return "real OpenCap IK", str(model), table.coordinates(), table.times


def _simulate(model: str, x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    with opensim_quiet():
        act, _ = simulation.simulate_activations(model, x, t)
    return act, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True, help="checkout providing the 'before' moment arms")
    p.add_argument("--data-root", type=Path, default=Path("data/mcs_synthetic"), help="MCS-layout synthetic dataset")
    p.add_argument("--motions", type=int, default=4, help="repetitions of the dataset to simulate")
    p.add_argument("--frames", type=int, default=None,
                   help="simulate the first FRAMES frames of each session's kinematics instead of its repetitions "
                        "(196: a generated motion)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of before and after")
    p.add_argument("--real", action="store_true", help="also the real OpenCap IK (801 frames at 100 Hz)")
    args = p.parse_args()

    variants = {"before": _reference_moment_arms(args.reference), "after": muscle_dynamics._moment_arms}
    with tempfile.TemporaryDirectory() as tmp:
        motions = _synthetic_motions(args.data_root, args.motions, args.frames)
        if args.real:
            motions.append(_real_motion(Path(tmp)))
        for _, model, x, t in motions:  # load every model once (the per-process cache), untimed
            _simulate(model, x, t)
        times = {(m[0], v): [] for m in motions for v in variants}
        acts: dict[tuple[str, str], np.ndarray] = {}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(variants)[::-1]
            for label, model, x, t in motions:
                for v in order:
                    muscle_dynamics._moment_arms = variants[v]
                    acts[label, v], dt = _simulate(model, x, t)
                    times[label, v].append(dt)
        muscle_dynamics._moment_arms = variants["after"]

    print(f"{machine()}; load average {os.getloadavg()[0]:.2f}")
    print(f"reference {args.reference}; {args.rounds} interleaved rounds\n")
    print("| motion | frames | s before | s after | after / before | max abs diff |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, _, x, _ in motions:
        before, after = times[label, "before"], times[label, "after"]
        ratio = statistics.median(a / b for a, b in zip(after, before))
        diff = float(np.abs(acts[label, "before"] - acts[label, "after"]).max())
        print(f"| {label} | {len(x)} | {statistics.median(before):.3f} | {statistics.median(after):.3f} | "
              f"**{ratio:.2f}** | {diff:.1e} |")


if __name__ == "__main__":
    main()
