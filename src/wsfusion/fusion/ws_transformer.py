from __future__ import annotations

from collections.abc import Mapping

from wsfusion._validation import check_heads
from wsfusion.fusion.ws_graph import WSGraphFusion
from wsfusion.graphs import CrossModalGraph


class WSTransformerFusion(WSGraphFusion):
    r"""A small-world sparse Transformer over every modality's tokens: ``transformer`` with WS attention.

    The WS-sparse counterpart of :class:`~wsfusion.fusion.MultiModalTransformer`
    at equal width (``node_dim``, the dense one's ``embed_dim``), depth
    (``num_layers``), heads (``heads``, its ``num_heads``) and feed-forward size
    (``2 * node_dim``), so that the pair isolates *dense*
    against *small-world sparse* attention. Every token of every modality is
    one node of a Watts–Strogatz ring (``order="interleaved"`` by default, so
    modalities alternate around the ring and cross-modal edges exist even at
    ``beta = 0``); each pre-norm block attends only over a node's ``k`` graph
    neighbours (:class:`~wsfusion.nn.CrossModalAttentionConv`, with relation
    embeddings per modality pair), then a feed-forward block:

    .. math::
        \mathbf{X} \leftarrow \mathbf{X} + \mathrm{Dropout}\big(
            \mathrm{softmax}_{j \in \mathcal{N}(i)}\big(\tfrac{\mathbf{q}_i^\top(\mathbf{k}_j + \mathbf{r}_{ij})}{\sqrt{d}}\big)\,
            \mathbf{v}_j\big)_{\mathrm{LN}(\mathbf{X})}, \qquad
        \mathbf{X} \leftarrow \mathbf{X} + \mathrm{Dropout}\big(\mathrm{FFN}(\mathrm{LN}(\mathbf{X}))\big)

    A final LN and attention pooling over all present tokens (a learned query,
    where the dense Transformer reads a ``[CLS]`` token) give the output.
    Attention costs :math:`O(N k)` score pairs per head instead of the dense
    :math:`O(N^2)`. It is :class:`WSGraphFusion` with ``tokens``,
    ``conv="attention"``, ``norm="pre"``, ``ffn_dim=2 * node_dim`` and
    ``readout="attention"``; missing modalities and padded tokens are removed
    from the graph, not zero-filled. Mark padding with ``token_mask``
    (:obj:`True` = a real token) or, with PyTorch's polarity,
    ``key_padding_mask`` (:obj:`True` = padding, as in
    :class:`torch.nn.MultiheadAttention`): ``key_padding_mask=m`` is
    ``token_mask=~m``, and passing both is a ``ValueError``.

    Args:
        modality_dims (Mapping[str, int]): Feature size of each modality.
        out_dim (int): Output size.
        tokens (Mapping[str, int]): Token count of each modality, e.g.
            ``{"visual": 16, "audio": 12}``: each encoder's ``num_tokens``
            (:func:`wsfusion.train.build_model` fills it in from the encoders).
        node_dim (int, optional): Width, features per token node (the
            parent's ``node_dim``; ``transformer``'s ``embed_dim``).
            (default: :obj:`128`)
        heads (int, optional): Attention heads (``transformer``'s
            ``num_heads``). (default: :obj:`4`)
        num_layers (int, optional): Blocks. (default: :obj:`2`)
        k (int, optional): WS ring degree, even and smaller than the total
            token count (lower it for short sequences). (default: :obj:`8`)
        beta (float, optional): WS rewiring probability. (default: :obj:`0.3`)
        seed (int, optional): Graph seed. (default: :obj:`0`)
        order (str, optional): ``"interleaved"`` or ``"blocked"``.
            (default: :obj:`"interleaved"`)
        graph (CrossModalGraph, optional): Use this token graph instead, e.g.
            one of :func:`wsfusion.graphs.build`. (default: :obj:`None`)
        topology (str, optional): Which graph: ``"ws"`` (the WS ring of
            ``k``, ``beta``, ``seed``, ``order``), another name of
            :func:`wsfusion.graphs.available` (``"bigbird"``, ``"random"``,
            ...: ``graphs.build(name, tokens, k, seed=seed,
            **topology_options)``), or ``"learnable"`` (see
            :class:`WSGraphFusion`). (default: :obj:`"ws"`)
        topology_options (Mapping, optional): Options of that topology's
            builder (or of ``LearnableWSGraph``). (default: :obj:`None`)
        dropout (float, optional): Dropout on attention coefficients and on
            each block's update, as in ``transformer``. (default: :obj:`0.1`)
        allow_missing (bool, optional): Accept absent keys. (default: :obj:`False`)

    Shapes:
        - **input:** ``{m: (B, T_m, D_m)}``; optional ``mask {m: (B,)}`` bool
          (:obj:`True` = present), and ``token_mask {m: (B, T_m)}`` bool
          (:obj:`True` = a real token) or ``key_padding_mask {m: (B, T_m)}``
          bool (:obj:`True` = padding)
        - **output:** :math:`(B, out\_dim)`
    """

    accepts_tokens = True
    needs_token_counts = True

    def __init__(
        self,
        modality_dims: Mapping[str, int],
        out_dim: int,
        tokens: Mapping[str, int],
        node_dim: int = 128,
        heads: int = 4,
        num_layers: int = 2,
        k: int = 8,
        beta: float = 0.3,
        seed: int | None = 0,
        order: str = "interleaved",
        graph: CrossModalGraph | None = None,
        dropout: float = 0.1,
        allow_missing: bool = False,
        topology: str = "ws",
        topology_options: Mapping[str, object] | None = None,
    ) -> None:
        node_dim, heads = check_heads(node_dim, "node_dim", heads, "heads")
        super().__init__(
            modality_dims, out_dim, tokens=tokens, node_dim=node_dim, conv="attention", num_layers=num_layers,
            heads=heads, readout="attention", k=k, beta=beta, seed=seed, order=order, graph=graph,
            dropout=dropout, allow_missing=allow_missing, norm="pre", ffn_dim=2 * node_dim,
            attention_dropout=dropout, topology=topology, topology_options=topology_options,
        )
