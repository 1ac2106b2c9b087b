"""``TrainConfig``: the dataset choices and options come from the registry; checks go through ``_validation``."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from wsfusion import data
from wsfusion.data import registry
from wsfusion.train import REWIRE_MODES, TrainConfig, rewirer
from wsfusion.train import config as config_module
from wsfusion.train.trainer import build_datasets, data_layout

SHAPES = {"visual": [1, 8, 8], "audio": [1, 8, 12]}


def test_data_takes_its_choices_from_the_registry(monkeypatch):
    with pytest.raises(ValueError, match=rf"^data must be one of {re.escape(str(data.available()))}, got 'toy'$"):
        TrainConfig(data="toy")
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    data.register("toy", layout=lambda: data.Layout({"a": (3,)}, 2))(
        lambda split, *, size=4: data.SyntheticTriModal(split, num_samples=size, num_classes=2,
                                                        modality_shapes={"a": [3]}, kind="redundancy"))
    config = TrainConfig(data="toy", data_options={"size": 6}, seed=3)
    assert config.dataset_options() == {"size": 6}  # no seed option: the config's seed is not passed
    assert data_layout(config) == ({"a": (3,)}, 2)
    assert [len(d) for d in build_datasets(config)] == [6, 6, 6]


def test_dataset_options_are_the_fields_the_seed_and_data_options():
    assert TrainConfig(data="av-digits", hard=True, seed=4).dataset_options() == {"hard": True, "seed": 4}
    config = TrainConfig(data="synthetic", synthetic_kind="uniqueness", synthetic_samples=8, synthetic_shapes=SHAPES,
                         synthetic_classes=3, seed=2, data_options={"noise_std": 0.0})
    assert config.dataset_options() == {"kind": "uniqueness", "num_samples": 8, "modality_shapes": SHAPES,
                                        "num_classes": 3, "seed": 2, "noise_std": 0.0}
    train = build_datasets(config)[0]
    assert train.noise_std == 0.0 and train.kind == "uniqueness" and train.seed == 2


def test_data_options_reach_the_layout(av_root, monkeypatch):
    monkeypatch.setenv("WSFUSION_DATA", str(av_root))
    config = TrainConfig(data="av-digits", data_options={"num_frames": 32})
    assert data_layout(config).modality_shapes["audio"] == (1, 13, 32)
    assert build_datasets(config).test.audio.shape[1:] == (1, 13, 32)


def test_data_options_errors():
    with pytest.raises(TypeError, match=r"dataset 'synthetic' has no option 'hard'; options: kind, num_samples"):
        TrainConfig(data="synthetic", data_options={"hard": True})
    with pytest.raises(ValueError, match=r"data_options sets 'kind', which the TrainConfig field 'synthetic_kind' "
                                         r"sets for data='synthetic'; set that field instead"):
        TrainConfig(data="synthetic", data_options={"kind": "synergy"})
    with pytest.raises(ValueError, match=r"data_options sets 'seed', which the TrainConfig field 'seed' sets"):
        TrainConfig(data="av-digits", data_options={"seed": 1})
    with pytest.raises(TypeError, match=r"data_options must be a mapping option -> value, got list"):
        TrainConfig(data_options=[("noise_std", 1.0)])


def test_data_options_round_trip_through_a_dict():
    config = TrainConfig(data="synthetic", data_options={"signal": 2.0})
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "data_options"}) == TrainConfig(
        data="synthetic")  # a config saved before data_options existed


def test_config_imports_nothing_from_train():
    """No config -> rewirer -> callbacks circle: the rewire modes live in config, the rewirer reads them there."""
    tree = ast.parse(Path(config_module.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [m for m in imported if m.startswith("wsfusion.train")], imported
    assert rewirer.MODES is config_module.REWIRE_MODES is REWIRE_MODES == ("set", "rigl")


@pytest.mark.parametrize("changes, message", [
    (dict(rewire="magnitude"), r"rewire must be None or one of \('set', 'rigl'\), got 'magnitude'"),
    (dict(patience=0), r"patience \(or None\) must be a positive integer, got 0"),
    (dict(patience=1.5), r"patience \(or None\) must be a positive integer, got 1.5"),
    (dict(weight_decay=-1.0), r"weight_decay must be a finite non-negative number, got -1.0"),
    (dict(warmup_epochs=float("inf")), r"warmup_epochs must be a finite non-negative number, got inf"),
    (dict(modality_dropout="0.1"), r"modality_dropout must be a number in \[0, 1\), got '0.1' \(str\)"),
    (dict(batch_size=True), r"batch_size must be a positive integer, got True"),
])
def test_validation_messages(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_integer_fields_are_stored_as_python_ints():
    config = TrainConfig(epochs=np.int64(3), batch_size=torch.tensor(8).item(), patience=np.int32(2))
    assert (type(config.epochs), type(config.patience)) == (int, int)
    assert config.to_dict()["epochs"] == 3
