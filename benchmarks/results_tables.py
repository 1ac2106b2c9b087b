"""Markdown tables for the README from a ``compare`` results.json (the Results section is pasted from this).

    python benchmarks/results_tables.py docs/results/hard/results.json

The tables are :func:`wsfusion.train.report.rows_table` and :func:`~wsfusion.train.report.graphs_table`,
the same as in the part's ``results.md``; the rows table's header names the part
(``| fusion | test acc (hard, 5 seeds) | ...``), so each part's table can be found, and checked
against its results.json, by ``tests/test_readme.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wsfusion.train.report import graphs_table, rows_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    print(rows_table(results, label=args.results.parent.name))
    graphs = graphs_table(results["rows"])
    if graphs:
        print()
        print(graphs)


if __name__ == "__main__":
    main()
