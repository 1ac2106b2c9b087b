"""The README and the pages under docs/: every Python block runs, every number is what the code builds.

Tables and sentences are looked up in whichever page holds them now (README.md or docs/*.md), so a
section can move between pages without the check going stale; a table header must appear exactly
once across all pages.

Python code blocks: every ```python block of README.md and docs/*.md runs as written, in a fresh
namespace, in an empty working directory, offline (AV-digits reads the fake files of
tests/conftest.py). A block that cannot run as a test is marked on the line right before its fence
with ``<!-- not-run: <reason> -->``; the reason is required.
"""

import contextlib
import dataclasses
import io
import re
from pathlib import Path

import pytest
import torch

from testing_helpers import benchmark_script

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of the README section ``## {section}``."""
    text = README.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def prose_match(pattern: str) -> re.Match:
    """The one match of ``pattern`` in the pages' text (whitespace collapsed), whichever page holds it."""
    found = [m for page in PAGES for m in re.finditer(pattern, " ".join(page.read_text().split()))]
    assert len(found) == 1, f"{pattern!r} found {len(found)} times in README.md and docs/*.md, expected once"
    return found[0]


def test_usage_example_runs_and_prints_what_it_claims():
    code, modes = python_blocks("Usage")
    assert len(code.strip().splitlines()) <= 10
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), namespace)
    assert out.getvalue().strip() == "torch.Size([8, 10])"
    # the mixed-precision and compile lines continue the same example
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(modes, str(README), "exec"), namespace)
    assert out.getvalue().strip() == "torch.bfloat16"
    assert isinstance(namespace["compiled"], torch.nn.Module)


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


# --- every python block of README.md and docs/*.md runs ---------------------------------------------

NOT_RUN = re.compile(r"<!--\s*not-run\b(.*?)-->")
NOT_RUN_WITH_REASON = re.compile(r"<!-- not-run: (\S.*?) -->")


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    index: int  #: 0-based among the page's python blocks
    fence: int  #: 0-based line index of the opening fence
    code: str
    not_run: str | None  #: the reason of a ``<!-- not-run: reason -->`` marker on the line before the fence

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}-block{self.index}"


def parse_blocks(text: str, path: Path) -> list[Block]:
    """The ```python blocks of a Markdown text, with the not-run marker (if any) right before each."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = re.match(r"\s*```\s*(\S*)", lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{path}:{i + 1}: code fence never closed"
        if opening.group(1) == "python":
            marker = NOT_RUN_WITH_REASON.fullmatch(lines[i - 1].strip()) if i else None
            blocks.append(Block(path, len(blocks), i, "\n".join(lines[i + 1:end]) + "\n",
                                marker.group(1) if marker else None))
        i = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in parse_blocks(page.read_text(), page)]


def test_the_pages_have_python_blocks():
    assert {b.path.name for b in BLOCKS} >= {"README.md", "graphs.md"}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_python_block_runs(block: Block, tmp_path, monkeypatch, av_root):
    if block.not_run:
        pytest.skip(f"{block.id} is marked not-run: {block.not_run}")
    monkeypatch.chdir(tmp_path)  # files the block writes (plots, runs) land here
    monkeypatch.setenv("WSFUSION_DATA", str(av_root))  # the fake AV-digits files; downloads are refused
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # Blank lines up to the fence, so that a traceback names the page's own line numbers.
    code = "\n" * (block.fence + 1) + block.code
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, str(block.path), "exec"), {"__name__": "__doc_block__"})


def test_not_run_markers_have_a_reason_and_precede_a_python_block():
    for page in PAGES:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if NOT_RUN.search(line):
                where = f"{page.relative_to(ROOT)}:{i + 1}"
                assert NOT_RUN_WITH_REASON.fullmatch(line.strip()), f"{where}: write <!-- not-run: reason -->"
                assert i + 1 < len(lines) and lines[i + 1].strip() == "```python", (
                    f"{where}: a not-run marker must sit on the line right before a ```python fence")


def test_block_parser_honours_not_run_markers():
    text = "\n".join([
        "```python", "a = 1", "```",
        "<!-- not-run: needs the network -->", "```python", "b = 2", "```",
        "```bash", "echo no", "```",
        "<!-- not-run -->", "```python", "c = 3", "```",
    ])
    blocks = parse_blocks(text, README)
    assert [(b.index, b.fence, b.code, b.not_run) for b in blocks] == [
        (0, 0, "a = 1\n", None), (1, 4, "b = 2\n", "needs the network"), (2, 11, "c = 3\n", None)]


# --- links between the pages resolve ----------------------------------------------------------------

def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a page, plus its explicit ``<a name=...>`` / ``<a id=...>`` anchors."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    return slugs | set(re.findall(r'<a (?:name|id)="([^"]+)"', text))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_and_anchors_resolve(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.relative_to(ROOT)}: broken link {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.relative_to(ROOT)}: no anchor #{anchor} in {linked.name}"


# --- parameter tables: every count in the pages is what the code builds ----------------------------

def number(cell: str) -> int:
    return int(cell.strip().strip("*").replace(",", ""))


def table(header_start: str) -> list[dict[str, str]]:
    """The Markdown table whose header line starts with ``header_start``, as dicts keyed by column.

    Looked up in README.md and docs/*.md; the header must start a line exactly once across them.
    """
    found = [(page, i) for page in PAGES for i, line in enumerate(page.read_text().splitlines())
             if line.startswith(header_start)]
    assert len(found) == 1, f"table {header_start!r} found {len(found)} times in README.md and docs/*.md"
    ((page, start),) = found
    lines = page.read_text().splitlines()
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, separator, *body = rows
    assert set("".join(separator)) <= set("-: "), separator
    assert body, f"the table starting {header_start!r} has no rows"
    return [dict(zip(header, row, strict=True)) for row in body]


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_table_equals_the_built_fusions():
    from wsfusion import fusion
    from wsfusion.bench import params
    from wsfusion.nn import MaskedLinear

    rows = {row["fusion"].strip("`"): (number(row["parameters"]), number(row["used"]))
            for row in table("| fusion | parameters | used |")}
    # The table is what `wsfusion bench --suite params` prints ...
    assert rows == {r["fusion"]: (r["parameters"], r["used"]) for r in params.run()}
    # ... and every registered fusion but `unimodal` has a row.
    assert set(rows) == {n for n in fusion.available() if fusion.fusion_class(n).family != "unimodal"}
    # Counted here too, on the modules themselves: three 256-d modalities, out_dim=256, default options
    # (the token fusions get the notebook encoders' 16, 20 and 25 tokens).
    dims = {"visual": 256, "text": 256, "audio": 256}
    tokens = {"visual": 16, "text": 20, "audio": 25}
    for name, (stored, used) in rows.items():
        options = {"tokens": tokens} if fusion.fusion_class(name).needs_token_counts else {}
        module = fusion.build(name, dims, 256, **options)
        assert n_params(module) == stored, name
        masked = [m for m in module.modules() if isinstance(m, MaskedLinear)]
        off_graph = sum(int((m.mask == 0).sum()) for m in masked)
        assert stored - off_graph == used, name
    # The prose under the table: the 192x192 dense weight, its 1,152 directed edges, equal to ws-sparse.
    (dense,) = [m for m in fusion.build("ws-dense", dims, 256).modules() if isinstance(m, MaskedLinear)]
    assert dense.weight.shape == (192, 192) and dense.weight.numel() == 36_864
    assert int(dense.mask.sum()) == 1_152
    prose_match(re.escape("the 192×192 weight stores 36,864 numbers of which only the graph's 1,152 directed edges"))
    assert rows["ws-dense"][1] == rows["ws-sparse"][0]


def test_the_fusion_name_table_lists_every_registered_fusion_and_its_class():
    from wsfusion import fusion

    rows = [(row["name"].strip("`"), row["class"].strip("`")) for row in table("| name | class | one line |")]
    assert rows == [(name, fusion.fusion_class(name).__name__) for name in fusion.available()]


def test_encoder_parameter_counts_in_the_prose():
    from wsfusion.encoders import AudioEncoder, TextEncoder, VisualEncoder

    found = prose_match(
        r"`VisualEncoder` `\[3, 32, 32\]` ([\d,]+), `TextEncoder` `\[20, 128\]` ([\d,]+), "
        r"`AudioEncoder` `\[1, 64, 100\]` ([\d,]+) parameters, each with output (\d+) and "
        r"(\d+), (\d+) and (\d+) tokens")  # fails if the encoder parameter sentence is gone or reworded
    encoders = (VisualEncoder(3, 32), TextEncoder(128, 20), AudioEncoder(1, 64, 100))
    assert [number(c) for c in found.groups()[:3]] == [n_params(e) for e in encoders]
    assert {number(found.group(4))} == {e.out_dim for e in encoders}
    assert [number(c) for c in found.groups()[4:]] == [e.num_tokens for e in encoders]
    attention_pool = prose_match(r'`pool="attention"` \((\d+) parameters\)').group(1)
    assert number(attention_pool) == n_params(VisualEncoder(pool="attention")) - n_params(VisualEncoder(pool="mean"))


def test_pooling_table_encoder_parameters():
    from wsfusion.encoders import encoder_for

    rows = table("| `pool` | rule |")
    (column,) = [c for c in rows[0] if c.startswith("encoder params")]
    assert column == "encoder params (image + audio, D = 64)"
    shapes = {"visual": (1, 28, 28), "audio": (1, 13, 48)}  # AV-digits
    assert len(rows) == 3
    for row in rows:
        pool = row["`pool`"].split("`")[1]
        built = sum(n_params(encoder_for(m, s, 64, (16, 32, 64), pool=pool)) for m, s in shapes.items())
        assert number(row[column]) == built, pool


RESULTS = ROOT / "docs" / "results"


def results_table_parts() -> list[str]:
    """The compare parts (``docs/results/<part>``) that have a rows table in the pages."""
    text = "\n".join(page.read_text() for page in PAGES)
    return sorted({m.group(1) for m in re.finditer(r"^\| fusion \| test acc \(([\w-]+), \d+ seeds\)", text, flags=re.M)})


def test_the_headline_results_table_is_av_digits_hard():
    assert "hard" in results_table_parts()
    assert "| fusion | test acc (hard," in README.read_text()


@pytest.mark.parametrize("part", results_table_parts())
def test_results_tables_are_what_results_tables_prints_from_results_json(part):
    # Every line of the table (accuracy, interval, verdict, parameters, costs, graph statistics) is
    # what benchmarks/results_tables.py prints from the part's results.json: no stale or hand-edited cell.
    import subprocess
    import sys

    printed = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "results_tables.py"), str(RESULTS / part / "results.json")],
                             capture_output=True, text=True, check=True).stdout
    tables = printed.strip().split("\n\n")
    pages = {page: page.read_text() for page in PAGES}
    rows_table = tables[0]
    holders = [page for page, text in pages.items() if rows_table in text]
    assert len(holders) == 1, f"the {part} rows table is not in the pages as results_tables.py prints it"
    if part == "hard":  # the WS graph statistics sit beside the headline rows
        assert tables[1] in pages[README]


@pytest.mark.parametrize("part", results_table_parts())
def test_results_table_parameter_columns_equal_the_configured_models(part):
    import json

    from wsfusion.data import AVDigits
    from wsfusion.train import TrainConfig
    from wsfusion.train.compare import row_options, run_config
    from wsfusion.models import build_model
    from wsfusion.train.trainer import data_layout

    from wsfusion.data import NOTEBOOK_SHAPES

    results = json.loads((RESULTS / part / "results.json").read_text())
    config = results["config"]
    base = TrainConfig.from_dict({k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__})
    assert base.feature_dim == 64 and base.encoder_channels == (16, 32, 64)
    if base.data == "av-digits":
        # AV-digits item shapes at the default 48 frames (as documented; no data needed).
        shapes = {"visual": (1, 28, 28), "audio": (1, 13, 48)}
        assert AVDigits.modalities == tuple(shapes)
        num_classes = AVDigits.num_classes
    elif base.data == "synthetic":
        shapes = {m: tuple(s) for m, s in (base.synthetic_shapes or NOTEBOOK_SHAPES).items()}
        num_classes = base.synthetic_classes
    else:  # any other registered dataset: its layout, known without the data
        shapes, num_classes = data_layout(base)
    rows = table(f"| fusion | test acc ({part},")
    assert len(rows) >= 3
    for row in rows:
        name = row["fusion"].strip("`")
        run = run_config(base, name, 0, row_options(name, config["fusion_options"]))
        used = {m: s for m, s in shapes.items() if not run.modalities or m in run.modalities}
        model = build_model(run.fusion, used, num_classes, **run.model_options())
        table_counts = (number(row["fusion params"]), number(row["total params"]))
        assert table_counts == (n_params(model.fusion), n_params(model)), name


def test_the_routing_reach_table_is_what_query_reach_computes():
    from wsfusion.bench import routing

    section = (ROOT / "docs" / "topology.md").read_text().split("### What a graph can deliver")[1]
    lines = section.split("\n\n")[2].splitlines()  # the table after the formula paragraph
    tokens = [int(cell.strip()[len("T = "):].replace(",", "")) for cell in lines[0].strip("|").split("|")[1:]]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [r[0] for r in rows] == [f"`{t}`" for t in routing.TOPOLOGIES if t != "dense"]
    for name, *cells in rows:
        for t, cell in zip(tokens, cells, strict=True):
            graph = routing.build_topology(name.strip("`"), t, 8, 0)
            assert cell == f"{routing.query_reach(graph, t, 4, 4)['reach_bound']:.3f}", (name, t)


def test_the_readme_routing_tables_are_what_the_report_prints_from_the_saved_rows():
    script = benchmark_script("run_routing")
    section = (ROOT / "README.md").read_text().split("\n## Routing\n")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| T |")]
    assert rows, "the README Routing section has no result table"
    report = script.report(ROOT / "docs" / "results" / "routing", plot=False).splitlines()
    for line in rows:
        assert line in report, line


def test_the_readme_strings_cost_and_seed_tables_are_what_run_strings_reports():
    script = benchmark_script("run_strings")
    text = README.read_text()
    report = script.report(RESULTS, plot=False).splitlines()
    headers = {"<!-- strings:cost -->": "| S | fusion | tokens | ms / step | peak MB | params |",
               "<!-- strings:cost-batch8 -->": "| S | fusion | tokens | ms / step | peak MB | params |",
               "<!-- strings:seeds -->": "| S | fusion | seed 0 | seed 1 | seed 2 | seed 3 | seed 4 |"}
    for marker, header in headers.items():
        assert marker in text, f"the README's AV-digit strings part has no {marker} table"
        lines = text.split(marker + "\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert lines[0] == header and len(lines) > 2, marker
        for line in lines:
            assert line in report, line
