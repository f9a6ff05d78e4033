"""The Deploy page's cached work: one plan, comparison, history or figure per (data digest, cluster, preset)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import plotly.graph_objects as go
import streamlit as st
import torch

from packviz.eplb.cluster import Cluster
from packviz.eplb.over_time import FRESH as OVER_TIME_FRESH
from packviz.eplb.over_time import KEPT as OVER_TIME_KEPT
from packviz.eplb.over_time import FreshPlans, PlannerRun, loads_key, over_time, replanned_name, standard_planners
from packviz.eplb.plan_table import plan_rows, timed_place
from packviz.eplb.replan import MovesCurve, Replan, balance_moves_curve, plan_moves
from packviz.io.deploy import (
    placement_csv,
    sglang_json,
    sglang_logical_count_json,
    trtllm_yaml,
    vllm_ascend_json,
    vllm_json,
)
from packviz.jobs import BackgroundJob
from packviz.viz.deploy import gpu_heatmap_figure, load_bars_figure, placement_figure
from packviz.viz.figures import PrebuiltFigure

REPLAN_TOLERANCE = 0.005
HISTORY_JOBS_AT_ONCE = 2
KEPT, FRESH, REPLANNED = OVER_TIME_KEPT, OVER_TIME_FRESH, replanned_name(REPLAN_TOLERANCE)


@st.cache_data(show_spinner="Placing the experts…", max_entries=256)
def timed_plan(digest: str, _experts: torch.Tensor, cluster: Cluster, preset: str) -> tuple[torch.Tensor, float]:
    """(phy2log [layers, num_replicas], the seconds its making took), once per (data, cluster, preset): the
    plan on screen, the Balance table's rows and Over time's fresh plans all come from here."""
    del digest  # the cache key: the data's hash stands for the unhashed tensor
    return timed_place(_experts, cluster, preset)


def plan(digest: str, experts: torch.Tensor, cluster: Cluster, preset: str) -> torch.Tensor:
    """phy2log [layers, num_replicas]."""
    return timed_plan(digest, experts, cluster, preset)[0]


def comparison(digest: str, experts: torch.Tensor, cluster: Cluster, presets: tuple[str, ...],
               progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """The Balance table's rows; each plan made once (the one on screen is not made again)."""
    return plan_rows(experts, cluster, presets, planner=lambda loads, option, name: timed_plan(
        digest, loads, option, name), progress=progress)


@st.cache_resource(show_spinner=False)
def _finished_histories() -> OrderedDict:
    """Over time's finished runs by their key, shared by every session (the newest 16)."""
    return OrderedDict()


def finished_history(key: tuple) -> dict[str, PlannerRun] | None:
    return _finished_histories().get(key)


def _plan_windows(windows: torch.Tensor, cluster: Cluster, preset: str, expert_bytes: int,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, PlannerRun]:
    # Off the script thread: no Streamlit cache here (each window's fresh plan is made once by FreshPlans,
    # and the finished run is kept whole), only the packviz calls.
    fresh = FreshPlans(cluster, preset, make=lambda loads: timed_place(loads, cluster, preset)[0])

    def replan(weight: torch.Tensor, previous: torch.Tensor, *_, fresh: torch.Tensor, **__) -> torch.Tensor:
        return plan_moves(weight, previous, cluster.num_groups, cluster.num_nodes, cluster.num_gpus,
                          tolerance=REPLAN_TOLERANCE, packer=preset, hierarchical=cluster.hierarchical,
                          fresh=fresh).placement.phy2log.cpu()
    planners = standard_planners(cluster, preset, REPLAN_TOLERANCE, fresh=fresh, replan=replan)
    return over_time(windows, cluster, planners, expert_bytes, progress=progress)


def _keep_finished(key: tuple, runs: dict[str, PlannerRun]) -> None:
    store = _finished_histories()
    store[key] = runs
    while len(store) > 16:
        store.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _history_jobs() -> tuple[dict[tuple, BackgroundJob], threading.Lock, threading.Semaphore]:
    """Over time's runs under way, by key, shared by every session; at most two run at once (a room of
    thirty asking for thirty histories queues them instead of thirty threads sharing the cores)."""
    return {}, threading.Lock(), threading.Semaphore(HISTORY_JOBS_AT_ONCE)


def history_job(windows: torch.Tensor, cluster: Cluster, preset: str, expert_bytes: int,
                key: tuple) -> BackgroundJob:
    """Kept, fresh and re-planned plans over ``windows`` [W, layers, num_logical] on a background thread:
    W - 1 fresh plans and W - 2 re-plans. A session asking for a key another started shares its run; the
    finished runs are kept under ``key`` (which names the windows, the cluster, the preset and the expert
    size) for ``finished_history``. Each call tells the run it is still wanted."""
    jobs, lock, slots = _history_jobs()
    with lock:
        job = jobs.get(key)
        if job is None or job.failed:
            job = BackgroundJob(lambda progress: _plan_windows(windows, cluster, preset, expert_bytes, progress),
                                slots, on_done=lambda runs: _keep_finished(key, runs))
            jobs[key] = job
        for other in [k for k, j in jobs.items() if not j.running and k != key]:
            del jobs[other]  # ended: its runs are in the finished store, or it failed and may start again
        job.touch()
    return job


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


def exports(digest: str, plan: torch.Tensor, experts: torch.Tensor, cluster: Cluster,
            first_layer: int, num_layers: int | None = None) -> dict[str, str]:
    """Every export of a plan [layers, num_replicas] (the fresh plan or a re-plan), by kind; ``first_layer``
    and ``num_layers`` place the MoE rows among the model's layers (SGLang's map has a row for every layer)."""
    return _exports(digest, loads_key(plan), plan, experts, cluster, first_layer, num_layers)


@st.cache_data(show_spinner="Writing the files…", max_entries=16)
def _exports(digest: str, plan_key: str, _plan: torch.Tensor, _experts: torch.Tensor, cluster: Cluster,
             first_layer: int, num_layers: int | None) -> dict[str, str]:
    del digest, plan_key
    return {"csv": placement_csv(_plan, _experts, cluster),
            "sglang": sglang_json(_plan, first_layer=first_layer, num_layers=num_layers),
            "logical_count": sglang_logical_count_json(_experts), "trtllm": trtllm_yaml(_plan, first_layer),
            "vllm": vllm_json(_plan), "vllm_ascend": vllm_ascend_json(_plan, cluster.num_gpus)}


def replan_from(digest: str, previous: torch.Tensor, experts: torch.Tensor, fresh: torch.Tensor, cluster: Cluster,
                preset: str, tolerance: float | None, max_moves: int | None) -> Replan:
    """The re-plan of the data's loads from the uploaded plan in place ``previous`` [layers, num_replicas],
    against the fresh plan on screen ``fresh`` (made already: not made again)."""
    return _replan_from(digest, loads_key(previous), previous, experts, fresh, cluster, preset, tolerance, max_moves)


@st.cache_data(show_spinner="Re-planning from the plan in place…", max_entries=16)
def _replan_from(digest: str, previous_key: str, _previous: torch.Tensor, _experts: torch.Tensor,
                 _fresh: torch.Tensor, cluster: Cluster, preset: str, tolerance: float | None,
                 max_moves: int | None) -> Replan:
    del digest, previous_key
    return plan_moves(_experts, _previous, cluster.num_groups, cluster.num_nodes, cluster.num_gpus,
                      tolerance=tolerance, max_moves=max_moves, packer=preset, hierarchical=cluster.hierarchical,
                      fresh=_fresh)
