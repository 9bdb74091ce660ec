"""Distances between generated motion sets and the motion-capture dataset,
under one of two protocols (``--protocol``, see docs/metrics.md):

* ``project`` (default): against the training split; the Gaussian W2^2 of the
  pooled sets and entropy, exact per-coordinate W1, and earth mover's /
  sliced W2 between whole motions with bootstrap intervals;
  with ``--own-subject`` also each subject folder against that subject's own
  motion capture (does guidance keep the subject's squat?);
* ``published``: the paper's protocol, for comparability: W2^2 per subject
  folder against the test sessions' Dynamics kinematics (clips tiled), mean ±
  std over folders, and the entropy.

    python calculate_wasserstein.py --file_type mot --folder_path output/guidance/BIGE --data-root data/mcs_synthetic
    python calculate_wasserstein.py --compare data/mcs_synthetic output/baselines/VQVAE-Generations output/guidance/BIGE \\
        --labels MoCap VQ-VAE BIGE --data-root data/mcs_synthetic [--protocol published]
"""
from __future__ import annotations

import time

from metrics.evaluate import (
    PROTOCOL_TITLES, distribution_row, input_specs, output_location, own_subject_row, published_distribution_row,
    reference_label, resolve_protocol, set_info, write_distribution_tables,
)
from metrics.motion_sets import MotionSet, MotionSetError, load_mocap, load_motion_set
from metrics.report import output_paths
from options.metrics import get_wasserstein_parser
from utils.cli import run as run_cli


def load_reference(args) -> MotionSet:
    """The reference set of ``args.protocol``: the ``--reference-split``
    repetitions (project), or the test sessions' Dynamics kinematics, tiled
    (published)."""
    return load_mocap(args.data_root, split=args.reference_split, length=args.clip_length,
                      clip_mode=args.clip_mode, split_file=args.split_file,
                      with_activations=args.protocol == "published")


def main(args) -> list[dict]:
    """Evaluate every set the options name; print and write the table. Returns the rows."""
    started = time.time()
    protocol = resolve_protocol(args)
    if args.own_subject and protocol != "project":
        raise MotionSetError("--own-subject is a measure of the project protocol; drop it or --protocol published")
    specs = input_specs(args)
    out_dir, stem = output_location(args, "wasserstein", bool(args.compare))
    paths = output_paths(out_dir, stem, args.overwrite)
    progress = not args.no_progress
    reference = load_reference(args)
    own = None
    if args.own_subject:  # every split: the subjects of a generated set are usually test subjects
        own = load_mocap(args.data_root, split="all", length=args.clip_length, clip_mode=args.clip_mode,
                         split_file=args.split_file)
    print(f"{PROTOCOL_TITLES[protocol]}")
    print(f"reference: {reference.describe()} [{reference_label(args)}]")
    rows, infos = [], []
    horizontal = "absolute" if args.absolute_horizontal else "relative"
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
                                         horizontal=horizontal))
            rows[-1]["protocol"] = "project"
            if own is not None:
                rows[-1].update(own_subject_row(mset, own, ot_samples=args.ot_samples, seed=args.seed,
                                                horizontal=horizontal))
        infos.append(set_info(label, mset))
    write_distribution_tables(args, paths, rows, reference, infos, "calculate_wasserstein.py", started,
                              "Distribution metrics")
    return rows


if __name__ == "__main__":
    run_cli(main, get_wasserstein_parser())
