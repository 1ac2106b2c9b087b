from __future__ import annotations

import pytest
import torch

from wsfusion.data import drop_modality, gaussian_noise, modality_dropout
from wsfusion.fusion import build


def batch(b: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "visual": torch.randn(b, 1, 6, 6, generator=g) * 3.0,
        "text": torch.randn(b, 5, 4, generator=g),
        "audio": torch.randn(b, 7, generator=g) * 0.5,
    }


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- Gaussian noise ------------------------------------------------------------------

def test_level_zero_is_identity():
    x = batch()
    out = gaussian_noise(x, 0.0, generator=gen())
    assert out.keys() == x.keys()
    assert all(torch.equal(out[m], x[m]) for m in x)
    out = gaussian_noise(x, {"audio": 0}, generator=gen())
    assert all(torch.equal(out[m], x[m]) for m in x)


@pytest.mark.parametrize("level", [0.1, 0.5, 1.0])
def test_noise_std_scales_with_level(level):
    x = {"visual": torch.randn(64, 3, 16, 16) * 4.0, "audio": torch.randn(64, 500) * 0.25}
    out = gaussian_noise(x, level, generator=gen())
    for m in x:
        ratio = (out[m] - x[m]).std() / x[m].std()  # relative to the modality's own std
        assert ratio.item() == pytest.approx(level, rel=0.03)
    fixed = gaussian_noise(x, level, scale=2.0, generator=gen())
    assert (fixed["audio"] - x["audio"]).std().item() == pytest.approx(2.0 * level, rel=0.03)


def test_noise_is_deterministic_and_linear_in_level():
    x = batch()
    a = gaussian_noise(x, 0.5, generator=gen(7))
    b = gaussian_noise(dict(reversed(list(x.items()))), 0.5, generator=gen(7))  # key order irrelevant
    full = gaussian_noise(x, 1.0, generator=gen(7))
    for m in x:
        assert torch.equal(a[m], b[m])
        torch.testing.assert_close(a[m] - x[m], 0.5 * (full[m] - x[m]))
    assert not torch.equal(gaussian_noise(x, 0.5, generator=gen(8))["text"], a["text"])


def test_noise_per_modality_and_not_in_place():
    x = batch()
    before = {m: t.clone() for m, t in x.items()}
    out = gaussian_noise(x, {"text": 0.8}, generator=gen())
    assert not torch.equal(out["text"], x["text"])
    assert out["visual"] is x["visual"] and out["audio"] is x["audio"]
    assert all(torch.equal(x[m], before[m]) for m in x)


@pytest.mark.parametrize(
    ("level", "kwargs", "match"),
    [
        (1.5, {}, r"level must be a number in \[0, 1\]"),
        (-0.1, {}, r"level must be a number in \[0, 1\]"),
        ({"audio": 2.0}, {}, r"level\['audio'\] must be a number in \[0, 1\]"),
        ({"smell": 0.5}, {}, "level names unknown modality 'smell'"),
        (0.5, {"scale": -1.0}, "scale for modality"),
        (0.5, {"scale": {"odour": 1.0}}, "scale names unknown modality"),
    ],
)
def test_noise_validation(level, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gaussian_noise(batch(), level, **kwargs)


def test_noise_needs_a_batch():
    with pytest.raises(ValueError, match="batch sizes disagree"):
        gaussian_noise({"a": torch.zeros(3, 2), "b": torch.zeros(4, 2)}, 0.5)
    with pytest.raises(ValueError, match="non-empty mapping"):
        gaussian_noise({}, 0.5)


# ---- modality dropout ---------------------------------------------------------------

def test_dropout_masks_and_zeros():
    x = batch(256)
    out, mask = modality_dropout(x, 0.4, generator=gen())
    assert list(mask) == list(x)
    for m in x:
        assert mask[m].dtype == torch.bool and mask[m].shape == (256,)
        assert (out[m][~mask[m]] == 0).all()
        assert torch.equal(out[m][mask[m]], x[m][mask[m]])
        assert 0 < (~mask[m]).sum() < 256
    assert torch.stack(list(mask.values())).any(0).all()


def test_dropout_never_drops_every_modality():
    x = batch(2000)
    _, mask = modality_dropout(x, 0.95, generator=gen())
    present = torch.stack(list(mask.values()))
    assert present.any(0).all()
    assert (present.sum(0) == 1).float().mean() > 0.8  # nearly all samples keep only one


def test_dropout_rates_and_defaults():
    x = {"a": torch.ones(20000, 2), "b": torch.ones(20000, 3)}
    _, mask = modality_dropout(x, {"a": 0.3}, generator=gen())
    assert mask["b"].all()  # unlisted: never dropped
    assert (~mask["a"]).float().mean().item() == pytest.approx(0.3, abs=0.015)
    out, mask = modality_dropout(x, 0.0, generator=gen())
    assert all(mask[m].all() and torch.equal(out[m], x[m]) for m in x)


def test_dropout_deterministic_with_generator():
    x = batch(64)
    a_out, a_mask = modality_dropout(x, 0.5, generator=gen(3))
    b_out, b_mask = modality_dropout(x, 0.5, generator=gen(3))
    assert all(torch.equal(a_mask[m], b_mask[m]) and torch.equal(a_out[m], b_out[m]) for m in x)
    _, c_mask = modality_dropout(x, 0.5, generator=gen(4))
    assert any(not torch.equal(a_mask[m], c_mask[m]) for m in x)


def test_dropout_combines_with_a_mask():
    x = {"a": torch.ones(1000, 2), "b": torch.ones(1000, 2)}
    given = {"a": torch.arange(1000) % 2 == 0}
    _, mask = modality_dropout(x, 0.9, mask=given, generator=gen())
    assert not mask["a"][~given["a"]].any()  # absent stays absent
    assert (mask["a"] | mask["b"]).all()


@pytest.mark.parametrize(
    ("p", "match"),
    [
        (1.0, r"p must be a number in \[0, 1\)"),
        (-0.2, r"p must be a number in \[0, 1\)"),
        ({"audio": 1.0}, r"p\['audio'\] must be a number in \[0, 1\)"),
        ({"smell": 0.1}, "p names unknown modality 'smell'"),
    ],
)
def test_dropout_validation(p, match):
    with pytest.raises(ValueError, match=match):
        modality_dropout(batch(), p)


def test_dropout_bad_mask():
    with pytest.raises(ValueError, match=r"mask\['audio'\] must be a bool tensor of shape \[8\]"):
        modality_dropout(batch(), 0.1, mask={"audio": torch.ones(8)})


def test_mask_feeds_fusion_modules():
    features = {"visual": torch.randn(32, 6), "audio": torch.randn(32, 4)}
    fused = build("early", {"visual": 6, "audio": 4}, out_dim=5)
    out, mask = modality_dropout(features, 0.5, generator=gen())
    assert fused(out, mask=mask).shape == (32, 5)
    out, mask = drop_modality(features, "audio")
    assert fused(out, mask=mask).shape == (32, 5)


# ---- test-time drop of a named modality ---------------------------------------------

def test_drop_named_modality():
    x = batch()
    out, mask = drop_modality(x, "text")
    assert (out["text"] == 0).all() and not mask["text"].any()
    assert out["visual"] is x["visual"] and mask["visual"].all() and mask["audio"].all()
    out, mask = drop_modality(x, ["text", "audio"])
    assert not mask["audio"].any() and (out["audio"] == 0).all()
    assert x["text"].abs().sum() > 0  # not in place


@pytest.mark.parametrize(
    ("modality", "match"),
    [
        ("smell", "modality names unknown modality 'smell'"),
        (["visual", "text", "audio"], "would drop every modality"),
        ([], "at least one modality"),
    ],
)
def test_drop_validation(modality, match):
    with pytest.raises(ValueError, match=match):
        drop_modality(batch(), modality)


def test_evaluation_transforms_wrap_the_corruptions():
    from wsfusion.data import drop_modality, gaussian_noise, missing_transform, noise_transform

    batch = {"visual": torch.randn(4, 3, 5), "audio": torch.randn(4, 7)}
    index = torch.arange(4)
    # The same seed gives the same noise to every model evaluated; the generator advances batch by batch.
    noisy, mask = noise_transform("audio", 0.5, seed=3)(batch, index)
    expected = gaussian_noise(batch, {"audio": 0.5}, generator=torch.Generator().manual_seed(3))
    assert mask is None and all(torch.equal(noisy[m], expected[m]) for m in batch)
    # A missing modality: drop_modality's zeros and False mask ...
    dropped, mask = missing_transform("visual")(batch, index)
    reference = drop_modality(batch, "visual")
    assert all(torch.equal(dropped[m], reference[0][m]) and torch.equal(mask[m], reference[1][m]) for m in batch)
    # ... and a batch holding only that modality (a unimodal model) is zeroed and masked out, not refused.
    alone, mask = missing_transform("audio")({"audio": batch["audio"]}, index)
    assert torch.equal(alone["audio"], torch.zeros(4, 7)) and mask["audio"].tolist() == [False] * 4
