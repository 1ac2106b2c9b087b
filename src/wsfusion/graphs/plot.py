"""Figures of a :class:`~wsfusion.graphs.CrossModalGraph` (PNG through matplotlib's Agg).

matplotlib is imported inside the functions, so ``import wsfusion.graphs``
stays light.  Figures are built with ``matplotlib.figure.Figure`` on an Agg
canvas instead of ``pyplot``: no global backend switch and no figure kept
alive by pyplot's registry.  Pass ``ax=`` to draw into an existing (e.g.
pyplot or notebook) axes instead.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from wsfusion.graphs.graph import CrossModalGraph

__all__ = ["plot_mask", "plot_graph"]

#: Colour of highlighted cross-modal edges in :func:`plot_graph`.
CROSS_COLOR = "crimson"


def _figure_and_axes(ax: "Axes | None", figsize: tuple[float, float]) -> tuple["Figure", "Axes"]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: "Figure", path: str | os.PathLike[str] | None, dpi: int) -> None:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=dpi, format="png")


def _modality_colors(num: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(num)]


def _describe(graph: "CrossModalGraph") -> str:
    parts = [f"N={graph.num_nodes}", f"E={graph.num_edges}"]
    if graph.k is not None:
        parts.append(f"k={graph.k}")
    if graph.beta is not None:
        parts.append(f"beta={graph.beta:g}")
    if graph.order is not None:
        parts.append(graph.order)
    return ", ".join(parts)


def plot_mask(
    graph: "CrossModalGraph",
    path: str | os.PathLike[str] | None = None,
    *,
    ax: "Axes | None" = None,
    title: str | None = None,
    cmap: str = "Blues",
    boundaries: bool = True,
    dpi: int = 150,
) -> "Figure":
    """The notebook's mask figure: ``graph.to_dense_mask()`` as an image.

    Rows are targets and columns sources (``mask[target, source]``).  Dashed
    lines mark the modality blocks, whose names label the axes, so the
    off-diagonal blocks show the cross-modal edges at a glance.

    Args:
        graph (CrossModalGraph): the graph to draw.
        path (str or PathLike, optional): write the figure there as PNG.
        ax (matplotlib Axes, optional): draw into this axes instead of a new figure.
        title (str, optional): defaults to a summary (N, E, k, beta, order).
        cmap (str): matplotlib colormap name.
        boundaries (bool): draw the modality block boundaries.
        dpi (int): resolution of the saved PNG.

    Returns:
        matplotlib.figure.Figure
    """
    fig, ax = _figure_and_axes(ax, (6.0, 5.4))
    mask = graph.to_dense_mask().numpy()
    image = ax.imshow(mask, cmap=cmap, interpolation="nearest", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="edge")
    slices = [(name, s) for name, s in graph.node_slices.items() if s.stop > s.start]  # 0-node modalities: no block
    centres = [(s.start + s.stop - 1) / 2 for _, s in slices]
    names = [name for name, _ in slices]
    ax.set_xticks(centres, names)
    ax.set_yticks(centres, names, rotation=90, va="center")
    if boundaries:
        for _, s in slices[:-1]:
            ax.axhline(s.stop - 0.5, color="0.3", linestyle="--", linewidth=0.8)
            ax.axvline(s.stop - 0.5, color="0.3", linestyle="--", linewidth=0.8)
    ax.set_xlabel("source node")
    ax.set_ylabel("target node")
    ax.set_title(title if title is not None else f"Watts-Strogatz mask\n{_describe(graph)}")
    _save(fig, path, dpi)
    return fig


def plot_graph(
    graph: "CrossModalGraph",
    path: str | os.PathLike[str] | None = None,
    *,
    ax: "Axes | None" = None,
    title: str | None = None,
    highlight_cross: bool = True,
    node_size: float | None = None,
    dpi: int = 150,
) -> "Figure":
    """Ring drawing: nodes at their ring positions, coloured by modality.

    Nodes sit on a circle in ``graph.ring_order`` (so the blocked order shows
    one arc per modality and the interleaved order alternating colours).
    Within-modality edges are thin and grey; cross-modal edges are drawn in
    :data:`CROSS_COLOR` on top when ``highlight_cross`` is set.  Self loops
    are not drawn.

    Args:
        graph (CrossModalGraph): the graph to draw.
        path (str or PathLike, optional): write the figure there as PNG.
        ax (matplotlib Axes, optional): draw into this axes instead of a new figure.
        title (str, optional): defaults to a summary with the cross-modal fraction.
        highlight_cross (bool): colour cross-modal edges.
        node_size (float, optional): marker area; shrinks with N by default.
        dpi (int): resolution of the saved PNG.

    Returns:
        matplotlib.figure.Figure
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    fig, ax = _figure_and_axes(ax, (8.0, 6.4))
    n = graph.num_nodes
    ring = graph.ring_order.numpy()
    angle = np.empty(n)
    angle[ring] = np.pi / 2 - 2 * np.pi * np.arange(n) / n  # clockwise from the top
    pos = np.stack([np.cos(angle), np.sin(angle)], axis=1)

    src, dst = graph.edge_index.numpy()
    upper = src < dst
    src, dst = src[upper], dst[upper]
    node_modality = graph.node_modality.numpy()
    cross = node_modality[src] != node_modality[dst]
    segments = np.stack([pos[src], pos[dst]], axis=1)
    within_style = dict(colors="0.6", linewidths=0.5, alpha=0.5, zorder=1)
    if highlight_cross:
        ax.add_collection(LineCollection(segments[~cross], **within_style))
        ax.add_collection(LineCollection(segments[cross], colors=CROSS_COLOR, linewidths=0.7, alpha=0.7, zorder=2))
    else:
        ax.add_collection(LineCollection(segments, **within_style))

    # One colour per vocabulary entry, so a modality has the same colour in every graph of a vocabulary.
    vocab = graph.vocabulary
    colors = _modality_colors(len(vocab))
    size = node_size if node_size is not None else max(4.0, min(60.0, 4000.0 / max(n, 1)))
    ax.scatter(pos[:, 0], pos[:, 1], s=size, c=[colors[m] for m in node_modality], zorder=3, linewidths=0)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colors[vocab.index(name)], label=f"{name} ({cnt})")
        for name, cnt in graph.node_counts.items()
    ]
    if highlight_cross:
        handles.append(Line2D([], [], color=CROSS_COLOR, label=f"cross-modal ({int(cross.sum())})"))
    handles.append(Line2D([], [], color="0.6", label=f"within modality ({int((~cross).sum())})"))
    # Outside the circle so it never hides nodes.
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    ax.set_xlim(-1.15, 1.15)
    ax.set_ylim(-1.15, 1.15)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title is None:
        frac = cross.mean() if cross.size else math.nan
        title = f"Watts-Strogatz ring\n{_describe(graph)}, {frac:.0%} of edges cross-modal"
    ax.set_title(title)
    _save(fig, path, dpi)
    return fig
