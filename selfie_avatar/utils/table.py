"""Rows of dicts as a table, as plain text or HTML, with no dependency (pandas is not among the project's packages).

The notebooks show parameter counts and ablation comparisons with these; ``Table`` displays as HTML in Jupyter and as
text everywhere else.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(str(x) for x in v) + ")"
    return str(v)


def _numeric(rows: Sequence[dict], column: str) -> bool:
    vals = [r.get(column) for r in rows if r.get(column) is not None]
    return bool(vals) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)


def _columns(rows: Sequence[dict], columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    seen: dict[str, None] = {}
    for r in rows:
        seen.update(dict.fromkeys(r))
    return list(seen)


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Plain-text table; numbers right-aligned, integers with thousands separators, floats to 4 significant digits.

    Args:
        rows: one dict per row; a missing key shows as ``-``.
        columns: which keys, in order (default: every key, in first-seen order).
    """
    if not rows:
        return "(no rows)"
    cols = _columns(rows, columns)
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(cols)]
    right = [_numeric(rows, c) for c in cols]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(vals, widths, right)).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(c) for c in cells])


def table_html(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """The same table as an HTML ``<table>`` (values escaped)."""
    cols = _columns(rows, columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(
        f"<td style=\"text-align:{'right' if _numeric(rows, c) else 'left'}\">{html.escape(_cell(r.get(c)))}</td>"
        for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Table:
    """Rows shown as a table: HTML in Jupyter (``_repr_html_``), text in ``print``; ``rows`` stays plain data."""

    rows: list[dict]
    columns: list[str] | None = field(default=None)

    def __str__(self) -> str:
        return format_table(self.rows, self.columns)

    def _repr_html_(self) -> str:
        return table_html(self.rows, self.columns)

    def __len__(self) -> int:
        return len(self.rows)
