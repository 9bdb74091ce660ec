"""Options of ``run_pipeline.py``."""
from __future__ import annotations

import argparse

DESCRIPTION = """Run the BIGE pipeline (or some of its stages) from a YAML config.

    python run_pipeline.py --config configs/demo.yaml            # everything
    python run_pipeline.py --config configs/demo.yaml --stage vq  # one stage
    python run_pipeline.py --config configs/demo.yaml --list      # what would run

Stages whose outputs exist are skipped (a marker in <out_dir>/.pipeline/ and
the stage's outputs); a stage with `resume:` continues from its checkpoint.
With --jobs N (or `jobs: N` in the config) up to N stages run side by side,
each once the stages in its `needs:` list have finished.
The config format is described in run_pipeline.py's docstring."""


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_pipeline.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/demo.yaml", help="pipeline YAML (configs/demo.yaml, configs/paper.yaml)")
    p.add_argument("--stage", nargs="+", default=None, help="run only these stages (by name)")
    p.add_argument("--force", action="store_true", help="run stages even when their outputs exist")
    p.add_argument("--jobs", type=int, default=None,
                   help="stages run at once, as their 'needs' allow (default: the config's 'jobs', else 1); with "
                        "more than one, each stage's output goes to <out_dir>/.pipeline/<stage>.log")
    p.add_argument("--list", action="store_true", help="list stages, whether they are done, and their commands")
    return p
