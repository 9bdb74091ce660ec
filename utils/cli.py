"""The door every root script goes through: ``run(main, parser)``.

    if __name__ == "__main__":
        run(main, get_args_parser())

One message format and one exit-code policy for every script:

* a bad flag: ``<script>: error: <what argparse says>`` and exit 2 (one line,
  no usage block; ``--help`` shows the usage);
* a user error (:class:`utils.errors.BigeError`, or an :class:`OSError` about
  a path: missing, unreadable, a folder where a file was expected, full disk,
  read-only folder): ``<script>: error: <file>: <what was expected>`` and
  exit 2;
* stopped by SIGINT or SIGTERM (also a trainer that stopped cleanly after
  writing ``net_last.pth``): ``<script>: stopped by signal`` and exit 130;
* anything else is a bug: its traceback is shown (exit 1).
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from typing import Any, Callable, NoReturn, Sequence

from utils.errors import EXIT_OK, EXIT_SIGNAL, EXIT_USER_ERROR, BigeError, describe_os_error

USER_ERRNOS = frozenset({
    errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC, errno.EDQUOT,
    errno.EROFS, errno.EFBIG, errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTEMPTY, errno.ELOOP,
})
"""OSError numbers that describe the user's paths or disk, not a bug."""


class _OneLineParser:
    """Replaces ``parser.error`` so a bad flag prints one line (argparse prints
    the usage block first)."""

    def __init__(self, prog: str):
        self.prog = prog

    def __call__(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see --help)")


def fail(prog: str, message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print ``<prog>: error: <message>`` on one line to stderr and exit."""
    one_line = " ".join(str(message).split())
    print(f"{prog}: error: {one_line}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _is_user_os_error(err: OSError) -> bool:
    """An OSError about the user's paths or disk (by errno, or one of the
    path errors raised with a message and no errno)."""
    if err.errno is None:
        return isinstance(err, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                                PermissionError))
    return err.errno in USER_ERRNOS


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt.
    Unlike Ctrl-C in a terminal, it reached this process only (a runner
    passes it on to its child, see ``run_pipeline.py``)."""


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise Terminated


def _stopped(result: Any) -> bool:
    """True if ``main`` returned a result saying it was stopped by a signal."""
    if isinstance(result, dict):
        return bool(result.get("stopped"))
    return bool(getattr(result, "stopped", False))


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _all_parsers(sub)
    return found


def run(main: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser,
        argv: Sequence[str] | None = None, prog: str | None = None) -> NoReturn:
    """Parse the command line with ``parser``, call ``main(args)`` and exit
    with the policy above. Never returns."""
    prog = prog or os.path.basename(sys.argv[0]) or parser.prog
    for p in _all_parsers(parser):
        p.error = _OneLineParser(prog)  # type: ignore[method-assign]
    try:
        signal.signal(signal.SIGTERM, _raise_interrupt)  # trainers install their own graceful handler
    except ValueError:  # not the main thread
        pass
    try:
        args = parser.parse_args(argv)
        result = main(args)
    except BigeError as err:
        fail(prog, str(err))
    except KeyboardInterrupt:
        print(f"\n{prog}: stopped by signal", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_SIGNAL) from None
    except OSError as err:
        if not _is_user_os_error(err):
            raise
        fail(prog, describe_os_error(err))
    if _stopped(result):
        print(f"{prog}: stopped by signal; continue with --resume <its net_last.pth>", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_SIGNAL)
    code = result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK
    raise SystemExit(code)
