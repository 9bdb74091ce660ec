#!/usr/bin/env python
"""Run the BIGE pipeline (or some of its stages) from a YAML config.

    python run_pipeline.py --config configs/demo.yaml            # everything
    python run_pipeline.py --config configs/demo.yaml --stage vq  # one stage
    python run_pipeline.py --config configs/demo.yaml --list      # what would run

Stages whose outputs exist are skipped; see utils/pipeline.py for the format.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from utils.cli import run as run_cli
from utils.fileio import RunLock
from utils.pipeline import PipelineError, load_config, run_stages


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/demo.yaml", help="pipeline YAML (configs/demo.yaml, configs/paper.yaml)")
    p.add_argument("--stage", nargs="+", default=None, help="run only these stages (by name)")
    p.add_argument("--force", action="store_true", help="run stages even when their outputs exist")
    p.add_argument("--list", action="store_true", help="list stages, whether they are done, and their commands")
    return p


def main(args: argparse.Namespace) -> int:
    variables, stages = load_config(args.config)
    unknown = sorted(set(args.stage or ()) - {s.name for s in stages})
    if unknown:
        raise PipelineError(f"--stage: unknown stage(s) {', '.join(unknown)}; {args.config} has "
                            f"{', '.join(s.name for s in stages)}")
    if args.list:
        for s in stages:
            print(f"{s.name:12s} {'done   ' if s.done() else 'pending'} {' '.join(s.argv()[1:])}")
        return 0
    out_dir = Path(variables.get("out_dir", "output"))
    times_file = out_dir / "pipeline_times.json"
    with RunLock(out_dir / ".pipeline"):  # one runner per output folder
        run_stages(stages, only=args.stage, force=args.force, times_file=times_file)
    print(f"stage times (s): {times_file}")
    return 0


if __name__ == "__main__":
    run_cli(main, get_args_parser())
