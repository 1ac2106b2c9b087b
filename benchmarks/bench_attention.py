"""Benchmark suite 'attention' (same as `wsfusion bench --suite attention`): prints JSON, then a table."""

from wsfusion.bench import script_main

if __name__ == "__main__":
    script_main(["attention"], __doc__)
