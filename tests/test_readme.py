"""The README's usage example runs as written."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_usage_example_runs_and_prints_what_it_claims():
    (code,) = python_blocks("Usage")
    assert len(code.strip().splitlines()) <= 10
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    assert out.getvalue().strip() == "torch.Size([8, 10])"


def test_readme_starts_with_the_two_commands():
    head = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in head.strip().splitlines()] == [["make", "demo"], ["make", "test"]]


def test_layers_example_runs():
    (code,) = python_blocks("Layers")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["y"].shape == (32, 192)
    assert namespace["h"].shape == (32, 192, 16)
    assert namespace["alpha"].shape == (32, namespace["edge_index"].shape[1], 4)
