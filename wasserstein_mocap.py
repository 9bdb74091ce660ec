"""The reference row of the distance table: the segmented motion-capture
repetitions of the test sessions against those of the training sessions of
the same MCS root, with the numbers of calculate_wasserstein.py.

    python wasserstein_mocap.py --file_type mot --folder_path data/mcs_synthetic/Data
"""
from __future__ import annotations

import time

from calculate_wasserstein import NOTES
from metrics.evaluate import (
    DISTRIBUTION_COLUMNS, UNITS, distribution_row, options_dict, per_coordinate_columns, set_info,
)
from metrics.report import markdown_table, output_paths, text_table, write_outputs
from options.metrics import get_wasserstein_mocap_parser
from utils.cli import run as run_cli
from utils.motion_sets import MotionSetError, is_mcs_root, load_mocap


def main(args) -> dict:
    """Evaluate the ``--split`` repetitions against the ``--reference-split``
    ones; print and write the row. Returns it."""
    started = time.time()
    if not args.folder_path:
        raise MotionSetError("give the MCS dataset root (or its Data folder) with --folder_path")
    if not is_mcs_root(args.folder_path):
        raise MotionSetError(f"{args.folder_path}: not an MCS dataset root "
                             "(expected <root>/Data/<session>/OpenSimData or the Data folder itself)")
    if args.split == args.reference_split:
        raise MotionSetError(f"--split and --reference-split are both {args.split!r}: the distance of a set to "
                             "itself is 0 by construction")
    paths = output_paths(args.out or args.folder_path, args.out_name or "wasserstein_mocap", args.overwrite)
    common = dict(length=args.clip_length, clip_mode=args.clip_mode, split_file=args.split_file)
    reference = load_mocap(args.folder_path, split=args.reference_split, **common)
    mocap = load_mocap(args.folder_path, split=args.split, **common)
    print(f"reference: {reference.describe()} [{args.reference_split} split]")
    for line in mocap.report_lines(limit=10_000 if args.verbose else 5):
        print(line)
    label = f"MoCap ({args.split})"
    row = distribution_row(label, mocap, reference.motions, ot_samples=args.ot_samples, bootstrap=args.bootstrap,
                           projections=args.projections, confidence=args.confidence, seed=args.seed,
                           multivariate=not args.no_multivariate,
                           horizontal="absolute" if args.absolute_horizontal else "relative")
    print()
    print(text_table([row], DISTRIBUTION_COLUMNS))
    coord_rows, coord_cols = per_coordinate_columns([row])
    if args.verbose:
        print()
        print(text_table(coord_rows, coord_cols))
    payload = {"script": "wasserstein_mocap.py", "options": options_dict(args),
               "reference": set_info(f"{args.reference_split} split", reference), "sets": [set_info(label, mocap)],
               "units": UNITS, "seconds": round(time.time() - started, 2)}
    write_outputs(paths, [row], DISTRIBUTION_COLUMNS, payload, "Distribution metrics: motion capture",
                  notes=[f"reference: {reference.describe()} [{args.reference_split} split]", *NOTES],
                  extra_md=markdown_table(coord_rows, coord_cols))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return row


if __name__ == "__main__":
    run_cli(main, get_wasserstein_mocap_parser())
