#!/usr/bin/env python
"""Sample the token prior for each subject and decode with the VQ-VAE.

    python generate_t2m.py --resume-trans output/T2M/net_last.pth --subject all --num-samples 20 --top-k 50

Outputs: <out-dir>/<exp-name>/<session>/entry_<k>_<exp-name>.{mot,npy} and summary.json
(default output/baselines/t2m_baseline), read by the metric scripts like guidance outputs.
"""
from __future__ import annotations

import sys

from dataset.mcs import DatasetError
from options.t2m import get_generate_parser
from utils.checkpoint import CheckpointError
from utils.fileio import OutputExistsError
from utils.generation import generate_t2m
from utils.motion_io import MotionFileError


def main(args) -> list:
    return generate_t2m(args)


if __name__ == "__main__":
    try:
        main(get_generate_parser().parse_args())
    except (DatasetError, MotionFileError, CheckpointError, OutputExistsError, ValueError) as err:
        sys.exit(f"generate_t2m: {err}")
