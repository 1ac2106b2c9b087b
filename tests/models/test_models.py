import pytest
import torch
from torch import nn

from testing_helpers import assert_every_parameter_trains
from wsfusion import fusion
from wsfusion.encoders import AudioEncoder, TextEncoder, VisualEncoder, default_encoders
from wsfusion.models import MultiModalNetwork


SMALL_GRAPH = {"ws-dense": dict(nodes_per_modality=8, k=4), "ws-sparse": dict(nodes_per_modality=8, k=4)}


def notebook_inputs(batch=2):
    return {
        "visual": torch.randn(batch, 3, 32, 32),
        "text": torch.randn(batch, 20, 128),
        "audio": torch.randn(batch, 1, 64, 100),
    }


def small_encoders(pool="flatten"):
    return {
        "visual": VisualEncoder(in_channels=1, image_size=8, out_dim=16, channels=(4, 4, 4), grid=2, pool=pool),
        "text": TextEncoder(in_dim=6, seq_len=5, out_dim=16, num_heads=2, pool=pool),
        "audio": AudioEncoder(n_freq=8, n_frames=12, out_dim=16, channels=(4, 4, 4), pool=pool),
    }


def build_for(name, encoders, out_dim, **options):
    """The fusion over these encoders (token counts filled in where the fusion needs them)."""
    if fusion.fusion_class(name).needs_token_counts:
        options["tokens"] = {m: e.num_tokens for m, e in encoders.items()}
    if fusion.fusion_class(name).family == "unimodal":
        encoders = dict(list(encoders.items())[:1])
    return fusion.build(name, {m: e.out_dim for m, e in encoders.items()}, out_dim, **options), encoders


def small_inputs(batch=3):
    return {"visual": torch.randn(batch, 1, 8, 8), "text": torch.randn(batch, 5, 6), "audio": torch.randn(batch, 1, 8, 12)}


@pytest.mark.parametrize("name", fusion.available())
def test_notebook_shapes_end_to_end(name):
    fused, encoders = build_for(name, default_encoders(), out_dim=256)
    model = MultiModalNetwork(encoders, fused, head=nn.Linear(256, 10))
    assert model({m: x for m, x in notebook_inputs().items() if m in encoders}).shape == (2, 10)


@pytest.mark.parametrize("name", fusion.available())
def test_gradients_reach_encoders_fusion_and_head(name):
    # Seeded: with unseeded weights and a tiny batch, a ReLU channel could be dead for every sample
    # and give an honest all-zero gradient, depending on which tests ran before.
    torch.manual_seed(0)
    # Token fusions never read the pooled vector, so their encoders take the parameter-free pool.
    takes_tokens = fusion.fusion_class(name).accepts_tokens
    fused, encoders = build_for(name, small_encoders("mean" if takes_tokens else "flatten"), 8,
                                **SMALL_GRAPH.get(name, {}))
    model = MultiModalNetwork(encoders, fused, head=nn.Linear(8, 3))
    inputs = {m: x for m, x in small_inputs(batch=6).items() if m in encoders}
    torch.nn.functional.cross_entropy(model(inputs), torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    assert_every_parameter_trains(model)


@pytest.mark.parametrize("name", ["early", "attention", "transformer", "ws-gnn", "ws-transformer"])
def test_padded_audio_frames_change_nothing(name):
    # The network passes input_mask to the encoders and their token masks to token fusions.
    torch.manual_seed(0)
    options = {"tokens": True} if name == "ws-gnn" else {}
    encoders = small_encoders("mean" if name != "early" else "flatten")
    if options:
        options["tokens"] = {m: e.num_tokens for m, e in encoders.items()}
    fused, encoders = build_for(name, encoders, 8, **options)
    model = MultiModalNetwork(encoders, fused, head=nn.Linear(8, 3)).eval()
    x = small_inputs()
    input_mask = {"audio": torch.arange(12) < torch.tensor([12, 5, 1])[:, None]}
    garbage = {**x, "audio": torch.where(input_mask["audio"][:, None, None, :], x["audio"], torch.randn(3, 1, 8, 12) + 3)}
    out = model(x, input_mask=input_mask)
    torch.testing.assert_close(model(garbage, input_mask=input_mask), out)
    assert not torch.allclose(model(garbage), model(x))
    if fused.accepts_tokens:
        # The padded tokens reach the fusion as its token_mask (not just as zeroed inputs).
        features = {m: encoders[m].encode_tokens(v, input_mask.get(m))[0] for m, v in x.items()}
        token_mask = {"audio": encoders["audio"].token_mask(input_mask["audio"])}
        torch.testing.assert_close(out, model.head(fused(features, token_mask=token_mask)))
        assert not torch.allclose(out, model.head(fused(features)))
    with pytest.raises(ValueError, match=r"MultiModalNetwork: input_mask has unknown modality 'speech'"):
        model(x, input_mask={"speech": input_mask["audio"]})


def test_token_fusions_receive_tokens_and_others_pooled():
    seen = {}

    class Spy(fusion.EarlyFusion):
        def forward(self, features, mask=None):
            seen.update({m: tuple(v.shape) for m, v in features.items()})
            return super().forward(features, mask)

    class TokenSpy(fusion.CrossModalAttention):
        def forward(self, features, mask=None):
            seen.update({m: tuple(v.shape) for m, v in features.items()})
            return super().forward(features, mask)

    MultiModalNetwork(small_encoders(), Spy({m: 16 for m in "visual text audio".split()}, 4))(small_inputs())
    assert seen == {"visual": (3, 16), "text": (3, 16), "audio": (3, 16)}
    MultiModalNetwork(small_encoders(), TokenSpy({m: 16 for m in "visual text audio".split()}, 4, embed_dim=8, num_heads=2))(small_inputs())
    assert seen == {"visual": (3, 4, 16), "text": (3, 5, 16), "audio": (3, 3, 16)}


def test_deterministic_under_a_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(11)
        model = MultiModalNetwork(small_encoders(), fusion.build("hybrid", {m: 16 for m in "visual text audio".split()}, 4))
        outs.append(model(small_inputs()))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_absent_modality_is_not_encoded_when_allowed():
    encoders = small_encoders()
    model = MultiModalNetwork(encoders, fusion.build("late", {m: 16 for m in encoders}, 4, allow_missing=True)).eval()
    x = small_inputs()
    without_audio = model({m: v for m, v in x.items() if m != "audio"})
    masked = model(x, mask={"audio": torch.zeros(3, dtype=torch.bool)})
    torch.testing.assert_close(without_audio, masked)


def test_construction_errors():
    encoders = small_encoders()
    with pytest.raises(ValueError, match=r"encoders \['visual', 'text'\] must cover exactly the fusion's modalities \['visual', 'text', 'audio'\]"):
        MultiModalNetwork({m: encoders[m] for m in ("visual", "text")}, fusion.build("early", {m: 16 for m in encoders}, 4))
    with pytest.raises(ValueError, match=r"encoder 'text' outputs 16 features but the fusion expects 32"):
        MultiModalNetwork(encoders, fusion.build("early", {"visual": 16, "text": 32, "audio": 16}, 4))
    with pytest.raises(TypeError, match=r"fusion must be a wsfusion.fusion.FusionModule, got Linear"):
        MultiModalNetwork(encoders, nn.Linear(3, 3))
    plain = {m: nn.Linear(4, 16) for m in encoders}
    with pytest.raises(TypeError, match=r"CrossModalAttention takes token sequences: encoder 'visual' must be a wsfusion.encoders.ModalityEncoder"):
        MultiModalNetwork(plain, fusion.build("attention", {m: 16 for m in encoders}, 4))


def test_input_errors_name_the_modality():
    encoders = small_encoders()
    model = MultiModalNetwork(encoders, fusion.build("early", {m: 16 for m in encoders}, 4))
    x = small_inputs()
    with pytest.raises(ValueError, match=r"MultiModalNetwork got unknown modality 'vision'; expected keys \['visual', 'text', 'audio'\]"):
        model({**x, "vision": x["visual"]})
    with pytest.raises(ValueError, match=r"MultiModalNetwork is missing modality 'audio'"):
        model({m: v for m, v in x.items() if m != "audio"})
    with pytest.raises(ValueError, match=r"'audio' input must have shape \[B, 1, 8, 12\], got \[3, 1, 8, 13\]"):
        model({**x, "audio": torch.randn(3, 1, 8, 13)})
    with pytest.raises(ValueError, match=r"batch sizes disagree between modalities \(visual: 3, text: 2, audio: 3\)"):
        model({**x, "text": torch.randn(2, 5, 6)})
    with pytest.raises(TypeError, match=r"MultiModalNetwork takes a mapping modality -> input tensor, got tuple"):
        model(tuple(x.values()))


def test_plain_modules_work_as_encoders_for_pooled_fusions():
    encoders = {"a": nn.Linear(4, 6), "b": nn.Linear(3, 6)}
    model = MultiModalNetwork(encoders, fusion.build("low-rank", {"a": 6, "b": 6}, 2))
    assert model({"a": torch.randn(5, 4), "b": torch.randn(5, 3)}).shape == (5, 2)
