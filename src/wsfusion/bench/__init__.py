"""Benchmarks behind ``wsfusion bench`` and ``benchmarks/``: JSON plus a table.

Speed and memory are measured side by side in one process (interleaved
repetitions, medians), never asserted in unit tests: compare numbers only
within one run.
"""

from __future__ import annotations

from typing import Any

import torch

from wsfusion._measure import machine
from wsfusion.bench import attention, conv, modes, params, ws_linear
from wsfusion.bench._measure import format_table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def ws_linear_table(rows: list[dict[str, Any]]) -> str:
    cases = ["WSLinear", "WSLinear node-major", "dense masked", "PyG MessagePassing", "PyG EdgeIndex.matmul", "raw kernels"]
    body = []
    for r in rows:
        s = r["speedup"]
        body.append(
            [f"{r['N']:,}", r["B"], *(_ms(r["ms"][c]) for c in cases),
             "-" if s["WSLinear vs dense"] is None else f"{s['WSLinear vs dense']:.1f}x",
             f"{s['WSLinear vs PyG MessagePassing']:.1f}x", f"{s['WSLinear vs EdgeIndex.matmul']:.1f}x",
             f"{s['WSLinear / raw kernels']:.2f}x", f"{s['WSLinear node-major / raw kernels']:.2f}x",
             *(_mb(r.get("peak_mb", {}).get(c)) for c in ("WSLinear", "dense masked", "PyG MessagePassing"))]
        )
    headers = ["N", "B", *(f"{c} ms" for c in cases), "vs dense", "vs PyG MP", "vs EdgeIndex", "/ raw", "node-major / raw",
               "WSLinear MB", "dense MB", "PyG MP MB"]
    return format_table(headers, body)


def attention_table(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        ms, sp, mb = r["ms"], r["speedup"], r.get("peak_mb", {})
        body.append([
            f"{r['N']:,}", f"{r['E']:,}", _ms(ms["fused"]), _ms(ms.get("reference")), _ms(ms["dense MultiheadAttention"]),
            _ms(ms["dense SDPA"]), f"{sp['fused vs dense MultiheadAttention']:.1f}x", f"{sp['fused vs dense SDPA']:.1f}x",
            "-" if "fused vs reference" not in sp else f"{sp['fused vs reference']:.1f}x",
            _mb(mb.get("fused")), _mb(mb.get("dense MultiheadAttention")), _mb(mb.get("dense SDPA")),
        ])
    return format_table(["tokens", "E", "fused ms", "reference ms", "MHA ms", "SDPA ms", "vs MHA", "vs SDPA",
                         "vs reference", "fused MB", "MHA MB", "SDPA MB"], body)


def conv_table(rows: list[dict[str, Any]]) -> str:
    cases = ["fused", "reference", "PyG RGCNConv", "PyG FastRGCNConv"]
    body = []
    for r in rows:
        ms, sp, mb = r["ms"], r["speedup"], r.get("peak_mb", {})
        body.append([f"{r['N']:,}", f"{r['E']:,}", *(_ms(ms.get(c)) for c in cases),
                     *("-" if f"fused vs {c}" not in sp else f"{sp[f'fused vs {c}']:.1f}x" for c in cases[1:]),
                     *(_mb(mb.get(c)) for c in cases)])
    return format_table(["N", "E", *(f"{c} ms" for c in cases), *(f"vs {c}" for c in cases[1:]),
                         *(f"{c} MB" for c in cases)], body)


def modes_table(rows: list[dict[str, Any]]) -> str:
    return format_table(
        ["case", *(f"{m} ms" for m in modes.MODES), "compiled vs eager", "bf16 vs eager", "first compiled call s"],
        [[r["case"], *(_ms(r["ms"][m]) for m in modes.MODES), f"{r['speedup']['compiled vs eager']:.2f}x",
          f"{r['speedup']['bf16 vs eager']:.2f}x", f"{r['compile_s']:.1f}"] for r in rows])


def params_table(rows: list[dict[str, Any]]) -> str:
    return format_table(["fusion", "class", "parameters", "used"],
                        [[r["fusion"], r["class"], f"{r['parameters']:,}", f"{r['used']:,}"] for r in rows])


def _topology_run(device: str = "cpu", quick: bool = False) -> dict[str, Any]:
    from wsfusion.bench import topology as experiment

    if quick:
        return experiment.run(seeds=(0,), epochs=2, samples=256, progress=False)
    return experiment.run(progress=False)


def _routing_run(device: str = "cpu", quick: bool = False) -> dict[str, Any]:
    from wsfusion.bench import routing

    rows = routing.run(device=device, **(routing.QUICK if quick else {}))
    cost = (routing.cost(tokens=routing.QUICK["tokens"], topologies=routing.QUICK["topologies"], reps=1,
                         layers=routing.QUICK["layers"], device=device) if quick
            else routing.cost(device=device))
    return {"rows": rows, "summary": routing.summary(rows), "cost": cost}


def _routing_table(results: dict[str, Any]) -> str:
    body = [[f"{r['tokens']:,}", r["topology"], "-" if r["edges"] is None else f"{r['edges']:,}",
             "-" if r["avg_path_length"] is None else f"{r['avg_path_length']:.2f}", str(r["diameter"]),
             "-" if r["reach_bound"] is None else f"{r['reach_bound']:.3f}",
             f"{r['test_acc']:.3f}" + ("" if r["test_acc_ci95"] is None else f" ± {r['test_acc_ci95']:.3f}"),
             r["seeds"], _ms(r["ms_per_step"]), _mb(r["peak_mb"])] for r in results["summary"]]
    accuracy = format_table(["tokens", "topology", "edges", "avg path", "diameter", "reach bound", "test acc (95% CI)",
                             "seeds", "ms/step", "peak MB"], body)
    cost = format_table(["tokens", "topology", "ms/step", "peak MB", "reach bound"],
                        [[f"{r['tokens']:,}", r["topology"], _ms(r["ms_per_step"]), _mb(r["peak_mb"]),
                          "-" if r.get("reach_bound") is None else f"{r['reach_bound']:.3f}"] for r in results["cost"]])
    return f"{accuracy}\n\ncost per training step (untrained weights):\n\n{cost}"


def _topology_table(results: dict[str, Any]) -> str:
    from wsfusion.bench import topology as experiment

    return experiment.table(results)


SUITES = {"ws-linear": (ws_linear.run, ws_linear_table), "attention": (attention.run, attention_table),
          "conv": (conv.run, conv_table), "modes": (modes.run, modes_table),
          "params": (params.run, params_table), "topology": (_topology_run, _topology_table),
          "routing": (_routing_run, _routing_table)}
#: Suites run when none is named; "modes" compiles (a minute), "topology" and "routing" train models (minutes to
#: hours): they run only on request.
DEFAULT_SUITES = ("ws-linear", "attention", "conv", "params")


def run(suites: list[str] | None = None, threads: int | None = 2, quick: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Run the named suites (all by default); ``quick`` uses the smallest sizes only."""
    if threads is not None:
        torch.set_num_threads(threads)
    results: dict[str, Any] = {"threads": torch.get_num_threads(), "device": device, "torch": torch.__version__,
                               "machine": machine(torch.device(device))}
    for name in suites or DEFAULT_SUITES:
        fn, _ = SUITES[name]
        if name == "params":
            results[name] = fn()
        elif name in ("topology", "routing"):
            results[name] = fn(device=device, quick=quick)
        elif quick:
            sizes = {"ws-linear": dict(sizes=((192, 256), (3072, 256)), reps=5), "attention": dict(tokens=(256,), reps=3),
                     "conv": dict(nodes=(1024,), reps=3), "modes": dict(tokens=192, reps=2)}
            results[name] = fn(device=device, **sizes[name])
        else:
            results[name] = fn(device=device)
    return results


def tables(results: dict[str, Any]) -> str:
    parts = []
    for name, (_, table) in SUITES.items():
        if name in results:
            parts.append(f"## {name}\n\n{table(results[name])}")
    return "\n\n".join(parts)


def script_main(suites: list[str] | None, description: str) -> None:
    """Entry point of the ``benchmarks/*.py`` scripts: options, then JSON and the tables."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smallest sizes only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    results = run(suites, threads=args.threads, quick=args.quick, device=args.device)
    print(json.dumps(results, indent=2))
    print()
    print(tables(results))
