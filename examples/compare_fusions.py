"""Compare fusion strategies on the same data, seeds and budget (the library's main job).

    python examples/compare_fusions.py --fusions early,late,ws-sparse,ws-gnn --epochs 6 --seeds 2 --out runs/cmp
    python examples/compare_fusions.py --data av-digit-strings --data-option length=4 --fusions early,ws-transformer

Writes results.json, results.md and PNG plots to --out and prints the table.
"""

from __future__ import annotations

import argparse

from wsfusion import data
from wsfusion.cli import parse_option
from wsfusion.train import TrainConfig
from wsfusion.train.compare import compare, results_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="av-digits", choices=data.available())
    parser.add_argument("--data-option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the dataset (wsfusion.data.options), e.g. length=16; repeatable")
    parser.add_argument("--hard", action="store_true")
    parser.add_argument("--fusions", help="comma-separated names or only-<modality> (default: every fusion "
                                           "and one unimodal row per modality)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--synthetic-samples", type=int, default=2000)
    parser.add_argument("--out", default="runs/compare")
    args = parser.parse_args()

    base = TrainConfig(data=args.data, hard=args.hard, epochs=args.epochs, synthetic_samples=args.synthetic_samples,
                       data_options=dict(args.data_option))
    results = compare(base, args.fusions.split(",") if args.fusions else None, seeds=range(args.seeds), out=args.out)
    print(results_markdown(results))


if __name__ == "__main__":
    main()
