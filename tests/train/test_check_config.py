"""``check_config``: every mistake a config can hold without its data fails before any data is loaded."""

import pytest
import torch

from wsfusion.train import TrainConfig, check_config
from wsfusion.train import trainer as trainer_module
from wsfusion.train.compare import check
from wsfusion.train.trainer import build_datasets, data_layout

SMALL = TrainConfig(data="synthetic", synthetic_shapes={"visual": [1, 8, 8], "audio": [1, 8, 12]}, feature_dim=8,
                    fused_dim=8, encoder_channels=(4, 4, 4))


@pytest.fixture
def no_data(monkeypatch):
    """Any attempt to load (or download) data fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("check_config loaded data")

    monkeypatch.setattr(trainer_module, "build_datasets", refuse)
    monkeypatch.setattr("wsfusion.data.av_digits.fetch", refuse)  # reading or downloading the AV-digits files
    monkeypatch.setattr("wsfusion.data.SyntheticTriModal", refuse)


def test_the_av_digits_layout_is_the_datasets(av_root, monkeypatch):
    monkeypatch.setenv("WSFUSION_DATA", str(av_root))
    config = TrainConfig(data="av-digits")
    shapes, classes = data_layout(config)
    train_set = build_datasets(config)[0]
    assert shapes == train_set.modality_shapes and classes == train_set.num_classes


def test_the_synthetic_layout_is_the_datasets():
    for config in (TrainConfig(data="synthetic", synthetic_samples=8), SMALL.replace(synthetic_samples=8)):
        shapes, classes = data_layout(config)
        train_set = build_datasets(config)[0]
        assert shapes == train_set.modality_shapes and classes == train_set.num_classes


@pytest.mark.parametrize("changes, message", [
    (dict(fusion="nope"), r"unknown fusion 'nope'; available: early, late"),
    (dict(fusion="late", fusion_options={"bogus": 1}), r"fusion 'late' has no option 'bogus'"),
    (dict(fusion="ws-gnn", fusion_options={"k": 3}), r"k must be even \(got 3\)"),
    (dict(fusion="ws-gnn", fusion_options={"k": 40}), r"fusion 'ws-gnn': k=40 needs a WS graph of more than k nodes"),
    (dict(fusion="ws-transformer", fusion_options={"k": 500}),
     r"fusion 'ws-transformer': k=500 needs a WS graph of more than k nodes, but it has N=\d+ \(tokens=\{'visual': "),
    (dict(modalities=["visual", "smell"]), r"modality 'smell' is not in the data; it has \['visual', 'audio'\]"),
    (dict(fusion="unimodal"), r"UnimodalFusion takes exactly one modality"),
    (dict(device="cuda"), r"device 'cuda' is not available"),
    (dict(device="gpu"), r"device must be cpu, cuda, cuda:N or auto, got 'gpu'"),
    (dict(topology_lr=0.1), r"topology_lr is set but the model \('late'"),
    (dict(rewire="set"), r"rewire='set' rewires WSLinear layers, but fusion 'late' has none"),
])
def test_mistakes_fail_without_loading_data(changes, message, no_data):
    if changes.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises((ValueError, TypeError), match=message):
        check_config(SMALL.replace(**changes))


def test_good_configs_pass_and_leave_the_rng_alone(no_data):
    state = torch.get_rng_state()
    for fusion in ("late", "transformer", "ws-gnn", "ws-transformer"):
        check_config(SMALL.replace(fusion=fusion))
    check_config(SMALL.replace(fusion="ws-sparse", rewire="rigl"))
    check_config(SMALL.replace(fusion="unimodal", modalities=["audio"]))
    check_config(TrainConfig(data="av-digits", fusion="ws-transformer"))
    assert torch.equal(torch.get_rng_state(), state)


def test_compare_checks_every_row_before_loading_data(no_data):
    assert check(SMALL, ["late", "only-audio"]) == ["late", "only-audio"]
    assert check(SMALL)[-2:] == ["only-visual", "only-audio"]
    with pytest.raises(ValueError, match=r"fusion 'ws-gnn': k=40 needs"):
        check(SMALL, ["late", "ws-gnn"], {"ws-gnn": {"k": 40}})
    with pytest.raises(ValueError, match=r"compare: row 'only-smell' names no modality of the data"):
        check(SMALL, ["only-smell"])
