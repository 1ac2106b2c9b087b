import json
import statistics

import pytest
from scipy import stats

from wsfusion.train import TrainConfig
from wsfusion.train.compare import compare, paired_p_value, verdict

BASE = TrainConfig(data="synthetic", synthetic_kind="redundancy", synthetic_samples=192,
                   synthetic_shapes={"visual": [1, 8, 8], "audio": [1, 8, 12]}, epochs=2, batch_size=32,
                   feature_dim=8, fused_dim=8, encoder_channels=(4, 4, 4))
OPTIONS = {"ws-sparse": {"nodes_per_modality": 8, "k": 4}, "ws-gnn": {"segments": 2, "node_dim": 8, "k": 2}}


FUSIONS = ["late", "ws-sparse", "ws-gnn", "only-visual"]


def forbid_training(monkeypatch):
    """From here on, training or evaluating a run fails the test: finished runs must be read back."""
    def fail(*args, **kwargs):
        raise AssertionError("a finished run was trained or evaluated again")

    monkeypatch.setattr("wsfusion.train.compare.train", fail)
    monkeypatch.setattr("wsfusion.train.compare.evaluate", fail)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    results = compare(BASE, FUSIONS, seeds=(0, 1, 2), out=out, fusion_options=OPTIONS, progress=False)
    return out, results


def test_results_json_schema(report):
    out, results = report
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert [r["fusion"] for r in saved["rows"]] == FUSIONS
    for row in saved["rows"]:
        assert set(row) >= {"fusion", "test_acc", "test_acc_std", "test_acc_per_seed", "test_acc_ci95",
                            "vs_best_baseline", "fusion_params", "total_params", "train_seconds",
                            "latency_ms", "noise_auc", "missing_acc"}
        assert set(row["missing_acc"]) == {"visual", "audio"}
        assert 0.0 <= row["test_acc"] <= 1.0 and row["test_acc_std"] >= 0.0
        assert len(row["seeds"]) == 3 and len(row["test_acc_per_seed"]) == 3
        assert set(row["vs_best_baseline"]) == {"fusion", "delta", "p_value"}
        assert ("graph" in row) == row["fusion"].startswith("ws-")
    assert saved["config"]["seeds"] == [0, 1, 2] and saved["config"]["fusions"] == FUSIONS
    for name in ("results.md", "training_curves.png", "robustness.png", "ws_mask.png"):
        assert (out / name).stat().st_size > 0


def test_summary_is_consistent_with_the_per_seed_numbers(report):
    _, results = report
    for row in results["rows"]:
        accs = [s["test_acc"] for s in row["seeds"]]
        assert row["test_acc_per_seed"] == accs
        assert row["test_acc"] == pytest.approx(sum(accs) / 3)
        # The t-interval half-width, written out: t(0.975, n - 1) * s / sqrt(n).
        assert row["test_acc_ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * statistics.stdev(accs) / 3**0.5)
        for seed in row["seeds"]:
            # Noise level 0 is the clean test set: the curve starts at the test accuracy.
            for curve in seed["robustness"].values():
                assert curve[0] == pytest.approx(seed["test_acc"])


def test_best_baseline_is_chosen_on_validation():
    from wsfusion.train.compare import add_paired_tests

    rows = [{"fusion": "a", "family": "baseline", "val_acc": 0.9, "test_acc": 0.5, "test_acc_per_seed": [0.5, 0.5]},
            {"fusion": "b", "family": "baseline", "val_acc": 0.6, "test_acc": 0.7, "test_acc_per_seed": [0.6, 0.8]},
            {"fusion": "c", "family": "ws", "val_acc": 0.99, "test_acc": 0.9, "test_acc_per_seed": [0.9, 0.9]}]
    add_paired_tests(rows)
    assert [r["vs_best_baseline"]["fusion"] for r in rows] == ["a", "a", "a"]


def test_paired_test_against_the_best_baseline(report):
    _, results = report
    rows = {r["fusion"]: r for r in results["rows"]}
    # "late" is the only baseline here (only-visual is a unimodal row, the others WS).
    assert rows["late"]["family"] == "baseline" and rows["only-visual"]["family"] == "unimodal"
    assert rows["late"]["vs_best_baseline"] == {"fusion": "late", "delta": 0.0, "p_value": None}
    for name in ("ws-sparse", "ws-gnn", "only-visual"):
        vs = rows[name]["vs_best_baseline"]
        assert vs["fusion"] == "late"
        assert vs["delta"] == pytest.approx(rows[name]["test_acc"] - rows["late"]["test_acc"])
        a, b = rows[name]["test_acc_per_seed"], rows["late"]["test_acc_per_seed"]
        assert vs["p_value"] == paired_p_value(a, b)
        if len(set(x - y for x, y in zip(a, b))) > 1:  # the differences vary: scipy's paired t-test
            assert vs["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)


def test_verdict_words():
    assert verdict(0.02, 0.01) == "better" and verdict(-0.02, 0.01) == "worse"
    assert verdict(0.02, 0.2) == "no significant difference"
    assert verdict(0.0, None) == "no paired test"
    assert paired_p_value([0.5, 0.6, 0.7], [0.4, 0.55, 0.58]) == pytest.approx(
        stats.ttest_rel([0.5, 0.6, 0.7], [0.4, 0.55, 0.58]).pvalue)
    assert paired_p_value([0.5], [0.4]) is None  # one seed
    assert paired_p_value([0.5, 0.6], [0.5, 0.6]) == 1.0  # identical
    assert paired_p_value([0.5, 0.6], [0.4, 0.5]) is None  # the same difference on every seed: no variance


def test_rows_and_options_are_checked_before_training():
    with pytest.raises(ValueError, match=r"row 'only-text' names no modality of the data \['visual', 'audio'\]"):
        compare(BASE, ["late", "only-text"], seeds=(0,), progress=False)
    with pytest.raises(ValueError, match=r"name a unimodal row by its modality, only-<modality>, not 'unimodal'"):
        compare(BASE, ["unimodal"], seeds=(0,), progress=False)
    with pytest.raises(ValueError, match=r"unknown fusion 'lates'"):
        compare(BASE, ["late"], seeds=(0,), fusion_options={"lates": {"hidden_dim": 8}}, progress=False)


def test_unimodal_row_sees_one_modality(report):
    out, results = report
    row = {r["fusion"]: r for r in results["rows"]}["only-visual"]
    config = json.loads((out / "runs" / "only-visual-seed0" / "result.json").read_text())["config"]
    assert config["fusion"] == "unimodal" and config["modalities"] == ["visual"]
    assert row["fusion_params"] == 0  # feature_dim == fused_dim: the encoder feeds the same head directly
    # Audio is not used: its noise and absence change nothing; without visual the model is at a loss.
    for seed in row["seeds"]:
        assert seed["missing_acc"]["audio"] == seed["test_acc"]
        assert seed["robustness"]["audio"] == [seed["test_acc"]] * 5


def test_every_fusion_gets_the_same_data_and_budget(report):
    out, results = report
    for name in ("late", "ws-sparse", "ws-gnn"):
        config = json.loads((out / "runs" / f"{name}-seed1" / "result.json").read_text())["config"]
        assert {k: v for k, v in config.items() if k not in ("fusion", "fusion_options")} == {
            k: v for k, v in BASE.replace(seed=1).to_dict().items() if k not in ("fusion", "fusion_options")}


def test_markdown_table_has_a_row_per_fusion_and_says_the_verdict(report):
    out, results = report
    text = (out / "results.md").read_text()
    main, _, graphs = text.partition("| WS fusion |")
    assert sum(line.startswith("| `") for line in main.splitlines()) == 4
    assert "test acc (3 seeds)" in main and "best baseline" in main
    for row in results["rows"][1:]:
        vs = row["vs_best_baseline"]
        assert verdict(vs["delta"], vs["p_value"]) in main
    # Graph statistics beside every WS row.
    assert sum(line.startswith("| `ws-") for line in graphs.splitlines()) == 2


def test_rerunning_reuses_the_finished_runs(report, monkeypatch):
    out, results = report

    forbid_training(monkeypatch)
    again = compare(BASE, FUSIONS, seeds=(0, 1, 2), out=out, fusion_options=OPTIONS, progress=False)
    assert json.loads(json.dumps(again["rows"])) == json.loads(json.dumps(results["rows"]))


def test_a_changed_config_is_not_read_from_the_cache(report, monkeypatch):
    out, _ = report

    class Retrained(Exception):
        pass

    def retrain(config, *args, **kwargs):
        raise Retrained(config.lr)

    monkeypatch.setattr("wsfusion.train.compare.train", retrain)
    with pytest.raises(Retrained, match="0.001"):
        compare(BASE.replace(lr=1e-3), ["late"], seeds=(0,), out=out, progress=False)


def test_runs_stored_before_a_config_field_existed_are_still_read_back(report, monkeypatch, tmp_path):
    # A field added to TrainConfig later (with a default that keeps the old behaviour) must not
    # invalidate finished runs: drop one from every stored config, as an older version wrote them.
    import shutil

    out, results = report
    old = tmp_path / "old"
    shutil.copytree(out, old)
    for path in [*old.glob("runs/*/evaluation.json"), *old.glob("runs/*/result.json")]:
        stored = json.loads(path.read_text())
        del stored["config"]["temperature_schedule"]
        path.write_text(json.dumps(stored))

    forbid_training(monkeypatch)
    again = compare(BASE, FUSIONS, seeds=(0, 1, 2), out=old, fusion_options=OPTIONS, progress=False)
    assert [r["test_acc"] for r in again["rows"]] == [r["test_acc"] for r in results["rows"]]
    # ... while a stored field that differs still means a different run.
    path = next(old.glob("runs/late-seed0/evaluation.json"))
    stored = json.loads(path.read_text())
    stored["config"]["temperature_schedule"] = True
    path.write_text(json.dumps(stored))
    with pytest.raises(AssertionError, match="trained or evaluated again"):
        compare(BASE, ["late"], seeds=(0,), out=old, progress=False)


def test_holm_adjusted_p_values_over_every_rows_test(report):
    from wsfusion.train.stats import holm

    out, results = report
    rows = results["rows"]
    raw = [r["vs_best_baseline"]["p_value"] for r in rows]
    assert [r["p_value_holm"] for r in rows] == holm(raw)
    assert rows[0]["p_value_holm"] is None  # "late", the best baseline, is not tested against itself
    header = (out / "results.md").read_text().splitlines()[2]
    assert "| vs best baseline (paired t-test) | Holm-adjusted p |" in header


def test_the_mask_plot_is_the_graph_the_run_stored(report):
    from wsfusion.train.compare import graph_from_record, graph_summary

    out, results = report
    row = {r["fusion"]: r for r in results["rows"]}["ws-sparse"]
    stored = json.loads((out / "runs" / "ws-sparse-seed0" / "evaluation.json").read_text())["evaluation"]
    assert graph_summary(graph_from_record(stored["graph_edges"])) == row["graph"]
    # The edge lists stay in the runs' evaluations, not in results.json.
    assert not any("graph_edges" in s or "graph" in s for r in results["rows"] for s in r["seeds"])


def test_evaluations_stored_without_their_graph_are_read_back(report, monkeypatch, tmp_path):
    # Runs evaluated before the graph was kept beside its statistics: still reused, no mask plot.
    import shutil

    out, results = report
    old = tmp_path / "old"
    shutil.copytree(out, old)
    (old / "ws_mask.png").unlink()
    for path in old.glob("runs/*/evaluation.json"):
        stored = json.loads(path.read_text())
        stored["evaluation"].pop("graph_edges", None)
        path.write_text(json.dumps(stored))

    forbid_training(monkeypatch)
    again = compare(BASE, FUSIONS, seeds=(0, 1, 2), out=old, fusion_options=OPTIONS, progress=False)
    assert json.loads(json.dumps(again["rows"])) == json.loads(json.dumps(results["rows"]))
    assert (old / "results.md").exists() and not (old / "ws_mask.png").exists()


def test_latency_is_timed_by_the_shared_measuring_helper(monkeypatch):
    from wsfusion.train.compare import latency_ms
    from wsfusion.train.trainer import build_datasets, model_for

    calls = []

    def spy(cases, reps, device, warmup=2):
        calls.append((list(cases), reps, str(device), warmup))
        for fn in cases.values():
            fn()
        return {name: 1.25 for name in cases}

    monkeypatch.setattr("wsfusion.train.compare.interleaved_medians", spy)
    train_set, _, test_set = build_datasets(BASE)
    model = model_for(BASE, train_set.modality_shapes, train_set.num_classes)
    assert latency_ms(model, test_set, reps=7) == 1.25
    assert calls == [(["forward"], 7, "cpu", 1)]


def test_a_variant_row_runs_its_fusion_with_its_options_over_the_fusions():
    from wsfusion.train.compare import check, family, row_fusion, row_options, run_config

    options = {"ws-gnn": {"segments": 4, "node_dim": 8, "k": 2}, "ws-gnn@k4": {"k": 4}}
    assert row_fusion("ws-gnn@k4") == "ws-gnn" and family("ws-gnn@k4") == "ws"
    assert row_options("ws-gnn@k4", options) == {"segments": 4, "node_dim": 8, "k": 4}
    assert row_options("ws-gnn", options) == options["ws-gnn"]  # a plain row never reads a variant's options
    assert row_options("late@wide", {}) == {}
    run = run_config(BASE, "ws-gnn@k4", 3, row_options("ws-gnn@k4", options))
    assert (run.fusion, run.seed, run.fusion_options) == ("ws-gnn", 3, {"segments": 4, "node_dim": 8, "k": 4})
    assert check(BASE, ["ws-gnn", "ws-gnn@k4"], options) == ["ws-gnn", "ws-gnn@k4"]
    with pytest.raises(ValueError, match=r"a variant row is <fusion>@<variant>, got 'ws-gnn@'"):
        check(BASE, ["ws-gnn@"], options)
    with pytest.raises(ValueError, match=r"unknown fusion 'ws-gnx'"):
        check(BASE, ["late"], {"ws-gnx@k4": {"k": 4}})
    with pytest.raises(ValueError, match=r"name a unimodal row by its modality"):
        check(BASE, ["unimodal@a"], {})


def test_variant_rows_train_apart_and_report_their_own_graph(tmp_path):
    options = {"ws-gnn": {"segments": 4, "node_dim": 8, "k": 2}, "ws-gnn@k4": {"k": 4}}
    results = compare(BASE.replace(epochs=1), ["ws-gnn", "ws-gnn@k4"], seeds=(0,), out=tmp_path,
                      fusion_options=options, progress=False)
    rows = {r["fusion"]: r for r in results["rows"]}
    assert rows["ws-gnn"]["graph"]["k"] == 2 and rows["ws-gnn@k4"]["graph"]["k"] == 4
    assert rows["ws-gnn@k4"]["options"] == {"segments": 4, "node_dim": 8, "k": 4}
    config = json.loads((tmp_path / "runs" / "ws-gnn@k4-seed0" / "result.json").read_text())["config"]
    assert config["fusion"] == "ws-gnn" and config["fusion_options"]["k"] == 4
