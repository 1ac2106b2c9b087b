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
    "_validation": 0, "_io": 0,
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
