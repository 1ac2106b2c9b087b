"""Learnable topology on a synergy task: fixed beta vs learnable beta vs SET / RigL rewiring.

Starts from the blocked Watts-Strogatz ring at beta = 0 (few cross-modal edges) on
SyntheticTriModal with a synergy label, trains ws-sparse five ways at the same edge
budget and seeds, and writes topology.json, topology.md and topology.png (beta and
cross-modal edge fraction over training) to --out.

    python examples/learnable_topology.py --seeds 3 --epochs 12 --out runs/topology
"""

from __future__ import annotations

import argparse

from wsfusion.bench import topology as experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--out", default="runs/topology")
    args = parser.parse_args()
    results = experiment.run(seeds=range(args.seeds), epochs=args.epochs, samples=args.samples, out=args.out)
    print(experiment.table(results))


if __name__ == "__main__":
    main()
