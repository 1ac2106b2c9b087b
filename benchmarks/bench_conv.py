"""CrossModalConv (fused and reference) against PyG RGCNConv / FastRGCNConv: time and peak memory.

    python benchmarks/bench_conv.py [--quick] [--threads 2] [--device cpu]
"""

from wsfusion.bench import script_main

if __name__ == "__main__":
    script_main(["conv"], __doc__.splitlines()[0])
