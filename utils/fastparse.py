"""The C-speed number parser behind :mod:`utils.motion_io` (``fastparse.c``).

``make install`` (run by ``make test`` and ``make demo``) compiles
``utils/fastparse.c`` into ``utils/_fastparse.so`` with the system C compiler
(``python -m utils.fastparse --build``). :func:`parse_table` uses it when it
is there and falls back to numpy's ``fromstring`` otherwise; both return the
correctly rounded value of every token (the C parser is checked against
numpy's in the tests), so results never depend on which one ran.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

SOURCE = Path(__file__).with_name("fastparse.c")
LIBRARY = Path(__file__).with_name("_fastparse.so")


class ParseError(ValueError):
    """A token is not a number; ``offset`` is its first byte in the buffer."""

    def __init__(self, offset: int):
        super().__init__(f"not a number at byte {offset}")
        self.offset = offset


def build(dest: str | os.PathLike = LIBRARY, compiler: str | None = None, flags: Sequence[str] = ()) -> Path:
    """Compile ``fastparse.c`` into the shared library ``dest`` (atomically).

    ``-O3`` and no ``-march``: the fast path is SSE2 (every x86-64 CPU) with
    an SSSE3 version chosen at run time, so the library also runs on another
    machine sharing the checkout; ``-march=native`` measured no faster.
    ``flags`` are added (the tests also build the SSE2 path alone with
    ``-DBIGE_NO_SSSE3`` and the portable one with ``-DBIGE_NO_SIMD``). Raises
    ``RuntimeError`` with the compiler's message when no C compiler is found
    or compilation fails."""
    dest = Path(dest)
    cc = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError("no C compiler (cc/gcc) found; motion files are parsed with numpy instead")
    fd, tmp = tempfile.mkstemp(prefix=".fastparse.", suffix=".so", dir=dest.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, "-O3", *flags, "-shared", "-fPIC", "-o", tmp, str(SOURCE)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} could not compile {SOURCE}:\n{proc.stderr.strip()}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def load(path: str | os.PathLike = LIBRARY):
    """The compiled ``bige_parse_table`` function, or ``None`` when ``path``
    is missing, unloadable or older than the source. Its ``simd_level`` is the
    fast path it takes on this CPU (2 SSSE3, 1 SSE2, 0 none)."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_mtime < SOURCE.stat().st_mtime:
            return None
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    fn = lib.bige_parse_table
    fn.restype = ctypes.c_long
    fn.argtypes = [ctypes.c_char_p, ctypes.c_long, ctypes.c_long, ctypes.c_long,
                   ctypes.c_void_p, ctypes.c_long,  # the output buffer's address (int)
                   ctypes.POINTER(ctypes.c_long), ctypes.POINTER(ctypes.c_long), ctypes.POINTER(ctypes.c_long)]
    lib.bige_simd_level.restype = ctypes.c_int
    fn.simd_level = lib.bige_simd_level()
    return fn


_C_PARSER = load()


@dataclass
class Table:
    """What :func:`parse_table` found: every number in order, the count of
    lines holding numbers, the first line (0-based from the start) whose
    count of numbers differs from the one asked (-1: none), and the index in
    ``values`` of the first nan or infinity (-1: none)."""

    values: np.ndarray
    rows: int
    bad_line: int
    nonfinite: int = -1


def parse_table(data: bytes, start: int = 0, n_cols: int = 0, parser=None, rows_hint: int = 0) -> Table:
    """Parse the whitespace-separated numbers of ``data[start:]``.

    Raises :class:`ParseError` (``offset`` from the start of ``data``) at the
    first token that is not a number. ``n_cols > 0`` also checks each line's
    count of numbers (``Table.bad_line``). ``rows_hint`` (a header's row
    count) sizes the output buffer without a pass to count the lines; a wrong
    hint only costs a second parse into a buffer of the exact size."""
    fn = parser if parser is not None else _C_PARSER
    if fn is None:
        return _parse_table_numpy(data, start, n_cols)
    n = len(data) - start
    # a well-formed table holds n_cols numbers a line; anything else is counted
    # by the first pass and parsed again into a buffer of the exact size
    if n_cols > 0:
        cap = (rows_hint + 1 if rows_hint > 0 else data.count(b"\n", start) + 1) * n_cols
    else:
        cap = n // 2 + 1
    rows, bad, nonfinite = ctypes.c_long(), ctypes.c_long(), ctypes.c_long()
    while True:
        out = np.empty(cap, dtype=np.float64)
        count = fn(data, start, n, n_cols, out.__array_interface__["data"][0], cap,
                   ctypes.byref(rows), ctypes.byref(bad), ctypes.byref(nonfinite))
        if count < 0:
            raise ParseError(-count - 1)
        if count <= cap:
            return Table(out[:count], rows.value, bad.value, nonfinite.value)
        cap = count


_TOKEN = re.compile(rb"[^ \t\n\r\v\f]+")  # what bytes.split() separates


def _parse_table_numpy(data: bytes, start: int, n_cols: int) -> Table:
    """:func:`parse_table` with numpy's parser (no C compiler at install)."""
    lines = data[start:].split(b"\n")
    counts = [len(line.split()) for line in lines]
    bad = next((k for k, c in enumerate(counts) if c and n_cols > 0 and c != n_cols), -1)
    try:
        values = np.fromstring(data[start:].decode("utf-8", errors="replace"), dtype=np.float64, sep=" ")
    except ValueError:
        offset = start
        for line in lines:
            for match in _TOKEN.finditer(line):
                try:
                    if b"_" in match.group():  # float() takes 1_000, strtod (the C parser) does not
                        raise ValueError
                    float(match.group())
                except ValueError:
                    raise ParseError(offset + match.start()) from None
            offset += len(line) + 1
        raise ParseError(start) from None
    finite = np.isfinite(values)
    nonfinite = -1 if finite.all() else int(np.argmin(finite))
    return Table(values, sum(1 for c in counts if c), bad, nonfinite)


def backend() -> str:
    """Which parser :func:`parse_table` uses: ``"C (SSSE3)"``, ``"C (SSE2)"``,
    ``"C"`` (no SIMD path on this machine) or ``"numpy"``."""
    if _C_PARSER is None:
        return "numpy"
    return {2: "C (SSSE3)", 1: "C (SSE2)"}.get(_C_PARSER.simd_level, "C")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the C number parser of utils/motion_io.py.")
    parser.add_argument("--build", action="store_true", help=f"compile {SOURCE.name} into {LIBRARY.name}")
    args = parser.parse_args(argv)
    if not args.build:
        print(f"parser in use: {backend()}")
        return 0
    try:
        print(f"built {build()}")
    except RuntimeError as err:  # not fatal: numpy's parser gives the same values, slower
        print(f"fastparse: {err}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
