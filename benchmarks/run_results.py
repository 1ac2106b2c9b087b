"""The README Results runs (issue 9): every fusion and unimodal row, evaluation seeds, tuned options.

Each part is one resumable ``wsfusion compare`` into ``docs/results/<part>/``
with the options chosen on validation (``docs/results/tuning/chosen.json``)
and the default budget (20 epochs, cosine schedule, no early stopping).
Finished runs are read back from their folders, so the command can be
killed and rerun at any time, and two processes can share a part by taking
different seeds (``--seeds``); a last call with all seeds then only
aggregates.

    python benchmarks/run_results.py hard --seeds 0,1,2 &      # two processes,
    python benchmarks/run_results.py hard --seeds 3,4           # one core each
    python benchmarks/run_results.py hard                       # aggregate: results.json/.md, plots
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wsfusion.train import TrainConfig
from wsfusion.train.compare import compare, results_markdown

#: part -> (config changes, evaluation seeds). Seeds 0-4 are the protocol's; 20-24 a second set
#: nobody tuned on (tuning used seed 100, the pooling study 100-102).
PARTS: dict[str, tuple[dict[str, object], list[int]]] = {
    "hard": ({"data": "av-digits", "hard": True}, [0, 1, 2, 3, 4]),
    "hard-seeds-20-24": ({"data": "av-digits", "hard": True}, [20, 21, 22, 23, 24]),
    "clean": ({"data": "av-digits", "hard": False}, [0, 1, 2, 3, 4]),
    # The notebook's tri-modal setting: visual [3, 32, 32], text [20, 128], audio [1, 64, 100].
    "synthetic-redundancy": ({"data": "synthetic", "synthetic_kind": "redundancy"}, [0, 1, 2, 3, 4]),
    "synthetic-uniqueness": ({"data": "synthetic", "synthetic_kind": "uniqueness"}, [0, 1, 2, 3, 4]),
    "synthetic-synergy": ({"data": "synthetic", "synthetic_kind": "synergy"}, [0, 1, 2, 3, 4]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("--seeds", help="run only these seeds of the part (comma-separated)")
    parser.add_argument("--fusions", help="run only these rows (comma-separated)")
    parser.add_argument("--options", default="docs/results/tuning/chosen.json")
    parser.add_argument("--out", default="docs/results")
    args = parser.parse_args()
    changes, seeds = PARTS[args.part]
    if args.seeds:
        seeds = [int(s) for s in args.seeds.split(",")]
    options = json.loads(Path(args.options).read_text())["chosen"]
    results = compare(TrainConfig(**changes), args.fusions.split(",") if args.fusions else None, seeds,
                      Path(args.out) / args.part, fusion_options=options, progress=False)
    print(results_markdown(results))


if __name__ == "__main__":
    main()
