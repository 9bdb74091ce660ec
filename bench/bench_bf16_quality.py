"""Does bf16 train the VQ-VAE as well as fp32? The demo's VQ-VAE stage
(``configs/demo.yaml``, stage ``vq``: its flags, 600 steps), trained over
``--seeds`` in fp32 and in bf16 autocast from this checkout, and in bf16 from
other checkouts given with ``--variant`` (a checkout before a precision
change, or a patched one, to measure which part of the bf16 path matters).

    .venv/bin/python bench/bench_bf16_quality.py [--seeds 1 2 3 ...] [--jobs 2] \\
        [--variant "label=/path/to/checkout"] [--data-root data/mcs_synthetic] [--out DIR] \\
        [--checkpoint output/demo/vqvae/net_best.pth]

Each run is ``train_vq.py`` in its own process with one thread (on
``--device``, the CPU by default); ``--jobs``
runs go side by side, seeds in turn and the variants of one seed together,
so that a change in the machine's speed hits every variant alike. A run
whose checkpoint in ``--out`` already reached the last step is read, not
repeated (an interrupted benchmark continues). The validation error is
``train_vq.py``'s own: the MAE in degrees of the rotational coordinates on
the held-out training sessions, computed in the run's precision; "best" is
the lowest of its validations (steps 200, 400, 600), "final" the last.

This measures numerics, not speed. On a CPU without bf16 units PyTorch
emulates bf16: operands and results are rounded to bf16 and products are
accumulated in fp32, as bf16 units and GPU tensor cores do, so the errors
match those of native hardware up to the order of the fp32 sums. The
seconds per run are listed, but on such a CPU they are not bf16's speed.

Seeds change the initial weights, the codebook's initialisation and the
batches; at the demo's length their spread (several percent) is larger than
the 2 % that decides whether ``--precision auto`` may pick bf16 (issue 18),
so the table gives each variant's mean over the seeds, its ratio to fp32's
mean and a 95 % bootstrap interval of that ratio. Every variant trains every
seed from the same initial weights on the same batches, so a seed's runs are
a pair: the bootstrap resamples seeds, each drawn seed bringing all its
variants' runs (10,000 draws). Runs of one seed are correlated (the table
lists Pearson's r with fp32), and resampling the variants independently, as
this benchmark did up to 59 seeds, ignored that and gave intervals about
1.6x wider.

A second table checks the trained models by other means than the
validation error they were selected on: every run's ``net_best.pth`` decodes
the test split in fp32, and the table gives each variant's test angle error
and the RMS acceleration of its decodings (the smoothness of what generation
and guidance decode), with the same paired ratios.

A third table takes one trained VQ-VAE (``--checkpoint``, by default the
demo's) and decodes the test split three ways: fp32, bf16 autocast as the
project runs it (the decoder's last layer in fp32,
:mod:`models.float32_layers`), and bf16 with that layer a plain ``Conv1d``
(as before that module: the motion rounded to bf16). Besides the angle error
it lists what frame differences see: the RMS difference from the fp32
decoding of the angles, of their velocity and of their acceleration (60 Hz
differences; rotational coordinates, degrees). A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import machine  # noqa: E402
from dataset.repetitions import load_repetitions  # noqa: E402
from metrics.reconstruction import coordinate_errors  # noqa: E402
from models.vqvae import load_vqvae  # noqa: E402
from utils.checkpoint import load_checkpoint  # noqa: E402
from utils.constants import FRAME_RATE, ROTATION_MASK  # noqa: E402
from utils.device import bf16_support  # noqa: E402
from utils.pipeline_config import load_config, stage_flags  # noqa: E402

STAGE = "vq"
"""The pipeline stage whose flags the runs use."""


@dataclass(frozen=True)
class Variant:
    label: str
    checkout: Path
    precision: str


@dataclass
class Result:
    best: float
    final: float
    seconds: float | None
    folder: Path


def demo_vq_args(config: Path, data_root: str) -> dict:
    """The ``vq`` stage's flags from the pipeline config, with its own data root,
    without the flags a benchmark run sets itself."""
    _, stages = load_config(config)
    stage = next((s for s in stages if s.name == STAGE), None)
    if stage is None:
        raise SystemExit(f"{config}: no stage named {STAGE!r}")
    args = dict(stage.args)
    for key in ("out-dir", "exp-name", "num-threads", "snapshot-iter", "seed", "precision", "device"):
        args.pop(key, None)
    args["data-root"] = data_root
    args["no-progress"] = True
    return args


def run_one(variant: Variant, seed: int, flags: list[str], out: Path, total: int, device: str) -> Result:
    """One training run (or the result of an earlier one in ``out``)."""
    name = f"{variant.label.replace(' ', '_').replace('/', '_')}-seed{seed}"
    last = out / name / "net_last.pth"
    seconds = None
    state = load_checkpoint(last) if last.is_file() else None
    if state is None or state["step"] < total:
        cmd = [sys.executable, str(variant.checkout / "train_vq.py"), *flags, "--out-dir", str(out),
               "--exp-name", name, "--seed", str(seed), "--precision", variant.precision, "--device", device,
               "--num-threads", "1", "--overwrite"]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(variant.checkout))
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=variant.checkout, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{variant.label}, seed {seed}: train_vq.py failed:\n{proc.stderr[-2000:]}")
        state = load_checkpoint(last)
    return Result(best=float(state["best"]), final=float(state["val"]["mae_deg"]), seconds=seconds,
                  folder=out / name)


def ratio_interval(values: list[float], reference: list[float], draws: int = 10_000) -> tuple[float, float]:
    """95 % bootstrap interval of mean(values) / mean(reference), where ``values[i]`` and
    ``reference[i]`` are runs of the same seed: seeds are resampled, each with both its runs."""
    if len(values) != len(reference):
        raise ValueError(f"paired runs expected: {len(values)} values against {len(reference)} references")
    rng = np.random.default_rng(0)
    v, r = np.asarray(values), np.asarray(reference)
    seeds = rng.integers(0, len(v), (draws, len(v)))
    ratios = v[seeds].mean(1) / r[seeds].mean(1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def ratio_cells(values: list[float], refs: list[float] | None, digits: int = 3) -> list[str]:
    """``mean ± SD`` of ``values`` and, against the paired ``refs`` (None for the
    reference itself), the ratio of the means with its paired bootstrap interval."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    cells = [f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"]
    if refs is None:
        return cells + ["1"]
    low, high = ratio_interval(values, refs)
    return cells + [f"{statistics.mean(values) / statistics.mean(refs):.3f} [{low:.3f}, {high:.3f}]"]


def rms_rate(motions: np.ndarray, order: int) -> float:
    """RMS of the ``order``-th frame difference of the rotational coordinates of
    ``motions`` (N, T, 33), in deg/s^order at :data:`FRAME_RATE` (order 2: acceleration)."""
    d = np.diff(motions[..., np.asarray(ROTATION_MASK, dtype=bool)], order, axis=1)
    return float(np.sqrt(np.mean(d ** 2)) * FRAME_RATE ** order)


def test_split_table(results: dict[str, list[Result]], data_root: str) -> None:
    """Every run's ``net_best.pth`` decoding the test split in fp32: its angle
    error and the RMS acceleration of what it decodes (how smooth the motion
    that generation and guidance start from is), each variant against fp32."""
    first = load_checkpoint(results["fp32"][0].folder / "net_best.pth")
    reps = load_repetitions(data_root, "test", split_file=first.get("args", {}).get("split_file"))
    scores: dict[str, dict[str, list[float]]] = {}
    for label, rs in results.items():
        scores[label] = {"mae": [], "acc": []}
        for r in rs:
            model, normalizer, _ = load_vqvae(r.folder / "net_best.pth")
            decoded = model.reconstruct(reps.motions, normalizer, batch_size=64, precision="fp32")
            scores[label]["mae"].append(coordinate_errors(decoded, reps.motions)["mae_deg"])
            scores[label]["acc"].append(rms_rate(decoded, 2))
    print(f"\neach run's net_best.pth decoding the test split ({len(reps.motions)} clips) in fp32; ratio = mean / "
          "fp32's mean [95 % paired bootstrap interval]\n")
    print("| variant | test MAE (deg) | ratio to fp32 | RMS acceleration (deg/s^2) | ratio to fp32 |\n"
          "| --- | ---: | ---: | ---: | ---: |")
    ref = scores["fp32"]
    for label, sc in scores.items():
        refs = None if label == "fp32" else ref
        cells = [label, *ratio_cells(sc["mae"], refs and refs["mae"]), *ratio_cells(sc["acc"], refs and refs["acc"], 1)]
        print("| " + " | ".join(cells) + " |")
    print(f"\nfor scale: RMS acceleration of the test split's motion capture {rms_rate(reps.motions, 2):.1f} "
          "deg/s^2")


def decode_table(checkpoint: Path, data_root: str) -> None:
    """Decode the test split with one model in fp32 and two bf16 ways (see the module text)."""
    model, normalizer, ckpt = load_vqvae(checkpoint)
    reps = load_repetitions(data_root, "test", split_file=ckpt.get("args", {}).get("split_file"))
    last = model.decoder.model[-1]
    plain = torch.nn.Conv1d(last.in_channels, last.out_channels, last.kernel_size, last.stride, last.padding)
    plain.load_state_dict(last.state_dict())
    decoded = {}
    for label, layer, precision in (("fp32", last, "fp32"), ("bf16, output layer in fp32 (now)", last, "bf16"),
                                    ("bf16, output layer in bf16 (before)", plain, "bf16")):
        model.decoder.model[-1] = layer
        decoded[label] = model.reconstruct(reps.motions, normalizer, batch_size=64, precision=precision)
    model.decoder.model[-1] = last

    print(f"\ndecoding the test split ({len(reps.motions)} clips) with {checkpoint} (trained in "
          f"{ckpt.get('args', {}).get('precision', '?')}); RMS difference from the fp32 decoding, rotational "
          "coordinates\n")
    print("| decoding | test MAE (deg) | angle (deg) | velocity (deg/s) | acceleration (deg/s^2) |\n"
          "| --- | ---: | ---: | ---: | ---: |")
    ref = decoded["fp32"]
    for label, motion in decoded.items():
        mae = coordinate_errors(motion, reps.motions)["mae_deg"]
        print(f"| {label} | {mae:.3f} | {rms_rate(motion - ref, 0):.4f} | {rms_rate(motion - ref, 1):.3f} | "
              f"{rms_rate(motion - ref, 2):.1f} |")
    print(f"\nfor scale: RMS acceleration of the motion capture itself {rms_rate(reps.motions, 2):.1f} deg/s^2")


def validation_table(results: dict[str, list[Result]], total: int, seeds: list[int]) -> None:
    """Each variant's best and final validation error against fp32's, and every seed's."""
    print(f"validation MAE (deg) after {total} steps, {len(seeds)} seeds; ratio = mean / fp32's mean "
          "[95 % paired bootstrap interval]; r = Pearson's r with fp32 over the seeds\n")
    if len(seeds) < 20:
        print(f"(with {len(seeds)} seeds the bootstrap intervals are too narrow to trust: they only know the "
              "spread of the seeds drawn)\n")
    print("| variant | best: mean ± SD | best: ratio to fp32 | final: mean ± SD | final: ratio to fp32 | r (best / final) "
          "| s per run (median) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ref = results["fp32"]
    for label, rs in results.items():
        cells, correlations = [label], []
        for key in ("best", "final"):
            values = [getattr(r, key) for r in rs]
            refs = None if label == "fp32" else [getattr(r, key) for r in ref]
            cells += ratio_cells(values, refs)
            if refs is not None and len(values) > 2:
                correlations.append(f"{statistics.correlation(values, refs):.2f}")
        cells.append(" / ".join(correlations))
        secs = [r.seconds for r in rs if r.seconds is not None]
        cells.append(f"{statistics.median(secs):.0f}" if secs else "(reused)")
        print("| " + " | ".join(cells) + " |")
    print("\nper seed (best / final):")
    for label, rs in results.items():
        print(f"  {label}: " + ", ".join(f"{s}: {r.best:.3f} / {r.final:.3f}" for s, r in zip(seeds, rs)))


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6, 7, 8],
                   help="training seeds (each variant trains once per seed)")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=PATH",
                   help="also train in bf16 from the checkout PATH (repeatable), reported as LABEL")
    p.add_argument("--jobs", type=int, default=2, help="training runs side by side (one thread each)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the runs train (cuda: bf16 as that GPU computes it)")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml",
                   help=f"pipeline config whose {STAGE!r} stage gives the training flags")
    p.add_argument("--data-root", default=str(ROOT / "data" / "mcs_synthetic"),
                   help="dataset (make demo writes the embedded one here)")
    p.add_argument("--checkpoint", type=Path, default=ROOT / "output" / "demo" / "vqvae" / "net_best.pth",
                   help="a trained VQ-VAE for the decoding table (skipped when the file is absent)")
    p.add_argument("--out", type=Path, default=None,
                   help="keep the runs here (finished runs are reused); default: a temporary folder")
    args = p.parse_args()
    if not Path(args.data_root, "split.json").is_file() and not Path(args.data_root, "Data").is_dir():
        raise SystemExit(f"{args.data_root}: no dataset there; run `make demo` first or pass --data-root")
    variants = [Variant("fp32", ROOT, "fp32"), Variant("bf16", ROOT, "bf16")]
    for item in args.variant:
        label, sep, path = item.partition("=")
        if not sep or not Path(path, "train_vq.py").is_file():
            raise SystemExit(f"--variant {item!r}: expected LABEL=PATH with PATH a checkout holding train_vq.py")
        variants.append(Variant(label, Path(path).resolve(), "bf16"))
    vq = demo_vq_args(args.config, args.data_root)
    total = int(vq["total-iter"])
    flags = stage_flags(vq)

    print(machine())
    print(f"bf16: {bf16_support(torch.device(args.device))[1]}; load average at start {_load_average()}")
    print(f"train_vq.py {' '.join(flags)} --seed S --precision P --num-threads 1 ({args.config.name}, stage "
          f"{STAGE!r}); seeds {args.seeds}; {args.jobs} runs side by side")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        jobs = [(v, s) for s in args.seeds for v in variants]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            done = list(pool.map(lambda job: run_one(job[0], job[1], flags, out, total, args.device), jobs))
        results: dict[str, list[Result]] = {v.label: [] for v in variants}
        for (v, _), r in zip(jobs, done):
            results[v.label].append(r)
        print(f"load average at end {_load_average()}\n")
        validation_table(results, total, args.seeds)
        test_split_table(results, args.data_root)  # reads the runs' checkpoints: before ``tmp`` goes
    if args.checkpoint.is_file():
        decode_table(args.checkpoint, args.data_root)
    else:
        print(f"\ndecoding table skipped: {args.checkpoint} does not exist (run `make demo` or pass --checkpoint)")


if __name__ == "__main__":
    main()
