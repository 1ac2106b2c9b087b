"""wsfusion.train.report: tables and plots from a results dict alone, every row's line distinguishable,
every file written atomically."""

import json

import pytest
from matplotlib.colors import to_hex

from wsfusion.train import report
from wsfusion.train.report import line_styles, results_markdown, robustness_figure, rows_table, training_curves_figure
from wsfusion.train.stats import holm

# The 13 rows of docs/results/hard: with matplotlib's 10 default colours, late / only-visual,
# early / ws-transformer and hybrid / only-audio shared a colour (and the same marker and line).
NAMES = ["early", "late", "hybrid", "attention", "transformer", "tensor", "low-rank", "ws-dense", "ws-sparse",
         "ws-gnn", "ws-transformer", "only-visual", "only-audio"]
LEVELS = [0.0, 0.25, 0.5, 0.75, 1.0]


def fake_results(names=NAMES, seeds=3):
    rows = []
    for i, name in enumerate(names):
        accs = [0.7 + 0.01 * i + 0.003 * s * (i % 3) for s in range(seeds)]
        rows.append({
            "fusion": name, "family": "baseline" if i < 7 else "ws", "test_acc": sum(accs) / seeds,
            "test_acc_std": 0.01, "test_acc_per_seed": accs, "test_acc_ci95": 0.02, "val_acc": 0.8 - 0.01 * i,
            "fusion_params": 1000 + i, "total_params": 5000 + i, "train_seconds": 10.0, "latency_ms": 1.5,
            "noise_auc": 0.6, "missing_acc": {"visual": 0.5, "audio": 0.4},
            "seeds": [{"robustness": {m: [a - 0.05 * k for k in range(len(LEVELS))] for m in ("visual", "audio")}}
                      for a in accs],
        })
    ps = [None] + [0.001 * (i + 1) for i in range(len(names) - 1)]
    for row, p, q in zip(rows, ps, holm(ps)):
        row["vs_best_baseline"] = {"fusion": names[0], "delta": row["test_acc"] - rows[0]["test_acc"], "p_value": p}
        row["p_value_holm"] = q
    histories = {name: [{"epoch": e, "val_acc": 0.5 + 0.01 * e + 0.001 * i} for e in range(1, 6)]
                 for i, name in enumerate(names)}
    config = {"data": "av-digits", "hard": True, "epochs": 5, "seeds": list(range(seeds)), "noise_levels": LEVELS}
    return {"rows": rows, "config": config, "histories": histories}


def styles_per_axes(fig):
    """For each axes of ``fig``: ``{label: (colour, linestyle, marker)}`` of its labelled lines."""
    return [{line.get_label(): (to_hex(line.get_color()), line.get_linestyle(), line.get_marker())
             for line in ax.get_lines() if not line.get_label().startswith("_")}
            for ax in fig.axes]


@pytest.mark.parametrize("figure", [training_curves_figure, robustness_figure])
def test_every_row_has_its_own_line_style(figure):
    fig = figure(fake_results())
    panels = styles_per_axes(fig)
    assert len(panels) == (1 if figure is training_curves_figure else 2)
    for styles in panels:
        assert sorted(styles) == sorted(NAMES)  # one line a row
        assert len(set(styles.values())) == len(NAMES), (
            f"rows share a (colour, linestyle, marker): "
            f"{[n for n, s in styles.items() if list(styles.values()).count(s) > 1]}")
    # The same row looks the same in every panel and figure (one legend reads for all).
    assert all(p == panels[0] for p in panels)


def test_line_styles_are_distinct_for_many_rows_and_stable():
    names = [f"row{i}" for i in range(280)]
    styles = line_styles(names)
    assert len({tuple(s.values()) for s in styles.values()}) == 280
    assert line_styles(NAMES[:3]) == {n: styles[f"row{i}"] for i, n in enumerate(NAMES[:3])}


def test_the_rows_table_has_the_holm_column():
    results = fake_results()
    lines = rows_table(results, label="hard").splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:5] == ["fusion", "test acc (hard, 3 seeds)", "95% CI", "vs best baseline (paired t-test)",
                          "Holm-adjusted p"]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert len(body) == len(NAMES)
    assert body[0][3:5] == ["best baseline", "—"]
    for cells, row in zip(body[1:], results["rows"][1:]):
        assert cells[4] == f"{row['p_value_holm']:.3f}"
        assert f"p = {row['vs_best_baseline']['p_value']:.3f}" in cells[3]  # the raw p beside it
    # results.md's table is the same without the label.
    assert results_markdown(results).splitlines()[2:] == lines[2:]


def test_write_report_writes_every_file_atomically(tmp_path, monkeypatch):
    results = fake_results()
    report.write_report(results, tmp_path)
    names = {"results.json", "results.md", "training_curves.png", "robustness.png"}
    assert {p.name for p in tmp_path.iterdir()} == names
    assert json.loads((tmp_path / "results.json").read_text()) == results
    before = {n: (tmp_path / n).read_bytes() for n in names}

    # A plot that fails half-way leaves the previous file whole and no temporary file behind.
    from matplotlib.figure import Figure

    def broken_savefig(self, f, **kwargs):
        f.write(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        report.write_report(results, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == names
    assert {n: (tmp_path / n).read_bytes() for n in names} == before
