"""Plots (PNG files) and the ``wsfusion graph`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wsfusion.cli import build_parser, main
from wsfusion.graphs import plot_graph, plot_mask, ws_cross_modal_graph

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def graph():  # noqa: ANN201
    return ws_cross_modal_graph({"visual": 16, "text": 20, "audio": 12}, 4, 0.3, seed=0, order="interleaved")


def test_plot_mask_writes_png_with_modality_boundaries(graph, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "mask.png"
    fig = plot_mask(graph, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["visual", "text", "audio"]
    # One horizontal and one vertical dashed line per inner block boundary (16 and 36).
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    vertical = sorted(float(ln.get_xdata()[0]) for ln in dashed if ln.get_xdata()[0] == ln.get_xdata()[1])
    horizontal = sorted(float(ln.get_ydata()[0]) for ln in dashed if ln.get_ydata()[0] == ln.get_ydata()[1])
    assert vertical == horizontal == [15.5, 35.5]
    assert ax.images[0].get_array().shape == (48, 48)


def test_plot_graph_highlights_cross_modal_edges(graph, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "ring.png"
    fig = plot_graph(graph, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    ax = fig.axes[0]
    within, cross = ax.collections[0], ax.collections[1]
    n_cross = int(graph.is_cross_modal.sum()) // 2
    assert len(cross.get_segments()) == n_cross
    assert len(within.get_segments()) == graph.num_edges - n_cross
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["visual (16)", "text (20)", "audio (12)"] and labels[3].startswith("cross-modal")


def test_plot_into_existing_axes(graph) -> None:  # noqa: ANN001
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    assert plot_mask(graph, ax=left, title="mask") is fig
    assert plot_graph(graph, ax=right, highlight_cross=False) is fig
    assert left.get_title() == "mask" and len(right.collections) == 2  # edges + nodes


def test_cli_prints_stats_table_and_writes_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "mask.png"
    argv = ["graph", "--nodes", "visual=64,text=64,audio=64", "--k", "6", "--beta", "0.3",
            "--seed", "42", "--order", "blocked", "--plot", str(plot)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "N=192, E=576" in out
    assert "cross_modal_fraction  0.2500" in out
    assert "edges[visual-text]" in out and "path_length" in out
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_cli_json_and_ring_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "ring.png"
    argv = ["graph", "--nodes", "a=10,b=14", "--k", "4", "--seed", "3", "--order", "interleaved",
            "--json", "--plot", str(plot), "--plot-kind", "ring"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    expected = ws_cross_modal_graph({"a": 10, "b": 14}, 4, 0.3, seed=3, order="interleaved")
    assert payload["graph"] == {"topology": "ws", "nodes": {"a": 10, "b": 14}, "k": 4, "beta": 0.3, "seed": 3,
                                "order": "interleaved", "self_loops": False}
    assert payload["stats"] == expected.stats()
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_cli_seed_none_reports_the_drawn_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--nodes", "a=10,b=14", "--seed", "none", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    seed = payload["graph"]["seed"]
    assert isinstance(seed, int)
    assert payload["stats"] == ws_cross_modal_graph({"a": 10, "b": 14}, 4, 0.3, seed=seed).stats()


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ("visual64", "expected NAME=COUNT[,NAME=COUNT...] such as visual=64,text=64,audio=64; got 'visual64'"),
        ("visual=64,,text=3", "got ''"),
        ("=64", "got '=64'"),
        ("visual=", "got 'visual='"),
        ("visual=64,text=x", "node count of 'text' must be an integer, got 'x'"),
        ("a=3,a=4", "modality 'a' is given twice"),
    ],
)
def test_cli_bad_nodes_syntax_is_an_argparse_error(nodes: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["graph", "--nodes", nodes])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "wsfusion graph: error: argument --nodes:" in err and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--nodes", "a=3,b=4", "--k", "5"], "k must be even (got 5)"),
        (["--nodes", "a=0,b=0"], "has no node at all"),
        (["--nodes", "a=3,b=4", "--beta", "2"], "beta must be a number in [0, 1], got 2.0"),
        (["--nodes", "a=3,b=4", "--seed", "x"], "seed must be an integer or 'none', got 'x'"),
    ],
)
def test_cli_invalid_graph_arguments_exit_cleanly(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["graph", *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "wsfusion graph: error:" in err and message in err


def test_cli_graph_is_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["graph", "--nodes", "a=4,b=4"])
    assert args.nodes == {"a": 4, "b": 4} and args.k == 4 and args.plot_kind == "mask"


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wsfusion", "graph", "--nodes", "a=5,b=5", "--k", "2", "--json"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(out.stdout)["stats"]["num_edges"] == 10


def test_cli_builds_every_registry_topology(capsys):
    from wsfusion import graphs

    for name in graphs.available():
        assert main(["graph", "--nodes", "a=10,b=14", "--topology", name, "--k", "4", "--seed", "2", "--json"]) == 0
        payload = json.loads(capsys.readouterr().out)
        expected = graphs.build(name, {"a": 10, "b": 14}, 4, seed=2)
        assert payload["graph"]["topology"] == name
        assert payload["stats"]["num_edges"] == expected.stats()["num_edges"] == 24 * 4 // 2


def test_cli_refuses_ws_options_for_other_topologies(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["graph", "--nodes", "a=10,b=14", "--topology", "random", "--order", "blocked"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "wsfusion graph: error: --order applies to --topology ws only, got --topology random"
