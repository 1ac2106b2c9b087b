"""``TrainConfig.init_from`` / ``compare(init_from=)``: a run starts from another run's final weights.

The use is a curriculum over the sequence length (AV-digit strings at S = 1, then 4, ...): the
position-wise encoders and the token fusions have the same parameters at every length, so a
longer run can start where a shorter one ended; a model whose parameters depend on the length
is refused by name.
"""

from __future__ import annotations

import json

import pytest
import torch

from wsfusion import data
from wsfusion.train import TrainConfig, train
from wsfusion.train.checkpoint import load_checkpoint, warm_start
from wsfusion.train.compare import compare
from wsfusion.train.trainer import Trainer, model_for

BASE = TrainConfig(data="synthetic", synthetic_kind="redundancy", synthetic_samples=64,
                   synthetic_shapes={"visual": [1, 8, 8], "audio": [1, 8, 12]}, epochs=1, batch_size=16,
                   feature_dim=8, fused_dim=8, encoder_channels=(4, 4, 4), fusion="late")


def test_a_run_starts_from_the_final_weights_of_another(tmp_path):
    train(BASE, tmp_path / "first", progress=False)
    saved = load_checkpoint(tmp_path / "first" / "checkpoint.pt")["model"]
    fresh = Trainer(BASE.replace(seed=1), progress=False).model
    warmed = Trainer(BASE.replace(seed=1, init_from=str(tmp_path / "first")), progress=False).model
    assert any(not torch.equal(p, saved[n]) for n, p in fresh.named_parameters())
    for name, parameter in warmed.named_parameters():
        assert torch.equal(parameter, saved[name]), name
    # ... and it trains on from there: the optimiser holds the warmed parameters.
    result, model = train(BASE.replace(seed=1, init_from=str(tmp_path / "first" / "checkpoint.pt")),
                          tmp_path / "second", progress=False)
    assert load_checkpoint(tmp_path / "second" / "checkpoint.pt")["config"]["init_from"].endswith("checkpoint.pt")
    assert any(not torch.equal(p, saved[n]) for n, p in model.named_parameters())


def test_a_model_that_does_not_fit_is_refused_by_name(tmp_path):
    train(BASE, tmp_path / "first", progress=False)
    wider = BASE.replace(feature_dim=12)
    with pytest.raises(ValueError, match=r"does not fit the model: .*other shapes \[.*\[8.*\] \(saved\) vs \[12"):
        Trainer(wider.replace(init_from=str(tmp_path / "first")), progress=False)
    with pytest.raises(ValueError, match=r"missing \[.*'fusion\.", ):
        Trainer(BASE.replace(fusion="early", init_from=str(tmp_path / "first")), progress=False)
    with pytest.raises(ValueError, match="init_from: no checkpoint at"):
        Trainer(BASE.replace(init_from=str(tmp_path / "nothing")), progress=False)


@pytest.mark.parametrize("fusion", ["early", "transformer", "ws-transformer"])
def test_av_digit_strings_models_carry_over_between_lengths_with_mean_pooling(fusion, tmp_path):
    config = TrainConfig(data="av-digit-strings", fusion=fusion, encoder_pool="mean", feature_dim=16, fused_dim=16,
                         encoder_channels=(4, 4, 4))
    short, long = (model_for(config, *data.layout("av-digit-strings", length=s)) for s in (1, 4))
    torch.save({"model": short.state_dict()}, path := tmp_path / "checkpoint.pt")
    warm_start(long, path)
    for (name, a), (_, b) in zip(short.named_parameters(), long.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_flatten_pooling_grows_with_the_length_and_is_refused(tmp_path):
    config = TrainConfig(data="av-digit-strings", fusion="early", encoder_pool="flatten", feature_dim=16,
                         fused_dim=16, encoder_channels=(4, 4, 4))
    short, long = (model_for(config, *data.layout("av-digit-strings", length=s)) for s in (1, 4))
    torch.save({"model": short.state_dict()}, path := tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"other shapes \[.*encoders\.visual"):
        warm_start(long, path)


def test_compare_starts_every_run_from_the_same_row_and_seed(tmp_path):
    rows = ["late", "only-visual"]
    compare(BASE, rows, seeds=(0, 1), out=tmp_path / "short", progress=False)
    results = compare(BASE.replace(lr=1e-3), rows, seeds=(0, 1), out=tmp_path / "long",
                      init_from=tmp_path / "short", progress=False)
    assert [r["fusion"] for r in results["rows"]] == rows

    for name in rows:
        for seed in (0, 1):
            config = json.loads((tmp_path / "long" / "runs" / f"{name}-seed{seed}" / "result.json").read_text())["config"]
            assert config["init_from"] == str(tmp_path / "short" / "runs" / f"{name}-seed{seed}" / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"init_from has no checkpoint for row 'early' seed 0"):
        compare(BASE, ["early"], seeds=(0,), init_from=tmp_path / "short", progress=False)


def test_a_copied_curriculum_without_checkpoints_is_read_back_not_retrained(tmp_path, monkeypatch):
    # Results folders are kept without their checkpoints (git, a copy): a fresh clone must still
    # report and resume a warm-started comparison, not ask for the checkpoints of finished runs.
    import shutil

    import wsfusion.train.compare as compare_module

    rows = ["late", "only-visual"]
    compare(BASE, rows, seeds=(0,), out=tmp_path / "here" / "short", progress=False)
    first = compare(BASE.replace(lr=1e-3), rows, seeds=(0,), out=tmp_path / "here" / "long",
                    init_from=tmp_path / "here" / "short", progress=False)
    shutil.copytree(tmp_path / "here", tmp_path / "clone")
    for checkpoint in (tmp_path / "clone").rglob("checkpoint.pt"):
        checkpoint.unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(compare_module, "train", no_training)
    again = compare(BASE.replace(lr=1e-3), rows, seeds=(0,), out=tmp_path / "clone" / "long",
                    init_from=tmp_path / "clone" / "short", progress=False)
    assert [r["test_acc_per_seed"] for r in again["rows"]] == [r["test_acc_per_seed"] for r in first["rows"]]
    # A run that is not finished still needs its warm start, and says which one is missing.
    with pytest.raises(ValueError, match=r"init_from has no checkpoint for row 'late' seed 1"):
        compare(BASE.replace(lr=1e-3), rows, seeds=(0, 1), out=tmp_path / "clone" / "long",
                init_from=tmp_path / "clone" / "short", progress=False)
    # Another comparison folder is another warm start: its runs are not taken for these.
    shutil.copytree(tmp_path / "here" / "short", tmp_path / "here" / "other")
    with pytest.raises(AssertionError, match="trained again"):
        compare(BASE.replace(lr=1e-3), rows, seeds=(0,), out=tmp_path / "clone" / "long",
                init_from=tmp_path / "here" / "other", progress=False)


def test_batchnorm_statistics_and_tied_parameters_come_along(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
            self.b.weight = self.a.weight
            self.norm = torch.nn.BatchNorm1d(3)

    source = Tied()
    source.norm(torch.randn(8, 3) * 5 + 2)  # running statistics away from (0, 1)
    torch.save({"model": source.state_dict()}, tmp_path / "checkpoint.pt")
    target = Tied()
    warm_start(target, tmp_path)
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor), name
    assert target.b.weight is target.a.weight


def test_init_from_is_stored_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert BASE.replace(init_from="short/run").init_from == str(tmp_path / "short" / "run")
