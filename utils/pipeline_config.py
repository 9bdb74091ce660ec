"""Pipeline configs (YAML): their stages and each stage's command.

A config lists stages in order; each runs one script or module with the
flags in its ``args`` (``{key}`` in a string is any top-level scalar of the
config). :func:`load_config` reads and checks a config; :func:`stage_flags`
turns an ``args`` mapping into command-line flags. ``run_pipeline.py`` runs
the stages; benchmarks read a stage's flags from here to train exactly as
the demo does.
"""
from __future__ import annotations

import glob
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from utils.errors import BigeError

STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""What a stage name may be (it becomes ``<out_dir>/.pipeline/<name>.done``)."""

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
    needs: list[str] = field(default_factory=list)
    """Stages that must have finished before this one starts."""

    def done(self) -> bool:
        """True when the stage finished before: its marker (written by the runner
        after a successful run) and every listed output exist."""
        if self.marker is not None and not self.marker.exists():
            return False
        return bool(self.outputs or self.marker) and all(p.exists() for p in self.outputs)

    def configured_argv(self) -> list[str]:
        """The command as the config gives it (positional patterns matched),
        before the runner adds ``--resume`` or ``--overwrite``."""
        return list(self.command) + [_first_match(p) for p in self.positional]

    def changed_since_done(self) -> list[str] | None:
        """The arguments of the configured command that differ from the run
        recorded in the marker (``None`` when they agree or the marker, from
        an older runner, does not record them)."""
        if self.marker is None or not self.marker.is_file():
            return None
        try:
            recorded = json.loads(self.marker.read_text()).get("configured")
        except (OSError, ValueError, AttributeError):
            return None
        now = self.configured_argv()[1:]
        if not isinstance(recorded, list) or recorded == now:
            return None
        return [a for a in now if a not in recorded] + [f"(no longer {a})" for a in recorded if a not in now]

    def argv(self) -> list[str]:
        """The command: with ``--resume <checkpoint>`` when the stage's checkpoint
        exists; with ``--overwrite`` when it does not but its folder holds files
        (a training killed before its first checkpoint has nothing to continue,
        so it restarts) or when ``overwrite_partial`` is set."""
        argv = self.configured_argv()
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


def stage_flags(args: dict[str, Any]) -> list[str]:
    """``{key: value}`` as command-line flags: ``--key value``; ``True`` a bare
    flag; ``False`` / ``None`` left out; a list ``--key v1 v2 ...``."""
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
        needs = _needs(path, raw, [s.name for s in stages])
        raw = _expand(raw, variables)
        entry = ["-m", raw["module"]] if "module" in raw else [raw["script"]]
        args = raw.get("args") or {}
        stages.append(Stage(
            name=raw["name"], command=[sys.executable, *entry, *stage_flags(args)],
            outputs=[Path(p) for p in raw.get("outputs", [])],
            resume=Path(raw["resume"]) if raw.get("resume") else None,
            overwrite_partial=bool(raw.get("overwrite_partial", False)),
            description=raw.get("description", ""), args=args,
            positional=[str(v) for v in raw.get("positional", [])],
            marker=Path(variables.get("out_dir", "output")) / ".pipeline" / f"{raw['name']}.done",
            needs=needs,
        ))
    for s in stages:
        if not STAGE_NAME.fullmatch(s.name) or s.name in (".", ".."):
            raise PipelineError(f"{path}: stage name {s.name!r}: expected letters, digits, '_', '-' or '.' only "
                                "(it names a marker file; no path separators or '..')")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise PipelineError(f"{path}: stage names must be unique, found {names}")
    return variables, stages


def _needs(path: Path, raw: dict[str, Any], earlier: list[str]) -> list[str]:
    """The stages ``raw`` waits for: its ``needs`` list, which may name earlier
    stages only (so the config order is a valid run order), or every earlier
    stage when it has none."""
    if "needs" not in raw:
        return list(earlier)
    needs = raw["needs"]
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise PipelineError(f"{path}: stage {raw['name']!r}: 'needs' must be a list of stage names, found {needs!r}")
    for name in needs:
        if name not in earlier:
            raise PipelineError(f"{path}: stage {raw['name']!r} needs {name!r}, which is not a stage before it "
                                f"(earlier stages: {', '.join(earlier) or 'none'})")
    return list(needs)


def config_jobs(variables: dict[str, str], path: str | os.PathLike) -> int:
    """The config's ``jobs`` (stages run side by side), 1 when absent."""
    value = variables.get("jobs", "1")
    if not value.isdigit() or int(value) < 1:
        raise PipelineError(f"{path}: 'jobs' must be a whole number >= 1, found {value!r}")
    return int(value)
