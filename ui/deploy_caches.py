"""The Deploy page's cached work: one plan, comparison, history or figure per (data digest, cluster, preset)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
import torch

from packviz.eplb.cluster import Cluster, place
from packviz.eplb.over_time import PlannerRun, fresh_planner, kept_planner, over_time, replanning_planner
from packviz.eplb.plan_table import plan_rows
from packviz.eplb.replan import MovesCurve, balance_moves_curve, replan
from packviz.io.deploy import placement_csv, sglang_json, sglang_logical_count_json, trtllm_yaml
from packviz.viz.deploy import gpu_heatmap_figure, load_bars_figure, placement_figure
from packviz.viz.figures import PrebuiltFigure

KEPT = "kept from window 0"
FRESH = "fresh each window"
REPLAN_TOLERANCE = 0.005
REPLANNED = f"re-planned from the plan in place (within {REPLAN_TOLERANCE:.1%} of fresh)"


@st.cache_data(show_spinner="Placing the experts…", max_entries=64)
def plan(digest: str, _experts: torch.Tensor, cluster: Cluster, preset: str) -> torch.Tensor:
    """phy2log [layers, num_replicas]."""
    del digest  # the cache key: the data's hash stands for the unhashed tensor
    return place(_experts, cluster, preset).phy2log.cpu()


@st.cache_data(show_spinner="Comparing plans…", max_entries=32)
def comparison(digest: str, _experts: torch.Tensor, cluster: Cluster, presets: tuple[str, ...]) -> list[dict]:
    del digest
    return plan_rows(_experts, cluster, presets)


@st.cache_data(show_spinner="Planning every window…", max_entries=16)
def history(digest: str, _windows: torch.Tensor, cluster: Cluster, preset: str, expert_bytes: int,
            history_key: tuple) -> dict[str, PlannerRun]:
    """Kept, fresh and re-planned plans over the windows; history_key names how the windows were made."""
    del digest, history_key
    planners = {KEPT: kept_planner(cluster, preset), FRESH: fresh_planner(cluster, preset),
                REPLANNED: replanning_planner(cluster, replan, preset, tolerance=REPLAN_TOLERANCE)}
    return over_time(_windows, cluster, planners, expert_bytes)


@st.cache_data(show_spinner="Re-planning at every move budget…", max_entries=16)
def moves_curve(digest: str, _weight: torch.Tensor, _previous: torch.Tensor, cluster: Cluster, preset: str,
                history_key: tuple) -> MovesCurve:
    """The balance-versus-moves curve of re-planning ``_weight`` [layers, num_logical]
    from ``_previous`` [layers, num_replicas]; history_key names the window."""
    del digest, history_key
    return balance_moves_curve(_weight, _previous, cluster.num_groups, cluster.num_nodes, cluster.num_gpus,
                               packer=preset, hierarchical=cluster.hierarchical)


@st.cache_resource(show_spinner=False, max_entries=64)
def placement_view(digest: str, _plan: torch.Tensor, _experts: torch.Tensor, cluster: Cluster, preset: str,
                   layer: int) -> go.Figure:
    return PrebuiltFigure(placement_figure(_plan, _experts, cluster, layer).to_dict())


@st.cache_resource(show_spinner=False, max_entries=64)
def bars_view(digest: str, _plan: torch.Tensor, _experts: torch.Tensor, cluster: Cluster, preset: str,
              layer: int) -> go.Figure:
    return PrebuiltFigure(load_bars_figure(_plan, _experts, cluster, layer).to_dict())


@st.cache_resource(show_spinner=False, max_entries=32)
def heatmap_view(digest: str, _plan: torch.Tensor, _experts: torch.Tensor, cluster: Cluster, preset: str) -> go.Figure:
    return PrebuiltFigure(gpu_heatmap_figure(_plan, _experts, cluster).to_dict())


@st.cache_data(show_spinner="Writing the files…", max_entries=16)
def exports(digest: str, _plan: torch.Tensor, _experts: torch.Tensor, cluster: Cluster, preset: str,
            first_layer: int) -> dict[str, str]:
    """Every export of the plan on screen, by kind."""
    return {"csv": placement_csv(_plan, _experts, cluster), "sglang": sglang_json(_plan),
            "logical_count": sglang_logical_count_json(_experts), "trtllm": trtllm_yaml(_plan, first_layer)}
