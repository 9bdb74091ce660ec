"""Flags shared by the generation scripts (generate_vq.py, generate_t2m.py,
generate_mdm.py), so that they select subjects and write outputs the same way
guidance does."""
from __future__ import annotations

import argparse

from options.common import add_data_args, add_runtime_args, int_at_least


def add_generation_args(parser: argparse.ArgumentParser, default_exp: str, default_out: str = "output") -> None:
    """``--subject --num-samples --batch-size --out-dir --exp-name --overwrite``."""
    g = parser.add_argument_group("generation")
    g.add_argument("--subject", nargs="+", default=["all"],
                   help="'all' = every session of the test split (--split-file, else <data-root>/split.json, "
                        "...), or one or more session folders (<root>/Data/<session>) or session ids")
    g.add_argument("--num-samples", type=int, default=20, help="motions generated per subject")
    g.add_argument("--batch-size", type=int_at_least(1), default=64, help="motions generated at once")
    g.add_argument("--out-dir", default=default_out,
                   help="parent folder; motions go to <out-dir>/<exp-name>/<session>/entry_<k>_<exp-name>.mot")
    g.add_argument("--exp-name", default=default_exp, help="experiment folder name under --out-dir")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the results of subjects that already have some (never done silently)")


def add_subject_data_args(parser: argparse.ArgumentParser) -> None:
    """``--data-root --dataname --split-file`` (where subjects are looked up).
    Clip length and mode come from the checkpoint, so they match training."""
    add_data_args(parser, clips=False,
                  root_help="MCS-layout dataset root used to find subjects (and their repetitions for "
                            "subject-initialised / subject-conditioned sampling)")


def add_generation_runtime_args(parser: argparse.ArgumentParser) -> None:
    """The shared runtime flags, with ``--seed`` described for sampling."""
    add_runtime_args(parser, seed_help="random seed of the sampling; each subject's generator is seeded from it "
                                       "and the session id")
