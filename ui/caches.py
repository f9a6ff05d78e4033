"""Cached runs and figures: one pack, trace or figure per (data, config) however many sessions ask."""

from __future__ import annotations

import dataclasses

import plotly.graph_objects as go
import streamlit as st
import torch

from packviz import PackerConfig
from packviz.data.samples import Dataset
from packviz.io.export import overview_rows
from packviz.metrics import LayerMetrics, layer_metrics, lower_bound
from packviz.packer import PackResult
from packviz.teach.narration import explore as explore_narration
from packviz.trace.replay import LayerTrace
from packviz.trace.timeline import Frame, build_frames
from packviz.viz.figures import PrebuiltFigure, animation_figure, heatmap_figure, lesson_figure, overview_figure
from packviz.workers import pack_in_worker, start_workers

# When a page's first run ends the browser is still drawing its charts; the workers
# (each imports torch, a second or two of a core) start this much later.
WORKER_START_DELAY_S = 5.0


def start_packing_workers() -> None:
    """Start the processes that pack for every session (packviz.workers), once, soon."""
    start_workers(after_s=WORKER_START_DELAY_S)


@st.cache_data(show_spinner="Packing…", max_entries=32)
def run_pack(digest: str, _weight: torch.Tensor, config: PackerConfig, num_packs: int) -> PackResult:
    del digest  # the cache key: the data's hash stands for the unhashed tensor
    return pack_in_worker(_weight, num_packs, config, seed=config.seed)


@st.cache_data(show_spinner="Tracing the layer…", max_entries=64)
def run_trace(digest: str, _weight: torch.Tensor, config: PackerConfig, num_packs: int, layer: int) -> PackResult:
    del digest
    return pack_in_worker(_weight[layer:layer + 1], num_packs, config, seed=config.seed, layer_ids=[layer],
                          trace_layers=[0])


@dataclasses.dataclass(frozen=True)
class Overview:
    """What Explore's overview shows of one run: per-layer metrics, their chart (a
    ready dict) and the table rows."""

    metrics: LayerMetrics
    figure: go.Figure
    rows: list[dict]


# Once per run however many sessions show it: a room opening the default view
# pays for the metrics, the figure and the table once, not once a person.
@st.cache_resource(show_spinner=False, max_entries=32)
def overview(digest: str, _data: Dataset, config: PackerConfig, num_packs: int) -> Overview:
    result = run_pack(digest, _data.weight, config, num_packs)
    metrics = layer_metrics(result.pack_loads, result.weight)
    return Overview(metrics, PrebuiltFigure(overview_figure(metrics).to_dict()), overview_rows(result))


@dataclasses.dataclass(frozen=True)
class LayerStory:
    """One layer's recorded run, ready to draw: its trace, frames, captions, bound and item labels."""

    trace: LayerTrace
    frames: list[Frame]
    captions: list[str]
    bound: float
    labels: list[str] | None


# cache_resource, not cache_data: the story is read-only, and a step of the
# presenter must not pay for unpickling hundreds of frames.
@st.cache_resource(show_spinner="Tracing the layer…", max_entries=16)
def layer_story(digest: str, _data: Dataset, config: PackerConfig, num_packs: int, layer: int) -> LayerStory:
    trace = run_trace(digest, _data.weight, config, num_packs, layer).traces[0]
    frames = build_frames(trace)
    bound = float(lower_bound(_data.weight[layer:layer + 1], num_packs)[0])
    captions = [explore_narration(trace, frames, index) for index in range(len(frames))]
    return LayerStory(trace, frames, captions, bound, _data.slots.item_labels(layer))


@st.cache_resource(show_spinner="Drawing the animation…", max_entries=8)
def animation_spec(digest: str, _data: Dataset, config: PackerConfig, num_packs: int, layer: int,
                   frame_ms: int) -> go.Figure:
    story = layer_story(digest, _data, config, num_packs, layer)
    return animation_figure(story.trace, story.frames, story.bound, story.labels, story.captions, frame_ms=frame_ms)


# The presenter's chart height at a desk (lesson_figure's own); Present picks one to fit the screen.
PRESENTER_HEIGHT = 600


@st.cache_resource(show_spinner=False, max_entries=256)
def presenter_figure(digest: str, _data: Dataset, config: PackerConfig, num_packs: int, layer: int,
                     step: int, height: int = PRESENTER_HEIGHT) -> go.Figure:
    story = layer_story(digest, _data, config, num_packs, layer)
    # kept as its dict: a cached go.Figure would be deep-copied by to_dict on every draw
    return PrebuiltFigure(lesson_figure(story.trace, story.frames, step, story.bound, story.labels,
                                        height=height).to_dict())


@st.cache_resource(show_spinner=False, max_entries=8)
def heatmap(digest: str, _data: Dataset) -> go.Figure:
    # The figure's JSON once per data set: Plotly validates 16,000 cells in about half a second.
    return PrebuiltFigure(heatmap_figure(_data.weight, _data.item_names).to_dict())
