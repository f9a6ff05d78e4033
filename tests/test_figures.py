"""The Plotly figures, built from real packings and traces, checked against the data they draw."""

from __future__ import annotations

import csv
import json
import re
from functools import cache
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch
from oracles import TRACED_PRESET_OPTIONS

import packviz
from packviz.compare import compare_presets, table_rows
from packviz.data.experts import replicate
from packviz.data.generators import moe
from packviz.metrics import layer_metrics, lower_bound
from packviz.teach.narration import explore
from packviz.trace.replay import LayerTrace
from packviz.trace.timeline import Frame, build_frames
from packviz.viz.figures import (
    HIGHLIGHT_WIDTH,
    OFF_AXIS,
    animation_figure,
    comparison_figure,
    frame_figure,
    heatmap_figure,
    overview_figure,
    restarts_figure,
)

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
PRESET_OPTIONS = TRACED_PRESET_OPTIONS
# bar heights keep twelve significant digits for the browser
BAR_TOLERANCE = 1e-5


def read_sample_csv(file_name: str) -> tuple[list[str], torch.Tensor]:
    with open(SAMPLE_DIR / file_name, newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return header, torch.tensor([[float(cell) for cell in row] for row in rows], dtype=torch.float64)


def make_weight(shape_name: str) -> tuple[torch.Tensor, int, int]:
    """(weight [L, n], pack count, traced layer)."""
    if shape_name == "teaching":
        return read_sample_csv("teaching_12_items.csv")[1], 3, 0
    if shape_name == "deepseek_readme_layer_1":
        return read_sample_csv("deepseek_readme.csv")[1], 4, 1
    if shape_name == "random_floats":
        generator = torch.Generator().manual_seed(1)
        return torch.rand(2, 32, generator=generator, dtype=torch.float64) * 50, 4, 0
    if shape_name == "one_item_per_pack":
        return torch.tensor([[5.0, 3.0, 9.0, 1.0, 7.0]]), 5, 0
    raise KeyError(shape_name)


SHAPE_NAMES = ["teaching", "deepseek_readme_layer_1", "random_floats", "one_item_per_pack"]
CASES = [(shape_name, preset) for shape_name in SHAPE_NAMES for preset in PRESET_OPTIONS]


@cache
def traced(shape_name: str, preset: str) -> tuple[LayerTrace, list[Frame], float]:
    """The traced layer's trace, its frames and its lower bound."""
    weight, num_packs, layer = make_weight(shape_name)
    result = packviz.pack(weight, num_packs, preset, trace_layers=[layer], **PRESET_OPTIONS[preset])
    trace = result.traces[layer]
    return trace, build_frames(trace), float(lower_bound(weight, num_packs)[layer])


@cache
def replicated_experts() -> tuple[LayerTrace, list[Frame], float, list[str], list[int]]:
    """12 experts replicated into 16 slots on 4 packs: the trace, frames, bound, item labels and each slot's
    expert."""
    logical = moe(1, 12, seed=5)
    weight, slot_map = replicate(logical, 16)
    result = packviz.pack(weight, 4, "best", trace_layers=[0])
    trace = result.traces[0]
    labels = slot_map.item_labels(0)
    return trace, build_frames(trace), float(lower_bound(weight, 4)[0]), labels, slot_map.phy2log[0].tolist()


def bar_traces(figure: go.Figure) -> list:
    return [trace for trace in figure.data if trace.type == "bar"]


def stacked_heights(bars: list) -> list[float]:
    return [sum(bar["y"][pack] for bar in bars) for pack in range(len(bars[0]["x"]))]


# ----- heatmap and overview


def test_heatmap_draws_the_matrix_with_item_names():
    names, weight = read_sample_csv("deepseek_readme.csv")
    figure = heatmap_figure(weight, names)
    (heatmap,) = figure.data
    assert heatmap.type == "heatmap"
    assert [list(row) for row in heatmap.z] == weight.tolist()
    assert list(heatmap.x) == names


def test_heatmap_without_names_leaves_x_to_plotly():
    weight = moe(3, 8, seed=2)
    (heatmap,) = heatmap_figure(weight).data
    assert heatmap.x is None
    assert [list(row) for row in heatmap.z] == weight.tolist()


def test_overview_bars_are_each_layers_gap_in_percent():
    weight = moe(5, 24, seed=7)
    result = packviz.pack(weight, 6, "eplb")
    metrics = layer_metrics(result.pack_loads, result.weight)
    figure = overview_figure(metrics)
    bars = [trace for trace in figure.data if trace.type == "bar"]
    lines = [trace for trace in figure.data if trace.type == "scatter"]
    assert len(bars) == 1 and len(lines) == 1
    assert list(bars[0].x) == list(range(5))
    assert list(bars[0].y) == pytest.approx((metrics.gap_to_lower_bound * 100).tolist())
    assert list(lines[0].y) == pytest.approx(((metrics.imbalance - 1) * 100).tolist())
    # the packer never beats the lower bound, and this layer set is not all perfectly balanced
    assert min(bars[0].y) >= 0 and max(bars[0].y) > 0


# ----- one frame


# A still figure costs Plotly's validation (a tenth of a second or more), so the still views are checked on a few
# frames of a few cases; the animation below checks every frame of every case from its plain dicts.
STILL_CASES = [("teaching", "restarts-2swap"), ("deepseek_readme_layer_1", "best"), ("random_floats", "fast"),
               ("one_item_per_pack", "eplb")]


def interesting_frames(frames: list[Frame]) -> list[Frame]:
    """The start, the first fill, the first move (if any) and the final frame."""
    first_refine = next((frame for frame in frames if frame.phase == "refine"), None)
    return [frames[0], frames[1], *([first_refine] if first_refine else []), frames[-1]]


@pytest.mark.parametrize(("shape_name", "preset"), STILL_CASES)
def test_frame_figure_stacks_one_bar_trace_per_rank_to_the_frames_loads(shape_name, preset):
    trace, frames, bound = traced(shape_name, preset)
    for frame in interesting_frames(frames):
        caption = explore(trace, frames, frame.index)
        figure = frame_figure(trace, frames, frame.index, bound, caption=caption)
        assert figure.layout.title.text.replace("<br>", " ") == caption
        bars = bar_traces(figure)
        assert len(bars) == trace.items_per_pack
        for rank, bar in enumerate(bars):
            assert list(bar.x) == list(range(trace.num_packs))
            items = [frame.slots[pack][rank] for pack in range(trace.num_packs)]
            assert list(bar.y) == pytest.approx([trace.weight[i] if i >= 0 else 0 for i in items], abs=BAR_TOLERANCE)
        heights = [sum(bar.y[pack] for bar in bars) for pack in range(trace.num_packs)]
        assert heights == pytest.approx(list(frame.loads), abs=BAR_TOLERANCE * trace.items_per_pack)
        assert figure.layout.barmode == "stack"
        # the y axis shows every frame's heaviest pack and the bound
        assert figure.layout.yaxis.range[1] >= max(bound, *(max(f.loads) for f in frames))
        outlined = [frame.slots[pack][rank] for rank, bar in enumerate(bars)
                    for pack, width in enumerate(bar.marker.line.width) if width == HIGHLIGHT_WIDTH]
        assert sorted(outlined) == sorted(frame.highlight)
        assert all(width in (0, HIGHLIGHT_WIDTH) for bar in bars for width in bar.marker.line.width)


@pytest.mark.parametrize(("shape_name", "preset"), [("teaching", "restarts-2swap"), ("random_floats", "best")])
def test_frame_figure_draws_the_mean_and_lower_bound_lines(shape_name, preset):
    trace, frames, bound = traced(shape_name, preset)
    figure = frame_figure(trace, frames, len(frames) - 1, bound)
    mean = sum(trace.weight) / trace.num_packs
    lines = {}
    for annotation in figure.layout.annotations:
        label = annotation.text.split()[0]
        lines[label] = annotation.y
    assert lines["mean"] == pytest.approx(mean)
    assert lines["LB"] == pytest.approx(bound)
    shape_heights = sorted(shape.y0 for shape in figure.layout.shapes if shape.y0 == shape.y1)
    assert shape_heights == pytest.approx(sorted([mean, bound]))


def test_frame_figure_y_axis_fits_the_heaviest_pack_above_a_weak_bound():
    trace, frames, _ = traced("teaching", "eplb")
    trivial_bound = 0.0
    figure = frame_figure(trace, frames, len(frames) - 1, trivial_bound)
    low, high = figure.layout.yaxis.range
    assert low == 0
    assert max(frames[-1].loads) < high <= 1.1 * max(frames[-1].loads)


def test_frame_figure_hover_names_items_without_labels():
    trace, frames, bound = traced("teaching", "eplb")
    final = frames[-1]
    bars = bar_traces(frame_figure(trace, frames, final.index, bound))
    for rank, bar in enumerate(bars):
        assert list(bar.customdata) == [f"item {final.slots[pack][rank]}" for pack in range(trace.num_packs)]
        assert "%{customdata}" in bar.hovertemplate
    start_bars = bar_traces(frame_figure(trace, frames, 0, bound))
    assert all(text == "empty slot" for bar in start_bars for text in bar.customdata)


def test_frame_figure_hover_names_each_slots_expert():
    trace, frames, bound, labels, expert_of_slot = replicated_experts()
    assert any("replica" in label for label in labels)  # some expert really is replicated
    final = frames[-1]
    bars = bar_traces(frame_figure(trace, frames, final.index, bound, item_labels=labels))
    seen_items = set()
    for rank, bar in enumerate(bars):
        for pack, hover in enumerate(bar.customdata):
            item = final.slots[pack][rank]
            match = re.fullmatch(r"item (\d+): expert (\d+)(?: \(replica (\d+) of (\d+)\))?", hover)
            assert match, hover
            assert int(match.group(1)) == item
            assert int(match.group(2)) == expert_of_slot[item]
            assert hover == f"item {item}: {labels[item]}"
            seen_items.add(item)
    assert seen_items == set(range(trace.num_items))


# ----- the animation


def stacked_from_positions(trace: LayerTrace, frame_data: dict) -> list[float]:
    """Each pack's height as the browser draws it: the top of its highest segment."""
    tops = [0.0] * trace.num_packs
    for item, (pack, base) in enumerate(zip(frame_data["x"], frame_data["base"])):
        if pack >= 0:
            tops[pack] = max(tops[pack], base + trace.weight[item])
    return tops


@pytest.mark.parametrize(("shape_name", "preset"), CASES)
def test_animation_has_one_plotly_frame_per_timeline_frame(shape_name, preset):
    trace, frames, bound = traced(shape_name, preset)
    captions = [explore(trace, frames, index) for index in range(len(frames))]
    spec = animation_figure(trace, frames, bound, captions=captions).to_dict()
    json.loads(json.dumps(spec))  # what the browser receives
    assert [plotly_frame["name"] for plotly_frame in spec["frames"]] == [str(f.index) for f in frames]
    (slider,) = spec["layout"]["sliders"]
    assert [step["label"] for step in slider["steps"]] == [str(f.index) for f in frames]
    assert [step["args"][0] for step in slider["steps"]] == [[str(f.index)] for f in frames]
    assert all(step["method"] == "animate" for step in slider["steps"])
    items, outlines, caption = spec["data"]
    assert items["type"] == outlines["type"] == "bar" and caption["mode"] == "text"
    tolerance = 1e-4 * spec["layout"]["yaxis"]["range"][1]  # bases on a sub-pixel grid
    for plotly_frame, frame in zip(spec["frames"], frames):
        assert plotly_frame["traces"] == [0, 1, 2]
        moved, outlined, text = plotly_frame["data"]
        # every item sits in its pack at its rank: its base is the load of the items below it
        for pack, row in enumerate(frame.slots):
            below = 0.0
            for item in row:
                if item >= 0:
                    assert moved["x"][item] == pack
                    assert moved["base"][item] == pytest.approx(below, abs=tolerance)
                    below += trace.weight[item]
        placed = {item for row in frame.slots for item in row if item >= 0}
        assert all(moved["x"][item] == OFF_AXIS for item in range(trace.num_items) if item not in placed)
        assert stacked_from_positions(trace, moved) == pytest.approx(list(frame.loads),
                                                                     abs=tolerance * trace.items_per_pack)
        # the outlines are exactly this frame's placed or moved items, drawn over them; as many
        # bars in every frame (the spare ones parked off the axis), so none appears unstyled mid-animation
        assert len(outlined["x"]) == len(outlines["x"]) == max(1, *(len(f.highlight) for f in frames))
        assert all(pack == OFF_AXIS for pack in outlined["x"][len(frame.highlight):])
        for pack, base, load, item in zip(outlined["x"], outlined["base"], outlined["y"], frame.highlight):
            assert (pack, base) == (moved["x"][item], moved["base"][item])
            assert load == pytest.approx(trace.weight[item], abs=BAR_TOLERANCE)
        assert " ".join(text["text"][0].split("<br>")) == captions[frame.index]
    # the base figure shows the first frame
    assert (items["x"], items["base"]) == (spec["frames"][0]["data"][0]["x"], spec["frames"][0]["data"][0]["base"])
    assert caption["text"][0].replace("<br>", " ") == captions[0]


def test_animation_frames_carry_only_what_moves():
    """A frame holds each item's pack and base (two numbers an item) and the few
    outlined items; colours, loads and hover labels are set once in the figure,
    so the frames do not grow with the labels' length."""
    trace, frames, bound, labels, _ = replicated_experts()
    spec = animation_figure(trace, frames, bound, item_labels=labels).to_dict()
    for plotly_frame, frame in zip(spec["frames"], frames):
        moved, outlined, text = plotly_frame["data"]
        assert set(moved) == {"x", "base"}
        assert len(moved["x"]) == len(moved["base"]) == trace.num_items
        assert all(isinstance(value, int) for value in moved["x"])
        assert set(outlined) == {"x", "base", "y"} and len(frame.highlight) <= len(outlined["x"]) <= 4
        assert set(text) == {"text"}
        assert "layout" not in plotly_frame  # a layout change would force a full redraw
    with_labels = len(json.dumps(spec["frames"]))
    without_labels = len(json.dumps(animation_figure(trace, frames, bound).to_dict()["frames"]))
    assert with_labels == without_labels


def test_animation_plays_without_full_redraws():
    trace, frames, bound = traced("teaching", "best")
    spec = animation_figure(trace, frames, bound, frame_ms=40).to_dict()
    play, pause = spec["layout"]["updatemenus"][0]["buttons"]
    assert play["args"][1]["frame"] == {"duration": 40, "redraw": False}
    assert pause["args"][1]["frame"]["redraw"] is False
    assert all(step["args"][1]["frame"]["redraw"] is False for step in spec["layout"]["sliders"][0]["steps"])
    # unplaced items park wholly left of the x range, where nothing is drawn
    assert OFF_AXIS + spec["data"][0]["width"] / 2 < spec["layout"]["xaxis"]["range"][0]
    assert OFF_AXIS + spec["data"][1]["width"] / 2 < spec["layout"]["xaxis"]["range"][0]


def test_animation_without_captions_has_empty_titles():
    trace, frames, bound = traced("teaching", "best")
    spec = animation_figure(trace, frames, bound).to_dict()
    assert len(spec["frames"]) == len(frames)
    assert all(plotly_frame["data"][2]["text"] == [""] for plotly_frame in spec["frames"])


def test_animation_frame_data_are_valid_plotly_bars():
    trace, frames, bound, labels, _ = replicated_experts()
    spec = animation_figure(trace, frames, bound, item_labels=labels).to_dict()
    for plotly_frame in spec["frames"][:: max(1, len(frames) // 7)]:
        go.Bar(plotly_frame["data"][0])  # raises on an unknown key
        go.Bar(plotly_frame["data"][1])
        go.Scatter(plotly_frame["data"][2])
    go.Figure({key: value for key, value in spec.items() if key != "frames"})


def test_animation_keeps_each_items_colour_and_label():
    trace, frames, bound, labels, _ = replicated_experts()
    spec = animation_figure(trace, frames, bound, item_labels=labels, frame_ms=40).to_dict()
    items = spec["data"][0]
    assert items["customdata"] == [f"item {item}: {labels[item]}" for item in range(trace.num_items)]
    assert items["y"] == pytest.approx(trace.weight)
    colours = items["marker"]["color"]
    assert len(colours) == trace.num_items and len(set(colours)) == trace.num_items  # 16 items, 48 colours
    outline = spec["data"][1]["marker"]
    assert outline["line"]["width"] == HIGHLIGHT_WIDTH and outline["color"] == "rgba(0,0,0,0)"


# ----- restarts


@pytest.mark.parametrize(("shape_name", "preset"), [("teaching", "restarts-2swap"), ("random_floats", "best"),
                                                    ("deepseek_readme_layer_1", "restarts-2swap"),
                                                    ("teaching", "eplb")])
def test_restarts_figure_marks_kept_restarts_and_the_winner(shape_name, preset):
    trace, _, _ = traced(shape_name, preset)
    figure = restarts_figure(trace)
    restarts, winner, *candidate_lines = figure.data
    num_restarts = trace.config.num_restarts
    assert len(trace.restart_spreads) == num_restarts
    assert list(restarts.x) == list(range(num_restarts))
    assert list(restarts.y) == pytest.approx(trace.restart_spreads)
    big_markers = {restart for restart, size in enumerate(restarts.marker.size) if size > min(restarts.marker.size)}
    if len(trace.kept_restarts) < num_restarts:
        assert big_markers == set(trace.kept_restarts)
    kept_colours = {restarts.marker.color[restart] for restart in trace.kept_restarts}
    assert len(kept_colours) == 1
    assert all(restarts.marker.color[restart] not in kept_colours
               for restart in range(num_restarts) if restart not in trace.kept_restarts)
    chosen_restart = trace.chosen_candidate.restart
    assert winner.marker.symbol == "star"
    assert list(winner.x) == [chosen_restart]
    assert list(winner.y) == pytest.approx([trace.restart_spreads[chosen_restart]])
    assert list(winner.y) == pytest.approx([trace.chosen_candidate.initial_spread])
    assert len(candidate_lines) == len(trace.candidates)
    for position, (line, candidate) in enumerate(zip(candidate_lines, trace.candidates)):
        assert list(line.y) == pytest.approx(candidate.spread_history)
        assert list(line.x) == list(range(len(candidate.swaps) + 1))
        assert bool(line.showlegend) == (position == trace.chosen)
    assert [line.line.width for line in candidate_lines].count(max(line.line.width for line in candidate_lines)) == 1
    assert candidate_lines[trace.chosen].line.width == max(line.line.width for line in candidate_lines)


# ----- comparison


def test_comparison_figure_has_one_point_per_packer():
    weight = moe(3, 32, seed=11)
    results = {preset: packviz.pack(weight, 8, preset, **options) for preset, options in PRESET_OPTIONS.items()}
    rows = compare_presets(results)
    (points,) = comparison_figure(rows).data
    assert list(points.text) == list(PRESET_OPTIONS)
    assert list(points.x) == pytest.approx([row["seconds"] for row in rows])
    positive = [row["mean_gap"] * 100 for row in rows if row["mean_gap"] > 0]
    floor = min(positive) / 10
    assert list(points.y) == pytest.approx([max(row["mean_gap"] * 100, floor) for row in rows])
    gaps = {row["packer"]: row["mean_gap"] for row in rows}
    assert gaps["best"] <= gaps["eplb"]
    assert comparison_figure(rows).layout.xaxis.type == "log"
    assert comparison_figure(rows).layout.yaxis.type == "log"


def test_comparison_puts_a_gap_of_zero_below_the_rest_and_says_so():
    rows = [{"packer": "eplb", "mean_gap": 0.006, "seconds": 0.01},
            {"packer": "best", "mean_gap": 0.000016, "seconds": 0.3},
            {"packer": "exact", "mean_gap": 0.0, "seconds": 2.0}]
    (points,) = comparison_figure(rows).data
    assert list(points.y) == pytest.approx([0.6, 0.0016, 0.00016])
    assert list(points.customdata) == ["0.6%", "0.0016%", "0 (on the lower bound)"]


def test_table_rows_show_small_gaps_in_percent():
    rows = [{"packer": "best", "mean_gap": 0.000016, "max_gap": 0.0001, "mean_imbalance": 1.00002,
             "seconds": 0.3, "time_vs_baseline": 30.0}]
    (row,) = table_rows(rows)
    assert row["mean_gap_pct"] == pytest.approx(0.0016) and row["max_gap_pct"] == pytest.approx(0.01)
    assert row["mean_max_over_mean"] == 1.00002 and "mean_imbalance" not in row


# ----- scale


def test_frame_bars_follow_the_loads_at_any_scale():
    weight = read_sample_csv("teaching_12_items.csv")[1] * 1e-8
    result = packviz.pack(weight, 3, "eplb", trace_layers=[0])
    trace = result.traces[0]
    frames = build_frames(trace)
    bars = bar_traces(frame_figure(trace, frames, len(frames) - 1, float(lower_bound(weight, 3)[0])))
    heights = [sum(bar.y[pack] for bar in bars) for pack in range(3)]
    assert heights == pytest.approx(list(frames[-1].loads), rel=1e-6)


def test_the_fill_shows_its_queue_and_the_bound_marks_the_items_that_make_it():
    """During the fill the items still to place stand above the packs in the fill's order, the next
    one marked; once the items that make LB are drawn they carry its mark and LB's name says so."""
    from packviz.teach.lesson_frames import lesson_frames
    from packviz.teach.lessons import CHAPTER_BY_KEY
    from packviz.viz.figures import QUEUE_CHARACTERS, lesson_step_figure
    from packviz.viz.lesson_style import BOUND_MARK, bound_items

    trace = CHAPTER_BY_KEY["greedy"].run().traces[0]
    frames = lesson_frames(trace)
    order = [event.item for event in trace.chosen_candidate.placements]
    for index in (0, 3):
        figure = lesson_step_figure(trace, frames, index, 183.0)
        queue = next(a.text for a in figure.layout.annotations if a.name == "queue")
        placed = sum(1 for row in frames[index].slots for item in row if item >= 0)
        assert queue.startswith(f"still to place: <b>▶ {order[placed]} (")
        # as many as fit the top line, then how many more: every item still to place is counted
        words = re.sub("<[^>]+>", "", queue.removeprefix("still to place: "))
        shown = [w for w in words.split(" · ") if not w.startswith("+")]
        more = int(re.search(r"\+(\d+) more", words).group(1)) if "more" in words else 0
        assert len(shown) + more == len(order) - placed and len(words) <= QUEUE_CHARACTERS
    items = bound_items(trace.weight, trace.num_packs)
    assert sum(trace.weight[i] for i in items) == 183 and len(items) == 3
    last = lesson_step_figure(trace, frames, len(frames) - 1, 183.0)
    assert not [a for a in last.layout.annotations if a.name == "queue"]
    labels = [text for t in last.data if t.type == "bar" for text in (t.text or []) if text and BOUND_MARK in text]
    assert sorted(int(text.split(":")[0]) for text in labels) == sorted(items)
    assert any(a.text == f"LB 183 = {BOUND_MARK}" for a in last.layout.annotations)


def test_reference_lines_lie_under_the_bars_and_their_numbers():
    """The LB and mean lines struck the totals next to them: they are drawn below the traces."""
    from packviz.teach.eplb_lessons import chapter_steps
    from packviz.teach.lesson_frames import lesson_frames
    from packviz.teach.lessons import CHAPTER_BY_KEY
    from packviz.viz.figures import bars_figure, lesson_figure

    trace = CHAPTER_BY_KEY["one-swap"].run().traces[0]
    frames = lesson_frames(trace)
    figure = lesson_figure(trace, frames, len(frames) - 1, 183.0)
    assert figure.layout.shapes and all(shape.layer == "below" for shape in figure.layout.shapes)
    chapter = CHAPTER_BY_KEY["replication"]
    bars = chapter_steps(chapter.eplb, chapter.loads, chapter.num_packs)[-1].bars
    assert all(shape.layer == "below" for shape in bars_figure(bars).layout.shapes)


def test_a_crowded_swap_names_its_moved_items_and_puts_each_packs_distance_on_its_own_line():
    """Chapter 8 (6 packs, before and after): the traded items lost their labels and the two panels'
    subtitles ran into each other at 1366 px."""
    from packviz.teach.lesson_frames import lesson_frames
    from packviz.teach.lessons import CHAPTER_BY_KEY
    from packviz.trace.events import Swapped
    from packviz.viz.figures import lesson_figure

    trace = CHAPTER_BY_KEY["paired"].run().traces[0]
    frames = lesson_frames(trace)
    index = max(i for i, f in enumerate(frames) if isinstance(f.event, Swapped))
    swap = frames[index].event
    figure = lesson_figure(trace, frames, index, 217.0)
    named = sorted(a.text for a in figure.layout.annotations if a.showarrow)
    assert named == sorted(str(i) for i in (*swap.items_from_a, *swap.items_from_b))
    headings = [a.text for a in figure.layout.annotations if a.text and a.text.startswith(("before", "after"))]
    assert len(headings) == 2 and all(h.count("<br>") == 2 for h in headings)


def test_a_distance_from_the_mean_reads_to_the_means_decimals():
    from packviz.text import format_deviation

    assert format_deviation(2.8333333, 216.1666667) == "+2.83"  # beside "mean 216.17"
    assert format_deviation(-21.666667, 181.666667) == "-21.67"
    assert format_deviation(3.0, 180.0) == "+3"
    assert format_deviation(0.001, 216.1666667) == "0"  # no "+0.00" or "-0"


def test_a_total_is_never_struck_by_a_reference_line():
    from hypothesis import given
    from hypothesis import strategies as st

    from packviz.viz.figures import clear_of_lines

    @given(values=st.lists(st.floats(0, 300), min_size=1, max_size=8),
           lines=st.lists(st.floats(0, 300), max_size=3), units=st.floats(1, 40))
    def check(values, lines, units):
        for value, placed in zip(values, clear_of_lines(values, [*lines, None], units)):
            assert placed >= value  # on its bar or over it, never into it
            # no line crosses the text's height over where it is set
            assert not [line for line in lines if placed - 0.1 * units < line <= placed + units], (placed, lines)
    check()
