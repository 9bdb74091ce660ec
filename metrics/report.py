"""Tables of metric rows: aligned text for the terminal, Markdown, CSV and
JSON, written atomically and never over an existing result unless asked.

A row is a flat ``{key: value}`` dict; a :class:`Column` picks one key for the
printed tables (with ``key + "_std"`` shown as ``mean ± std`` when present,
and ``key + "_ci_low"`` / ``"_ci_high"`` as an interval). CSV and JSON hold
every key of every row.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from utils.fileio import OutputExistsError, atomic_write_json, atomic_write_text

OUTPUT_FORMATS = ("csv", "json", "md")


@dataclass(frozen=True)
class Column:
    """One printed column: ``key`` of the rows, ``header`` text (with unit),
    number format, and whether to show ``_std`` / ``_ci_low``..``_ci_high``."""

    key: str
    header: str
    fmt: str = ".3f"
    std: bool = False
    ci: bool = False


def format_cell(row: dict, col: Column) -> str:
    """The text of one cell; ``-`` when the row lacks the key or it is NaN."""
    value = row.get(col.key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str) or not col.fmt:
        return str(value)
    text = format(value, col.fmt)
    std = row.get(f"{col.key}_std")
    if col.std and std is not None and not math.isnan(std):
        text += f" ± {format(std, col.fmt)}"
    lo, hi = row.get(f"{col.key}_ci_low"), row.get(f"{col.key}_ci_high")
    if col.ci and lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        text += f" [{format(lo, col.fmt)}, {format(hi, col.fmt)}]"
    return text


def text_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """Aligned plain-text table: text columns left-aligned, numbers right-aligned."""
    cells = [[format_cell(r, c) for c in columns] for r in rows]
    widths = [max([len(c.header)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    numeric = [any(not isinstance(r.get(c.key), str) for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line([c.header for c in columns]), line(["-" * w for w in widths])]
    out += [line(c) for c in cells]
    return "\n".join(out)


def markdown_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """GitHub-flavoured Markdown table of the same cells."""
    head = "| " + " | ".join(c.header for c in columns) + " |"
    rule = "| " + " | ".join("---" if isinstance(rows[0].get(c.key) if rows else "", str) else "---:"
                             for c in columns) + " |"
    body = ["| " + " | ".join(format_cell(r, c).replace("|", "\\|") for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def csv_text(rows: Sequence[dict]) -> str:
    """CSV of every key of every row (union of keys, first-seen order)."""
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_value(r.get(k)) for k in keys})
    return buf.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return "" if value is None else value


def output_paths(out_dir: str | os.PathLike, stem: str, overwrite: bool) -> dict[str, Path]:
    """``{fmt: <out_dir>/<stem>.<fmt>}`` for csv, json and md. Raises
    :class:`OutputExistsError` naming every existing file unless
    ``overwrite``; call it before any work starts."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder")
    paths = {fmt: out_dir / f"{stem}.{fmt}" for fmt in OUTPUT_FORMATS}
    taken = [str(p) for p in paths.values() if p.exists()]
    if taken and not overwrite:
        raise OutputExistsError(f"results exist: {', '.join(taken)}; pass --overwrite to replace them "
                                "or --out-name / --out to write elsewhere")
    return paths


def write_outputs(
    paths: dict[str, Path], rows: Sequence[dict], columns: Sequence[Column], payload: dict[str, Any],
    title: str, notes: Sequence[str] = (), extra_md: str = "",
) -> None:
    """Write the CSV (``rows``), the JSON (``payload`` plus ``rows``) and the
    Markdown (``title``, the table of ``columns``, ``notes``, ``extra_md``),
    each atomically."""
    atomic_write_text(paths["csv"], csv_text(rows))
    atomic_write_json(paths["json"], {**payload, "rows": list(rows)})
    md = [f"# {title}", "", markdown_table(rows, columns), ""]
    if notes:
        md += [f"- {n}" for n in notes] + [""]
    if extra_md:
        md += [extra_md, ""]
    atomic_write_text(paths["md"], "\n".join(md))
