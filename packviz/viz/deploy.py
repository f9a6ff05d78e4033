"""Figures of a whole EPLB plan: where every replica sits, how loaded each GPU and node is, how plans compare,
and how a plan holds up on the window after the one it was made from. Pure: tensors in, Plotly figures out.

Shapes: phy2log [layers, num_replicas]; weight [layers, num_logical].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from packviz.eplb.cluster import Cluster, gpu_load, moe_layers, replica_counts
from packviz.eplb.moves import replica_rank
from packviz.eplb.over_time import PlannerRun
from packviz.eplb.replan import MovesCurve
from packviz.viz.figures import OKABE_ITO

NODE_COLOURS = OKABE_ITO


def placement_figure(phy2log: torch.Tensor, weight: torch.Tensor, cluster: Cluster, layer: int) -> go.Figure:
    """One layer as nodes -> GPUs -> slots: a column per GPU, a row per slot,
    each cell the expert id coloured by the slot's load; ``*`` marks an expert
    with several replicas, a red ring a replica on a GPU that already holds
    that expert."""
    experts = phy2log[layer].cpu()
    counts = replica_counts(phy2log[layer:layer + 1], weight.shape[1])[0]
    ranks = replica_rank(phy2log[layer:layer + 1])[0]
    load = (weight[layer].to(torch.float64).cpu() / counts.clamp_min(1))[experts]
    per_gpu = cluster.slots_per_gpu
    grid = load.view(cluster.num_gpus, per_gpu).T  # [slot, gpu]
    ids = experts.view(cluster.num_gpus, per_gpu).T.tolist()
    many = counts[experts].view(cluster.num_gpus, per_gpu).T.tolist()
    rank = ranks.view(cluster.num_gpus, per_gpu).T.tolist()
    text = [[f"{e}*" if n > 1 else str(e) for e, n in zip(row, cnt)] for row, cnt in zip(ids, many)]
    node = (torch.arange(cluster.num_gpus) // cluster.gpus_per_node).tolist()
    hover = [[f"node {node[g]}, GPU {g}, slot {s}<br>expert {ids[s][g]}"
              + (f" (replica {rank[s][g] + 1} of {many[s][g]})" if many[s][g] > 1 else "")
              + f"<br>load {float(grid[s, g]):,.6g}" for g in range(cluster.num_gpus)] for s in range(per_gpu)]
    dense = not bool(moe_layers(weight[layer:layer + 1])[0])
    figure = go.Figure(go.Heatmap(
        z=grid.tolist(), x=list(range(cluster.num_gpus)), y=list(range(per_gpu)), text=text,
        texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
        colorscale="YlOrRd", colorbar={"title": "slot load", "thickness": 12}, xgap=1, ygap=1,
        # a dense layer has no load: its cells stay at the scale's pale end, with no scale to read
        **({"zmin": 0.0, "zmax": 1.0, "showscale": False} if dense else {}),
    ))
    duplicate_x, duplicate_y = [], []
    for g in range(cluster.num_gpus):
        column = [ids[s][g] for s in range(per_gpu)]
        for s, expert in enumerate(column):
            if column.index(expert) < s:
                duplicate_x.append(g)
                duplicate_y.append(s)
    if duplicate_x:
        figure.add_trace(go.Scatter(x=duplicate_x, y=duplicate_y, mode="markers", name="same-GPU replica",
                                    marker={"symbol": "circle-open", "size": 26, "color": "#D00000",
                                            "line": {"width": 2}}, hoverinfo="skip"))
    # one frame and one label per node, set at once (Plotly validates each add_* call's whole layout)
    shapes, labels = [], []
    for n in range(cluster.num_nodes):
        first, last = n * cluster.gpus_per_node - 0.5, (n + 1) * cluster.gpus_per_node - 0.5
        colour = NODE_COLOURS[n % len(NODE_COLOURS)]
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": first, "x1": last, "y0": 0, "y1": 1,
                       "line": {"color": colour, "width": 2}, "fillcolor": "rgba(0,0,0,0)", "layer": "above"})
        labels.append({"x": (first + last) / 2, "y": 1.0, "yref": "paper", "yanchor": "bottom", "showarrow": False,
                       # the node's colour on a swatch, the words in the theme's: Okabe-Ito's yellow as
                       # text did not read on white
                       "text": f"<span style='color:{colour}'>■</span> node {n}"})
    figure.update_layout(shapes=shapes, annotations=labels, height=120 + 34 * per_gpu,
                         margin={"l": 50, "r": 10, "t": 30, "b": 40},
                         showlegend=bool(duplicate_x), legend={"orientation": "h", "y": -0.25},
                         xaxis={"title": "GPU (EP rank)", "tickmode": "linear" if cluster.num_gpus <= 64 else "auto",
                                "dtick": 1 if cluster.num_gpus <= 32 else 4},
                         yaxis={"title": "slot", "autorange": "reversed", "tickmode": "linear", "dtick": 1})
    return figure


def gpu_heatmap_figure(phy2log: torch.Tensor, weight: torch.Tensor, cluster: Cluster) -> go.Figure:
    """Layers x GPUs, each GPU's load over its layer's mean (1 = the mean). A
    dense layer (no load) is a blank row outside the colour scale."""
    loads = gpu_load(weight, phy2log, cluster)
    moe = moe_layers(weight)
    relative = loads / loads.mean(dim=1, keepdim=True).clamp_min(1e-300)
    relative[~moe] = float("nan")
    spread = max(float((relative[moe] - 1).abs().max()) if bool(moe.any()) else 0.0, 1e-6)
    z = [[None if value != value else value for value in row] for row in relative.tolist()]
    figure = go.Figure(go.Heatmap(
        z=z, x=list(range(cluster.num_gpus)), y=list(range(loads.shape[0])),
        colorscale="RdBu_r", zmid=1.0, zmin=1 - spread, zmax=1 + spread,
        colorbar={"title": "load / mean", "thickness": 12},
        hovertemplate="layer %{y}, GPU %{x}<br>%{z:.4f} x the mean<extra></extra>",
    ))
    # one label per run of dense layers (rows a few pixels high: a label each would pile up)
    runs: list[list[int]] = []
    for layer in (~moe).nonzero().flatten().tolist():
        if runs and runs[-1][1] == layer - 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer])
    if runs:
        figure.add_trace(go.Scatter(
            x=[(cluster.num_gpus - 1) / 2] * len(runs), y=[(first + last) / 2 for first, last in runs], mode="text",
            text=[f"layer{'s' if last > first else ''} {first}{f'-{last}' if last > first else ''}: dense, no load"
                  for first, last in runs],
            textfont={"color": "#555555", "size": 10}, hoverinfo="skip", showlegend=False))
    figure.update_layout(height=320, margin={"l": 50, "r": 10, "t": 10, "b": 40},
                         xaxis={"title": "GPU", "tickformat": "d"},
                         yaxis={"title": "layer", "autorange": "reversed", "tickformat": "d"})
    return figure


def load_bars_figure(phy2log: torch.Tensor, weight: torch.Tensor, cluster: Cluster, layer: int) -> go.Figure:
    """One layer's load per GPU (coloured by node) and per node, each with its
    mean; a dense layer (no load) is said so on empty axes from 0."""
    loads = gpu_load(weight[layer:layer + 1], phy2log[layer:layer + 1], cluster)[0]
    dense = not bool(moe_layers(weight[layer:layer + 1])[0])
    nodes = loads.view(cluster.num_nodes, -1).sum(dim=1)
    node_of = (torch.arange(cluster.num_gpus) // cluster.gpus_per_node).tolist()
    figure = make_subplots(rows=1, cols=2, column_widths=[0.75, 0.25],
                           subplot_titles=("per GPU (dashed: the mean)", "per node"))
    figure.add_trace(go.Bar(x=list(range(cluster.num_gpus)), y=loads.tolist(), name="GPU load",
                            marker_color=[NODE_COLOURS[n % len(NODE_COLOURS)] for n in node_of],
                            customdata=node_of, hovertemplate="GPU %{x} (node %{customdata})<br>load %{y:,.6g}"
                                                              "<extra></extra>"), row=1, col=1)
    figure.add_trace(go.Bar(x=[f"node {n}" for n in range(cluster.num_nodes)], y=nodes.tolist(), name="node load",
                            marker_color=[NODE_COLOURS[n % len(NODE_COLOURS)] for n in range(cluster.num_nodes)],
                            hovertemplate="%{x}<br>load %{y:,.6g}<extra></extra>"), row=1, col=2)
    # the means as shapes set at once: add_hline per subplot validates the whole layout each time
    means = [{"type": "line", "xref": f"{axis} domain", "x0": 0, "x1": 1, "yref": axis.replace("x", "y"),
              "y0": value, "y1": value, "line": {"dash": "dash", "color": "#444444", "width": 1.5}}
             for axis, value in (("x", float(loads.mean())), ("x2", float(nodes.mean())))]
    figure.update_layout(height=300, margin={"l": 60, "r": 10, "t": 30, "b": 40}, showlegend=False, shapes=means,
                         xaxis={"title": "GPU", "tickformat": "d", "range": [-0.5, cluster.num_gpus - 0.5]})
    if dense:
        figure.update_layout(shapes=[], yaxis={"range": [0, 1], "showticklabels": False},
                             yaxis2={"range": [0, 1], "showticklabels": False})
        figure.add_annotation(text=f"layer {layer}: dense, no load (no experts to balance)", x=0.5, y=0.5,
                              xref="paper", yref="paper", showarrow=False, font={"size": 14, "color": "#555555"})
    return figure


def balance_comparison_figure(rows: Sequence[Mapping]) -> go.Figure:
    """Each plan's imbalance ((max - mean) / mean, mean over layers) and its
    policy's lower bound, on a log axis: the presets differ by decades."""
    names = [row["plan"] for row in rows]
    floor = 1e-7  # a plan on the mean exactly has no place on a log axis; drawn at this floor
    figure = go.Figure()
    figure.add_trace(go.Bar(x=names, y=[max(row["imbalance"], floor) * 100 for row in rows], name="imbalance",
                            customdata=[row["imbalance"] * 100 for row in rows],
                            hovertemplate="%{x}<br>(max - mean) / mean %{customdata:.4g}%<extra></extra>"))
    # a bound on the mean itself (the global policy's) is 0%: no marker at the floor, a note says it
    on_mean = [row["bound_over_mean"] - 1 <= floor for row in rows]
    figure.add_trace(go.Scatter(x=names, y=[None if zero else (row["bound_over_mean"] - 1) * 100
                                            for row, zero in zip(rows, on_mean)],
                                mode="markers", name="policy's lower bound", marker={"symbol": "line-ew-open",
                                                                                     "size": 30, "line": {"width": 3}},
                                customdata=[(row["bound_over_mean"] - 1) * 100 for row in rows],
                                hovertemplate="%{x}<br>bound %{customdata:.4g}% over the mean<extra></extra>"))
    if any(on_mean):
        plans = ", ".join(name for name, zero in zip(names, on_mean) if zero)
        figure.add_annotation(text=f"bound 0% (the mean itself): {plans}", xref="paper", yref="paper", x=1,
                              y=1.0, xanchor="right", yanchor="bottom", showarrow=False,
                              font={"size": 11, "color": "#555555"})
    figure.update_layout(height=360, margin={"l": 60, "r": 10, "t": 50 if any(on_mean) else 10, "b": 80},
                         legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
                         yaxis={"title": "(max - mean) / mean (%)", "type": "log", "exponentformat": "power"})
    return figure


def over_time_figure(runs: Mapping[str, PlannerRun]) -> go.Figure:
    """Per window i, the balancedness (mean / max) on window i + 1 of each
    planner's plan made on window i."""
    figure = go.Figure()
    for index, (name, run) in enumerate(runs.items()):
        windows = list(range(len(run.plans)))
        figure.add_trace(go.Scatter(x=windows, y=run.balancedness.tolist(), name=name, mode="lines+markers",
                                    line={"color": OKABE_ITO[index % len(OKABE_ITO)]},
                                    hovertemplate=name + ": planned on window %{x}, on the next "
                                                         "%{y:.5f}<extra></extra>"))
    first = next(iter(runs.values()))
    figure.add_trace(go.Scatter(x=list(range(len(first.plans))), y=(1 / first.bound_over_mean).tolist(),
                                name="best possible (policy's bound)", mode="lines",
                                line={"dash": "dot", "color": "#777777"},
                                hovertemplate="bound %{y:.5f}<extra></extra>"))
    figure.update_layout(height=340, margin={"l": 60, "r": 10, "t": 40, "b": 40},
                         legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                         xaxis={"title": "planned on window", "tickformat": "d"},
                         yaxis={"title": "next window's mean / max"})
    return figure


def moves_curve_figure(curve: MovesCurve, replanned_moves: float | None = None,
                       tolerance: float | None = None) -> go.Figure:
    """Balance against moves: per budget (replicas per layer), the busiest GPU over
    a fresh plan's (mean and worst layer) at the mean replicas moved; the
    re-planner's own mean moves and its tolerance as guides."""
    figure = go.Figure()
    for index, (name, values) in enumerate((("mean over layers", curve.mean_ratio),
                                            ("worst layer", curve.worst_ratio))):
        figure.add_trace(go.Scatter(
            x=curve.mean_moves, y=values, name=name, mode="lines+markers", customdata=curve.budgets,
            line={"color": OKABE_ITO[index % len(OKABE_ITO)]},
            hovertemplate=name + ": at most %{customdata} moves a layer, %{x:.1f} on average, busiest GPU "
                                 "%{y:.4f}x a fresh plan's<extra></extra>"))
    if tolerance is not None:
        figure.add_hline(y=1 + tolerance, line={"dash": "dot", "color": "#777777"},
                         annotation_text=f"fresh + {tolerance:.1%}", annotation_position="top right")
    if replanned_moves is not None:
        figure.add_vline(x=replanned_moves, line={"dash": "dash", "color": OKABE_ITO[2 % len(OKABE_ITO)]},
                         annotation_text="re-planner", annotation_position="top left")
    figure.update_layout(height=340, margin={"l": 60, "r": 10, "t": 40, "b": 40},
                         legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                         xaxis={"title": "replicas moved per layer (mean)"},
                         yaxis={"title": "busiest GPU / a fresh plan's"})
    return figure
