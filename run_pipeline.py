#!/usr/bin/env python
"""Run the BIGE pipeline (or some of its stages) from a YAML config.

    python run_pipeline.py --config configs/demo.yaml            # everything
    python run_pipeline.py --config configs/demo.yaml --stage vq  # one stage
    python run_pipeline.py --config configs/demo.yaml --list      # what would run

A pipeline config (YAML) lists stages in order. Each stage runs one script
(``script: train_vq.py`` or ``module: dataset.synthetic``) in its own process
with the flags in ``args``; a stage that finished before (the runner keeps a marker in
``<out_dir>/.pipeline/<stage>.done``) and whose ``outputs`` all exist is skipped, so
a second run is fast and an interrupted run continues where it stopped. A stage
with ``resume: <checkpoint>`` gets ``--resume <checkpoint>`` when that file
exists (training picks up exactly where it was killed), and ``--overwrite``
otherwise when ``overwrite_partial: true``.

Example::

    data_root: data/mcs_synthetic
    stages:
      - name: data
        module: dataset.synthetic
        args: {out: "{data_root}", subjects: 24}
        outputs: ["{data_root}/split.json"]

Positional arguments go in ``positional`` (a pattern with ``*`` becomes its
first match). Strings may use ``{key}`` for any top-level scalar of the config.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from options.pipeline import get_args_parser
from utils.cli import Terminated, run as run_cli
from utils.errors import BigeError
from utils.fileio import RunLock, atomic_write_json


STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""What a stage name may be (it becomes ``<out_dir>/.pipeline/<name>.done``)."""

STOP_GRACE_S = 120.0
"""Seconds a stage gets to save its state after the runner forwards SIGINT/SIGTERM."""


class PipelineError(BigeError, ValueError):
    """A pipeline config is invalid or a stage failed."""


@dataclass
class Stage:
    name: str
    command: list[str]
    outputs: list[Path]
    resume: Path | None = None
    overwrite_partial: bool = False
    description: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    marker: Path | None = None
    positional: list[str] = field(default_factory=list)

    def done(self) -> bool:
        """True when the stage finished before: its marker (written by the runner
        after a successful run) and every listed output exist."""
        if self.marker is not None and not self.marker.exists():
            return False
        return bool(self.outputs or self.marker) and all(p.exists() for p in self.outputs)

    def argv(self) -> list[str]:
        """The command: with ``--resume <checkpoint>`` when the stage's checkpoint
        exists; with ``--overwrite`` when it does not but its folder holds files
        (a training killed before its first checkpoint has nothing to continue,
        so it restarts) or when ``overwrite_partial`` is set."""
        argv = list(self.command) + [_first_match(p) for p in self.positional]
        if self.resume is not None and self.resume.is_file():
            argv += ["--resume", str(self.resume)]
        elif self.overwrite_partial or (self.resume is not None and _has_files(self.resume.parent)):
            argv += ["--overwrite"]
        return argv


def _has_files(folder: Path) -> bool:
    """True if ``folder`` exists and is not empty."""
    return folder.is_dir() and any(folder.iterdir())


def _first_match(pattern: str) -> str:
    """A positional argument; a pattern with ``*`` or ``?`` becomes its first match (sorted)."""
    if not any(ch in pattern for ch in "*?["):
        return pattern

    matches = sorted(glob.glob(pattern))
    return matches[0] if matches else pattern


def _flags(args: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in args.items():
        flag = key if key.startswith("-") else f"--{key}"
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            out.append(flag)
            out.extend(str(v) for v in value)
        else:
            out += [flag, str(value)]
    return out


def _expand(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        try:
            return value.format(**variables)
        except KeyError as err:
            raise PipelineError(f"unknown variable {err} in {value!r}") from None
    if isinstance(value, list):
        return [_expand(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, variables) for k, v in value.items()}
    return value


def load_config(path: str | os.PathLike) -> tuple[dict[str, Any], list[Stage]]:
    """Read a pipeline YAML into its variables and stages."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PipelineError(f"{path}: cannot read pipeline config ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise PipelineError(f"{path}: not a text file (byte {err.start}: {err.reason}); expected a YAML "
                            "pipeline config") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise PipelineError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("stages"), list):
        raise PipelineError(f"{path}: expected a mapping with a 'stages' list")
    variables = {k: str(v) for k, v in cfg.items() if not isinstance(v, (list, dict))}
    stages = []
    for i, raw in enumerate(cfg["stages"]):
        if not isinstance(raw, dict) or "name" not in raw or not ({"script", "module"} & set(raw)):
            raise PipelineError(f"{path}: stage {i + 1} needs 'name' and 'script' or 'module'")
        if not isinstance(raw["name"], str):
            raise PipelineError(f"{path}: stage {i + 1}: 'name' must be a string, found {raw['name']!r}")
        raw = _expand(raw, variables)
        entry = ["-m", raw["module"]] if "module" in raw else [raw["script"]]
        args = raw.get("args") or {}
        stages.append(Stage(
            name=raw["name"], command=[sys.executable, *entry, *_flags(args)],
            outputs=[Path(p) for p in raw.get("outputs", [])],
            resume=Path(raw["resume"]) if raw.get("resume") else None,
            overwrite_partial=bool(raw.get("overwrite_partial", False)),
            description=raw.get("description", ""), args=args,
            positional=[str(v) for v in raw.get("positional", [])],
            marker=Path(variables.get("out_dir", "output")) / ".pipeline" / f"{raw['name']}.done",
        ))
    for s in stages:
        if not STAGE_NAME.fullmatch(s.name) or s.name in (".", ".."):
            raise PipelineError(f"{path}: stage name {s.name!r}: expected letters, digits, '_', '-' or '.' only "
                                "(it names a marker file; no path separators or '..')")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise PipelineError(f"{path}: stage names must be unique, found {names}")
    return variables, stages


def _run_stage(argv: list[str]) -> int:
    """Run one stage's command and return its exit status. If the runner is
    stopped, the stage gets up to :data:`STOP_GRACE_S` seconds to save its
    state and exit before it is killed: a SIGTERM sent to the runner is passed
    on to it; Ctrl-C in a terminal reaches it directly (the whole foreground
    group gets SIGINT), so it is not sent twice (a trainer's second signal
    means "stop now, without saving")."""
    proc = subprocess.Popen(argv)
    try:
        return proc.wait()
    except KeyboardInterrupt as stop:
        if proc.poll() is None:
            if isinstance(stop, Terminated):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise


def run_stages(stages: list[Stage], only: list[str] | None = None, force: bool = False,
               times_file: Path | None = None, dry_run: bool = False) -> dict[str, float]:
    """Run the stages in order (or only those named); returns seconds per stage run."""
    if only:
        unknown = set(only) - {s.name for s in stages}
        if unknown:
            raise PipelineError(f"unknown stage(s) {sorted(unknown)}; known: {[s.name for s in stages]}")
    times: dict[str, float] = {}
    if times_file is not None and times_file.is_file():
        try:
            times = json.loads(times_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            times = {}  # the runner's own record; a damaged one is started afresh
        if not isinstance(times, dict):
            times = {}
    for stage in stages:
        if only and stage.name not in only:
            continue
        if stage.done() and not force:
            print(f"[{stage.name}] done, outputs: {', '.join(map(str, stage.outputs))}", flush=True)
            continue
        argv = stage.argv()
        print(f"[{stage.name}] {stage.description}\n  $ {' '.join(argv[1:])}", flush=True)
        if dry_run:
            continue
        start = time.perf_counter()
        returncode = _run_stage(argv)
        elapsed = time.perf_counter() - start
        if returncode in (130, -signal.SIGINT, -signal.SIGTERM):
            print(f"[{stage.name}] stopped by signal after {elapsed:.0f} s; run the same command again to continue",
                  flush=True)
            raise KeyboardInterrupt
        if returncode != 0:
            raise PipelineError(f"stage {stage.name!r} failed (exit {returncode}) after {elapsed:.0f} s")
        missing = [str(p) for p in stage.outputs if not p.exists()]
        if missing:
            raise PipelineError(f"stage {stage.name!r} finished but did not write {missing}")
        times[stage.name] = round(elapsed, 1)
        if stage.marker is not None:
            atomic_write_json(stage.marker, {"seconds": round(elapsed, 1), "command": argv[1:]})
        print(f"[{stage.name}] finished in {elapsed:.0f} s; outputs: {', '.join(map(str, stage.outputs))}",
              flush=True)
        if times_file is not None:
            atomic_write_json(times_file, times)
    return times


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
