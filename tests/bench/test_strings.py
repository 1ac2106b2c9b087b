"""benchmarks/run_strings.py: the AV-digit-strings comparison, its curriculum over the length, its cost and report."""

from __future__ import annotations

import json

import pytest

from testing_helpers import benchmark_script
from wsfusion._measure import machine_label

ROWS = ("early", "ws-transformer@hubs", "only-audio")
SIZES = dict(num_samples=16, epochs=1, frames_per_position=8)


@pytest.fixture(scope="module")
def script():
    return benchmark_script("run_strings")


def test_each_length_starts_from_the_shorter_lengths_runs(script, tmp_path, monkeypatch, av_root):
    monkeypatch.setenv("WSFUSION_DATA", str(av_root))
    script.train((2, 1), (0,), tmp_path, ROWS, **SIZES)  # any order: the shortest runs first
    for name in ROWS:
        short = json.loads((tmp_path / "strings-S1" / "runs" / f"{name}-seed0" / "result.json").read_text())["config"]
        long = json.loads((tmp_path / "strings-S2" / "runs" / f"{name}-seed0" / "result.json").read_text())["config"]
        assert short["init_from"] is None and short["data_options"]["length"] == 1
        assert long["init_from"] == str(tmp_path / "strings-S1" / "runs" / f"{name}-seed0" / "checkpoint.pt")
        assert long["data_options"] == {"length": 2, "num_samples": 16, "frames_per_position": 8}
        assert long["encoder_pool"] == "mean"
    hubs = json.loads((tmp_path / "strings-S2" / "results.json").read_text())["rows"][1]
    assert hubs["fusion"] == "ws-transformer@hubs"
    assert hubs["options"] == {"topology": "hub", "topology_options": {"hubs": 1, "per_modality": True}}
    text = script.report(tmp_path, plot=False)
    assert "| fusion | test acc (strings-S1, 1 seed)" in text and "| fusion | test acc (strings-S2, 1 seed)" in text


def test_a_later_call_starts_from_the_longest_shorter_comparison(script, tmp_path, monkeypatch, av_root):
    monkeypatch.setenv("WSFUSION_DATA", str(av_root))
    script.train((1,), (0,), tmp_path, ("only-audio",), **SIZES)
    assert script.shorter_run(tmp_path, 3) == 1 and script.shorter_run(tmp_path, 1) is None
    script.train((3,), (0,), tmp_path, ("only-audio",), **SIZES)
    config = json.loads((tmp_path / "strings-S3" / "runs" / "only-audio-seed0" / "result.json").read_text())["config"]
    assert config["init_from"] == str(tmp_path / "strings-S1" / "runs" / "only-audio-seed0" / "checkpoint.pt")


def test_a_clone_without_checkpoints_rebuilds_the_curriculum_it_needs(script, tmp_path, monkeypatch, av_root):
    import shutil

    monkeypatch.setenv("WSFUSION_DATA", str(av_root))
    script.train((1, 2), (0, 1), tmp_path / "here", ("only-audio",), **SIZES)
    script.train((3,), (0,), tmp_path / "here", ("only-audio",), **SIZES)
    shutil.copytree(tmp_path / "here", tmp_path / "clone")
    for checkpoint in (tmp_path / "clone").rglob("checkpoint.pt"):
        checkpoint.unlink()
    with pytest.raises(ValueError, match=r"init_from has no checkpoint for row 'only-audio' seed 1"):
        script.train((3,), (0, 1), tmp_path / "clone", ("only-audio",), **SIZES)

    script.train((3,), (0, 1), tmp_path / "clone", ("only-audio",), rebuild=tmp_path / "rebuilt", **SIZES)
    # Only the unfinished run (seed 1) is rebuilt, through every shorter length; seed 0 is read back.
    assert sorted(p.name for p in (tmp_path / "rebuilt" / "strings-S2" / "runs").iterdir()) == ["only-audio-seed1"]
    assert (tmp_path / "rebuilt" / "strings-S1" / "runs" / "only-audio-seed1" / "result.json").exists()
    config = json.loads((tmp_path / "clone" / "strings-S3" / "runs" / "only-audio-seed1" / "result.json").read_text())
    assert config["config"]["init_from"] == str(tmp_path / "rebuilt" / "strings-S2" / "runs" / "only-audio-seed1"
                                                / "checkpoint.pt")
    record = json.loads((tmp_path / "clone" / "strings-S3" / "warm-starts" / "only-audio-seed1.json").read_text())
    saved = json.loads((tmp_path / "here" / "strings-S2" / "runs" / "only-audio-seed1" / "result.json").read_text())
    assert record["length"] == 2 and record["saved_test_acc"] == saved["test_acc"]
    assert record["rebuilt_test_acc"] == saved["test_acc"]  # same machine, same build: the same run
    assert not (tmp_path / "clone" / "strings-S3" / "warm-starts" / "only-audio-seed0.json").exists()
    table = script.report(tmp_path / "clone", plot=False).split("### strings-S3: warm starts retrained\n\n")[1]
    assert table.splitlines()[2] == f"| `only-audio` | 1 | 2 | {saved['test_acc']:.3f} | {saved['test_acc']:.3f} |"
    assert "retrained on: " in table and "not recorded" not in table
    results = json.loads((tmp_path / "clone" / "strings-S3" / "results.json").read_text())
    assert results["rows"][0]["seeds"][0]["test_acc"] == json.loads(
        (tmp_path / "here" / "strings-S3" / "results.json").read_text())["rows"][0]["seeds"][0]["test_acc"]


def test_dense_attention_is_left_out_beyond_its_length(script):
    assert "transformer" in script.rows_at(16, script.ROWS, 16)
    assert "transformer" not in script.rows_at(64, script.ROWS, 16)
    assert script.rows_at(64, script.ROWS, 16) == [r for r in script.ROWS if r != "transformer"]


def test_cost_rows_time_every_row_with_its_token_count(script, tmp_path):
    rows = script.cost((1, 2), ("early", "ws-transformer", "only-visual"), batch_size=2, reps=1, frames_per_position=8)
    assert [(r["length"], r["fusion"]) for r in rows] == [(s, f) for s in (1, 2)
                                                          for f in ("early", "ws-transformer", "only-visual")]
    by = {(r["length"], r["fusion"]): r for r in rows}
    assert by[(1, "only-visual")]["tokens"] == 16 and by[(2, "only-visual")]["tokens"] == 32
    assert by[(2, "ws-transformer")]["tokens"] == 2 * by[(1, "ws-transformer")]["tokens"]
    assert by[(1, "ws-transformer")]["params"] == by[(2, "ws-transformer")]["params"]  # the curriculum's premise
    assert all(r["ms_per_step"] > 0 and r["machine"]["device"] == "cpu" for r in rows)
    (tmp_path / "strings-cost.json").write_text(json.dumps(rows))
    text = script.report(tmp_path, plot=False)
    assert "| 2 | `ws-transformer` | " in text
    assert f"batch 2, measured on: {machine_label(rows[0]['machine'])}" in text
    (tmp_path / "strings-cost-batch1.json").write_text(json.dumps(script.cost((2,), ("early",), batch_size=1, reps=1,
                                                                               frames_per_position=8)))
    extra = script.report(tmp_path, plot=False).split("### strings-cost-batch1.json\n\n")[1].splitlines()
    assert extra[2].startswith("| 2 | `early` | ") and extra[4].startswith("batch 1, measured on: ")


def test_cost_leaves_dense_attention_out_beyond_its_length(script, tmp_path):
    rows = script.cost((1, 2), ("early", "transformer"), batch_size=2, reps=1, frames_per_position=8,
                       max_dense_length=1)
    by = {(r["length"], r["fusion"]): r for r in rows}
    assert by[(1, "transformer")]["ms_per_step"] > 0 and "skipped" not in by[(1, "transformer")]
    skipped = by[(2, "transformer")]
    assert skipped["ms_per_step"] is None and skipped["peak_mb"] is None
    assert skipped["skipped"] == "dense attention beyond S = 1"
    assert skipped["tokens"] == 2 * by[(1, "transformer")]["tokens"] and skipped["params"] > 0
    assert by[(2, "early")]["ms_per_step"] > 0
    (tmp_path / "strings-cost.json").write_text(json.dumps(rows))
    assert "| 2 | `transformer` | " in script.report(tmp_path, plot=False)
    assert "| not run | — |" in script.report(tmp_path, plot=False)
