import pytest
import torch
from torch.utils.data import DataLoader

from wsfusion.data import CrossModalRelay


def small(**kwargs):
    return CrossModalRelay(**{"tokens": 12, "num_samples": 64, "feature_dim": 9, **kwargs})


def test_items_are_deterministic_and_splits_and_seeds_differ():
    a, b = small(), small()
    for i in (0, 7, 63, -1):
        (xa, ya), (xb, yb) = a[i], b[i]
        assert ya == yb and all(torch.equal(xa[m], xb[m]) for m in a.modalities)
    # Item i is the same on every access, not a fresh draw.
    assert torch.equal(a[3][0]["audio"], a[3][0]["audio"])
    for other in (small(split="val"), small(seed=1)):
        assert not torch.equal(a.keys, other.keys) or not torch.equal(a.key_position, other.key_position)
        assert not torch.equal(a[0][0]["audio"], other[0][0]["audio"])


def test_one_flagged_carrier_per_code_with_its_one_hot_code():
    data = small(num_classes=4)
    c = data.num_classes
    for i in range(len(data)):
        x, label = data[i]
        key_flags, value_flags = x["visual"][:, c], x["text"][:, c + 1]
        assert key_flags.sum() == 1 and key_flags[data.key_position[i]] == 1
        assert value_flags.sum() == 1 and value_flags[data.value_position[i]] == 1
        # No other flag is set anywhere (the query modality carries nothing).
        assert x["visual"][:, c + 1].abs().sum() == 0 and x["text"][:, c].abs().sum() == 0
        assert x["audio"][:, c:c + 2].abs().sum() == 0
        assert torch.equal(x["visual"][data.key_position[i], :c], torch.eye(c)[data.keys[i]])
        assert torch.equal(x["text"][data.value_position[i], :c], torch.eye(c)[data.values[i]])
        assert label == (data.keys[i] + data.values[i]) % c


@pytest.mark.parametrize("label", ["sum", "pair", "key"])
@pytest.mark.parametrize("placement", ["random", "local"])
def test_the_bayes_rule_is_always_right(label, placement):
    data = small(label=label, placement=placement, num_samples=200, noise_std=3.0)
    assert torch.equal(data.bayes_predict(data.inputs), data.labels)


def majority_rule_accuracy(train_code, train_label, test_code, test_label, num_classes):
    """Accuracy on test of the best label-from-one-code rule fitted on train (the most common label per code)."""
    counts = torch.zeros(num_classes, num_classes)
    counts.index_put_((train_code, train_label), torch.ones(train_code.numel()), accumulate=True)
    rule = counts.argmax(dim=1)
    return (rule[test_code] == test_label).double().mean().item()


def test_the_label_needs_both_codes_each_alone_is_at_chance():
    c = 4
    train, test = (CrossModalRelay(split, tokens=4, num_samples=20_000, num_classes=c) for split in ("train", "test"))
    for code in ("keys", "values"):
        accuracy = majority_rule_accuracy(getattr(train, code), train.labels, getattr(test, code), test.labels, c)
        assert abs(accuracy - 1 / c) < 0.02, (code, accuracy)
    # Both together determine it, and the labels are balanced.
    assert torch.equal((test.keys + test.values) % c, test.labels)
    assert (torch.bincount(test.labels, minlength=c).double() / len(test) - 1 / c).abs().max() < 0.02
    # The one-source calibration variant is solved by the key alone.
    key_only = CrossModalRelay("test", tokens=4, num_samples=2_000, num_classes=c, label="key")
    assert majority_rule_accuracy(key_only.keys, key_only.labels, key_only.keys, key_only.labels, c) == 1.0


def test_the_pair_label_names_both_codes_and_maps_to_the_sum():
    c = 5
    pair, total = (CrossModalRelay("test", tokens=4, num_samples=500, num_classes=c, label=lab) for lab in ("pair", "sum"))
    assert pair.num_labels == c * c and total.num_labels == c
    assert torch.equal(pair.keys, total.keys) and torch.equal(pair.values, total.values)
    assert torch.equal(pair.labels, pair.keys * c + pair.values)
    assert torch.equal(pair.pair_to_sum(pair.labels), total.labels)
    # Scored as a sum, a pair prediction that got one code right and the other wrong is wrong.
    wrong_value = pair.keys * c + (pair.values + 1) % c
    assert not (pair.pair_to_sum(wrong_value) == total.labels).any()


def test_placements():
    far = CrossModalRelay(tokens=256, num_samples=2_000)
    assert far.key_position.max() > 200 and far.value_position.max() > 200 and far.key_position.min() < 50
    near = CrossModalRelay(tokens=256, num_samples=2_000, placement="local", local_window=3)
    for positions in (near.key_position, near.value_position):
        assert set(positions.tolist()) == {0, 1, 2}
    assert CrossModalRelay.query == ("audio", 0)


def test_batches_and_shapes():
    data = small()
    inputs, labels = next(iter(DataLoader(data, batch_size=5)))
    assert {m: tuple(x.shape) for m, x in inputs.items()} == {m: (5, 12, 9) for m in ("visual", "text", "audio")}
    assert labels.dtype == torch.long and data.modality_shapes == {m: (12, 9) for m in data.modalities}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature_dim": 5, "num_classes": 4}, r"feature_dim must be an integer >= 6, got 5"),
        ({"num_classes": 1}, r"num_classes must be an integer >= 2, got 1"),
        ({"label": "product"}, r"label must be one of \['sum', 'pair', 'key'\], got 'product'"),
        ({"placement": "near"}, r"placement must be one of \['random', 'local'\], got 'near'"),
        ({"local_window": 13}, r"local_window must be at most tokens \(12\), got 13"),
        ({"noise_std": 0}, r"noise_std must be a finite number > 0, got 0"),
        ({"split": "dev"}, r"split must be one of \['train', 'val', 'test'\], got 'dev'"),
    ],
)
def test_errors_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small(**kwargs)


def test_index_out_of_range():
    with pytest.raises(IndexError, match="index 64 is out of range for 64 samples"):
        small()[64]
