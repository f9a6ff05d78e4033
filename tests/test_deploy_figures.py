"""The Deploy figures draw the plan they are given, and the drifting history starts at the loads."""

from __future__ import annotations

import pytest
import torch

from packviz.data.generators import drifting_from
from packviz.eplb.cluster import Cluster, check_plan, gpu_load, place
from packviz.eplb.over_time import fresh_planner, kept_planner, over_time, windows
from packviz.viz.deploy import (
    balance_comparison_figure,
    gpu_heatmap_figure,
    load_bars_figure,
    over_time_figure,
    placement_figure,
)

WEIGHT = torch.tensor([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                       [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]], dtype=torch.float64)
CLUSTER = Cluster(16, 4, 2, 8)


def test_placement_cells_are_the_plans_experts_and_rings_its_duplicates():
    plan = torch.tensor([[5, 5, 6, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1]])  # expert 5 twice on GPU 0
    figure = placement_figure(plan, WEIGHT[:1], CLUSTER, 0)
    cells = figure.data[0].text
    ids = [[int(text.rstrip("*")) for text in row] for row in cells]
    assert ids == plan[0].view(8, 2).T.tolist()
    assert cells[0][0] == "5*"  # replicated: marked
    assert cells[0][1] == "6"
    rings = figure.data[1]
    assert list(rings.x) == [0] and list(rings.y) == [1]
    assert int(check_plan(plan, 12, CLUSTER).duplicates[0]) == len(rings.x)
    assert [a.text.split("</span> ")[-1] for a in figure.layout.annotations] == ["node 0", "node 1"]
    # the words take the theme's colour (a yellow node's name did not read on white); its swatch the node's
    assert all(a.font.color is None and "■" in a.text for a in figure.layout.annotations)


def test_heatmap_and_bars_show_the_gpu_loads():
    plan = place(WEIGHT, CLUSTER).phy2log
    loads = gpu_load(WEIGHT, plan, CLUSTER)
    heat = gpu_heatmap_figure(plan, WEIGHT, CLUSTER).data[0]
    assert torch.allclose(torch.tensor(heat.z, dtype=torch.float64), loads / loads.mean(dim=1, keepdim=True))
    figure = load_bars_figure(plan, WEIGHT, CLUSTER, 1)
    bars = figure.data
    assert [shape.y0 for shape in figure.layout.shapes] == pytest.approx([float(loads[1].mean()),
                                                                         float(loads[1].sum() / 2)])
    assert torch.allclose(torch.tensor(bars[0].y, dtype=torch.float64), loads[1])
    assert torch.allclose(torch.tensor(bars[1].y, dtype=torch.float64), loads[1].view(2, 4).sum(dim=1))


def test_comparison_draws_zero_imbalance_on_the_log_floor():
    rows = [{"plan": "a", "imbalance": 0.0, "bound_over_mean": 1.0}, {"plan": "b", "imbalance": 0.02,
                                                                        "bound_over_mean": 1.01}]
    figure = balance_comparison_figure(rows)
    assert figure.layout.yaxis.type == "log"
    assert figure.data[0].y[0] > 0 and figure.data[0].customdata[0] == 0
    assert figure.data[0].y[1] == 2.0


def test_drifting_history_starts_at_the_loads_and_keeps_layer_totals():
    history = drifting_from(WEIGHT, 5, seed=1, drift=0.5)
    assert history.shape == (5, 2, 12) and torch.equal(history[0], WEIGHT)
    assert torch.allclose(history.sum(dim=2), WEIGHT.sum(dim=1).expand(5, -1))
    assert not torch.allclose(history[4], WEIGHT)
    assert torch.equal(drifting_from(WEIGHT, 5, seed=1, drift=0.0), WEIGHT.expand(5, -1, -1))


def test_over_time_figure_has_a_line_per_planner_and_the_bound():
    history = windows(drifting_from(WEIGHT, 6, seed=2, drift=0.5), 2)
    runs = over_time(history, CLUSTER, {"kept": kept_planner(CLUSTER), "fresh": fresh_planner(CLUSTER)})
    figure = over_time_figure(runs)
    assert [trace.name for trace in figure.data] == ["kept", "fresh", "best possible (policy's bound)"]
    assert list(figure.data[1].y) == runs["fresh"].balancedness.tolist()
