"""Distances between generated motion sets and the motion-capture dataset,
under one of two protocols (``--protocol``, see docs/metrics.md):

* ``project`` (default): against the training split; the Gaussian W2^2 of the
  pooled sets and entropy, exact per-coordinate W1, and earth mover's /
  sliced W2 between whole motions with bootstrap intervals;
* ``published``: the paper's protocol, for comparability: W2^2 per subject
  folder against the test sessions' Dynamics kinematics (clips tiled), mean ±
  std over folders, and the entropy.

    python calculate_wasserstein.py --file_type mot --folder_path output/guidance/BIGE --data-root data/mcs_synthetic
    python calculate_wasserstein.py --compare data/mcs_synthetic output/vq_samples output/guidance/BIGE \\
        --labels MoCap VQ-VAE BIGE --data-root data/mcs_synthetic [--protocol published]
"""
from __future__ import annotations

import time

from metrics.evaluate import (
    DISTRIBUTION_COLUMNS, PROTOCOL_TITLES, PUBLISHED_DISTRIBUTION_COLUMNS, UNITS, distribution_row, input_specs,
    options_dict, output_location, per_coordinate_columns, published_distribution_row, resolve_protocol, set_info,
)
from metrics.report import markdown_table, output_paths, text_table, write_outputs
from options.metrics import get_wasserstein_parser
from utils.cli import run as run_cli
from utils.motion_sets import MotionSet, load_mocap, load_motion_set

NOTES = (
    "Gaussian W2^2 (pooled): (mu1-mu2)^2 + (s1-s2)^2 of each set flattened to one pool (the paper's formula on "
    "pooled sets, not its protocol; gaussian_w2 in the CSV/JSON is its square root)",
    "entropy: mean Shannon entropy (nats) of a 10-bin histogram per sample; max log 10 = 2.303",
    "W1: exact 1-D Wasserstein per coordinate, pooled over frames; mean over rotations (deg) and translations (cm)",
    "EMD / sliced W2: optimal transport between whole motions, ground metric sqrt(mean_t ||x_t - y_t||^2) "
    "(deg, translations in cm); bracket = bootstrap interval",
    "W1 / EMD / sliced see pelvis_tx/tz relative to each motion's first frame (the lab origin differs per "
    "session) unless --absolute-horizontal; the row's 'horizontal' field in the CSV/JSON says which",
)

PUBLISHED_NOTES = (
    "published protocol: W2^2 = (mu1-mu2)^2 + (s1-s2)^2 of each subject folder's motions (flattened, degrees and "
    "metres as stored) against the reference; mean ± population std over folders (n = folders)",
    "reference: the test sessions' muscle-driven (Dynamics) kinematics; every repetition brought to the clip "
    "length by tiling, as the original code did",
    "entropy: mean over motions of the 10-bin entropy (nats); ± std over folders of the folder means",
)


def load_reference(args) -> MotionSet:
    """The reference set of ``args.protocol``: the ``--reference-split``
    repetitions (project), or the test sessions' Dynamics kinematics, tiled
    (published)."""
    return load_mocap(args.data_root, split=args.reference_split, length=args.clip_length,
                      clip_mode=args.clip_mode, split_file=args.split_file,
                      with_activations=args.protocol == "published")


def reference_label(args) -> str:
    """How the tables name the reference set."""
    if args.protocol == "published":
        return "test split, muscle-driven (Dynamics) kinematics, tiled"
    return f"{args.reference_split} split"


def main(args) -> list[dict]:
    """Evaluate every set the options name; print and write the table. Returns the rows."""
    started = time.time()
    protocol = resolve_protocol(args)
    specs = input_specs(args)
    out_dir, stem = output_location(args, "wasserstein", bool(args.compare))
    paths = output_paths(out_dir, stem, args.overwrite)
    progress = not args.no_progress
    reference = load_reference(args)
    print(f"{PROTOCOL_TITLES[protocol]}")
    print(f"reference: {reference.describe()} [{reference_label(args)}]")
    rows, infos = [], []
    for label, folder, kind in specs:
        mset = load_motion_set(folder, kind, split=args.split, length=args.clip_length, clip_mode=args.clip_mode,
                               split_file=args.split_file, workers=args.workers, strict=args.strict,
                               progress=progress)
        for line in mset.report_lines(limit=10_000 if args.verbose else 5):
            print(line)
        if protocol == "published":
            rows.append(published_distribution_row(label, mset, reference.motions))
        else:
            rows.append(distribution_row(label, mset, reference.motions, ot_samples=args.ot_samples,
                                         bootstrap=args.bootstrap, projections=args.projections,
                                         confidence=args.confidence, seed=args.seed,
                                         multivariate=not args.no_multivariate,
                                         horizontal="absolute" if args.absolute_horizontal else "relative"))
            rows[-1]["protocol"] = "project"
        infos.append(set_info(label, mset))
    write_distribution_tables(args, paths, rows, reference, infos, "calculate_wasserstein.py", started,
                              "Distribution metrics")
    return rows


def write_distribution_tables(args, paths, rows, reference, infos, script: str, started: float,
                              title: str) -> None:
    """Print the table of ``args.protocol`` and write CSV / JSON / Markdown."""
    published = args.protocol == "published"
    columns = PUBLISHED_DISTRIBUTION_COLUMNS if published else DISTRIBUTION_COLUMNS
    print()
    print(text_table(rows, columns))
    extra_md = ""
    if not published:
        coord_rows, coord_cols = per_coordinate_columns(rows)
        extra_md = markdown_table(coord_rows, coord_cols)
        if args.verbose:
            print()
            print(text_table(coord_rows, coord_cols))
    payload = {"script": script, "protocol": args.protocol, "options": options_dict(args),
               "reference": set_info(reference_label(args), reference), "sets": infos,
               "units": UNITS, "seconds": round(time.time() - started, 2)}
    notes = [f"reference: {reference.describe()} [{reference_label(args)}]",
             *(PUBLISHED_NOTES if published else NOTES)]
    write_outputs(paths, rows, columns, payload, f"{title}: {PROTOCOL_TITLES[args.protocol]}",
                  notes=notes, extra_md=extra_md)
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")


if __name__ == "__main__":
    run_cli(main, get_wasserstein_parser())
