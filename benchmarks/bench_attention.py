"""Benchmark suite 'attention' (same as `wsfusion bench --suite attention`): prints JSON, then a table."""

import argparse
import json

from wsfusion import bench

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smallest sizes only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    results = bench.run(["attention"], threads=args.threads, quick=args.quick, device=args.device)
    print(json.dumps(results, indent=2))
    print()
    print(bench.tables(results))
