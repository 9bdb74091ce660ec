"""The motion-capture row of the distance table, under one of two protocols
(``--protocol``, see docs/metrics.md):

* ``project`` (default): the segmented motion-capture repetitions of the test
  sessions against those of the training sessions of the same MCS root, with
  the numbers of calculate_wasserstein.py;
* ``published``: the paper's protocol, for comparability: the test sessions'
  repetitions, per session folder, against the test sessions' muscle-driven
  (Dynamics) kinematics, clips tiled; mean ± std over sessions. Evaluated once
  over all test sessions (the original averaged the numbers of cumulative
  prefixes of its session list; not reproduced).

    python wasserstein_mocap.py --file_type mot --folder_path data/mcs_synthetic/Data [--protocol published]
"""
from __future__ import annotations

import time

from dataset.mcs import is_mcs_root
from metrics.evaluate import (
    PROTOCOL_TITLES, distribution_row, published_distribution_row, reference_label, resolve_protocol, set_info,
    write_distribution_tables,
)
from metrics.motion_sets import MotionSetError, load_mocap
from metrics.report import output_paths
from options.metrics import get_wasserstein_mocap_parser
from utils.cli import run as run_cli


def main(args) -> dict:
    """Evaluate the ``--split`` repetitions against the reference of
    ``--protocol``; print and write the row. Returns it."""
    started = time.time()
    protocol = resolve_protocol(args)
    if not args.folder_path:
        raise MotionSetError("give the MCS dataset root (or its Data folder) with --folder_path")
    if not is_mcs_root(args.folder_path):
        raise MotionSetError(f"{args.folder_path}: not an MCS dataset root "
                             "(expected <root>/Data/<session>/OpenSimData or the Data folder itself)")
    if protocol == "project" and args.split == args.reference_split:
        raise MotionSetError(f"--split and --reference-split are both {args.split!r}: the distance of a set to "
                             "itself is 0 by construction")
    paths = output_paths(args.out or args.folder_path, args.out_name or "wasserstein_mocap", args.overwrite)
    common = dict(length=args.clip_length, clip_mode=args.clip_mode, split_file=args.split_file)
    reference = load_mocap(args.folder_path, split=args.reference_split,
                           with_activations=protocol == "published", **common)
    mocap = load_mocap(args.folder_path, split=args.split, **common)
    print(PROTOCOL_TITLES[protocol])
    print(f"reference: {reference.describe()} [{reference_label(args)}]")
    for line in mocap.report_lines(limit=10_000 if args.verbose else 5):
        print(line)
    label = f"MoCap ({args.split})"
    if protocol == "published":
        row = published_distribution_row(label, mocap, reference.motions)
    else:
        row = distribution_row(label, mocap, reference.motions, ot_samples=args.ot_samples,
                               bootstrap=args.bootstrap, projections=args.projections, confidence=args.confidence,
                               seed=args.seed, multivariate=not args.no_multivariate,
                               horizontal="absolute" if args.absolute_horizontal else "relative")
        row["protocol"] = "project"
    write_distribution_tables(args, paths, [row], reference, [set_info(label, mocap)], "wasserstein_mocap.py",
                              started, "Distribution metrics: motion capture")
    return row


if __name__ == "__main__":
    run_cli(main, get_wasserstein_mocap_parser())
