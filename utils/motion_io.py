"""Read and write OpenSim motion files: ``.mot`` / ``.sto`` (coordinates,
activations) and ``.trc`` (marker trajectories).

Every file becomes one :class:`Motion`: times (T,), column labels, values
(T, C) as float64, plus units and header metadata. Columns are addressed by
label, never by position. Writing is atomic and the files load in OpenSim
(``opensim.TimeSeriesTable`` / ``opensim.Storage`` / ``TimeSeriesTableVec3``).

Bad input raises :class:`MotionFileError` naming the file and line.
"""
from __future__ import annotations

import functools
import io
import logging
import math
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from utils.constants import COORDINATES, FRAME_RATE, TRANSLATIONS
from utils.errors import BigeError
from utils.fastparse import ParseError, parse_table
from utils.fileio import atomic_write_text

_LOG = logging.getLogger(__name__)


class MotionFileError(BigeError, ValueError):
    """A motion file could not be read; the message names the file and line."""

    def __init__(self, path: str | os.PathLike | None, message: str, line: int | None = None):
        where = str(path) if path is not None else "<motion>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")
        self.path = None if path is None else Path(path)
        self.line = line


_JOINTSET_VALUE = re.compile(r"^/jointset/[^/]+/([^/]+)/value$")
_FORCESET_ACTIVATION = re.compile(r"^/forceset/([^/]+)/activation$")
_BARE_ACTIVATION = re.compile(r"^([^/]+)/activation$")

TRC_UNITS: dict[str, float] = {"m": 1.0, "meters": 1.0, "metres": 1.0, "cm": 0.01, "mm": 0.001}
"""Length units a ``.trc`` header may declare, and their factor to metres."""


def canonical_label(label: str) -> str:
    """Short name of an OpenSim column label.

    ``/jointset/knee_r/knee_angle_r/value`` -> ``knee_angle_r``;
    ``/forceset/vasmed_r/activation`` and OpenCap's ``vasmed_r/activation``
    -> ``vasmed_r``; other labels (bare names, as static optimisation writes
    them) unchanged.
    """
    if "/" not in label:
        return label
    for pattern in (_JOINTSET_VALUE, _FORCESET_ACTIVATION, _BARE_ACTIVATION):
        match = pattern.match(label)
        if match:
            return match.group(1)
    return label


def is_rotation(label: str) -> bool:
    """True if ``label`` names one of the 33 coordinates and it is an angle."""
    name = canonical_label(label)
    return name in COORDINATES and name not in TRANSLATIONS


@functools.lru_cache(maxsize=256)
def _label_index(labels: tuple[str, ...]) -> tuple[dict[str, int], tuple[str, str, str] | None]:
    """``short name -> column`` of ``labels``, and the first clash (first
    label, second label, the short name both give) or ``None``. Cached: the
    files of a dataset share their labels."""
    shorts = [lab if "/" not in lab else canonical_label(lab) for lab in labels]
    index = dict(zip(shorts, range(len(shorts))))
    if len(index) == len(shorts):
        return index, None
    index = {}
    for i, (lab, short) in enumerate(zip(labels, shorts)):
        if short in index:
            return index, (labels[index[short]], lab, short)
        index[short] = i
    raise AssertionError("unreachable: a clash was counted")


@dataclass
class Motion:
    """A table of samples over time, as read from or written to a motion file.

    ``values`` has shape (T, C) with one column per entry of ``labels``.
    ``in_degrees`` tells the unit of rotational coordinate columns (``None`` for
    marker data); ``units`` is the length unit of marker data (``m`` / ``mm``).
    For ``.trc`` data the labels are ``<marker>_X``, ``<marker>_Y``, ``<marker>_Z``.
    """

    times: np.ndarray
    labels: tuple[str, ...]
    values: np.ndarray
    in_degrees: bool | None = True
    units: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    name: str = "motion"
    source: Path | None = None
    unit_note: str = ""

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.float64)
        self.values = np.asarray(self.values, dtype=np.float64)
        self.labels = tuple(self.labels)
        if self.values.ndim != 2 or self.values.shape != (len(self.times), len(self.labels)):
            raise MotionFileError(
                self.source,
                f"values of shape {self.values.shape} do not match {len(self.times)} times "
                f"x {len(self.labels)} labels",
            )
        index, clash = _label_index(self.labels)
        if clash is not None:
            first, lab, short = clash
            raise MotionFileError(self.source, f"columns {first!r} and {lab!r} both name {short!r}; keep one of them")
        self._index: dict[str, int] = index  # shared by every Motion with these labels: never mutated

    @property
    def n_frames(self) -> int:
        return len(self.times)

    @property
    def frame_rate(self) -> float:
        """Sampling rate from the time column (Hz); ``FRAME_RATE`` for one frame."""
        if self.n_frames < 2:
            return FRAME_RATE
        return float((self.n_frames - 1) / (self.times[-1] - self.times[0]))

    def has(self, label: str) -> bool:
        return canonical_label(label) in self._index

    def column(self, label: str) -> np.ndarray:
        """One column by label (full OpenSim path or short name). (T,)"""
        try:
            return self.values[:, self._index[canonical_label(label)]]
        except KeyError:
            raise MotionFileError(self.source, f"no column named {label!r}") from None

    def columns(self, labels: Sequence[str]) -> np.ndarray:
        """Several columns by label, in the order asked. (T, len(labels))"""
        missing = [lab for lab in labels if canonical_label(lab) not in self._index]
        if missing:
            raise MotionFileError(self.source, f"missing columns: {', '.join(missing)}")
        return self.values[:, [self._index[canonical_label(lab)] for lab in labels]]

    def coordinates(self, names: Sequence[str] = COORDINATES, degrees: bool = True) -> np.ndarray:
        """The named coordinates in the given order, rotations in degrees (or
        radians with ``degrees=False``), translations in metres. (T, len(names))

        Raises :class:`MotionFileError` listing every missing coordinate.
        """
        missing = [n for n in names if n not in self._index]
        if missing:
            raise MotionFileError(
                self.source, f"missing required coordinates ({len(missing)}): {', '.join(missing)}"
            )
        out = self.values[:, [self._index[n] for n in names]].copy()
        rot = np.array([n not in TRANSLATIONS for n in names])
        file_deg = True if self.in_degrees is None else self.in_degrees
        if file_deg and not degrees:
            out[:, rot] = np.deg2rad(out[:, rot])
        elif degrees and not file_deg:
            out[:, rot] = np.rad2deg(out[:, rot])
        return out

    def markers(self) -> tuple[tuple[str, ...], np.ndarray]:
        """Marker names and positions (T, M, 3) of ``.trc`` data, in metres."""
        names = tuple(lab[:-2] for lab in self.labels[::3])
        scale = TRC_UNITS.get((self.units or "m").strip().lower())
        if scale is None:
            raise MotionFileError(self.source, f"marker units {self.units!r}: expected one of {', '.join(TRC_UNITS)}")
        return names, self.values.reshape(self.n_frames, -1, 3) * scale


# ----------------------------------------------------------------------------- reading


def read_motion(path: str | os.PathLike) -> Motion:
    """Read a ``.mot``, ``.sto`` or ``.trc`` file by its extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".mot", ".sto"):
        return read_storage(path)
    if suffix == ".trc":
        return read_trc(path)
    raise MotionFileError(path, f"unknown motion file type {suffix!r}; expected .mot, .sto or .trc")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, a UTF-8 byte-order mark removed; clear errors for
    missing, unreadable, folder and empty paths."""
    try:
        with open(path, "rb", buffering=0) as handle:  # one read of the size fstat gives, no buffer copy
            data = handle.readall()
    except FileNotFoundError:
        raise MotionFileError(path, "file does not exist") from None
    except IsADirectoryError:
        raise MotionFileError(path, "is a folder, expected a motion file") from None
    except PermissionError:
        raise MotionFileError(path, "cannot be read (permission denied)") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data or data.isspace():  # (no copy of the whole file, unlike strip())
        raise MotionFileError(path, "file is empty", line=1)
    return data


def _read_text(path: Path) -> str:
    """The file as text (UTF-8, undecodable bytes replaced, newlines unified)."""
    return _read_bytes(path).decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


_HEADER_END = re.compile(rb"^[ \t]*endheader[ \t]*\r?$", re.MULTILINE | re.IGNORECASE)
_LEGACY_KEYS = ("datacolumns", "datarows", "range")
_COUNT_KEYS = (("nRows", "datarows", 0), ("nColumns", "datacolumns", 1))
_TRUE = ("yes", "y", "true", "t", "1", "on")
_FALSE = ("no", "n", "false", "f", "0", "off")


def _parse_header(path: Path, lines: list[str]) -> tuple[str, dict[str, str], dict[str, int]]:
    """Name, ``key -> value`` metadata and ``key -> line number`` of a storage header.

    Takes both OpenSim header styles: ``key=value`` lines (``version=1``,
    ``nRows``, ``nColumns``, ``inDegrees``) and the older ``datacolumns N`` /
    ``datarows N`` / ``range a b`` lines. The first line, when it is neither,
    is the file's name; other free-text lines are ignored.
    """
    name = path.stem
    metadata: dict[str, str] = {}
    where: dict[str, int] = {}
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if "=" in line:
            key, _, value = line.partition("=")
            metadata[key.strip()] = value.strip()
            where[key.strip()] = i + 1
            continue
        word, _, value = line.partition(" ")
        if word.lower() in _LEGACY_KEYS and value.strip():
            metadata[word.lower()] = value.strip()
            where[word.lower()] = i + 1
        elif i == 0:
            name = line[5:].strip() if word.lower() == "name" else line
    return name, metadata, where


def _split_labels(path: Path, line: bytes, line_no: int) -> tuple[str, ...]:
    """Column labels of a storage file: tab-separated (labels may hold spaces)
    or, without a tab, whitespace-separated; a trailing separator is allowed."""
    labels = _label_fields(line)
    if not all(labels):
        raise MotionFileError(path, f"column {labels.index('') + 1} has an empty label", line=line_no)
    return labels


@functools.lru_cache(maxsize=256)
def _label_fields(line: bytes) -> tuple[str, ...]:
    """The fields of a label line (cached by its bytes: the files of a dataset
    share theirs, and then their labels are the same string objects)."""
    text = line.decode("utf-8", errors="replace")
    if "\t" not in text:
        return tuple(text.split())
    text = text.strip()
    labels = text.split("\t")
    bare = text.replace("\t", "")
    if " " in bare or not bare.isprintable():  # whitespace other than tabs (all of it is unprintable but ' ')
        labels = [lab.strip() for lab in labels]
    return tuple(labels)


def read_storage(path: str | os.PathLike) -> Motion:
    """Read an OpenSim storage file (``.mot`` / ``.sto``), as OpenSim and OpenCap write them.

    Tabs or spaces between values, a trailing separator on any row, the
    current header (``version=1``, ``nRows``, ``nColumns``, ``inDegrees``,
    free text) and the older one (``name``, ``datacolumns``, ``datarows``,
    ``range``). Where the header does not give ``inDegrees`` the unit is
    decided by :func:`decide_angle_unit` and the decision is logged.
    """
    path = path if isinstance(path, Path) else Path(path)
    raw = _read_bytes(path)
    end = _HEADER_END.search(raw)
    if end is None:
        raise MotionFileError(path, "no 'endheader' line: not an OpenSim storage file",
                              line=raw.count(b"\n") + (not raw.endswith(b"\n")))
    header_lines = raw[:end.start()].decode("utf-8", errors="replace").split("\n")[:-1]
    name, metadata, where = _parse_header(path, [h.rstrip("\r") for h in header_lines])
    end_line = len(header_lines) + 1
    pos, line_no = raw.find(b"\n", end.end()) + 1, end_line + 1  # the line after endheader
    while True:
        if pos <= 0 or pos >= len(raw):
            raise MotionFileError(path, "no column labels after 'endheader'", line=end_line)
        stop = raw.find(b"\n", pos)
        stop = len(raw) if stop < 0 else stop
        if raw[pos:stop].strip():
            break
        pos, line_no = stop + 1, line_no + 1
    label_no = line_no
    labels = _split_labels(path, raw[pos:stop], label_no)
    if labels[0].lower() != "time":
        raise MotionFileError(path, f"first column must be 'time', found {list(labels[:1])}", line=label_no)
    _check_duplicates(path, labels, label_no)

    data = _parse_body(path, raw, stop + 1, label_no + 1, len(labels), rows_hint=_header_rows(metadata))
    _check_counts(path, metadata, where, data.shape, label_no)
    _check_time(path, data[:, 0], lambda row: _line_of_row(raw[stop + 1:].split(b"\n"), label_no + 1, row))

    values_labels = tuple(labels[1:])
    if "inDegrees" in metadata:
        in_degrees = _parse_bool(path, "inDegrees", metadata["inDegrees"], where["inDegrees"])
        unit_note = f"inDegrees={metadata['inDegrees']} in the header"
    else:
        in_degrees, unit_note = decide_angle_unit(values_labels, data[:, 1:])
        level = logging.WARNING if "ambiguous" in unit_note else logging.INFO
        _LOG.log(level, "%s: no inDegrees in the header; %s", path, unit_note)
    return Motion(
        times=data[:, 0], labels=values_labels, values=data[:, 1:],
        in_degrees=in_degrees, metadata=metadata, name=name, source=path, unit_note=unit_note,
    )


def decide_angle_unit(labels: Sequence[str], values: np.ndarray) -> tuple[bool, str]:
    """Decide degrees or radians for a storage file whose header does not say.

    Returns ``(in_degrees, reason)``. The rule, as a careful user would apply
    it: OpenSim's own ``Storage`` assumes degrees for such files, and OpenCap's
    older files are in degrees. Degrees is certain when a rotational
    coordinate exceeds 2*pi in magnitude (impossible as a joint angle in
    radians); otherwise degrees is still assumed (as OpenSim does) and the
    reason says the values are ambiguous, so the caller logs a warning.
    """
    rot = [i for i, lab in enumerate(labels) if is_rotation(lab)]
    if not rot:
        return True, "no rotational coordinates among the columns; unit irrelevant, degrees assumed"
    peak = float(np.max(np.abs(values[:, rot]))) if len(values) else 0.0
    if peak > 2.0 * math.pi:
        return True, f"degrees: rotations reach {peak:.1f}, more than 2*pi, so they cannot be radians"
    return True, (f"degrees assumed as OpenSim does, but ambiguous: every rotation is within "
                  f"+-{peak:.2f}, plausible in radians too; add inDegrees=yes/no to the header")


def read_trc(path: str | os.PathLike) -> Motion:
    """Read an OpenSim ``.trc`` marker file. Values are in the file's units."""
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    if len(lines) < 5:
        raise MotionFileError(path, f"a .trc file needs 5 header lines, found {len(lines)}", line=len(lines))
    keys = lines[1].split("\t") if "\t" in lines[1] else lines[1].split()
    vals = lines[2].split("\t") if "\t" in lines[2] else lines[2].split()
    header = {k.strip(): v.strip() for k, v in zip(keys, vals)}
    for required in ("DataRate", "NumFrames", "NumMarkers", "Units"):
        if required not in header:
            raise MotionFileError(path, f"header lacks {required!r}", line=2)
    try:
        n_markers = int(header["NumMarkers"])
        n_frames = int(header["NumFrames"])
        rate = float(header["DataRate"])
    except ValueError:
        raise MotionFileError(path, "NumMarkers/NumFrames/DataRate must be numbers", line=3) from None
    names = [n.strip() for n in lines[3].split("\t")[2:] if n.strip()]
    if len(names) != n_markers:
        raise MotionFileError(path, f"NumMarkers={n_markers} but {len(names)} marker names", line=4)
    _check_duplicates(path, names, 4)
    body_start = 5
    while body_start < len(lines) and not lines[body_start].strip():
        body_start += 1
    data = _parse_body(path, "\n".join(lines[body_start:]).encode(), 0, body_start + 1, 2 + 3 * n_markers)
    if data.shape[0] != n_frames:
        raise MotionFileError(path, f"NumFrames={n_frames} but the body has {data.shape[0]} rows", line=3)
    labels = tuple(f"{m}_{axis}" for m in names for axis in "XYZ")
    if header["Units"].strip().lower() not in TRC_UNITS:
        raise MotionFileError(path, f"Units={header['Units']!r}: expected one of {', '.join(TRC_UNITS)}", line=3)
    motion = Motion(
        times=data[:, 1], labels=labels, values=data[:, 2:], in_degrees=None,
        units=header["Units"], metadata=header, name=path.stem, source=path,
    )
    _check_time(path, motion.times, lambda row: _line_of_row(lines[body_start:], body_start + 1, row))
    if abs(motion.frame_rate - rate) > 1e-3 * rate and motion.n_frames > 1:
        raise MotionFileError(path, f"DataRate={rate} but the time column runs at {motion.frame_rate:.3f} Hz", line=3)
    return motion


def _parse_bool(path: Path, key: str, value: str, line: int) -> bool:
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise MotionFileError(path, f"{key}={value!r}: expected yes or no", line=line)


def _check_duplicates(path: Path, labels: Sequence[str], line: int) -> None:
    if len(set(labels)) == len(labels):
        return
    seen: set[str] = set()
    for lab in labels:
        if lab in seen:
            raise MotionFileError(path, f"duplicate column label {lab!r}", line=line)
        seen.add(lab)


def _header_rows(metadata: dict[str, str]) -> int:
    """The header's row count (``nRows`` / ``datarows``) when it is a plain
    non-negative integer, else 0 (unknown); only used to size a buffer."""
    value = metadata.get("nRows", metadata.get("datarows", ""))
    return int(value) if value.isdigit() else 0


def _parse_body(path: Path, raw: bytes, start: int, first_line: int, n_cols: int, rows_hint: int = 0) -> np.ndarray:
    """Parse the numeric rows of ``raw[start:]`` (whose first line is file line
    ``first_line``) into (rows, n_cols) float64.

    Fast path: one C-level pass over the whole body (:mod:`utils.fastparse`:
    any whitespace, trailing separators, blank lines) that also counts the
    numbers of every line; only when something is wrong is the offending line
    decoded to name the line and column.
    """
    try:
        table = parse_table(raw, start, n_cols, rows_hint=rows_hint)
    except ParseError as err:
        bad = raw.count(b"\n", start, err.offset)
        _diagnose_line(path, raw, start, bad, first_line, n_cols)
        raise MotionFileError(path, "not a number", line=first_line + bad) from None
    if table.rows == 0:
        raise MotionFileError(path, "no data rows", line=first_line)
    if table.bad_line >= 0:
        _diagnose_line(path, raw, start, table.bad_line, first_line, n_cols)
        raise MotionFileError(path, f"could not parse the row as {n_cols} numbers", line=first_line + table.bad_line)
    data = table.values.reshape(table.rows, n_cols)
    if table.nonfinite >= 0:
        row, col = divmod(table.nonfinite, n_cols)
        raise MotionFileError(path, f"non-finite value {data[row, col]} in column {col + 1}",
                              line=_line_of_row(raw[start:].split(b"\n"), first_line, row))
    return data


def _diagnose_line(path: Path, raw: bytes, start: int, index: int, first_line: int, n_cols: int) -> None:
    """Raise the precise error for line ``index`` (0-based from ``start``) of the body."""
    line = raw[start:].split(b"\n")[index].decode("utf-8", errors="replace")
    _diagnose_rows(path, [line], first_line + index, n_cols)


def _line_of_row(body: Sequence[str | bytes], first_line: int, row: int) -> int:
    """File line number of the ``row``-th non-blank row of ``body``."""
    seen = -1
    for k, raw in enumerate(body):
        if raw.strip():
            seen += 1
            if seen == row:
                return first_line + k
    return first_line + len(body) - 1


def _row_fields(raw: str) -> list[str]:
    """The value fields of one data row: tab-separated when it holds a tab
    (spaces around a value allowed, a trailing tab ignored), else whitespace."""
    text = raw.strip()
    if "\t" in text:
        return [f.strip() for f in text.split("\t")]
    return text.split()


def _diagnose_rows(path: Path, body: list[str], first_line: int, n_cols: int) -> None:
    """Find the first bad row and raise an error that names it."""
    for k, raw in enumerate(body):
        if not raw.strip():
            continue
        line_no = first_line + k
        fields = _row_fields(raw)
        if "" in fields:
            raise MotionFileError(path, f"column {fields.index('') + 1} is empty", line=line_no)
        if len(fields) != n_cols:
            raise MotionFileError(path, f"expected {n_cols} numbers, found {len(fields)}", line=line_no)
        for col, field_text in enumerate(fields):
            try:
                float(field_text)
            except ValueError:
                raise MotionFileError(path, f"column {col + 1}: {field_text!r} is not a number",
                                      line=line_no) from None


def _check_counts(path: Path, metadata: dict[str, str], where: dict[str, int],
                  shape: tuple[int, int], label_line: int) -> None:
    """Row and column counts declared in either header style against the body."""
    for key, legacy, axis in _COUNT_KEYS:
        for name in (key, legacy):
            if name not in metadata:
                continue
            try:
                declared = int(metadata[name])
            except ValueError:
                raise MotionFileError(path, f"{name}={metadata[name]!r} is not an integer",
                                      line=where.get(name)) from None
            if declared != shape[axis]:
                raise MotionFileError(path, f"header says {name}={declared} but the body has {shape[axis]}",
                                      line=label_line)


def _check_time(path: Path, times: np.ndarray, line_of_row: Callable[[int], int]) -> None:
    """Times must increase. ``line_of_row(k)`` is the file line of data row
    ``k`` (blank lines in the body count as file lines); it is called only
    when the check fails, so a good file pays nothing for it."""
    if len(times) > 1 and not (times[1:] > times[:-1]).all():
        steps = np.diff(times)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            k = int(bad[0]) + 1
            raise MotionFileError(
                path, f"time is not increasing ({times[k - 1]} then {times[k]})", line=line_of_row(k)
            )


# ----------------------------------------------------------------------------- writing


def write_mot(
    path: str | os.PathLike,
    times: np.ndarray,
    labels: Sequence[str],
    values: np.ndarray,
    in_degrees: bool = True,
    name: str | None = None,
) -> Path:
    """Write an OpenSim ``.mot`` / ``.sto`` file atomically.

    ``values`` (T, C) must already be in the unit ``in_degrees`` declares for
    rotational coordinates. Returns the path written.
    """
    path = Path(path)
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    labels = list(labels)
    if values.shape != (len(times), len(labels)):
        raise ValueError(f"values {values.shape} do not match {len(times)} times x {len(labels)} labels")
    if not np.isfinite(values).all() or not np.isfinite(times).all():
        raise ValueError(f"refusing to write non-finite values to {path}")
    _check_duplicates(path, ["time", *labels], 0)
    buf = io.StringIO()
    buf.write(f"{name or path.stem}\n")
    buf.write("version=1\n")
    buf.write(f"nRows={len(times)}\n")
    buf.write(f"nColumns={len(labels) + 1}\n")
    buf.write(f"inDegrees={'yes' if in_degrees else 'no'}\n")
    buf.write("endheader\n")
    buf.write("\t".join(["time", *labels]) + "\n")
    np.savetxt(buf, np.column_stack([times, values]), fmt="%.10g", delimiter="\t")
    return atomic_write_text(path, buf.getvalue())


def write_coordinates(
    path: str | os.PathLike,
    coords_deg: np.ndarray,
    frame_rate: float = FRAME_RATE,
    extra: dict[str, np.ndarray] | None = None,
    names: Sequence[str] = COORDINATES,
) -> Path:
    """Write a (T, 33) canonical-order coordinate array (degrees / metres) as a
    ``.mot`` at ``frame_rate``; ``extra`` adds columns (e.g. activations)."""
    coords_deg = np.asarray(coords_deg, dtype=np.float64)
    times = np.arange(coords_deg.shape[0]) / frame_rate
    labels = list(names)
    values = [coords_deg]
    for label, column in (extra or {}).items():
        labels.append(label)
        values.append(np.asarray(column, dtype=np.float64).reshape(-1, 1))
    return write_mot(path, times, labels, np.hstack(values), in_degrees=True)


def write_trc(
    path: str | os.PathLike,
    times: np.ndarray,
    marker_names: Sequence[str],
    positions: np.ndarray,
    units: str = "m",
) -> Path:
    """Write marker trajectories (T, M, 3), in ``units``, as an OpenSim ``.trc``."""
    path = Path(path)
    times = np.asarray(times, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    n_frames, n_markers = len(times), len(marker_names)
    if positions.shape != (n_frames, n_markers, 3):
        raise ValueError(f"positions {positions.shape} do not match ({n_frames}, {n_markers}, 3)")
    if not np.isfinite(positions).all():
        raise ValueError(f"refusing to write non-finite marker positions to {path}")
    rate = FRAME_RATE if n_frames < 2 else (n_frames - 1) / (times[-1] - times[0])
    buf = io.StringIO()
    buf.write(f"PathFileType\t4\t(X/Y/Z)\t{path.name}\n")
    buf.write("DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames\n")
    buf.write(f"{rate:.6g}\t{rate:.6g}\t{n_frames}\t{n_markers}\t{units}\t{rate:.6g}\t1\t{n_frames}\n")
    buf.write("Frame#\tTime\t" + "\t".join(f"{m}\t\t" for m in marker_names).rstrip("\t") + "\n")
    buf.write("\t\t" + "\t".join(f"X{k}\tY{k}\tZ{k}" for k in range(1, n_markers + 1)) + "\n")
    buf.write("\n")
    table = np.column_stack([np.arange(1, n_frames + 1), times, positions.reshape(n_frames, -1)])
    fmt = ["%d", "%.10g"] + ["%.10g"] * (3 * n_markers)
    np.savetxt(buf, table, fmt=fmt, delimiter="\t")
    return atomic_write_text(path, buf.getvalue())


def read_many(paths: Iterable[str | os.PathLike], workers: int = 1) -> list[Motion]:
    """Read many motion files, optionally in ``workers`` processes, in order."""
    paths = [Path(p) for p in paths]
    if workers <= 1 or len(paths) < 2 * workers:
        return [read_motion(p) for p in paths]

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(read_motion, paths, chunksize=max(1, len(paths) // (4 * workers))))
