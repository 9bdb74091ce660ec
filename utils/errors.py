"""The one error base of BIGE and the exit-code policy.

Every error caused by the user's input (files, roots, flags, checkpoints,
devices, paths, disk space) is a :class:`BigeError`; the command-line door
(:func:`utils.cli.run`) prints it as one line ``<script>: error: <message>``
and exits with :data:`EXIT_USER_ERROR`. Anything else is a bug and keeps its
traceback. The messages name the file (and line or column) or the flag, and
what was expected.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

EXIT_OK = 0
EXIT_USER_ERROR = 2
"""Exit status of a user error (the same as argparse's for a bad flag)."""
EXIT_SIGNAL = 130
"""Exit status of a run stopped by SIGINT or SIGTERM (a trainer has written
``net_last.pth`` first, so ``--resume`` continues it)."""


class BigeError(Exception):
    """Base of every error the user can fix; the message says what and where."""


class UserError(BigeError, ValueError):
    """A bad option or input that has no more specific class."""


class DeviceError(BigeError, RuntimeError):
    """The device asked for (``--device cuda``) is not available."""


class OutputWriteError(BigeError, OSError):
    """An output could not be written (full disk, read-only folder, file too large)."""


def describe_os_error(err: OSError, path: str | os.PathLike | None = None) -> str:
    """``<file>: <reason>`` for an :class:`OSError`, naming ``path`` when the
    error itself names no file."""
    name = err.filename if err.filename is not None else path
    reason = err.strerror or str(err) or type(err).__name__
    if name is not None and err.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = _file_in_the_way(name)
        if blocker is not None:
            return f"{blocker}: is a file, expected a folder"
    if getattr(err, "filename2", None):
        name = f"{name} -> {err.filename2}"
    return f"{name}: {reason}" if name is not None else reason


def _file_in_the_way(path: str | os.PathLike) -> Path | None:
    """The nearest of ``path`` and its ancestors that exists as a regular file
    (what makes creating a folder there fail), or ``None``."""
    for candidate in (Path(path), *Path(path).parents):
        if candidate.is_file():
            return candidate
    return None
