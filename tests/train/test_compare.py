import json

import pytest

from wsfusion.train import TrainConfig
from wsfusion.train.compare import compare

BASE = TrainConfig(data="synthetic", synthetic_kind="redundancy", synthetic_samples=192,
                   synthetic_shapes={"visual": [1, 8, 8], "audio": [1, 8, 12]}, epochs=2, batch_size=32,
                   feature_dim=8, fused_dim=8, encoder_channels=(4, 4, 4))
OPTIONS = {"ws-sparse": {"nodes_per_modality": 8, "k": 4}, "ws-gnn": {"segments": 2, "node_dim": 8, "k": 2}}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    results = compare(BASE, ["late", "ws-sparse", "ws-gnn"], seeds=(0, 1), out=out, fusion_options=OPTIONS, progress=False)
    return out, results


def test_results_json_schema(report):
    out, results = report
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert [r["fusion"] for r in saved["rows"]] == ["late", "ws-sparse", "ws-gnn"]
    for row in saved["rows"]:
        assert set(row) >= {"fusion", "test_acc", "test_acc_std", "fusion_params", "total_params", "train_seconds",
                            "latency_ms", "noise_auc", "missing_acc"}
        assert set(row["missing_acc"]) == {"visual", "audio"}
        assert 0.0 <= row["test_acc"] <= 1.0 and row["test_acc_std"] >= 0.0
        assert 0 < row["fusion_params"] < row["total_params"]
        assert len(row["seeds"]) == 2
    assert saved["config"]["seeds"] == [0, 1] and saved["config"]["fusions"] == ["late", "ws-sparse", "ws-gnn"]
    for name in ("results.md", "training_curves.png", "robustness.png", "ws_mask.png"):
        assert (out / name).stat().st_size > 0


def test_summary_is_consistent_with_the_per_seed_numbers(report):
    _, results = report
    for row in results["rows"]:
        accs = [s["test_acc"] for s in row["seeds"]]
        assert row["test_acc"] == pytest.approx(sum(accs) / 2)
        for seed in row["seeds"]:
            # Noise level 0 is the clean test set: the curve starts at the test accuracy.
            for curve in seed["robustness"].values():
                assert curve[0] == pytest.approx(seed["test_acc"])


def test_every_fusion_gets_the_same_data_and_budget(report):
    out, results = report
    for name in ("late", "ws-sparse", "ws-gnn"):
        config = json.loads((out / "runs" / f"{name}-seed1" / "result.json").read_text())["config"]
        assert {k: v for k, v in config.items() if k not in ("fusion", "fusion_options")} == {
            k: v for k, v in BASE.replace(seed=1).to_dict().items() if k not in ("fusion", "fusion_options")}


def test_markdown_table_has_a_row_per_fusion(report):
    out, _ = report
    lines = (out / "results.md").read_text().splitlines()
    assert sum(line.startswith("| `") for line in lines) == 3
    assert "test acc (2 seeds)" in lines[2]


def test_rerunning_reuses_the_finished_runs(report):
    out, results = report
    again = compare(BASE, ["late", "ws-sparse", "ws-gnn"], seeds=(0, 1), out=out, fusion_options=OPTIONS, progress=False)
    for a, b in zip(results["rows"], again["rows"]):
        assert a["test_acc"] == b["test_acc"] and a["train_seconds"] == b["train_seconds"]
        assert a["missing_acc"] == b["missing_acc"] and a["noise_auc"] == b["noise_auc"]
