import io

import pytest
import torch

from wsfusion.graphs import ws_cross_modal_graph
from wsfusion.nn import WSLinear
from wsfusion.topology import rewire_
from wsfusion.train import Rewirer

NODES = {"a": 6, "b": 6}


def _keys(layer):
    n = layer.num_nodes
    return set((layer.edge_index[0] * n + layer.edge_index[1]).tolist())


def _check_invariants(layer, num_edges, symmetric=True, self_loops=False):
    ei = layer.edge_index
    n = layer.num_nodes
    assert ei.size(1) == num_edges == layer.weight.numel()
    keys = ei[1] * n + ei[0]
    assert bool((keys[1:] > keys[:-1]).all())  # sorted, no duplicates
    assert int((ei[0] == ei[1]).sum()) == (n if self_loops else 0)  # loops never dropped nor grown
    if symmetric:
        assert set(keys.tolist()) == set((ei[0] * n + ei[1]).tolist())
    assert torch.equal(layer.graph.edge_index, ei)
    # the CSR buffers follow: same output as a fresh layer on the new graph with the same weights
    ref = WSLinear(layer.graph, bias=layer.bias is not None)
    with torch.no_grad():
        ref.weight.copy_(layer.weight)
        if layer.bias is not None:
            ref.bias.copy_(layer.bias)
    x = torch.randn(3, n)
    torch.testing.assert_close(layer(x), ref(x))


def test_rewire_keeps_weights_of_kept_edges_and_zeroes_new_ones_and_adam_state():
    layer = WSLinear(ws_cross_modal_graph(NODES, k=4, beta=0.0))
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    layer(torch.randn(4, 12)).square().sum().backward()
    opt.step()
    old = dict(zip((layer.edge_index[0] * 12 + layer.edge_index[1]).tolist(), layer.weight.detach().tolist()))
    old_m = dict(zip((layer.edge_index[0] * 12 + layer.edge_index[1]).tolist(), opt.state[layer.weight]["exp_avg"].tolist()))
    param = layer.weight
    ei = layer.edge_index.clone()
    # replace the pair 0-1 by 0-6
    keep = ~(((ei[0] == 0) & (ei[1] == 1)) | ((ei[0] == 1) & (ei[1] == 0)))
    new = torch.cat([ei[:, keep], torch.tensor([[0, 6], [6, 0]])], dim=1)
    source = rewire_(layer, new, opt)
    assert layer.weight is param and opt.param_groups[0]["params"][0] is param
    assert int((source == -1).sum()) == 2
    for k, w, m in zip((layer.edge_index[0] * 12 + layer.edge_index[1]).tolist(), layer.weight.tolist(),
                       opt.state[param]["exp_avg"].tolist()):
        assert w == pytest.approx(old.get(k, 0.0))
        assert m == pytest.approx(old_m.get(k, 0.0))
    assert int(opt.state[param]["step"]) == 1
    _check_invariants(layer, ei.size(1))
    opt.step()  # the optimizer still works on the rewired parameter


def test_rewire_with_a_different_edge_count_replaces_the_parameter_in_the_optimizer():
    layer = WSLinear(ws_cross_modal_graph(NODES, k=4, beta=0.0))
    opt = torch.optim.AdamW(layer.parameters())
    layer(torch.randn(2, 12)).sum().backward()
    opt.step()
    ei = layer.edge_index
    keep = ~(((ei[0] == 0) & (ei[1] == 1)) | ((ei[0] == 1) & (ei[1] == 0)))
    rewire_(layer, ei[:, keep], opt)
    assert layer.weight.numel() == ei.size(1) - 2
    assert opt.param_groups[0]["params"][0] is layer.weight
    assert opt.state[layer.weight]["exp_avg"].shape == layer.weight.shape
    layer(torch.randn(2, 12)).sum().backward()
    opt.step()


def test_drops_the_lowest_magnitude_pairs():
    layer = WSLinear(ws_cross_modal_graph(NODES, k=4, beta=0.0))
    n = 12
    src, dst = layer.edge_index
    lo, hi = torch.minimum(src, dst), torch.maximum(src, dst)
    with torch.no_grad():
        layer.weight.copy_(((lo * n + hi).float() - 70.0))  # symmetric, distinct magnitudes per pair
    pairs = sorted({(int(a), int(b)) for a, b in zip(lo, hi)}, key=lambda p: abs(p[0] * n + p[1] - 70.0))
    rw = Rewirer([layer], alpha=0.5, symmetric=True, seed=1)
    changed = rw.rewire(0.25)  # 24 pairs -> drop 6
    assert changed == [12]
    now = {(int(a), int(b)) for a, b in layer.edge_index.t() if a < b}
    assert not now & set(pairs[:6])
    assert set(pairs[6:]) <= now
    grown = now - set(pairs)
    assert len(grown) == 6
    for a, b in grown:  # new edges start at zero, both directions
        for s, t in ((a, b), (b, a)):
            e = int(((layer.edge_index[0] == s) & (layer.edge_index[1] == t)).nonzero())
            assert layer.weight[e].item() == 0.0
    _check_invariants(layer, 48)


def _rigl_setup(symmetric, dense_max_nodes):
    layer = WSLinear(ws_cross_modal_graph({"a": 5, "b": 5}, k=2, beta=0.0))  # ring 0-1-...-9-0
    rw = Rewirer([layer], mode="rigl", delta_t=1, end_step=100, symmetric=symmetric,
                 dense_max_nodes=dense_max_nodes, pool_factor=1000)
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0, 5.0, 1.0, 4.0, 2.0, 3.0, 0.5]])
    c = torch.zeros(1, 10)
    c[0, 0] = 1.0  # dense gradient G[t, s] = c[t] x[s]: only row t = 0 is non-zero
    (layer(x) * c).sum().backward()
    return layer, rw


@pytest.mark.parametrize("dense_max_nodes", [1024, 0])  # exact dense score / sampled pool with gather-dot
@pytest.mark.parametrize("symmetric", [True, False])
def test_rigl_regrows_the_largest_gradient_pairs(symmetric, dense_max_nodes):
    layer, rw = _rigl_setup(symmetric, dense_max_nodes)
    before = _keys(layer)
    rw.rewire(0.2 if symmetric else 0.1)  # 10 pairs or 20 directed edges -> 2 regrown
    grown = _keys(layer) - before
    # largest |x[s]| among non-neighbours of node 0 (neighbours 1 and 9): s = 4 (5.0), then 6 (4.0)
    if symmetric:
        assert grown == {0 * 10 + 4, 4 * 10 + 0, 0 * 10 + 6, 6 * 10 + 0}
    else:
        assert grown == {4 * 10 + 0, 6 * 10 + 0}  # directed s -> t keys s * N + t
    _check_invariants(layer, 20, symmetric=symmetric)


def test_rigl_without_captured_gradients_warns_and_keeps_the_graph():
    layer = WSLinear(ws_cross_modal_graph(NODES, k=4, beta=0.0))
    rw = Rewirer([layer], mode="rigl", delta_t=5, end_step=100)
    before = layer.edge_index.clone()
    with pytest.warns(UserWarning, match="no input/output gradient"):
        rw.rewire(0.3)
    assert torch.equal(layer.edge_index, before)


@pytest.mark.parametrize("mode", ["set", "rigl"])
@pytest.mark.parametrize("symmetric, self_loops", [(True, False), (True, True), (False, False)])
def test_training_loop_keeps_edge_count_and_structure(mode, symmetric, self_loops):
    torch.manual_seed(0)
    graph = ws_cross_modal_graph(NODES, k=4, beta=0.3, seed=2, self_loops=self_loops)
    model = torch.nn.Sequential(WSLinear(graph, bias=True), torch.nn.Tanh(), WSLinear(graph))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    rw = Rewirer(model, mode=mode, delta_t=3, alpha=0.4, end_step=25, symmetric=symmetric, optimizer=opt)
    e = graph.edge_index.size(1)
    structures = []
    for step in range(1, 31):
        opt.zero_grad()
        loss = model(torch.randn(8, 12)).square().mean()
        loss.backward()
        opt.step()
        rw.on_step_end(None, step)
        for layer in rw.layers:
            _check_invariants(layer, e, symmetric=symmetric, self_loops=self_loops)
        structures.append(rw.layers[0].edge_index.clone())
    assert rw.num_updates == 8  # steps 3, 6, ..., 24
    assert not torch.equal(structures[-1], graph.edge_index)
    assert torch.equal(structures[-1], structures[-6])  # no update from end_step on


def test_cosine_decay():
    rw = Rewirer(alpha=0.4, end_step=100)
    assert rw.fraction(0) == pytest.approx(0.4)
    assert rw.fraction(50) == pytest.approx(0.2)
    assert rw.fraction(100) == 0.0


def test_checkpoint_round_trip_restores_the_structure():
    graph = ws_cross_modal_graph(NODES, k=4, beta=0.3, seed=0)
    layer = WSLinear(graph)
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    rw = Rewirer([layer], delta_t=1, alpha=0.3, end_step=10, optimizer=opt)
    for step in range(1, 4):
        opt.zero_grad()
        layer(torch.randn(4, 12)).square().sum().backward()
        opt.step()
        rw.on_step_end(None, step)
    assert layer.graph != graph
    buf = io.BytesIO()
    torch.save({"model": layer.state_dict(), "optimizer": opt.state_dict(), "rewirer": rw.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)

    fresh = WSLinear(graph)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)
    # the trainer's order: model, optimizer, then callbacks (the rewirer is attached after loading here)
    fresh.load_state_dict(state["model"])
    fresh_opt.load_state_dict(state["optimizer"])
    rw2 = Rewirer(delta_t=1, alpha=0.3, end_step=10, optimizer=fresh_opt)
    rw2.load_state_dict(state["rewirer"])
    rw2.attach([fresh])
    assert torch.equal(fresh.edge_index, layer.edge_index) and fresh.graph == layer.graph
    assert rw2.step == 3 and rw2.num_updates == 3
    x = torch.randn(5, 12)
    torch.testing.assert_close(fresh(x), layer(x))
    # both continue identically (same generator state)
    rw.rewire(0.3)
    rw2.rewire(0.3)
    assert torch.equal(fresh.edge_index, layer.edge_index)


def test_attaches_to_the_trainer_model_and_optimizer():
    graph = ws_cross_modal_graph(NODES, k=4, beta=0.3)
    model = torch.nn.Sequential(torch.nn.Linear(3, 12), WSLinear(graph))

    class FakeTrainer:
        steps_per_epoch = 10
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

        class config:  # noqa: N801
            epochs = 4

    FakeTrainer.model = model
    rw = Rewirer(delta_t=2)
    rw.on_step_end(FakeTrainer, 1)
    assert rw.layers == [model[1]] and rw.optimizer is FakeTrainer.optimizer and rw.end_step == 30
    rw.on_step_end(FakeTrainer, 2)
    assert rw.num_updates == 1


@pytest.mark.parametrize(
    "options, match",
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": -0.2}, "alpha"),
        ({"delta_t": 0}, "delta_t"),
        ({"delta_t": 1.5}, "delta_t"),
        ({"mode": "random"}, "mode"),
        ({"end_fraction": 0.0}, "end_fraction"),
    ],
)
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        Rewirer(**options)


def test_bad_edge_sets_raise():
    layer = WSLinear(ws_cross_modal_graph(NODES, k=4, beta=0.0))
    with pytest.raises(ValueError, match="repeats"):
        rewire_(layer, torch.tensor([[0, 0], [1, 1]]))
    with pytest.raises(ValueError, match="outside"):
        rewire_(layer, torch.tensor([[0], [12]]))
    directed = WSLinear(ws_cross_modal_graph(NODES, k=4, beta=0.0))
    rewire_(directed, torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(ValueError, match="directed edge set"):
        Rewirer([directed], symmetric=True)
