import subprocess
import sys
from pathlib import Path

import pytest

from wsfusion import fusion
from wsfusion.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [[str(Path(sys.executable).parent / "wsfusion"), "--help"], [sys.executable, "-m", "wsfusion", "--help"]],
    ids=["entry-point", "module"],
)
def test_help(command):
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: wsfusion")
    assert "fusions" in result.stdout


def test_fusions_lists_every_registered_name(capsys):
    assert main(["fusions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(fusion.available())


def test_fusions_prints_plain_text_in_aligned_columns(capsys):
    import re

    assert main(["fusions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = fusion.available()
    column = max(len(n) for n in names) + 2
    for name, line in zip(names, lines, strict=True):
        assert line[:column] == f"{name:<{column}}"  # every description starts in the same column
        text = line[column:]
        assert text and not text[0].isspace() and text == fusion.describe(name)
        assert not re.search(r":\w+:`", text), line  # no :class:, :obj: ... roles
        assert "`_" not in text and "<http" not in text and "``" not in text, line  # no links, no literals
    by_name = dict(zip(names, (line[column:] for line in lines)))
    assert by_name["tensor"] == "Tensor Fusion Network (Zadeh et al., 2017)."
    assert by_name["ws-dense"].endswith("the reference for SparseWSFusion.")
    assert by_name["ws-sparse"] == "The notebook's Watts–Strogatz fusion done sparsely, with WSLinear layers."


@pytest.mark.parametrize("rst, text", [
    (":class:`~wsfusion.nn.WSLinear` layers", "WSLinear layers"),
    (":class:`SparseWSFusion`", "SparseWSFusion"),
    (":func:`build <wsfusion.fusion.build>`", "build"),
    ("`Zadeh et al., 2017 <https://arxiv.org/abs/1707.07250>`_", "Zadeh et al., 2017"),
    ("`anonymous <https://x.org>`__ and `named`_", "anonymous and named"),
    ("a ``[CLS]`` token, **bold** and *em*", "a [CLS] token, bold and em"),
])
def test_describe_reduces_rst_to_plain_text(rst, text):
    from wsfusion.fusion.registry import plain_text

    assert plain_text(rst) == text


def test_unknown_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_quickstart_example_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--steps", "1", "--batch", "4", "--fusions", "early,attention,ws-dense"],
        capture_output=True, text=True, check=True,
    )
    rows = result.stdout.strip().splitlines()[-3:]
    assert [r.split()[0] for r in rows] == ["early", "attention", "ws-dense"]


def test_bench_params_suite_prints_json(capsys):
    import json

    assert main(["bench", "--suite", "params", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    fusions = [n for n in fusion.available() if fusion.fusion_class(n).family != "unimodal"]
    assert [row["fusion"] for row in results["params"]] == fusions
    dense = next(r for r in results["params"] if r["fusion"] == "ws-dense")
    sparse = next(r for r in results["params"] if r["fusion"] == "ws-sparse")
    assert dense["used"] == sparse["parameters"] < dense["parameters"]


@pytest.mark.slow
def test_bench_quick_runs_every_suite(tmp_path):
    import torch

    from wsfusion import bench

    threads = torch.get_num_threads()
    try:
        results = bench.run(["ws-linear", "attention"], threads=1, quick=True)
    finally:
        torch.set_num_threads(threads)
    row = results["ws-linear"][0]
    assert row["N"] == 192 and set(row["ms"]) >= {"WSLinear", "dense masked", "raw kernels"}
    assert results["attention"][0]["N"] == 256
    assert "| " in bench.tables(results)


def _train_command(out, *extra):
    return [str(Path(sys.executable).parent / "wsfusion"), "train", "--data", "synthetic", "--synthetic-samples", "64",
            "--fusion", "late", "--epochs", "3", "--batch-size", "16", "--out", str(out), *extra]


@pytest.mark.slow
def test_train_cli_resumes_after_sigkill(tmp_path):
    import json
    import signal
    import time

    full = subprocess.run(_train_command(tmp_path / "full"), capture_output=True, text=True, check=True)
    killed = subprocess.Popen(_train_command(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = subprocess.run(_train_command(tmp_path / "killed", "--resume"), capture_output=True, text=True, check=True)
    a = json.loads((tmp_path / "full" / "result.json").read_text())
    b = json.loads((tmp_path / "killed" / "result.json").read_text())
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    assert a["test_acc"] == b["test_acc"]
    assert json.loads(full.stdout)["test_acc"] == json.loads(resumed.stdout)["test_acc"]


def test_resume_needs_out(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "synthetic", "--resume"])
    assert exc.value.code == 2
    assert capsys.readouterr().err == "wsfusion train: error: --resume needs --out DIR (the folder holding checkpoint.pt)\n"


@pytest.mark.slow
def test_train_cli_with_learnable_topology_and_rewiring(tmp_path, capsys):
    import json

    for extra in (["--option", "topology=learnable"], ["--rewire", "rigl", "--rewire-every", "2"]):
        assert main(["train", "--data", "synthetic", "--synthetic-samples", "32", "--fusion", "ws-sparse",
                     "--option", "nodes_per_modality=8", "--option", "k=4", "--epochs", "1", "--batch-size", "8",
                     "--out", str(tmp_path / extra[1]), *extra]) == 0
        assert 0.0 <= json.loads(capsys.readouterr().out)["test_acc"] <= 1.0


def test_data_fetch_prints_the_verified_files(tmp_path, capsys, monkeypatch):
    from wsfusion.data import sources

    fetched = {"mnist": tmp_path / "mnist_5k.csv.gz", "fsdd": tmp_path / "digits.npz"}
    monkeypatch.setattr(sources, "fetch_all", lambda root=None: fetched)
    monkeypatch.setattr("wsfusion.data.fetch_all", lambda root=None: fetched)
    assert main(["data", "fetch", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"mnist  {fetched['mnist']}", f"fsdd   {fetched['fsdd']}"]


@pytest.mark.parametrize("text, seeds", [("3", [0, 1, 2]), ("1", [0]), ("11,12,13", [11, 12, 13]), ("7,", [7])])
def test_seeds_take_a_count_or_a_list(text, seeds, monkeypatch):
    seen = {}

    def fake_compare(base, names, seeds, out, fusion_options, init_from=None):
        seen.update(seeds=seeds, names=names, options=fusion_options, patience=base.patience)
        return {"rows": [], "config": {"seeds": seeds}}

    monkeypatch.setattr("wsfusion.train.compare.compare", fake_compare)
    assert main(["compare", "--data", "synthetic", "--seeds", text, "--patience", "none"]) == 0
    assert seen["seeds"] == seeds and seen["names"] is None and seen["patience"] is None


@pytest.mark.parametrize("text", ["0", "a,b", "3,3", "-1,2"])
def test_bad_seeds_are_argparse_errors(text, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--data", "synthetic", "--seeds", text])
    assert exc.value.code == 2
    assert "--seeds" in capsys.readouterr().err


def test_compare_reads_fusion_options_from_a_tuning_summary(tmp_path, monkeypatch, capsys):
    import json

    seen = {}
    monkeypatch.setattr("wsfusion.train.compare.compare",
                        lambda base, names, seeds, out, fusion_options, init_from: seen.update(options=fusion_options)
                        or {"rows": [], "config": {"seeds": seeds}})
    summary = tmp_path / "chosen.json"
    summary.write_text(json.dumps({"chosen": {"low-rank": {"rank": 8}}, "grid": {}}))
    assert main(["compare", "--data", "synthetic", "--fusions", "low-rank,only-audio",
                 "--fusion-options", str(summary)]) == 0
    assert seen["options"] == {"low-rank": {"rank": 8}}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--data", "synthetic", "--fusion-options", str(tmp_path / "nope.json")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith(f"wsfusion compare: error: cannot read --fusion-options {tmp_path / 'nope.json'}")


@pytest.mark.parametrize("text", ["0", "-2", "soon"])
def test_bad_patience_is_an_argparse_error(text, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "synthetic", "--patience", text])
    assert exc.value.code == 2
    assert "expected a positive integer or 'none'" in capsys.readouterr().err


def test_fusion_options_must_map_fusions_to_options(tmp_path, capsys):
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--data", "synthetic", "--fusion-options", str(listing)])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (f"wsfusion compare: error: --fusion-options {listing} must hold a JSON object "
                                       "{fusion: {option: value}}\n")


def test_train_precision_flag_reaches_the_run(tmp_path, capsys):
    import json

    assert main(["train", "--data", "synthetic", "--synthetic-samples", "16", "--fusion", "late", "--epochs", "1",
                 "--batch-size", "8", "--precision", "bf16", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["precision"] == "bf16" and 0.0 <= summary["test_acc"] <= 1.0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["config"]["precision"] == "bf16"
    assert all(row["train_loss"] == row["train_loss"] for row in result["history"])  # finite, not NaN


def test_compare_passes_the_precision_through(monkeypatch):
    seen = {}
    monkeypatch.setattr("wsfusion.train.compare.compare",
                        lambda base, names, seeds, out, fusion_options, init_from: seen.update(precision=base.precision)
                        or {"rows": [], "config": {"seeds": seeds}})
    assert main(["compare", "--data", "synthetic", "--fusions", "late", "--precision", "16"]) == 0
    assert seen["precision"] == "16"
    assert main(["compare", "--data", "synthetic", "--fusions", "late"]) == 0
    assert seen["precision"] == "32"
