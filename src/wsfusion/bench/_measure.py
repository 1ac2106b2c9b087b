"""Benchmark tables; the timing and peak-memory helpers live in :mod:`wsfusion._measure` (shared with
``compare``) and are imported from there."""

from __future__ import annotations


def format_table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table: a header line, a rule, then one line per row, every column right-aligned."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [" | ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)
