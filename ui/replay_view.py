"""The Replay page's state in the URL, its cached trace reads and replays."""

from __future__ import annotations

import streamlit as st
import torch

from packviz.data.samples import DEFAULT_TRACE_SAMPLE, SAMPLE_DIR, TRACE_SAMPLES
from packviz.data.traces import LoadSeries, read_trace
from packviz.data.traffic import traffic_series
from packviz.eplb.cluster import POLICIES
from packviz.eplb.replay import TRIGGERS, ReplaySettings
from packviz.eplb.replay_view import ReplayComparison, compare
from packviz.workers import ready_pool
from ui.state import Param, forget, parse_choice, parse_float, parse_int, publish, restore

SOURCES = ("Sample", "Generator", "Upload")
SECTIONS = ("One replay", "Sweep", "Export")
PHASES = ("prefill", "decode")


def _parse_list(raw: str) -> list[str]:
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise ValueError("an empty list")
    return values


def _parse_ints(raw: str) -> list[int]:
    values = [int(v) for v in _parse_list(raw)]
    if any(v < 1 for v in values):
        raise ValueError("intervals are whole numbers >= 1")
    return values


def _parse_triggers(raw: str) -> list[str]:
    values = _parse_list(raw)
    for value in values:
        parse_choice(TRIGGERS)(value)
    return values


def _show_list(values) -> str:
    return ",".join(str(v) for v in values)


PARAMS = [
    Param("replay_source", parse_choice(SOURCES)),
    Param("replay_gen_phase", parse_choice(PHASES)),
    Param("replay_gen_windows", parse_int(2, 2000)),
    Param("replay_gen_seed", parse_int(0, 2**31 - 1)),
    Param("replay_window", parse_int(1, 1 << 24)),
    Param("replay_slots", parse_int(1, 1 << 16)),
    Param("replay_gpus", parse_int(1, 1 << 16)),
    Param("replay_groups", parse_int(0, 1 << 16)),
    Param("replay_nodes", parse_int(1, 4096)),
    Param("replay_policy", parse_choice(POLICIES)),
    Param("replay_planner", str),
    Param("replay_interval", parse_int(1, 1 << 20)),
    Param("replay_trigger", parse_choice(TRIGGERS)),
    Param("replay_window_s", parse_float),
    Param("replay_section", parse_choice(SECTIONS)),
    Param("replay_sweep_planners", _parse_list, _show_list),
    Param("replay_sweep_intervals", _parse_ints, _show_list),
    Param("replay_sweep_triggers", _parse_triggers, _show_list),
]


def restore_view() -> list[str]:
    return restore(PARAMS)


def publish_view() -> None:
    """The view into the URL; the trace only when it is the sample or the generator (an upload cannot travel)."""
    shared = [p for p in PARAMS if p.key != "replay_source" or st.session_state.get("replay_source") != "Upload"]
    if len(shared) < len(PARAMS):
        forget(["replay_source"])
    publish(shared)


@st.cache_data(show_spinner="Reading the trace…", max_entries=8)
def sample_trace(window: int) -> list[LoadSeries]:
    return read_trace(SAMPLE_DIR / TRACE_SAMPLES[DEFAULT_TRACE_SAMPLE], window=window)


@st.cache_data(show_spinner="Generating traffic…", max_entries=8)
def generated_trace(windows: int, phase: str, seed: int) -> LoadSeries:
    return traffic_series(windows, phase=phase, seed=seed)


@st.cache_data(show_spinner="Reading the trace…", max_entries=8)
def uploaded_trace(digest: str, _data: bytes, name: str, window: int | None, unit: str | None) -> list[LoadSeries]:
    del digest
    return read_trace(_data, name, window=window, unit=unit)


@st.cache_data(show_spinner="Replaying the trace…", max_entries=16)
def replayed(digest: str, _trace: torch.Tensor, settings: ReplaySettings) -> ReplayComparison:
    """One replay and the engines' plan beside it, on the worker processes once they are warm."""
    del digest
    return compare(_trace, settings, ready_pool())
