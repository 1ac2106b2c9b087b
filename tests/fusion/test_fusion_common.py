"""The contract every registered fusion module keeps (shapes, gradients, seeds, errors, missing modalities)."""

import pytest
import torch

from testing_helpers import assert_every_parameter_trains
from wsfusion import fusion

DIMS = {"visual": 12, "text": 8, "audio": 10}
TOKENS = {"visual": 4, "text": 5, "audio": 3}
OUT = 6
B = 5
# Small sizes so the whole grid runs in seconds; nodes_per_modality must exceed k for ws-dense.
SMALL = {
    "early": dict(hidden_dim=16),
    "late": dict(hidden_dim=16),
    "hybrid": dict(hidden_dim=16),
    "attention": dict(embed_dim=16, num_heads=2),
    "transformer": dict(embed_dim=16, num_heads=2),
    "tensor": dict(proj_dim=3, hidden_dim=16),
    "low-rank": dict(rank=3),
    "ws-dense": dict(nodes_per_modality=8, k=4),
    "ws-sparse": dict(nodes_per_modality=8, k=4, num_layers=2),
    "ws-gnn": dict(segments=3, node_dim=8, k=4),
    "ws-transformer": dict(node_dim=8, heads=2, k=2),
}
# Every fusion over several modalities (UnimodalFusion takes one and has tests of its own).
NAMES = tuple(n for n in fusion.available() if fusion.fusion_class(n).family != "unimodal")


def make(name, dims=DIMS, **kwargs):
    if fusion.fusion_class(name).needs_token_counts:
        kwargs.setdefault("tokens", {m: TOKENS.get(m, 2) for m in dims})
    return fusion.build(name, dims, OUT, **{**SMALL.get(name, {}), **kwargs})


def inputs(module, dims=DIMS, batch=B):
    """Token sequences for modules that take them (real attention), pooled vectors otherwise."""
    if module.accepts_tokens:
        return {m: torch.randn(batch, TOKENS.get(m, 2), d) for m, d in dims.items()}
    return {m: torch.randn(batch, d) for m, d in dims.items()}


def test_registry_names():
    assert set(SMALL) <= set(NAMES)
    assert set(NAMES) == set(SMALL), "add small options for the new fusion to SMALL"
    assert {"ws-transformer", "unimodal"} <= set(fusion.available())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "dims",
    [DIMS, {"image": 7, "audio": 9}, {"a": 3, "b": 4, "c": 5, "d": 6}],
    ids=["three", "two", "four"],
)
def test_output_shape_for_any_number_of_modalities(name, dims):
    module = make(name, dims)
    assert module(inputs(module, dims)).shape == (B, OUT)


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name):
    module = make(name)
    module(inputs(module)).pow(2).sum().backward()
    assert_every_parameter_trains(module)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_a_seed(name):
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        module = make(name)
        outs.append(module(inputs(module)))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_pooled_inputs_work_everywhere(name):
    # A pooled vector is a sequence of one token (for token-node graphs: one node per modality).
    module = make(name, **({"tokens": {m: 1 for m in DIMS}} if fusion.fusion_class(name).needs_token_counts else {}))
    assert module({m: torch.randn(B, d) for m, d in DIMS.items()}).shape == (B, OUT)


@pytest.mark.parametrize("name", NAMES)
def test_absent_key_equals_masked_modality(name):
    """An absent key is the same as a mask marking that modality missing for every sample."""
    module = make(name, allow_missing=True).eval()
    x = inputs(module)
    absent = {m: v for m, v in x.items() if m != "text"}
    masked = module(x, mask={"text": torch.zeros(B, dtype=torch.bool)})
    torch.testing.assert_close(module(absent), masked)
    assert torch.isfinite(masked).all()


@pytest.mark.parametrize("name", NAMES)
def test_mask_is_per_sample(name):
    module = make(name).eval()
    x = inputs(module)
    keep = torch.tensor([True, False, True, True, False])
    out = module(x, mask={"audio": keep})
    full = module(x)
    alone_missing = module({m: v[~keep] for m, v in x.items()}, mask={"audio": torch.zeros(2, dtype=torch.bool)})
    torch.testing.assert_close(out[keep], full[keep])
    torch.testing.assert_close(out[~keep], alone_missing)


@pytest.mark.parametrize("name", NAMES)
def test_missing_modality_changes_the_output(name):
    module = make(name).eval()
    x = inputs(module)
    assert not torch.allclose(module(x), module(x, mask={"visual": torch.zeros(B, dtype=torch.bool)}))


@pytest.mark.parametrize("name", NAMES)
def test_input_errors(name):
    module = make(name)
    what = type(module).__name__
    x = {m: torch.randn(B, d) for m, d in DIMS.items()}
    tokens_ok = " or \\[B, T, 8\\]" if module.accepts_tokens else ""

    with pytest.raises(ValueError, match=rf"{what} got unknown modality 'speech'; expected keys \['visual', 'text', 'audio'\]"):
        module({**x, "speech": torch.randn(B, 4)})
    with pytest.raises(ValueError, match=rf"{what} is missing modality 'text'.*allow_missing=True"):
        module({m: v for m, v in x.items() if m != "text"})
    with pytest.raises(ValueError, match=rf"{what}: 'text' features must have shape \[B, 8\]{tokens_ok}, got \[5, 9\]"):
        module({**x, "text": torch.randn(B, 9)})
    with pytest.raises(ValueError, match=rf"{what}: 'text' features must have shape \[B, 8\]{tokens_ok}, got \[8\]"):
        module({**x, "text": torch.randn(8)})
    with pytest.raises(ValueError, match=rf"{what}: batch sizes disagree between modalities \(visual: 5, text: 4, audio: 5\)"):
        module({**x, "text": torch.randn(4, 8)})
    bad = x["audio"].clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match=rf"{what}: 'audio' features contains non-finite values \(1 NaN, 0 inf\)"):
        module({**x, "audio": bad})
    with pytest.raises(TypeError, match=rf"{what}: 'audio' features must be floating point, got dtype torch.int64"):
        module({**x, "audio": torch.ones(B, 10, dtype=torch.long)})
    with pytest.raises(TypeError, match=rf"{what} takes a mapping modality -> features, got list"):
        module(list(x.values()))
    with pytest.raises(ValueError, match=rf"{what}: mask\['text'\] must be a bool tensor of shape \[5\], got \[4\] torch.bool"):
        module(x, mask={"text": torch.ones(4, dtype=torch.bool)})
    with pytest.raises(ValueError, match=rf"{what}: mask has unknown modality 'speech'"):
        module(x, mask={"speech": torch.ones(B, dtype=torch.bool)})
    if not module.accepts_tokens:
        with pytest.raises(ValueError, match=r"takes pooled vectors; pool the tokens first"):
            module({**x, "text": torch.randn(B, 3, 8)})


def test_build_errors():
    with pytest.raises(ValueError, match=r"unknown fusion 'nope'; available: early, late"):
        fusion.build("nope", DIMS, OUT)
    with pytest.raises(TypeError, match=r"fusion 'early' has no option 'rank'; options: hidden_dim, dropout, allow_missing"):
        fusion.build("early", DIMS, OUT, rank=3)
    with pytest.raises(ValueError, match=r"EarlyFusion needs a non-empty mapping modality -> feature dim"):
        fusion.build("early", {}, OUT)
    with pytest.raises(ValueError, match=r"EarlyFusion: modality 'text' needs a positive integer feature dim, got 0"):
        fusion.build("early", {"visual": 3, "text": 0}, OUT)
    with pytest.raises(ValueError, match=r"out_dim must be a positive integer, got -1"):
        fusion.build("late", DIMS, -1)


def test_describe_gives_one_line_per_fusion():
    for name in NAMES:
        line = fusion.describe(name)
        assert line and "\n" not in line
