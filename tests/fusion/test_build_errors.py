"""``build`` errors for token and graph fusions say which option is wrong and how to fix it."""

import re

import pytest

from wsfusion import fusion

DIMS = {"visual": 8, "audio": 8}


def test_a_missing_tokens_option_names_it_and_where_the_counts_come_from():
    with pytest.raises(TypeError) as exc:
        fusion.build("ws-transformer", DIMS, 4)
    message = str(exc.value)
    assert message.startswith("fusion 'ws-transformer' needs the option 'tokens': the number of tokens of each modality")
    assert "tokens={'visual': 16, 'audio': 16}" in message  # an example with the caller's modalities
    assert "encoder.num_tokens" in message and "MultiModalNetwork" in message
    assert "wsfusion.models.build_model fills it in" in message
    assert "__init__()" not in message and "positional argument" not in message


@pytest.mark.parametrize("name, options, default, n, source, fix", [
    ("ws-transformer", dict(tokens={"visual": 2, "audio": 2}), True, 4, "tokens={'visual': 2, 'audio': 2}", 2),
    ("ws-transformer", dict(tokens={"visual": 4, "audio": 4}, k=8), False, 8, "tokens={'visual': 4, 'audio': 4}", 6),
    ("ws-gnn", dict(tokens={"visual": 2, "audio": 1}), True, 3, "tokens={'visual': 2, 'audio': 1}", 2),
    ("ws-gnn", dict(segments=2), True, 4, "2 modalities x segments=2", 2),
    ("ws-gnn", dict(k=16), False, 16, "2 modalities x segments=8, its default", 14),
    ("ws-sparse", dict(nodes_per_modality=2), True, 4, "2 modalities x nodes_per_modality=2", 2),
    ("ws-dense", dict(nodes_per_modality=3), True, 6, "2 modalities x nodes_per_modality=3", 4),
])
def test_a_degree_too_large_for_the_node_count_says_whose_k_and_how_to_change_it(name, options, default, n, source, fix):
    with pytest.raises(ValueError) as exc:
        fusion.build(name, DIMS, 4, **options)
    message = str(exc.value)
    k = int(re.search(r"k=(\d+)", message)[1])
    assert message.startswith(f"fusion {name!r}: k={k}{' (the fusion' + chr(39) + 's default)' if default else ''} "
                              f"needs a WS graph of more than k nodes, but it has N={n} ({source})")
    if "k" in options:
        assert k == options["k"]
    assert f"e.g. k={fix} (build(..., k={fix}); --option k={fix} on the command line)" in message
    fusion.build(name, DIMS, 4, **{**options, "k": fix})  # and the suggested k builds


def test_too_few_nodes_for_any_degree_asks_for_more_nodes():
    with pytest.raises(ValueError, match=r"N=2 \(2 modalities x segments=1\); give the graph more nodes \(a larger segments\)$"):
        fusion.build("ws-gnn", DIMS, 4, segments=1)


def test_token_counts_are_checked_by_option_name():
    with pytest.raises(TypeError, match=r"^fusion 'ws-gnn': tokens=True asks the trainer to fill in each modality's "
                                        r"token count; build\(\) needs the counts themselves, e\.g\. tokens=\{'visual': 16"):
        fusion.build("ws-gnn", DIMS, 4, tokens=True)
    with pytest.raises(ValueError, match=r"^fusion 'ws-transformer': tokens gives token counts for \['visual'\] but the "
                                         r"modalities are \['visual', 'audio'\]; give one count per modality"):
        fusion.build("ws-transformer", DIMS, 4, tokens={"visual": 9})
    with pytest.raises(ValueError, match=r"^fusion 'ws-transformer': tokens\['visual'\] must be a positive integer "
                                         r"\(that modality's token count\), got 0"):
        fusion.build("ws-transformer", DIMS, 4, tokens={"visual": 0, "audio": 9})
    with pytest.raises(TypeError, match=r"^fusion 'ws-gnn': tokens must be a mapping modality -> token count such as "
                                        r"\{'visual': 16, 'audio': 16\}, got 'x'"):
        fusion.build("ws-gnn", DIMS, 4, tokens="x")


def test_a_given_graph_is_not_second_guessed():
    from wsfusion.graphs import ws_cross_modal_graph

    graph = ws_cross_modal_graph({"visual": 3, "audio": 3}, k=2, beta=0.0)
    assert fusion.build("ws-gnn", DIMS, 4, graph=graph, node_dim=8).graph is graph
