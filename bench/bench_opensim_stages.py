"""The two OpenSim stages on the demo's critical path, each run in a fresh
process: one verification simulation (``metrics.simulation.simulate_activations``
of one motion with its subject's model loaded) and one synthetic-data session
(``dataset.synthetic.synthesize.build_session``), with this checkout and, in
turn, with a reference checkout.

    .venv/bin/python bench/bench_opensim_stages.py [--reference /work/main] \\
        [--motion output/demo/BIGE/<session>/entry_0_BIGE.mot] [--data-root data/mcs_synthetic] \\
        [--repeats 5] [--rounds 3] [--session 0] [--no-session]

Each round runs every checkout's simulation process, then every checkout's
session process (the order alternates between rounds). A simulation process
loads the model with one untimed call, then times ``--repeats`` calls (its
median is the round's figure); a session process imports the generator, then
times one session (subject ``--session`` of seed 0, five squats) written to
a temporary folder. Prints a markdown table: median seconds over the rounds,
the median of the per-round ratios to the reference, the largest activation
difference and how many of the session's files are byte-identical. Without
``--motion``: the first ``entry_*.mot`` under ``output/demo/BIGE`` (a guided
motion; its session's model from ``--data-root``), else the first 196 frames
of the first session's kinematics. A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.common import machine  # noqa: E402

SIMULATION = """
import json, statistics, sys, time
import numpy as np
from metrics.simulation import simulate_activations
from utils.motion_io import read_motion
from utils.osim_log import opensim_quiet
model, motion, frames, repeats, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
table = read_motion(motion)
x, t = table.coordinates()[:frames], table.times[:frames]
with opensim_quiet():
    act, _ = simulate_activations(model, x, t)  # loads the model
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        act, _ = simulate_activations(model, x, t)
        seconds.append(time.perf_counter() - start)
np.save(out, act)
print(json.dumps(statistics.median(seconds)))
"""

SESSION = """
import json, sys, time
from dataset.synthetic import muscle_dynamics, opencap_model, squat_kinematics  # noqa: F401 (imports untimed)
from dataset.synthetic.synthesize import build_session
root, index = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
build_session(root, 0, index, 5)
print(json.dumps(time.perf_counter() - start))
"""


def _run(checkout: Path, code: str, *args: str) -> float:
    """Seconds printed by ``code`` run with ``args`` in a fresh process importing ``checkout``."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=checkout, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{checkout}: benchmark process failed:\n{proc.stderr[-2000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1]))


def _default_motion(data_root: Path) -> tuple[Path, Path, int]:
    """(motion file, model, frames): a guided demo motion if there is one, else a session's kinematics."""
    from dataset.mcs import session_model_for

    for motion in sorted(Path("output/demo/BIGE").glob("*/entry_*.mot")):
        model = session_model_for(data_root / "Data" / motion.parent.name / "OpenSimData" / "Kinematics" / "x.mot")
        if model is not None:
            return motion, model, 196
    motion = sorted(data_root.glob("Data/*/OpenSimData/Kinematics/*.mot"))[0]
    return motion, session_model_for(motion), 196


def _same_files(a: Path, b: Path) -> tuple[int, int]:
    """(byte-identical files, files) of two trees with the same file names."""
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return sum(filecmp.cmp(a / n, b / n, shallow=False) for n in names), len(names)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, default=None, help="checkout to compare with (e.g. the main branch)")
    p.add_argument("--motion", type=Path, default=None, help="motion (.mot) to simulate")
    p.add_argument("--model", type=Path, default=None, help="its subject's scaled model (default: its session's)")
    p.add_argument("--frames", type=int, default=196, help="frames of the motion simulated")
    p.add_argument("--data-root", type=Path, default=Path("data/mcs_synthetic"), help="MCS-layout dataset")
    p.add_argument("--repeats", type=int, default=5, help="timed simulations per process")
    p.add_argument("--rounds", type=int, default=3, help="rounds of one process per checkout and stage")
    p.add_argument("--session", type=int, default=0, help="subject index of the timed session (seed 0)")
    p.add_argument("--no-session", action="store_true", help="time the simulation only")
    args = p.parse_args()

    if args.motion is None:
        args.motion, model, args.frames = _default_motion(args.data_root)
    else:
        from dataset.mcs import session_model_for

        model = args.model or session_model_for(args.motion)
    if model is None:
        raise SystemExit(f"no model for {args.motion}: pass --model")
    checkouts = {"this checkout": ROOT}
    if args.reference is not None:
        checkouts = {"reference": args.reference.resolve(), **checkouts}
    sim: dict[str, list[float]] = {c: [] for c in checkouts}
    ses: dict[str, list[float]] = {c: [] for c in checkouts}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(args.rounds):
            order = list(checkouts) if r % 2 == 0 else list(checkouts)[::-1]
            for c in order:
                sim[c].append(_run(checkouts[c], SIMULATION, str(Path(model).resolve()),
                                   str(args.motion.resolve()), str(args.frames), str(args.repeats),
                                   str(tmp / f"act_{list(checkouts).index(c)}.npy")))
            if not args.no_session:
                for c in order:
                    out = tmp / f"session_{list(checkouts).index(c)}_{r}"
                    ses[c].append(_run(checkouts[c], SESSION, str(out), str(args.session)))
        acts = [np.load(tmp / f"act_{i}.npy") for i in range(len(checkouts))]
        same = _same_files(tmp / "session_0_0", tmp / "session_1_0") if len(checkouts) > 1 and not args.no_session \
            else None

    print(f"{machine()}; load average {os.getloadavg()[0]:.2f}")
    print(f"motion {args.motion} ({args.frames} frames), model {model}; {args.rounds} rounds, "
          f"{args.repeats} simulations per process; session {args.session} of seed 0\n")
    ref = "reference" if "reference" in checkouts else None
    print("| stage | checkout | s (median) | vs reference |\n| --- | --- | ---: | ---: |")
    for stage, times in (("one simulation", sim), ("one data session", ses)):
        if not times[next(iter(times))]:
            continue
        for c in checkouts:
            ratio = "" if ref is None or c == ref else \
                f"**{statistics.median(a / b for a, b in zip(times[c], times[ref])):.2f}x**"
            print(f"| {stage} | {c} | {statistics.median(times[c]):.3f} | {ratio} |")
    if ref is not None:
        print(f"\nmax |activation difference| between the checkouts: {float(np.abs(acts[0] - acts[1]).max()):.1e}")
        if same is not None:
            print(f"session files byte-identical: {same[0]} of {same[1]}")


if __name__ == "__main__":
    main()
