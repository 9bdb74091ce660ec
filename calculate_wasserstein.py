"""Distances between generated motion sets and the training split of the
motion-capture dataset: the published Gaussian W2^2 and entropy, exact
per-coordinate W1, and earth mover's / sliced W2 between whole motions with
bootstrap intervals. See docs/metrics.md.

    python calculate_wasserstein.py --file_type mot --folder_path output/guidance/BIGE --data-root data/mcs_synthetic
    python calculate_wasserstein.py --compare data/mcs_synthetic output/vq_samples output/guidance/BIGE \
        --labels MoCap VQ-VAE BIGE --data-root data/mcs_synthetic
"""
from __future__ import annotations

import time

from metrics.evaluate import (
    DISTRIBUTION_COLUMNS, UNITS, distribution_row, input_specs, options_dict, output_location,
    per_coordinate_columns, set_info,
)
from metrics.report import markdown_table, output_paths, text_table, write_outputs
from options.metrics import get_wasserstein_parser
from utils.cli import run as run_cli
from utils.motion_sets import load_mocap, load_motion_set

NOTES = (
    "W2^2 published: (mu1-mu2)^2 + (s1-s2)^2 of each set flattened to one pool (the published form; "
    "published_w2 in the CSV/JSON is its square root)",
    "entropy: mean Shannon entropy (nats) of a 10-bin histogram per sample; max log 10 = 2.303",
    "W1: exact 1-D Wasserstein per coordinate, pooled over frames; mean over rotations (deg) and translations (cm)",
    "EMD / sliced W2: optimal transport between whole motions, ground metric sqrt(mean_t ||x_t - y_t||^2) "
    "(deg, translations in cm); bracket = bootstrap interval",
    "W1 / EMD / sliced see pelvis_tx/tz relative to each motion's first frame (the lab origin differs per "
    "session) unless --absolute-horizontal; the row's 'horizontal' field in the CSV/JSON says which",
)


def main(args) -> list[dict]:
    """Evaluate every set the options name; print and write the table. Returns the rows."""
    started = time.time()
    specs = input_specs(args)
    out_dir, stem = output_location(args, "wasserstein", bool(args.compare))
    paths = output_paths(out_dir, stem, args.overwrite)
    progress = not args.no_progress
    reference = load_mocap(args.data_root, split=args.reference_split, length=args.clip_length,
                           clip_mode=args.clip_mode, split_file=args.split_file)
    print(f"reference: {reference.describe()} [{args.reference_split} split]")
    rows, infos = [], []
    for label, folder, kind in specs:
        mset = load_motion_set(folder, kind, split=args.split, length=args.clip_length, clip_mode=args.clip_mode,
                               split_file=args.split_file, workers=args.workers, strict=args.strict,
                               progress=progress)
        for line in mset.report_lines(limit=10_000 if args.verbose else 5):
            print(line)
        rows.append(distribution_row(label, mset, reference.motions, ot_samples=args.ot_samples,
                                     bootstrap=args.bootstrap, projections=args.projections,
                                     confidence=args.confidence, seed=args.seed,
                                     multivariate=not args.no_multivariate,
                                     horizontal="absolute" if args.absolute_horizontal else "relative"))
        infos.append(set_info(label, mset))
    print()
    print(text_table(rows, DISTRIBUTION_COLUMNS))
    coord_rows, coord_cols = per_coordinate_columns(rows)
    if args.verbose:
        print()
        print(text_table(coord_rows, coord_cols))
    payload = {"script": "calculate_wasserstein.py", "options": options_dict(args),
               "reference": set_info(f"{args.reference_split} split", reference), "sets": infos,
               "units": UNITS, "seconds": round(time.time() - started, 2)}
    write_outputs(paths, rows, DISTRIBUTION_COLUMNS, payload, "Distribution metrics",
                  notes=[f"reference: {reference.describe()} [{args.reference_split} split]", *NOTES],
                  extra_md=markdown_table(coord_rows, coord_cols))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return rows


if __name__ == "__main__":
    run_cli(main, get_wasserstein_parser())
