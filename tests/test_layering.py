"""The packages depend on each other in one direction only, lazy (function-level) imports included.

``_validation → graphs → nn → topology → fusion → models → train → bench → cli``,
with ``data`` beside ``graphs`` (it needs only ``_validation``) and ``encoders``
beside ``fusion``. A module may import its own package or any lower layer.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import wsfusion

SRC = Path(wsfusion.__file__).parent

LAYER = {
    "_validation": 0, "_io": 0, "_measure": 0,
    "graphs": 1, "data": 1,
    "nn": 2,
    "topology": 3,
    "encoders": 4, "fusion": 4,
    "models": 5,
    "train": 6,
    "bench": 7,
    "cli": 8,
    "__init__": 9, "__main__": 9,
}


def package_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "wsfusion"
    return parts[1] if len(parts) > 1 else "__init__"


def wsfusion_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``wsfusion...`` module imported anywhere in ``path`` (top level or inside a function)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wsfusion"):
            if node.module == "wsfusion":
                found += [(node.lineno, f"wsfusion.{a.name}" if a.name in LAYER else "wsfusion") for a in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("wsfusion")]
    return found


SOURCES = sorted(SRC.rglob("*.py"))


def test_every_package_has_a_layer():
    packages = {package_of("wsfusion." + ".".join(p.relative_to(SRC).with_suffix("").parts)) for p in SOURCES}
    assert packages <= set(LAYER), packages - set(LAYER)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path):
    here = package_of("wsfusion." + ".".join(path.relative_to(SRC).with_suffix("").parts))
    upward = [
        f"line {line}: {module}"
        for line, module in wsfusion_imports(path)
        if (there := package_of(module)) != here and LAYER[there] >= LAYER[here] and module != "wsfusion"
    ]
    assert not upward, f"{here} (layer {LAYER[here]}) imports from its own layer or above: {upward}"


def test_importing_topology_loads_neither_training_nor_fusions():
    code = ("import sys, wsfusion.topology; "
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('wsfusion.')}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(loaded) == ["_validation", "graphs", "nn", "topology"]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(("wsfusion", *(parts[:-1] if parts[-1] == "__init__" else parts)))


MODULES = {module_name(p): p for p in SOURCES}


def module_imports(path: Path) -> set[str]:
    """The wsfusion modules ``path`` imports, lazy and ``TYPE_CHECKING`` imports included:
    ``from pkg import name`` is the submodule ``pkg.name`` when there is one, else ``pkg`` itself."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wsfusion"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
    return found


def import_cycles_inside(package: str) -> list[list[str]]:
    """The import circles among the modules of one package (its ``__init__`` included)."""
    import networkx as nx

    inside = {m for m in MODULES if m == package or m.startswith(package + ".")}
    graph = nx.DiGraph()
    graph.add_nodes_from(inside)
    for m in inside:
        graph.add_edges_from((m, target) for target in module_imports(MODULES[m]) if target in inside and target != m)
    return [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]


@pytest.mark.parametrize("package", sorted({".".join(m.split(".")[:2]) for m in MODULES if m.count(".") >= 1
                                            and (SRC / m.split(".")[1]).is_dir()}))
def test_no_import_circle_inside_a_package(package):
    assert not import_cycles_inside(package), f"import circles inside {package}: {import_cycles_inside(package)}"


def test_the_import_circle_check_finds_a_planted_circle(tmp_path, monkeypatch):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from wsfusion.train.b import x\n")
    b.write_text("def f():\n    from wsfusion.train import a\n")
    monkeypatch.setitem(MODULES, "wsfusion.train.a", a)
    monkeypatch.setitem(MODULES, "wsfusion.train.b", b)
    assert ["wsfusion.train.a", "wsfusion.train.b"] in import_cycles_inside("wsfusion.train")
