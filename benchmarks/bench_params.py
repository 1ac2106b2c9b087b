"""Benchmark suite 'params' (same as `wsfusion bench --suite params`): prints JSON, then a table."""

from wsfusion.bench import script_main

if __name__ == "__main__":
    script_main(["params"], __doc__)
