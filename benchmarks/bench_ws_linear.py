"""Benchmark suite 'ws-linear' (same as `wsfusion bench --suite ws-linear`): prints JSON, then a table."""

from wsfusion.bench import script_main

if __name__ == "__main__":
    script_main(["ws-linear"], __doc__)
