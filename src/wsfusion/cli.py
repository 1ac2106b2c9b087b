"""The ``wsfusion`` command line (also ``python -m wsfusion``).

Each sub-command lives in a small ``_add_<name>`` function that registers its
parser and a handler; heavy imports happen inside the handlers so that
``wsfusion --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from wsfusion import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsfusion",
        description=(
            "Multi-modal fusion over Watts-Strogatz cross-modal graphs. "
            "Run a sub-command with --help for its options."
        ),
    )
    parser.add_argument("--version", action="version", version=f"wsfusion {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_fusions,):
        add(subparsers)
    return parser


def _add_fusions(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("fusions", help="list the registered fusion strategies")
    p.set_defaults(handler=_run_fusions)


def _run_fusions(args: argparse.Namespace) -> int:
    from wsfusion import fusion

    for name in fusion.available():
        print(f"{name:12s} {fusion.describe(name)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    return int(args.handler(args) or 0)
