"""Benchmark suite 'modes' (same as `wsfusion bench --suite modes`): eager, compiled and bf16 steps; JSON, then a table."""

from wsfusion.bench import script_main

if __name__ == "__main__":
    script_main(["modes"], __doc__)
