import pytest
import torch

from testing_helpers import assert_every_parameter_trains
from wsfusion.graphs import CrossModalGraph, ws_cross_modal_graph
from wsfusion.nn import WSLinear
from wsfusion.topology import LearnableWSGraph, LearnableWSLinear
from wsfusion.train import TemperatureSchedule

NODES = {"visual": 10, "text": 10, "audio": 10}


def test_candidates_are_lattice_plus_shortcut_pool():
    topo = LearnableWSGraph(NODES, k=4, beta_init=0.3, seed=1)
    n, L = 30, 30 * 4 // 2
    assert topo.num_lattice == L and topo.num_shortcuts == L
    assert topo.edge_index.shape == (2, 4 * L)
    lattice = ws_cross_modal_graph(NODES, k=4, beta=0.0)
    lat_keys = set(map(tuple, topo.pairs[:, topo.is_lattice].t().tolist()))
    ref = {(min(s, t), max(s, t)) for s, t in lattice.edge_index.t().tolist()}
    assert lat_keys == ref
    pairs = topo.pairs.t().tolist()
    assert len(set(map(tuple, pairs))) == len(pairs)  # no duplicates
    assert all(u < v for u, v in pairs)  # no self loops
    # the directed candidates are sorted by (target, source), as the CSR kernel needs
    key = topo.edge_index[1] * n + topo.edge_index[0]
    assert bool((key[1:] > key[:-1]).all())
    # same seed, same pool; another seed, another pool
    assert torch.equal(LearnableWSGraph(NODES, k=4, seed=1).pairs, topo.pairs)
    assert not torch.equal(LearnableWSGraph(NODES, k=4, seed=2).pairs, topo.pairs)


@pytest.mark.parametrize("per_pair", [False, True])
def test_expected_edge_count_is_the_budget(per_pair):
    topo = LearnableWSGraph(NODES, k=4, beta_init=0.3, per_pair=per_pair, num_shortcuts=90)
    with torch.no_grad():
        topo.beta_logit.copy_(torch.randn(topo.beta_logit.shape))
    assert topo.expected_num_edges().item() == pytest.approx(60.0, rel=1e-5)
    gen = torch.Generator().manual_seed(0)
    counts = torch.stack([topo.sample(generator=gen).sum() for _ in range(400)])
    assert counts.mean().item() == pytest.approx(60.0, abs=1.0)  # std of the mean ~ 0.25


def test_hard_samples_are_exactly_binary_and_eval_is_deterministic():
    topo = LearnableWSGraph(NODES, k=4, beta_init=0.4, edge_logits=True, temperature=0.7)
    with torch.no_grad():
        topo.edge_logit.normal_()
    gates = topo.train()()
    assert set(gates.unique().tolist()) <= {0.0, 1.0}
    assert gates.requires_grad
    soft = topo.sample(hard=False)
    assert bool(((soft > 0) & (soft < 1)).all())
    topo.eval()
    a, b = topo(), topo()
    assert torch.equal(a, b) and int(a.sum()) == 2 * topo.num_lattice  # exactly the edge budget
    g1, g2 = topo.to_graph(), topo.to_graph()
    assert isinstance(g1, CrossModalGraph) and g1 == g2
    assert g1.num_edges == topo.num_lattice
    stats = g1.stats()
    assert stats["num_edges"] == 60 and stats["num_nodes"] == 30
    # the evaluation graph is the most probable one: the L largest logits
    logits = topo.gate_logits().detach()
    kept = topo.mode().bool()
    assert logits[kept].min() >= logits[~kept].max()


def test_mode_with_a_single_beta_is_lattice_below_one_half():
    low = LearnableWSGraph(NODES, k=4, beta_init=0.2).eval()
    assert bool(low.mode()[low.is_lattice].all()) and not bool(low.mode()[~low.is_lattice].any())
    high = LearnableWSGraph(NODES, k=4, beta_init=0.8).eval()
    assert not bool(high.mode()[high.is_lattice].any())
    sample = low.to_graph("sample", generator=torch.Generator().manual_seed(0))
    assert sample.num_nodes == 30


def test_beta_receives_a_nonzero_gradient_through_ws_linear():
    layer = LearnableWSLinear(NODES, k=4, beta_init=0.3, bias=True, per_pair=True)
    out = layer(torch.randn(16, 30))
    assert out.shape == (16, 30)
    (out.sin().sum()).backward()
    grad = layer.topology.beta_logit.grad
    assert grad is not None and bool((grad != 0).any())
    assert_every_parameter_trains(layer)


def _cross_modal_objective(reward_cross: bool, steps: int = 30) -> tuple[float, float]:
    torch.manual_seed(0)
    layer = LearnableWSLinear(NODES, k=4, beta_init=0.3, seed=0, temperature=0.5)
    n = layer.num_nodes
    modality = torch.arange(n) // 10
    src, dst = layer.edge_index
    cross = modality[src] != modality[dst]
    with torch.no_grad():
        layer.weight.copy_((cross if reward_cross else ~cross).float())  # out = number of rewarded edges kept
    opt = torch.optim.SGD([layer.topology.beta_logit], lr=0.01)
    start = layer.topology.mean_beta()
    x = torch.ones(8, n)
    for _ in range(steps):
        opt.zero_grad()
        loss = -layer(x).sum() / 8
        loss.backward()
        opt.step()
    return start, layer.topology.mean_beta()


def test_optimisation_moves_beta_towards_cross_modal_edges():
    # Blocked ring: lattice edges are intra-modal (except at block boundaries), shortcuts mostly cross-modal.
    start, end = _cross_modal_objective(reward_cross=True)
    assert end > start + 0.05
    start, end = _cross_modal_objective(reward_cross=False)
    assert end < start - 0.05


def test_eval_layer_equals_exported_ws_linear():
    layer = LearnableWSLinear(NODES, k=4, beta_init=0.6, bias=True, edge_logits=True).eval()
    with torch.no_grad():
        layer.topology.edge_logit.normal_()
        layer.bias.normal_()
    plain = layer.to_ws_linear()
    assert isinstance(plain, WSLinear) and plain.graph == layer.export_graph()
    x = torch.randn(5, 3, 30)
    torch.testing.assert_close(layer(x), plain(x))


def test_from_graph_matches_the_ws_graph_settings():
    graph = ws_cross_modal_graph(NODES, k=4, beta=0.3, seed=5, order="interleaved")
    layer = LearnableWSLinear.from_graph(graph, bias=True)
    assert layer.topology.k == 4 and layer.topology.seed == 5 and layer.topology.order == "interleaved"
    assert layer.topology.mean_beta() == pytest.approx(0.3)
    assert layer(torch.randn(2, 30)).shape == (2, 30)


@pytest.mark.parametrize(("beta", "expected"), [(0.0, 0.01), (0.3, 0.3), (1.0, 0.99)])
def test_every_learnable_twin_clips_beta_and_keeps_seed_and_order(beta, expected):
    from wsfusion.fusion import WSGraphFusion
    from wsfusion.topology import learnable_options

    graph = ws_cross_modal_graph(NODES, k=4, beta=beta, seed=7, order="interleaved")
    twin = learnable_options(graph)
    assert twin == {"nodes": NODES, "k": 4, "beta_init": expected, "seed": 7, "order": "interleaved"}
    assert learnable_options(graph, per_pair=True, seed=3) == twin | {"per_pair": True, "seed": 3}
    layer = LearnableWSLinear.from_graph(graph)
    fusion = WSGraphFusion(dict.fromkeys(NODES, 6), 3, graph=graph, k=4, topology="learnable")
    for topology in (layer.topology, fusion.topology):  # the layer and the graph fusion build the same twin
        assert topology.mean_beta() == pytest.approx(expected)
        assert (topology.seed, topology.order, topology.k) == (7, "interleaved", 4)
        torch.testing.assert_close(topology.edge_index, layer.topology.edge_index)


def test_a_learnable_twin_needs_a_degree():
    from wsfusion.topology import learnable_options

    graph = CrossModalGraph(ws_cross_modal_graph(NODES, k=4).edge_index, NODES)
    with pytest.raises(ValueError, match=r"a learnable twin needs a graph built by ws_cross_modal_graph"):
        learnable_options(graph)
    assert learnable_options(graph, k=4, beta=0.5)["beta_init"] == 0.5


def test_temperature_schedule_anneals():
    layer = LearnableWSLinear(NODES, k=4, temperature=2.0, final_temperature=0.5)

    class FakeTrainer:
        model = torch.nn.Sequential(layer)
        steps_per_epoch = 5

        class config:  # noqa: N801
            epochs = 2

    sched = TemperatureSchedule()
    sched.on_step_end(FakeTrainer, 5)
    assert layer.topology.temperature == pytest.approx(1.0)
    sched.on_step_end(FakeTrainer, 10)
    assert layer.topology.temperature == pytest.approx(0.5)
    assert sched.state_dict() == {"progress": 1.0, "temperatures": [pytest.approx(0.5)]}


@pytest.mark.parametrize(
    "options, match",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"final_temperature": 0}, "final_temperature"),
        ({"beta_init": 0.0}, "beta_init"),
        ({"beta_init": 1.0}, "beta_init"),
        ({"num_shortcuts": 10}, "num_shortcuts"),
        ({"k": 3}, "k must be even"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        LearnableWSGraph(NODES, **{"k": 4, **options})


def test_bad_input_raises():
    layer = LearnableWSLinear(NODES, k=4)
    with pytest.raises(ValueError, match=r"\[\.\.\., 30\]"):
        layer(torch.randn(2, 29))
    with pytest.raises(ValueError, match="N >= 2k"):
        LearnableWSGraph({"a": 4, "b": 3}, k=4)


def test_dropped_edges_weights_learn_through_the_soft_gate():
    # Same sample, value w*z; the gate gets the old straight-through gradient (w), a kept edge's weight
    # the old one (1), and a dropped edge's weight the relaxed gate (the plain product gave it 0).
    layer = LearnableWSLinear(NODES, k=4, beta_init=0.3).double().train()
    x = torch.randn(5, layer.num_nodes, dtype=torch.float64)
    upstream = torch.randn(5, layer.num_nodes, dtype=torch.float64)

    torch.manual_seed(3)
    layer(x).backward(upstream)
    grad_weight, grad_logit = layer.weight.grad.clone(), layer.topology.beta_logit.grad.clone()
    torch.manual_seed(3)
    out_now = layer(x)

    layer.zero_grad()
    torch.manual_seed(3)
    soft = layer.topology.relaxed_sample()[layer.topology.pair_id]
    hard = (soft > 0.5).double()
    plain = layer.weight * (hard + soft - soft.detach())  # the plain straight-through product
    out_plain = layer.edge_linear(plain, x)
    out_plain.backward(upstream)
    torch.testing.assert_close(out_now, out_plain, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_logit, layer.topology.beta_logit.grad)
    kept = hard > 0
    assert 0 < int(kept.sum()) < kept.numel()
    torch.testing.assert_close(grad_weight[kept], layer.weight.grad[kept])
    assert torch.all(layer.weight.grad[~kept] == 0)  # what the fix is for
    # The output is linear in the edge values: d(out)/d(value_e) is the same at any weights, and a
    # dropped edge's weight gets the relaxed gate times it.
    layer.zero_grad()
    layer.edge_linear(layer.weight * 1.0, x).backward(upstream)
    torch.testing.assert_close(grad_weight[~kept], (soft.detach() * layer.weight.grad)[~kept])
    assert bool((grad_weight[~kept] != 0).any())


def test_evaluation_uses_the_plain_deterministic_graph():
    layer = LearnableWSLinear(NODES, k=4, beta_init=0.3).eval()
    torch.testing.assert_close(layer.effective_weight(), layer.weight * layer.topology.mode()[layer.topology.pair_id])
