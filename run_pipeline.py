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

Stages may run side by side: ``needs: [names]`` lists the earlier stages a
stage reads from (a stage without ``needs`` waits for every earlier stage),
and ``--jobs N`` (or a top-level ``jobs: N``) runs up to N stages at once,
each ready stage starting in config order. Then each stage's output goes to
``<out_dir>/.pipeline/<stage>.log`` (appended), and a failed stage's last
lines are printed; the stages already running finish, nothing new starts.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from options.pipeline import get_args_parser
from utils.cli import Terminated, run as run_cli
from utils.fileio import RunLock, atomic_write_json
from utils.pipeline_config import PipelineError, Stage, config_jobs, load_config

LOG_TAIL_LINES = 30
"""Lines of a failed stage's log printed when stages run side by side."""

POLL_S = 0.2
"""Seconds between checks on the running stages."""

STOP_GRACE_S = 120.0
"""Seconds a stage gets to save its state after the runner forwards SIGINT/SIGTERM."""


class StageStopped(KeyboardInterrupt):
    """A stage exited on SIGINT / SIGTERM: the runner stops as if interrupted."""


def _load_times(times_file: Path | None) -> dict[str, float]:
    """Seconds per stage recorded by earlier runs (a damaged record is started afresh)."""
    if times_file is None or not times_file.is_file():
        return {}
    try:
        times = json.loads(times_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # the runner's own record
    return times if isinstance(times, dict) else {}


def _finish(stage: Stage, argv: list[str], returncode: int, elapsed: float, times: dict[str, float],
            times_file: Path | None) -> None:
    """Check a stage's exit and outputs, then record it: its marker and its time."""
    if returncode in (130, -signal.SIGINT, -signal.SIGTERM):
        print(f"[{stage.name}] stopped by signal after {elapsed:.0f} s; run the same command again to continue",
              flush=True)
        raise StageStopped
    if returncode != 0:
        raise PipelineError(f"stage {stage.name!r} failed (exit {returncode}) after {elapsed:.0f} s")
    missing = [str(p) for p in stage.outputs if not p.exists()]
    if missing:
        raise PipelineError(f"stage {stage.name!r} finished but did not write {missing}")
    times[stage.name] = round(elapsed, 1)
    if stage.marker is not None:
        atomic_write_json(stage.marker, {"seconds": round(elapsed, 1), "command": argv[1:],
                                         "configured": stage.configured_argv()[1:]})
    print(f"[{stage.name}] finished in {elapsed:.0f} s; outputs: {', '.join(map(str, stage.outputs))}", flush=True)
    if times_file is not None:
        atomic_write_json(times_file, times)


def run_stages(stages: list[Stage], only: list[str] | None = None, force: bool = False,
               times_file: Path | None = None, dry_run: bool = False, jobs: int = 1,
               log_dir: Path | None = None) -> dict[str, float]:
    """Run the stages in order (or only those named), up to ``jobs`` at once
    as their ``needs`` allow (stage logs then go to ``log_dir``, by default the
    folder of the first stage's marker); returns seconds per stage run."""
    if only:
        unknown = set(only) - {s.name for s in stages}
        if unknown:
            raise PipelineError(f"unknown stage(s) {sorted(unknown)}; known: {[s.name for s in stages]}")
    if jobs < 1:
        raise PipelineError(f"jobs must be >= 1, got {jobs}")
    times = _load_times(times_file)
    todo = []
    for stage in stages:
        if only and stage.name not in only:
            continue
        if stage.done() and not force:
            print(f"[{stage.name}] done, outputs: {', '.join(map(str, stage.outputs))}", flush=True)
            changed = stage.changed_since_done()
            if changed:
                print(f"[{stage.name}] warning: its command changed since it ran ({' '.join(changed)}); not run "
                      f"again: use --stage {stage.name} --force (stages that need it are not redone either)",
                      flush=True)
            continue
        todo.append(stage)
    if dry_run:
        for stage in todo:
            print(_header(stage, stage.argv()), flush=True)
        return times
    logs = None  # one stage at a time: its output goes to the terminal
    if jobs > 1 and len(todo) > 1:
        logs = log_dir or (todo[0].marker.parent if todo[0].marker is not None else Path("output/.pipeline"))
    _schedule(todo, jobs, times, times_file, logs)
    return times


@dataclass
class _Running:
    """A stage started by :func:`_schedule`."""
    stage: Stage
    argv: list[str]
    proc: subprocess.Popen
    start: float
    log: Path | None


def _schedule(todo: list[Stage], jobs: int, times: dict[str, float], times_file: Path | None,
              log_dir: Path | None) -> None:
    """Run ``todo`` up to ``jobs`` at a time, each stage once its ``needs`` have
    finished (stages not in ``todo`` count as finished), ready stages in config
    order; each stage's output goes to ``<log_dir>/<stage>.log``, or to the
    terminal when ``log_dir`` is None. A failure stops new starts; the running
    stages finish, then the failure is raised (after the end of the stage's
    log, if it has one). If the runner is stopped, every running stage gets
    up to :data:`STOP_GRACE_S` seconds to save its state and exit before it
    is killed (:func:`_stop_all`)."""
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    waiting = {s.name for s in todo}
    pending, running = list(todo), []
    failure: BaseException | None = None
    try:
        while pending or running:
            while failure is None and len(running) < jobs:
                ready = next((s for s in pending if not waiting & set(s.needs)), None)
                if ready is None:
                    break
                pending.remove(ready)
                running.append(_start(ready, log_dir))
            if not running:
                if failure is None:  # cannot happen: needs name earlier stages only
                    raise PipelineError(f"stages {[s.name for s in pending]} wait for stages that never run")
                break
            time.sleep(POLL_S)
            for run in [r for r in running if r.proc.poll() is not None]:
                running.remove(run)
                try:
                    _finish(run.stage, run.argv, run.proc.returncode, time.perf_counter() - run.start, times,
                            times_file)
                    waiting.discard(run.stage.name)
                except PipelineError as err:
                    if run.log is not None:
                        _print_tail(run.log)
                    failure = failure or err
    except KeyboardInterrupt as stop:
        _stop_all([run.proc for run in running], isinstance(stop, (Terminated, StageStopped)))
        raise
    if failure is not None:
        if pending:
            print(f"not started: {', '.join(s.name for s in pending)}", flush=True)
        raise failure


def _start(stage: Stage, log_dir: Path | None) -> _Running:
    """Start one stage, its output appended to ``<log_dir>/<stage>.log`` (the terminal when None)."""
    argv = stage.argv()
    if log_dir is None:
        print(_header(stage, argv), flush=True)
        return _Running(stage, argv, subprocess.Popen(argv), time.perf_counter(), None)
    log = log_dir / f"{stage.name}.log"
    print(f"{_header(stage, argv)}\n  log: {log}", flush=True)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} $ {' '.join(argv[1:])}\n")
        handle.flush()
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT)
    return _Running(stage, argv, proc, time.perf_counter(), log)


def _header(stage: Stage, argv: list[str]) -> str:
    """What the terminal shows when a stage starts: its name, description and command."""
    return f"[{stage.name}] {stage.description}\n  $ {' '.join(argv[1:])}"


def _print_tail(log: Path, lines: int = LOG_TAIL_LINES) -> None:
    """The last ``lines`` lines of a stage's log, to the terminal."""
    try:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return
    print(f"--- last {len(tail)} lines of {log}:", *tail, "---", sep="\n", flush=True)


def _stop_all(procs: list[subprocess.Popen], terminated: bool) -> None:
    """Stop running stage processes: SIGTERM when the runner was terminated or
    a stage was stopped (Ctrl-C in a terminal reaches them directly, and a
    trainer's second signal means "stop now, without saving"), then up to
    :data:`STOP_GRACE_S` seconds in all to save their state, then kill."""
    if terminated:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    deadline = time.perf_counter() + STOP_GRACE_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(args: argparse.Namespace) -> int:
    variables, stages = load_config(args.config)
    unknown = sorted(set(args.stage or ()) - {s.name for s in stages})
    if unknown:
        raise PipelineError(f"--stage: unknown stage(s) {', '.join(unknown)}; {args.config} has "
                            f"{', '.join(s.name for s in stages)}")
    if args.list:
        for s in stages:
            print(f"{s.name:28s} {'done   ' if s.done() else 'pending'} {' '.join(s.argv()[1:])}")
        return 0
    out_dir = Path(variables.get("out_dir", "output"))
    times_file = out_dir / "pipeline_times.json"
    jobs = args.jobs if args.jobs is not None else config_jobs(variables, args.config)
    start = time.perf_counter()
    with RunLock(out_dir / ".pipeline"):  # one runner per output folder
        run_stages(stages, only=args.stage, force=args.force, times_file=times_file, jobs=jobs,
                   log_dir=out_dir / ".pipeline")
    print(f"wall time {time.perf_counter() - start:.0f} s ({jobs} stage(s) at a time)")
    print(f"stage times (s): {times_file}")
    return 0


if __name__ == "__main__":
    run_cli(main, get_args_parser())
