from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency
from torch.utils.data import DataLoader

from wsfusion.data import KINDS, NOTEBOOK_SHAPES, SyntheticTriModal

SMALL = {"visual": (1, 8, 8), "text": (4, 6), "audio": (1, 6, 10)}


def small(**kwargs) -> SyntheticTriModal:
    options = {"num_samples": 400, "num_classes": 4, "modality_shapes": SMALL}
    options.update(kwargs)
    return SyntheticTriModal(**options)


def mutual_information(a: torch.Tensor, b: torch.Tensor) -> float:
    """Plug-in mutual information (bits) between two discrete variables."""
    joint = np.zeros((int(a.max()) + 1, int(b.max()) + 1))
    np.add.at(joint, (a.numpy(), b.numpy()), 1)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) @ joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / outer[nz])).sum())


def independent(a: torch.Tensor, b: torch.Tensor) -> bool:
    table = np.zeros((int(a.max()) + 1, int(b.max()) + 1))
    np.add.at(table, (a.numpy(), b.numpy()), 1)
    return chi2_contingency(table).pvalue > 1e-3


def test_notebook_shapes_by_default():
    d = SyntheticTriModal(num_samples=6)
    assert d.modality_shapes == NOTEBOOK_SHAPES
    assert d.modalities == ("visual", "text", "audio") and d.num_classes == 10
    inputs, label = d[0]
    assert {m: tuple(x.shape) for m, x in inputs.items()} == {
        "visual": (3, 32, 32), "text": (20, 128), "audio": (1, 64, 100)
    }
    assert all(x.dtype == torch.float32 for x in inputs.values())
    assert label.dtype == torch.int64 and label.dim() == 0


def test_small_shapes_and_collate():
    d = small(modality_shapes={"visual": (1, 4, 4), "audio": (3,)})
    batch, labels = next(iter(DataLoader(d, batch_size=8)))
    assert batch["visual"].shape == (8, 1, 4, 4) and batch["audio"].shape == (8, 3)
    assert labels.shape == (8,)
    assert len(d) == 400 and set(d.inputs) == {"visual", "audio"}
    assert "SyntheticTriModal(split='train'" in repr(d)


def test_deterministic_for_a_seed():
    a, b = small(seed=3), small(seed=3)
    for m in SMALL:
        assert torch.equal(a.inputs[m], b.inputs[m])
    assert torch.equal(a.labels, b.labels)
    test = small(seed=3, split="test")  # same task (patterns), other samples
    for m in SMALL:
        assert torch.equal(a.prototypes[m], test.prototypes[m])
        assert not torch.equal(a.inputs[m], test.inputs[m])
    other = small(seed=4)
    assert not torch.equal(a.prototypes["visual"], other.prototypes["visual"])


@pytest.mark.parametrize("kind", KINDS)
def test_labels_balanced(kind):
    d = small(kind=kind, num_samples=402, num_classes=3)
    assert d.labels.bincount().tolist() == [134, 134, 134]
    for z in d.latents.values():
        assert z.min() >= 0 and z.max() < 3


def test_inputs_are_patterns_plus_noise():
    d = small(kind="uniqueness", noise_std=0.0, signal=2.0)
    for m, x in d.inputs.items():
        assert torch.equal(x, 2.0 * d.prototypes[m][d.latents[m]])
    noisy = small(kind="uniqueness", noise_std=0.5)
    for m, x in noisy.inputs.items():
        residual = x - noisy.prototypes[m][noisy.latents[m]]
        assert abs(residual.std().item() - 0.5) < 0.02
        flat = noisy.prototypes[m].flatten(1)
        torch.testing.assert_close(flat.std(1), torch.ones(4))


def test_redundancy_any_modality_suffices():
    d = small(kind="redundancy")
    for m in SMALL:
        assert torch.equal(d.latents[m], d.labels)


def test_uniqueness_one_modality_carries_the_label():
    d = small(kind="uniqueness", informative="audio", num_samples=2000)
    assert torch.equal(d.latents["audio"], d.labels)
    for m in ("visual", "text"):
        assert independent(d.latents[m], d.labels)
        assert mutual_information(d.latents[m], d.labels) < 0.02


def test_synergy_only_the_pair_carries_the_label():
    c = 4
    d = small(kind="synergy", num_samples=4000, num_classes=c)
    zv, za, zt, y = d.latents["visual"], d.latents["audio"], d.latents["text"], d.labels
    # determined by the pair ...
    assert torch.equal((zv + za) % c, y)
    assert mutual_information(zv * c + za, y) == pytest.approx(2.0, abs=1e-3)  # H(y) = log2(4)
    # ... yet each modality alone (and the distractor) is independent of the label
    for z in (zv, za, zt):
        assert independent(z, y)
        assert mutual_information(z, y) < 0.01
        assert z.bincount(minlength=c).min() > 4000 / c * 0.9  # codes stay uniform
    # contrast: under redundancy the same statistic is maximal
    red = small(kind="redundancy", num_samples=4000, num_classes=c)
    assert not independent(red.latents["visual"], red.labels)


def test_synergy_over_three_modalities():
    d = small(kind="synergy", synergy=("visual", "text", "audio"), num_samples=3000, num_classes=3)
    z = d.latents
    assert torch.equal((z["visual"] + z["text"] + z["audio"]) % 3, d.labels)
    assert independent(z["visual"] * 3 + z["audio"], d.labels)  # no pair suffices either


def test_mixture_of_kinds():
    d = small(kind={"redundancy": 1, "uniqueness": 1, "synergy": 2}, num_samples=4000)
    share = d.sample_kind.bincount(minlength=3).float() / 4000
    torch.testing.assert_close(share, torch.tensor([0.25, 0.25, 0.5]), atol=0.03, rtol=0)
    red, uni, syn = (d.sample_kind == k for k in range(3))
    assert all(torch.equal(d.latents[m][red], d.labels[red]) for m in SMALL)
    assert torch.equal(d.latents["visual"][uni], d.labels[uni])
    assert torch.equal((d.latents["visual"][syn] + d.latents["audio"][syn]) % 4, d.labels[syn])
    assert d.kind_weights == {"redundancy": 0.25, "uniqueness": 0.25, "synergy": 0.5}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "xor"}, "kind must be one of"),
        ({"kind": {"synergy": -1}}, "non-negative weight"),
        ({"kind": {"redundancy": 0}}, "at least one positive weight"),
        ({"kind": {"noise": 1}}, "unknown label structure"),
        ({"num_classes": 1}, "num_classes must be at least 2"),
        ({"num_samples": 0}, "num_samples must be a positive integer"),
        ({"informative": "smell"}, "informative must be one of"),
        ({"synergy": ("visual", "smell")}, "synergy must list distinct modalities"),
        ({"synergy": ("visual",)}, "synergy needs at least two"),
        ({"modality_shapes": {"visual": (3, 0)}}, r"modality_shapes\['visual'\]"),
        ({"modality_shapes": {}}, "non-empty mapping"),
        ({"noise_std": -1.0}, "noise_std must be a non-negative number"),
        ({"split": "dev"}, "split must be one of"),
        ({"seed": -3}, "seed must be a non-negative integer"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small(**kwargs)


def test_model_built_from_dataset_attributes():
    from wsfusion.encoders import AudioEncoder, TextEncoder, VisualEncoder
    from wsfusion.fusion import build
    from wsfusion.models import MultiModalNetwork

    d = small(num_samples=8)
    s = d.modality_shapes
    encoders = {
        "visual": VisualEncoder(in_channels=s["visual"][0], image_size=s["visual"][1:], out_dim=8, channels=(4, 4, 8)),
        "text": TextEncoder(in_dim=s["text"][1], seq_len=s["text"][0], out_dim=8, num_heads=2),
        "audio": AudioEncoder(n_freq=s["audio"][1], n_frames=s["audio"][2], out_dim=8, channels=(4, 4, 8)),
    }
    model = MultiModalNetwork(encoders, build("early", {m: 8 for m in encoders}, 8), torch.nn.Linear(8, d.num_classes))
    inputs, labels = next(iter(DataLoader(d, batch_size=8)))
    assert model(inputs).shape == (8, d.num_classes)
