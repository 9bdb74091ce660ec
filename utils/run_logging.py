"""The experiment folder's ``run.log`` (options first) and tensorboard events."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Mapping


def now() -> str:
    """The time stamp of a ``run.log`` line: local time to the second, ISO 8601."""
    return _dt.datetime.now().isoformat(timespec="seconds")


class RunLogger:
    """Appends to ``<folder>/run.log`` and writes tensorboard scalars.

    Only the main process writes (``enabled=False`` on other ranks makes every
    call a no-op). ``tensorboard=False`` skips event files.
    """

    def __init__(self, folder: str | os.PathLike, args: argparse.Namespace | Mapping[str, Any] | None = None,
                 enabled: bool = True, tensorboard: bool = True, echo: bool = False):
        self.folder = Path(folder)
        self.enabled = enabled
        self.echo = echo
        self._writer = None
        if not enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if args is not None:
            opts = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
            self.log("options " + json.dumps(opts, default=str, sort_keys=True))
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.folder / "tensorboard"))

    def log(self, message: str, stamp: str | None = None) -> None:
        """Append ``<stamp> <message>``; ``stamp`` defaults to :func:`now` (a line
        noted earlier, e.g. in a worker process, keeps the time it was noted)."""
        if not self.enabled:
            return
        stamp = stamp or now()
        with open(self.folder / "run.log", "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")
        if self.echo:
            print(message, flush=True)

    def scalars(self, values: Mapping[str, float], step: int, prefix: str = "") -> None:
        if self._writer is None:
            return
        for key, value in values.items():
            self._writer.add_scalar(f"{prefix}{key}", float(value), step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
