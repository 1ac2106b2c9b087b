"""One command for a CUDA machine (``make gpu-check``, under 10 minutes): the device-parametrised
tests on ``cuda``, then ``wsfusion bench --device cuda`` for the attention, conv and WSLinear
suites, and one summary table.

The tests that take a device parametrise over ``cpu`` and ``cuda`` (``testing_helpers.DEVICES``):
layers and fusions under autocast bf16/fp16 and as half-precision modules, ``torch.compile``,
a short train + resume. Here only their ``cuda`` cases run (``-k cuda``). Nothing in this
script has run on a GPU until someone runs it on one: it exits 2 where torch sees no CUDA device.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "gpu-check"
TESTS = ["tests/nn", "tests/fusion", "tests/train"]


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print(f"gpu-check: torch {torch.__version__} sees no CUDA device; run this on a CUDA machine", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    start = time.perf_counter()
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-k", "cuda",
                            *TESTS], cwd=ROOT, capture_output=True, text=True)
    (OUT / "tests.txt").write_text(tests.stdout + tests.stderr)
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else "no output"
    counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary))
    rows.append(["tests on cuda", summary, f"{time.perf_counter() - start:.0f} s"])
    start = time.perf_counter()
    bench = subprocess.run([sys.executable, "-m", "wsfusion", "bench", "--device", "cuda", "--suite", "attention",
                            "--suite", "conv", "--suite", "ws-linear", "--json", "--out", str(OUT / "bench.json")],
                           cwd=ROOT, capture_output=True, text=True)
    (OUT / "bench.txt").write_text(bench.stdout + bench.stderr)
    if bench.returncode == 0:
        results = json.loads((OUT / "bench.json").read_text())
        for r in results.get("attention", []):
            sp = r["speedup"]
            flash = sp.get("fused bf16 vs dense SDPA flash bf16")
            rows.append([f"attention {r['N']:,} tokens", f"fused {r['ms']['fused']:.2f} ms; vs SDPA {sp['fused vs dense SDPA']:.1f}x"
                         + ("" if flash is None else f"; bf16 vs FlashAttention {flash:.2f}x"), ""])
        for r in results.get("conv", []):
            rows.append([f"conv {r['N']:,} nodes", f"fused {r['ms']['fused']:.2f} ms; vs RGCNConv "
                         f"{r['speedup']['fused vs PyG RGCNConv']:.1f}x", ""])
        for r in results.get("ws-linear", []):
            vs_dense = r["speedup"]["WSLinear vs dense"]
            rows.append([f"WSLinear N={r['N']:,}", f"{r['ms']['WSLinear']:.2f} ms; vs dense masked "
                         + ("-" if vs_dense is None else f"{vs_dense:.1f}x"), ""])
    else:
        rows.append(["bench", f"failed (exit {bench.returncode}), see {OUT / 'bench.txt'}", ""])
    rows.append(["bench total", "", f"{time.perf_counter() - start:.0f} s"])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"gpu-check on {torch.cuda.get_device_name()} (torch {torch.__version__}); logs in {OUT}")
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0 if tests.returncode == 0 and bench.returncode == 0 and counts.get("passed", 0) > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
