"""The dataset registry: ``wsfusion.data.build / layout / available / options / register``.

A new dataset is checked here once it has an entry in :data:`CASES` (small options that build fast,
offline): its splits must have the fields of :class:`~wsfusion.data.InMemoryDataset`, and its layout,
known without the data, must be the shapes and classes of what it builds.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from wsfusion import data
from wsfusion.data import registry
from wsfusion.data.av_digits import NUM_FRAMES, AVDigits
from wsfusion.data.synthetic import SyntheticTriModal, synthetic_split

#: Options that build each registered dataset small and offline (AV-digits: the fake files of conftest.py).
CASES = {
    "av-digits": lambda root: {"root": root, "download": False, "hard": True, "seed": 1, "num_frames": 24},
    "av-digit-strings": lambda root: {"root": root, "download": False, "length": 3, "frames_per_position": 8,
                                      "num_samples": 10, "seed": 1},
    "synthetic": lambda root: {"num_samples": 12, "num_classes": 3, "kind": "redundancy", "seed": 2,
                               "modality_shapes": {"visual": [1, 8, 8], "text": [5, 4]}},
}


def test_available_lists_the_registered_datasets_in_order():
    assert data.available() == ("av-digits", "synthetic", "av-digit-strings")


def test_every_registered_dataset_has_a_case_here():
    assert set(CASES) == set(data.available())


@pytest.mark.parametrize("name", list(CASES))
def test_build_gives_three_splits_with_the_protocol_fields(name, av_root):
    splits = data.build(name, **CASES[name](av_root))
    assert isinstance(splits, data.Splits) and len(splits) == 3
    for split, dataset in zip(data.SPLITS, splits):
        assert isinstance(dataset, data.InMemoryDataset)
        assert dataset.split == split
        n = dataset.labels.numel()
        assert n > 0 and dataset.labels.shape == (n,) and dataset.labels.dtype == torch.int64
        assert 0 <= int(dataset.labels.min()) and int(dataset.labels.max()) < dataset.num_classes
        assert list(dataset.inputs) == list(dataset.modality_shapes)
        for m, x in dataset.inputs.items():
            assert x.is_floating_point() and tuple(x.shape) == (n, *dataset.modality_shapes[m]), m
        for m, mask in getattr(dataset, "input_masks", {}).items():
            assert m in dataset.inputs and mask.dtype == torch.bool and mask.shape[0] == n


@pytest.mark.parametrize("name", list(CASES))
def test_the_layout_is_the_built_datasets_shapes_and_classes(name, av_root):
    options = CASES[name](av_root)
    for given in (options, {k: v for k, v in options.items() if k in ("root", "download")}):  # and the defaults
        layout = data.layout(name, **given)
        assert isinstance(layout, data.Layout)
        for dataset in data.build(name, **given):
            assert layout == (dict(dataset.modality_shapes), dataset.num_classes)


def test_the_layout_loads_no_data(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("layout loaded data")

    monkeypatch.setattr("wsfusion.data.av_digits.fetch", refuse)
    monkeypatch.setattr(SyntheticTriModal, "__init__", refuse)
    assert data.layout("av-digits", num_frames=32, hard=True) == ({"visual": (1, 28, 28), "audio": (1, 13, 32)}, 10)
    assert data.layout("synthetic", num_classes=4) == (
        {"visual": (3, 32, 32), "text": (20, 128), "audio": (1, 64, 100)}, 4)


def test_options_pass_through_to_the_dataset(av_root):
    train, val, test = data.build("av-digits", **CASES["av-digits"](av_root))
    assert (train.hard, train.seed, train.num_frames, test.split) == (True, 1, 24, "test")
    shapes = {"a": [4], "b": [2, 3]}
    train, val, test = data.build("synthetic", num_samples=9, num_classes=3, kind="uniqueness", seed=5,
                                  modality_shapes=shapes, noise_std=0.5, informative="b")
    direct = SyntheticTriModal("val", num_samples=2, num_classes=3, kind="uniqueness", seed=5,
                               modality_shapes=shapes, noise_std=0.5, informative="b")
    assert (len(train), len(val), len(test)) == (9, 2, 2)  # val and test: a quarter of the training size
    assert torch.equal(val.labels, direct.labels)
    assert all(torch.equal(val.inputs[m], direct.inputs[m]) for m in shapes)
    assert (train.informative, train.noise_std, train.modality_shapes) == ("b", 0.5, {"a": (4,), "b": (2, 3)})


def test_unknown_name_is_a_value_error_listing_the_names():
    for call in (data.build, data.layout, data.options):
        with pytest.raises(ValueError, match=r"^unknown dataset 'mnist'; available: av-digits, synthetic, av-digit-strings$"):
            call("mnist")


def test_unknown_option_is_a_type_error_listing_the_options():
    expected = r"^dataset 'synthetic' has no option 'hard'; options: kind, num_samples, num_classes, "
    with pytest.raises(TypeError, match=expected):
        data.build("synthetic", hard=True)
    with pytest.raises(TypeError, match=expected):
        data.layout("synthetic", hard=True)
    with pytest.raises(TypeError, match=r"dataset 'av-digits' has no option 'split'"):
        data.build("av-digits", split="train")


def test_options_are_the_factories_keywords():
    assert data.options("av-digits") == ("hard", "root", "seed", "num_frames", "download")
    assert "num_samples" in data.options("synthetic") and "split" not in data.options("synthetic")


def test_layout_values_are_checked_without_data():
    with pytest.raises(ValueError, match=r"num_frames must be a positive integer, got 0"):
        data.layout("av-digits", num_frames=0)
    with pytest.raises(ValueError, match=r"num_classes must be at least 2, got 1"):
        data.layout("synthetic", num_classes=1)
    with pytest.raises(ValueError, match=r"modality_shapes\['a'\] must be a tuple of positive integers"):
        data.layout("synthetic", modality_shapes={"a": [0]})


def test_the_synthetic_factory_has_the_classes_options_and_defaults():
    cls, fn = inspect.signature(SyntheticTriModal).parameters, inspect.signature(synthetic_split).parameters
    assert list(fn) == list(cls)
    assert {p: v.default for p, v in fn.items()} == {p: v.default for p, v in cls.items()}


def test_the_av_digits_layout_default_is_the_constructors():
    assert inspect.signature(AVDigits).parameters["num_frames"].default == NUM_FRAMES
    assert inspect.signature(AVDigits.layout).parameters["num_frames"].default == NUM_FRAMES


@pytest.fixture
def isolated_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_a_registered_dataset_builds_and_lays_out(isolated_registry):
    def layout(dim: int = 3) -> data.Layout:
        return data.Layout({"a": (dim,)}, 2)

    @data.register("toy", layout=layout)
    def toy(split: str = "train", *, dim: int = 3, size: int = 4) -> SyntheticTriModal:
        return SyntheticTriModal(split, num_samples=size, num_classes=2, modality_shapes={"a": [dim]},
                                 kind="redundancy")

    assert data.available()[-1] == "toy" and data.options("toy") == ("dim", "size")
    assert data.layout("toy", dim=5, size=7) == ({"a": (5,)}, 2)  # layout gets only the options it names
    train, val, test = data.build("toy", dim=5, size=7)
    assert (len(train), test.split, train.modality_shapes) == (7, "test", {"a": (5,)})


def test_register_errors(isolated_registry):
    with pytest.raises(ValueError, match=r"dataset name 'synthetic' is already registered to synthetic_split"):
        data.register("synthetic", layout=SyntheticTriModal.layout)(AVDigits)
    data.register("synthetic", layout=SyntheticTriModal.layout)(synthetic_split)  # the same again: fine
    with pytest.raises(TypeError, match=r"dataset 'toy': layout must be a callable returning a Layout"):
        data.register("toy", layout=None)
    with pytest.raises(TypeError, match=r"dataset name must be a non-empty string, got ''"):
        data.register("", layout=SyntheticTriModal.layout)

    @data.register("needy", layout=lambda: data.Layout({"a": (1,)}, 2))
    def needy(split: str, *, size: int) -> None: ...

    with pytest.raises(TypeError, match=r"dataset 'needy' needs the option 'size': it has no default"):
        data.build("needy")


@pytest.mark.parametrize("make", [
    lambda split: SyntheticTriModal(split, num_samples=4),
    lambda split: data.CrossModalRelay(split, tokens=4, num_samples=4),
    lambda split: AVDigits(split, download=False),
    lambda split: synthetic_split(split),
], ids=["synthetic", "relay", "av-digits", "synthetic_split"])
def test_every_dataset_checks_its_split_with_the_shared_message(make):
    with pytest.raises(ValueError, match=r"^split must be one of \['train', 'val', 'test'\], got 'dev'$"):
        make("dev")


def test_check_split_lives_in_one_place():
    from wsfusion.data import av_digits, relay, synthetic
    from wsfusion.data.base import check_split

    assert av_digits.check_split is relay.check_split is synthetic.check_split is check_split is data.check_split
