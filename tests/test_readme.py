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


# --- parameter tables: every count in the README is what the code builds ---------------------------

def number(cell: str) -> int:
    return int(cell.strip().strip("*").replace(",", ""))


def table(header_start: str) -> list[dict[str, str]]:
    """The Markdown table whose header line starts with ``header_start``, as dicts keyed by column."""
    lines = README.read_text().splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.startswith(header_start)]
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
    text = " ".join(README.read_text().split())
    assert dense.weight.shape == (192, 192) and dense.weight.numel() == 36_864
    assert int(dense.mask.sum()) == 1_152
    assert "the 192×192 weight stores 36,864 numbers of which only the graph's 1,152 directed edges" in text
    assert rows["ws-dense"][1] == rows["ws-sparse"][0]


def test_encoder_parameter_counts_in_the_prose():
    from wsfusion.encoders import AudioEncoder, TextEncoder, VisualEncoder

    text = " ".join(README.read_text().split())
    found = re.search(
        r"`VisualEncoder` `\[3, 32, 32\]` ([\d,]+), `TextEncoder` `\[20, 128\]` ([\d,]+), "
        r"`AudioEncoder` `\[1, 64, 100\]` ([\d,]+) parameters, each with output (\d+) and "
        r"(\d+), (\d+) and (\d+) tokens", text)
    assert found, "the encoder parameter sentence is gone or reworded"
    encoders = (VisualEncoder(3, 32), TextEncoder(128, 20), AudioEncoder(1, 64, 100))
    assert [number(c) for c in found.groups()[:3]] == [n_params(e) for e in encoders]
    assert {number(found.group(4))} == {e.out_dim for e in encoders}
    assert [number(c) for c in found.groups()[4:]] == [e.num_tokens for e in encoders]
    (attention_pool,) = re.findall(r'`pool="attention"` \((\d+) parameters\)', text)
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


def test_results_table_parameter_columns_equal_the_configured_models():
    import json

    from wsfusion.data import AVDigits
    from wsfusion.train import TrainConfig
    from wsfusion.train.compare import run_config
    from wsfusion.train.trainer import build_model

    results = json.loads((README.parent / "docs" / "results" / "hard" / "results.json").read_text())
    config = results["config"]
    base = TrainConfig.from_dict({k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__})
    assert base.data == "av-digits" and base.feature_dim == 64 and base.encoder_channels == (16, 32, 64)
    # AV-digits item shapes at the default 48 frames (as documented; no data needed).
    shapes = {"visual": (1, 28, 28), "audio": (1, 13, 48)}
    assert AVDigits.modalities == tuple(shapes)
    rows = table("| fusion | test acc")
    assert len(rows) >= 3
    for row in rows:
        name = row["fusion"].strip("`")
        run = run_config(base, name, 0, config["fusion_options"].get(name, {}))
        used = {m: s for m, s in shapes.items() if not run.modalities or m in run.modalities}
        model = build_model(run, used, AVDigits.num_classes)
        table_counts = (number(row["fusion params"]), number(row["total params"]))
        assert table_counts == (n_params(model.fusion), n_params(model)), name
