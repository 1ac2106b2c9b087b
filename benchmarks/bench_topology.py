"""Benchmark suite 'topology' (same as `wsfusion bench --suite topology`): fixed vs learnable beta vs SET/RigL
on a synergy task, accuracy and topology; prints JSON, then a table."""

from wsfusion.bench import script_main

if __name__ == "__main__":
    script_main(["topology"], __doc__)
