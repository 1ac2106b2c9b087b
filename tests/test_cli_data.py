"""``--data`` takes its choices from ``wsfusion.data.available()``; ``--data-option`` reaches ``TrainConfig.data_options``."""

import pytest

from wsfusion import data
from wsfusion.cli import _config, build_parser
from wsfusion.data import registry


def _data_action(command: str):
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    return next(a for a in subparsers.choices[command]._actions if a.dest == "data")


@pytest.mark.parametrize("command", ["train", "compare"])
def test_data_choices_are_the_registry(command, monkeypatch):
    assert tuple(_data_action(command).choices) == data.available()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    data.register("toy", layout=lambda: data.Layout({"a": (2,)}, 2))(lambda split: None)
    assert _data_action(command).choices[-1] == "toy"  # a dataset registered later is a choice too


@pytest.mark.parametrize("command", ["train", "compare"])
def test_data_options_reach_the_config(command):
    args = build_parser().parse_args([command, "--data", "av-digits", "--hard", "--data-option", "num_frames=32",
                                      "--data-option", "download=false"])
    config = _config(args)
    assert config.data_options == {"num_frames": 32, "download": False}
    assert config.dataset_options() == {"hard": True, "seed": 0, "num_frames": 32, "download": False}
    assert _config(build_parser().parse_args([command])).data_options == {}
