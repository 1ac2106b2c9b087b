import json

import networkx as nx
import pytest
import torch

from testing_helpers import benchmark_script
from wsfusion._measure import machine_label
from wsfusion import graphs
from wsfusion.bench import routing, routing_task
from wsfusion.data import CrossModalRelay
from wsfusion.train.attention_rewiring import rewire_attention_graph

T, K = 24, 8
N = 3 * T


@pytest.mark.parametrize("topology", [t for t in routing.TOPOLOGIES if t != "dense"])
def test_every_sparse_topology_has_the_same_edge_budget(topology):
    graph = routing.build_topology(topology, T, K, seed=1)
    assert graph.num_nodes == N and graph.num_edges == N * K // 2
    assert not graph.self_loops and graph.stats(path_length=False)["connected"]


def test_bigbird_has_one_global_token_and_a_window():
    graph = routing.build_topology("bigbird", T, K, seed=0)
    degree = torch.bincount(graph.edge_index[1], minlength=N)
    hub = T + T // 2  # the middle text token
    assert degree[hub] == N - 1 and int(degree.argmax()) == hub
    lattice = routing.build_topology("lattice", T, K // 2, seed=0)  # the window: a k/2 ring lattice
    edges = set(map(tuple, graph.edge_index.t().tolist()))
    assert set(map(tuple, lattice.edge_index.t().tolist())) <= edges


def test_path_statistics_equal_networkx_and_are_estimated_beyond_the_exact_size(monkeypatch):
    graph = routing.build_topology("ws-0.1", T, K, seed=0)
    exact = routing.path_statistics(graph)
    g = graph.to_networkx()
    assert exact["paths_exact"] and exact["diameter"] == nx.diameter(g)
    assert exact["avg_path_length"] == pytest.approx(nx.average_shortest_path_length(g))
    monkeypatch.setattr(routing_task, "EXACT_PATHS_MAX_NODES", 10)  # where path_statistics reads them
    monkeypatch.setattr(routing_task, "PATH_SOURCES", 40)
    estimated = routing.path_statistics(graph)
    assert not estimated["paths_exact"] and estimated["diameter"] <= exact["diameter"]
    assert estimated["avg_path_length"] == pytest.approx(exact["avg_path_length"], rel=0.1)


@pytest.mark.parametrize("layers", [1, 2])
def test_the_prediction_reads_only_what_reaches_the_query_token_in_l_hops(layers):
    # Readout from the designated query token, not a pool: the logits' gradient is non-zero exactly
    # on the tokens within `layers` hops of it on the graph.
    torch.manual_seed(0)
    graph = routing.build_topology("lattice", T, 4, seed=0)
    model = routing.RoutingModel(8, 16, 2, layers, 4, graph)
    inputs = {m: torch.randn(1, T, 8, requires_grad=True) for m in CrossModalRelay.modalities}
    model(inputs).sum().backward()
    touched = torch.cat([inputs[m].grad[0].abs().sum(-1) for m in CrossModalRelay.modalities]) > 0
    query = CrossModalRelay.modalities.index(CrossModalRelay.query[0]) * T + CrossModalRelay.query[1]
    hops = nx.single_source_shortest_path_length(graph.to_networkx(), query, cutoff=layers)
    assert set(touched.nonzero().flatten().tolist()) == set(hops)


def test_dense_reads_every_token():
    torch.manual_seed(0)
    model = routing.RoutingModel(8, 16, 2, 1, 4, None)
    inputs = {m: torch.randn(1, T, 8, requires_grad=True) for m in CrossModalRelay.modalities}
    model(inputs).sum().backward()
    assert all(bool((inputs[m].grad[0].abs().sum(-1) > 0).all()) for m in CrossModalRelay.modalities)


TINY = dict(epochs=1, train_samples=32, test_samples=16, layers=1, width=8, heads=2, batch_size=16, curriculum=())


def test_rows_have_the_documented_schema():
    rows = routing.run(tokens=(8,), topologies=("ws-0.3", "dense"), seeds=(0, 1), **TINY)
    assert len(rows) == 4
    for row in rows:
        assert {"topology", "tokens", "seed", "test_acc", "avg_path_length", "diameter", "ms_per_step", "peak_mb",
                "edges", "beta", "history", "config"} <= set(row)
        assert 0.0 <= row["test_acc"] <= 1.0 and row["ms_per_step"] > 0
        # Scored as a sum of the predicted pair: a right pair is a right sum, never the other way round only.
        assert row["test_acc"] >= row["train_label_acc"] and row["chance"] == 0.25
    json.dumps(rows)
    (dense,) = [r for r in routing.summary(rows) if r["topology"] == "dense"]
    assert dense["seeds"] == 2 and dense["test_acc_ci95"] is not None and dense["edges"] is None


@pytest.mark.parametrize(("label", "why"), [
    ("star", "unknown base graph 'star'"), ("learned-1.5", r"beta must be in \(0, 1\), got '1.5'"),
    ("ws-1", r"beta must be in \[0, 1\), got '1'"), ("ws", r"beta must be in \[0, 1\), got None"), ("ws-0.3-hub0", "unexpected 'hub0'"),
    ("dense-deep", "-deep is for sparse graphs"), ("learned-0.5-hub1", "no other modifier than -deep"),
    ("rigl-learned-0.5", "no other modifier than -deep"), ("set-dense", "unknown base graph 'dense'"),
    ("ws-0.3-deep-blocked", "unexpected 'deep-blocked'"),
])
def test_unknown_topology(label, why):
    with pytest.raises(ValueError, match=rf"topology '{label}': .*{why}.*; expected one of"):
        routing.run(topologies=("ws-0.3", label))  # refused before any run starts
    with pytest.raises(ValueError, match=why):
        routing.build_topology(label, T, K, 0)


@pytest.mark.parametrize(("label", "name", "options"), [
    ("lattice", "lattice", {}), ("random", "random", {}), ("bigbird", "bigbird", {}),
    ("ws-0.1", "ws", {"beta": 0.1, "order": "interleaved"}), ("ws-0.3-blocked", "ws", {"beta": 0.3, "order": "blocked"}),
    ("ws-0.3-hub1", "hub", {"hubs": 1, "per_modality": False, "base": "ws", "beta": 0.3, "order": "interleaved"}),
    ("ws-0.3-hub2pm", "hub", {"hubs": 2, "per_modality": True, "base": "ws", "beta": 0.3, "order": "interleaved"}),
    ("bigbird-hub1", "hub", {"hubs": 1, "per_modality": False, "base": "bigbird"}),
])
def test_a_label_builds_the_registry_graph_it_names(label, name, options):
    graph = routing.build_topology(label, T, K, seed=3)
    expected = graphs.build(name, {m: T for m in CrossModalRelay.modalities}, K, seed=3, **options)
    assert torch.equal(graph.edge_index, expected.edge_index)


@pytest.mark.parametrize(("label", "rewire", "deep", "base"), [
    ("set", "set", False, "lattice"), ("rigl", "rigl", False, "lattice"), ("rigl-ws-0.3", "rigl", False, "ws-0.3"),
    ("ws-0.3-deep", None, True, "ws-0.3"), ("rigl-ws-0.3-hub1-deep", "rigl", True, "ws-0.3-hub1"),
])
def test_rewiring_and_depth_modify_the_base_graph(label, rewire, deep, base):
    spec = routing.parse_topology(label)
    assert (spec.rewire, spec.deep) == (rewire, deep)
    assert torch.equal(spec.build(T, K, 0).edge_index, routing.build_topology(base, T, K, 0).edge_index)


@pytest.mark.parametrize(("tokens", "k", "depth"), [(8, 8, 4), (64, 8, 4), (256, 8, 5), (1024, 8, 6), (4096, 8, 6),
                                                  (1024, 4, 9)])
def test_deep_depth_is_the_tree_height_plus_one_never_below_the_blocks(tokens, k, depth):
    n = 3 * tokens
    assert routing.parse_topology("ws-0.3-deep").depth(tokens, k, 4) == depth
    assert routing.parse_topology("ws-0.3").depth(tokens, k, 4) == 4
    if depth > 4:  # the height of a tree of branching k - 1 over the N nodes, plus one
        assert (k - 1) ** (depth - 2) < n <= (k - 1) ** (depth - 1)


@pytest.mark.parametrize("label", ["ws-0.3-hub1", "ws-0.3-hub1pm", "ws-0.3-deep", "rigl-ws-0.3", "bigbird-hub1"])
def test_hub_and_depth_variants_keep_the_edge_budget(label):
    graph = routing.build_topology(label, T, K, seed=1)
    assert graph.num_nodes == N and graph.num_edges == N * K // 2 and not graph.self_loops


@pytest.mark.parametrize(("label", "hops"), [("ws-0.3-hub1", 2), ("ws-0.3-hub1pm", 3)])
def test_hubs_put_every_key_and_value_within_reach_of_the_query(label, hops):
    # Shared hub: every node within 2 hops of every other; per-modality hubs: 3 (own hub, other hub, node).
    graph = routing.build_topology(label, 256, K, seed=0)
    assert routing.query_reach(graph, 256, hops, 4)["reach_bound"] == 1.0
    lattice = routing.build_topology("lattice", 256, K, seed=0)
    assert routing.query_reach(lattice, 256, hops, 4)["key_reach"] < 0.1


def test_a_deep_model_shares_its_blocks_and_reaches_depth_hops():
    torch.manual_seed(0)
    graph = routing.build_topology("lattice", T, 4, seed=0)
    shallow = routing.RoutingModel(8, 16, 2, 2, 4, graph)
    deep = routing.RoutingModel(8, 16, 2, 2, 4, graph, depth=5)
    assert deep.depth == 5 and sum(p.numel() for p in deep.parameters()) == sum(p.numel() for p in shallow.parameters())
    inputs = {m: torch.randn(1, T, 8, requires_grad=True) for m in CrossModalRelay.modalities}
    deep(inputs).sum().backward()
    touched = torch.cat([inputs[m].grad[0].abs().sum(-1) for m in CrossModalRelay.modalities]) > 0
    query = CrossModalRelay.modalities.index(CrossModalRelay.query[0]) * T + CrossModalRelay.query[1]
    assert set(touched.nonzero().flatten().tolist()) == set(
        nx.single_source_shortest_path_length(graph.to_networkx(), query, cutoff=5))
    # Rounds 3-5 run blocks 0, 1, 0 again: the same logits as the shared blocks applied by hand.
    with torch.no_grad():
        x = torch.cat([inputs[m] for m in CrossModalRelay.modalities], dim=1)
        h = deep.project(x) + deep.modality(torch.arange(3).repeat_interleave(T))
        for i in (0, 1, 0, 1, 0):
            h = h + deep.attention[i](deep.norms[2 * i](h), graph.edge_index)
            h = h + deep.ffn[i](deep.norms[2 * i + 1](h))
        assert torch.allclose(deep.classify(h[:, query]), deep(inputs), atol=1e-6)
    with pytest.raises(ValueError, match="depth must be an int >= the 2 blocks"):
        deep.set_graph(graph, depth=1)


def test_a_deep_row_reports_its_depth_and_the_reach_at_that_depth():
    row = routing.run_one("ws-0.3-deep", 64, 0, **{**TINY, "layers": 2})
    assert row["depth"] == 4 and row["layers"] == 2  # ceil(log 192 / log 7) + 1
    shallow = routing.run_one("ws-0.3", 64, 0, **{**TINY, "layers": 2})
    assert shallow["depth"] == 2 and row["params"] == shallow["params"]
    graph = routing.build_topology("ws-0.3", 64, 8, 0)
    assert row["reach_bound"] == routing.query_reach(graph, 64, 4, 4)["reach_bound"] > shallow["reach_bound"]


@pytest.mark.parametrize("label", ["rigl-ws-0.3-deep", "set-ws-0.3-deep"])
def test_rewiring_keeps_a_deep_models_depth(label):
    # The rewirer swaps the edges (set_graph without a depth) every step here: the depth must stay.
    row = routing.run_one(label, 64, 0, **{**TINY, "layers": 2, "rewire_every": 1})
    assert row["depth"] == 4  # ceil(log 192 / log 7) + 1, as without rewiring


def test_deep_needs_k_of_at_least_3():
    with pytest.raises(ValueError, match=r"topology 'ws-0.3-deep': -deep needs k >= 3"):
        routing.parse_topology("ws-0.3-deep").depth(64, 2, 4)


def test_the_curriculum_trains_the_shorter_stages_first_on_the_same_topology(monkeypatch):
    built = []
    original = routing.RoutingTopology.build
    monkeypatch.setattr(routing.RoutingTopology, "build",
                        lambda self, tokens, k, seed: built.append((self.label, tokens)) or original(self, tokens, k, seed))
    row = routing.run_one("ws-0.1", 16, 0, **{**TINY, "epochs": 2, "curriculum": ((8, 1), (12, 2), (16, 5), (32, 1))})
    assert [h["tokens"] for h in row["history"]] == [8, 12, 12, 16, 16]  # stages at or beyond T are skipped
    assert {("ws-0.1", 8), ("ws-0.1", 12), ("ws-0.1", 16)} == set(built)


def test_a_deep_curriculum_sets_the_depth_of_each_stage(monkeypatch):
    depths = []
    original = routing.RoutingModel.set_graph
    monkeypatch.setattr(routing.RoutingModel, "set_graph",
                        lambda self, graph, depth=None: depths.append(depth) or original(self, graph, depth))
    routing.run_one("ws-0.3-deep", 256, 0, **{**TINY, "layers": 4, "epochs": 1, "train_samples": 8,
                                             "test_samples": 8, "curriculum": ((8, 1), (64, 1))})
    assert depths[-3:] == [4, 4, 5]  # T = 8 and 64: the 4 blocks; T = 256 (N = 768): ceil(3.41) + 1


def test_a_finished_sweep_is_reused_and_a_changed_one_is_not(tmp_path, monkeypatch):
    out = tmp_path / "rows.json"
    first = routing.run(tokens=(8,), topologies=("lattice",), seeds=(0, 1), out=out, **TINY)
    assert [r["seed"] for r in routing.load_rows(out)] == [0, 1]

    def fail(*args, **kwargs):
        raise AssertionError("a saved row was trained again")

    monkeypatch.setattr(routing, "run_one", fail)
    assert routing.run(tokens=(8,), topologies=("lattice",), seeds=(0, 1), out=out, **TINY) == first
    with pytest.raises(AssertionError, match="trained again"):  # other options are another experiment
        routing.run(tokens=(8,), topologies=("lattice",), seeds=(0,), out=out, **{**TINY, "lr": 0.01})


def test_learned_beta_gets_a_gradient_keeps_one_beta_across_lengths_and_is_scored_on_a_ws_sample():
    torch.manual_seed(0)
    short = routing.build_topology("learned-0.3", 8, 4, 0)
    long = short.with_nodes({m: 16 for m in CrossModalRelay.modalities})  # what the curriculum does
    model = routing.RoutingModel(8, 16, 2, 2, 4, short)
    model.set_graph(long)
    assert long.beta_logit is short.beta_logit
    inputs = {m: torch.randn(3, 16, 8) for m in CrossModalRelay.modalities}
    model(inputs).sum().backward()
    assert short.beta_logit.grad is not None and short.beta_logit.grad.abs().item() > 0
    model.eval()
    graph = model._edges(torch.device("cpu"))
    assert model.eval_graph is not None and graph[1] is None
    # A seeded WS-like sample at beta 0.3 (not the lattice mode): most lattice edges and some shortcuts.
    lattice = routing.build_topology("lattice", 16, 4, 0)
    edges = set(map(tuple, model.eval_graph.edge_index.t().tolist()))
    kept = len(edges & set(map(tuple, lattice.edge_index.t().tolist())))
    assert 0.5 * lattice.num_edges < kept // 2 < lattice.num_edges and len(edges) // 2 > kept // 2
    assert torch.equal(model._edges(torch.device("cpu"))[0], graph[0])  # the same graph every evaluation


def test_a_learned_row_reports_its_final_beta():
    row = routing.run_one("learned-0.5", 8, 0, **{**TINY, "topology_lr": 0.5})
    assert row["beta"] == row["history"][-1]["beta"] != 0.5 and row["edges"] > 0


def test_query_reach_counts_the_key_and_value_positions_within_l_hops():
    graph = routing.build_topology("lattice", T, K, seed=0)
    hops = nx.single_source_shortest_path_length(graph.to_networkx(), 2 * T)  # the query: audio token 0
    for layers in (1, 3):
        reach = routing.query_reach(graph, T, layers, num_classes=4)
        key = sum(hops[i] <= layers for i in range(T)) / T
        value = sum(hops[T + i] <= layers for i in range(T)) / T
        assert reach["key_reach"] == pytest.approx(key) and reach["value_reach"] == pytest.approx(value)
        assert reach["reach_bound"] == pytest.approx(key * value + (1 - key * value) / 4)
    assert routing.query_reach(None, T, 1, 4) == {"key_reach": 1.0, "value_reach": 1.0, "reach_bound": 1.0}


def test_cost_rows_measure_a_training_step_and_skip_dense_beyond_the_limit():
    rows = routing.cost(tokens=(8, 16), topologies=("ws-0.3", "dense"), max_dense_tokens=8, reps=2, layers=1,
                        width=8, heads=2, batch_size=4)
    assert [(r["topology"], r["tokens"]) for r in rows] == [("ws-0.3", 8), ("dense", 8), ("ws-0.3", 16), ("dense", 16)]
    for row in rows[:3]:
        assert row["ms_per_step"] > 0 and 0.25 <= row["reach_bound"] <= 1.0 and row["batch_size"] == 4
    assert rows[1]["edges"] is None and rows[1]["reach_bound"] == 1.0
    assert rows[3]["ms_per_step"] is None and "beyond 8 tokens" in rows[3]["skipped"]
    assert rows[0]["params"] == rows[1]["params"] > 0 and rows[0]["depth"] == 1
    assert all(r["machine"]["threads"] == torch.get_num_threads() and r["machine"]["device"] == "cpu" for r in rows)
    json.dumps(rows)


def test_the_report_names_each_cost_measurements_machine_and_dense_ratio(tmp_path):
    script = benchmark_script("run_routing")
    rows = routing.cost(tokens=(8,), topologies=("lattice", "dense"), reps=1, layers=1, width=8, heads=2, batch_size=4)
    (tmp_path / "cost.json").write_text(json.dumps(rows))
    (tmp_path / "cost-quiet-8.json").write_text(json.dumps({"call": "routing.cost(...)", "rows": rows}))
    old = [{key: value for key, value in r.items() if key != "machine"} for r in rows]  # saved before machine()
    (tmp_path / "cost-quiet-8-old.json").write_text(json.dumps(old))
    text = script.report(tmp_path, plot=False)
    where = machine_label(rows[0]["machine"])
    assert f"measured on: {where}" in text
    lattice, dense = rows[0]["ms_per_step"], rows[1]["ms_per_step"]
    quiet = text.split("### quiet cost checks\n\n")[1].splitlines()
    assert quiet[0] == "| file | T | topology | ms/step | peak MB | dense ÷ this | machine |"
    assert quiet[2].startswith(f"| `cost-quiet-8-old.json` | 8 | `lattice` | {lattice:,.0f} |")
    assert quiet[2].endswith(f"| {dense / lattice:.1f}× | not recorded |")
    assert quiet[3].endswith("| — | not recorded |")  # dense is not a multiple of itself
    assert quiet[4].endswith(f"| {dense / lattice:.1f}× | {where} |") and "cost-quiet-8.json" in quiet[4]


def test_a_deep_cost_row_runs_more_rounds_with_the_same_parameters():
    rows = routing.cost(tokens=(16,), topologies=("ws-0.3", "ws-0.3-deep"), reps=1, layers=1, width=8, heads=2,
                        batch_size=4)
    plain, deep = rows
    assert (plain["depth"], deep["depth"]) == (1, 3)  # ceil(log 48 / log 7) + 1
    assert plain["params"] == deep["params"] and plain["edges"] == deep["edges"]
    assert deep["reach_bound"] >= plain["reach_bound"]


def test_the_report_script_reads_saved_rows_and_draws_the_plot(tmp_path):
    script = benchmark_script("run_routing")
    routing.run(tokens=(8,), topologies=("lattice", "dense"), seeds=(0, 1), out=tmp_path / "rows-random.json", **TINY)
    (tmp_path / "cost.json").write_text(json.dumps(routing.cost(tokens=(8,), topologies=("lattice", "dense"), reps=1,
                                                                  layers=1, width=8, heads=2, batch_size=4)))
    text = script.report(tmp_path)
    assert "### random" in text and "| 8 | `lattice` | 96 |" in text and "### cost per training step" in text
    saved = {(r["topology"], r["seed"]): r["test_acc"] for r in routing.load_rows(tmp_path / "rows-random.json")}
    per_seed = next(part for part in text.split("### ") if part.startswith("random (") and ", per seed" in
                    part.splitlines()[0]).split("\n\n")[1].splitlines()  # TINY's options name the table
    assert per_seed[0] == "| T | topology | seed 0 | seed 1 |"
    assert per_seed[2] == f"| 8 | `lattice` | {saved['lattice', 0]:.3f} | {saved['lattice', 1]:.3f} |"
    assert per_seed[3] == f"| 8 | `dense` | {saved['dense', 0]:.3f} | {saved['dense', 1]:.3f} |"
    assert (tmp_path / "routing.png").stat().st_size > 10_000


def _loss_with_gates(model, inputs, labels, keys, gates, n):
    from wsfusion.graphs.edges import both_directions, decode_undirected

    edge_index, pair_id = both_directions(decode_undirected(keys, n), n)
    return torch.nn.functional.cross_entropy(model(inputs, edges=(edge_index, gates[pair_id])), labels).item()


@pytest.mark.parametrize("mode", ["set", "rigl"])
def test_rewiring_drops_the_edges_the_loss_needs_least_and_grows_as_many(mode):
    from wsfusion.graphs.edges import sample_non_edges, undirected_keys

    torch.manual_seed(0)
    tokens, n = 4, 12
    graph = routing.build_topology("lattice", tokens, 2, 0)
    model = routing.RoutingModel(8, 8, 2, 2, 16, graph).double()
    inputs = {m: torch.randn(6, tokens, 8, dtype=torch.float64) for m in CrossModalRelay.modalities}
    labels = torch.randint(0, 16, (6,))
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    new = rewire_attention_graph(model, graph, (inputs, None, {}, labels), 0.25, mode, generator, pool=2)

    old_keys = torch.unique(undirected_keys(graph.edge_index, n))
    new_keys = torch.unique(undirected_keys(new.edge_index, n))
    assert new.num_edges == graph.num_edges and new_keys.numel() == old_keys.numel() == 12
    assert not new.self_loops and torch.equal(torch.unique(undirected_keys(new.edge_index.flip(0), n)), new_keys)
    dropped = set(old_keys.tolist()) - set(new_keys.tolist())
    grown = set(new_keys.tolist()) - set(old_keys.tolist())
    assert len(dropped) == len(grown) == 3  # int(0.25 * 12)

    # Finite differences of the loss in each gate (1 on edges, 0 on the same candidate pool), independently.
    generator.set_state(state)
    candidates = sample_non_edges(n, old_keys, 24, generator, undirected=True)
    keys = torch.cat([old_keys, candidates])
    base = torch.cat([torch.ones(12), torch.zeros(24)]).double()
    reference = _loss_with_gates(model, inputs, labels, keys, base, n)
    eps = 1e-6
    sensitivity = []
    for i in range(keys.numel()):
        gates = base.clone()
        gates[i] += -eps if i < 12 else eps
        sensitivity.append(abs(_loss_with_gates(model, inputs, labels, keys, gates, n) - reference) / eps)
    score = dict(zip(keys.tolist(), sensitivity))
    kept = set(old_keys.tolist()) - dropped
    assert max(score[e] for e in dropped) <= min(score[e] for e in kept) + 1e-6  # ties (edges out of reach: 0)
    assert sum(score[e] > 1e-6 for e in kept) >= 3  # not decided by ties alone
    not_grown = set(candidates.tolist()) - grown
    assert grown <= set(candidates.tolist())
    if mode == "rigl":
        assert min(score[e] for e in grown) >= max(score[e] for e in not_grown) - 1e-6
        assert min(score[e] for e in grown) > 1e-6


def test_rewired_rows_keep_the_edge_budget_and_report_no_beta():
    row = routing.run_one("rigl", 8, 0, **{**TINY, "epochs": 2, "rewire_every": 1})
    lattice = routing.build_topology("lattice", 8, 8, 0)
    assert row["edges"] == lattice.num_edges and row["beta"] is None
    assert row["avg_path_length"] != routing.path_statistics(lattice)["avg_path_length"]  # it did rewire
    with pytest.raises(ValueError, match=r"mode must be one of \['set', 'rigl'\], got 'magnitude'"):
        rewire_attention_graph(None, lattice, ({}, None, {}, torch.zeros(1)), 0.1, "magnitude", torch.Generator())


def test_processes_sharing_a_rows_file_keep_each_others_rows(tmp_path, monkeypatch):
    out = tmp_path / "rows.json"
    config = routing._config(TINY)
    original = routing.run_one

    def run_one_while_another_process_saves(topology, tokens, seed, **options):
        row = original(topology, tokens, seed, **options)
        other = {**row, "seed": 99}  # what a second process, sharing the file, saved meanwhile
        routing._save_row(out, other)
        return row

    monkeypatch.setattr(routing, "run_one", run_one_while_another_process_saves)
    routing.run(tokens=(8,), topologies=("lattice",), seeds=(0,), out=out, **TINY)
    saved = routing.load_rows(out)
    assert sorted(r["seed"] for r in saved) == [0, 99] and all(r["config"] == config for r in saved)


def test_the_summary_never_pools_different_options_or_devices():
    row = {"topology": "lattice", "tokens": 8, "test_acc": 0.5, "edges": 96, "avg_path_length": 3.0, "diameter": 6,
           "reach_bound": 0.6, "beta": 0.0, "ms_per_step": 1.0, "peak_mb": 1.0}
    rows = [{**row, "seed": 0, "config": {"lr": 0.001}}, {**row, "seed": 1, "config": {"lr": 0.001}},
            {**row, "seed": 0, "config": {"lr": 0.01}}, {**row, "seed": 0, "config": {"lr": 0.001}, "device": "cuda"}]
    groups = routing.summary(rows)
    assert sorted((g["seeds"], g["config"]["lr"], g["device"]) for g in groups) == [
        (1, 0.001, "cuda"), (1, 0.01, "cpu"), (2, 0.001, "cpu")]


@pytest.mark.parametrize("label", ["sum", "key", "pair"])
def test_the_reach_bound_is_that_of_the_scored_label(label):
    graph = routing.build_topology("lattice", T, K, seed=0)
    reach = routing.query_reach(graph, T, 2, 4, label)
    r_k, r_v = reach["key_reach"], reach["value_reach"]
    assert 0 < r_k < 1 and 0 < r_v < 1
    # A perfect relay guesses what did not arrive: enumerate the four arrival cases.
    p_right = {"sum": [1, 1 / 4, 1 / 4, 1 / 4], "key": [1, 1, 1 / 4, 1 / 4], "pair": [1, 1 / 4, 1 / 4, 1 / 16]}[label]
    cases = [r_k * r_v, r_k * (1 - r_v), (1 - r_k) * r_v, (1 - r_k) * (1 - r_v)]
    assert reach["reach_bound"] == pytest.approx(sum(p * c for p, c in zip(p_right, cases)))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"topology 'ws-abc': beta must be in \[0, 1\), got 'abc'; expected one of .*'rigl'"):
        routing.build_topology("ws-abc", T, K, 0)
    with pytest.raises(ValueError, match=r"bigbird needs k large enough .* got k = 2"):
        routing.build_topology("bigbird", T, 2, 0)
    with pytest.raises(ValueError, match=r"stages \[4\] are shorter"):
        routing.run_one("learned-0.1", 8, 0, **{**TINY, "curriculum": ((4, 1),)})
    dense = routing.RoutingModel(8, 16, 2, 1, 4, None)
    inputs = {m: torch.randn(1, T, 8) for m in CrossModalRelay.modalities}
    with pytest.raises(ValueError, match="edges= needs a sparse model"):
        dense(inputs, edges=(torch.zeros(2, 0, dtype=torch.long), None))


class Killed(Exception):
    pass


@pytest.mark.parametrize("topology", ["rigl", "learned-0.5", "ws-0.3"])
def test_a_killed_run_resumes_to_the_same_row(tmp_path, monkeypatch, topology):
    # Two curriculum stages and rewiring every step: the resumed run must restore the stage's graph, the rewired
    # edges (the Rewirer's state) or the learned beta, and the fresh-sample schedule.
    options = {**TINY, "k": 4, "epochs": 2, "curriculum": ((4, 2),), "rewire_every": 1, "topology_lr": 0.5}
    whole = routing.run_one(topology, 8, 0, out=tmp_path / "whole", **options)
    original = routing.StepTimer.on_step_end

    def kill_in_the_last_epoch(self, trainer, step):  # resumes from the checkpoint inside the second stage
        original(self, trainer, step)
        if step == 3 * trainer.steps_per_epoch + 1:
            raise Killed

    monkeypatch.setattr(routing.StepTimer, "on_step_end", kill_in_the_last_epoch)
    with pytest.raises(Killed):
        routing.run_one(topology, 8, 0, out=tmp_path / "killed", **options)
    monkeypatch.setattr(routing.StepTimer, "on_step_end", original)
    resumed = routing.run_one(topology, 8, 0, out=tmp_path / "killed", **options)
    for key in ("test_acc", "train_label_acc", "edges", "avg_path_length", "diameter", "beta"):
        assert resumed[key] == whole[key], key
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in whole["history"]]


def test_the_edge_share_benchmark_takes_only_the_edge_operations_out_and_puts_them_back():
    from wsfusion.nn import CrossModalAttentionConv

    script = benchmark_script("routing_edge_share")
    torch.manual_seed(0)
    conv = CrossModalAttentionConv(8, 8, heads=2)
    x = torch.randn(2, 6, 8)
    ring = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
    star = torch.tensor([[1, 2, 3, 4, 5, 0], [0, 0, 0, 0, 0, 1]])
    with script.without_edge_ops():
        bare = conv(x, ring)
        assert torch.equal(bare, conv(x, star))  # no edge is read
        assert torch.allclose(bare, conv.out(conv.value(x)))  # the projections still run
    assert not torch.allclose(conv(x, ring), conv(x, star))  # the real layer is back
    row = script.measure(8, reps=1)
    assert row["tokens"] == 8 and row["ms_full"] > 0 and row["ms_no_edge_ops"] > 0
    assert row["per_token_share"] == pytest.approx(row["ms_no_edge_ops"] / row["ms_full"])
    assert row["machine"]["threads"] == torch.get_num_threads() and row["machine"]["device"] == "cpu"


def test_cost_calls_merge_into_one_table_replacing_the_rows_they_remeasure(tmp_path):
    script = benchmark_script("run_routing")
    path = tmp_path / "cost.json"
    row = lambda tokens, topology, ms: {"tokens": tokens, "topology": topology, "ms_per_step": ms}  # noqa: E731
    path.write_text(json.dumps([row(64, "lattice", 1), row(64, "dense", 2), row(256, "lattice", 3)]))
    merged = script._merge_cost(path, [row(4096, "bigbird", 4), row(64, "lattice", 5), row(64, "bigbird", 6)])
    assert [(r["tokens"], r["topology"], r["ms_per_step"]) for r in merged] == [
        (64, "lattice", 5), (64, "dense", 2), (64, "bigbird", 6), (256, "lattice", 3), (4096, "bigbird", 4)]
    assert script._merge_cost(tmp_path / "none.json", [row(8, "dense", 1)]) == [row(8, "dense", 1)]


def test_the_quick_suite_trains_and_costs_one_row_of_each_kind_the_long_comparison_has():
    from wsfusion import bench

    results = bench.run(["routing"], threads=None, quick=True)["routing"]  # None: leaves the session's threads alone
    rows = {r["topology"]: r for r in results["rows"]}
    assert list(rows) == list(routing.QUICK["topologies"]) == [r["topology"] for r in results["cost"]]
    assert {"ws-0.3-hub1", "ws-0.3-deep", "rigl-ws-0.3", "learned-0.5", "bigbird", "dense"} <= set(rows)
    ws = routing.build_topology("ws-0.3", 16, 8, 0)
    assert rows["rigl-ws-0.3"]["edges"] == ws.num_edges
    assert rows["rigl-ws-0.3"]["reach_bound"] != rows["ws-0.3"]["reach_bound"]  # it rewired within the quick budget
    assert rows["ws-0.3-deep"]["depth"] > rows["ws-0.3"]["depth"] == routing.QUICK["layers"]
    assert rows["learned-0.5"]["beta"] != 0.5
    assert all(r["ms_per_step"] > 0 for r in results["cost"])
