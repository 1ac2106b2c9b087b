"""Initialisation audit: every fusion starts at a sane output scale and resets everything it owns."""

import pytest
import torch

from wsfusion import fusion
from wsfusion.nn import CrossModalConv

# The band for the output std of a freshly built fusion fed unit-variance inputs. A default
# nn.Linear maps unit-variance inputs to std ~0.58 (1/sqrt(3)); an MLP behind a ReLU to ~0.2-0.3.
# The band allows that range with a margin on both sides, and catches what an init bug does:
# outputs that vanish (a 3-D xavier init gave low-rank 0.016, and 0.000 with three modalities)
# or blow up.
SCALE_BAND = (0.1, 3.0)
CONFIGS = {"two modalities, 64-d": ({"visual": 64, "audio": 64}, 64),
           "three modalities, 256-d (the notebook)": ({"visual": 256, "text": 256, "audio": 256}, 256)}


def build(name, dims, out, **kwargs):
    cls = fusion.fusion_class(name)
    if cls.family == "unimodal":
        dims = dict(list(dims.items())[:1])
    if cls.needs_token_counts:
        kwargs["tokens"] = {m: 12 for m in dims}
    return fusion.build(name, dims, out, **kwargs), dims


def unit_inputs(module, dims, batch=512):
    shape = (batch, 12) if module.accepts_tokens else (batch,)
    return {m: torch.randn(*shape, d) for m, d in dims.items()}


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", fusion.available())
def test_output_scale_at_initialisation(name, config):
    torch.manual_seed(0)
    module, dims = build(name, *CONFIGS[config])
    with torch.no_grad():
        out = module.eval()(unit_inputs(module, dims))
    std = out.std(dim=0).mean().item()  # how much the output varies between samples
    low, high = SCALE_BAND
    assert low <= std <= high, f"{name}: output std {std:.4f} at initialisation is outside {SCALE_BAND}"


LEARNABLE = {"ws-gnn learnable": ("ws-gnn", {"topology": "learnable", "segments": 4, "k": 2}),
             "ws-sparse learnable": ("ws-sparse", {"topology": "learnable", "nodes_per_modality": 6, "k": 2})}


@pytest.mark.parametrize("case", [*fusion.available(), *LEARNABLE])
def test_reset_parameters_reinitialises_everything(case):
    name, options = LEARNABLE.get(case, (case, {}))
    torch.manual_seed(0)
    module, dims = build(name, {"visual": 6, "text": 5, "audio": 4}, 6, **options)
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(123.0)
    module.reset_parameters()
    stale = [n for n, p in module.named_parameters() if (p == 123.0).any()]
    assert stale == [], f"{name}: reset_parameters left {stale} untouched"


def test_every_fusion_defines_reset_parameters():
    for name in fusion.available():
        assert callable(getattr(fusion.fusion_class(name), "reset_parameters", None)), name


@pytest.mark.parametrize("num_bases", [None, 3])
def test_cross_modal_conv_relation_matrices_are_glorot(num_bases):
    # As PyG's RGCNConv: each [in, out] matrix is glorot, U(+-sqrt(6 / (in + out))), std sqrt(2 / (in + out)).
    torch.manual_seed(0)
    conv = CrossModalConv(64, 64, num_relations=9, num_bases=num_bases)
    expected = (2.0 / 128) ** 0.5
    for matrix in conv.weight:
        assert matrix.std().item() == pytest.approx(expected, rel=0.1)
        assert matrix.abs().max().item() <= (6.0 / 128) ** 0.5
    if num_bases is not None:
        assert conv.comp.std().item() == pytest.approx((2.0 / (9 + 3)) ** 0.5, rel=0.35)
    assert conv.root.weight.std().item() == pytest.approx(expected, rel=0.1)
