"""What each Learn step draws: every chapter's idea on the chart, and no two consecutive frames alike."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from packviz import pack
from packviz.teach.differencing import merge_stages, recorded_merges
from packviz.teach.lesson_frames import lesson_frames
from packviz.teach.lessons import CHAPTER_BY_KEY, CHAPTERS
from packviz.teach.narration import learn
from packviz.teach.pseudocode import line_of, lines
from packviz.trace.timeline import build_frames
from packviz.viz.figures import lesson_step_figure


def _drawn(trace, frames, index) -> str:
    return json.dumps(lesson_step_figure(trace, frames, index, 100.0).to_dict(), sort_keys=True, default=str)


@pytest.mark.parametrize("key", [chapter.key for chapter in CHAPTERS if chapter.eplb is None])
def test_no_two_consecutive_frames_look_or_read_alike(key):
    trace = CHAPTER_BY_KEY[key].run().traces[0]
    frames = lesson_frames(trace)
    drawn = [_drawn(trace, frames, i) for i in range(len(frames))]
    said = [learn(trace, frames, i) for i in range(len(frames))]
    for index in range(1, len(frames)):
        assert drawn[index] != drawn[index - 1], (key, index, frames[index].event.kind)
        assert said[index] != said[index - 1], (key, index)


def test_pruning_draws_the_kept_and_the_dropped_restarts_side_by_side():
    trace = CHAPTER_BY_KEY["pruning"].run().traces[0]
    frames = lesson_frames(trace)
    index = next(i for i, f in enumerate(frames) if f.phase == "prune")
    bar = lesson_step_figure(trace, frames, index, 100.0).data[0]
    assert list(bar.y) == trace.restart_spreads
    words = [text.split("<br>")[1] for text in bar.text]
    assert words == ["kept" if r in trace.kept_restarts else "dropped" for r in range(len(trace.restart_spreads))]
    assert words.count("dropped") == 3


def test_the_final_choice_draws_every_candidate_side_by_side():
    trace = CHAPTER_BY_KEY["choice"].run().traces[0]
    frames = lesson_frames(trace)
    figure = lesson_step_figure(trace, frames, len(frames) - 1, 100.0)
    titles = [a.text for a in figure.layout.annotations]
    assert len([t for t in figure.data if t.type == "bar"]) == len(trace.candidates) == 3
    assert [t for t in titles if "(wins)" in t] == [f"restart {trace.chosen_candidate.restart} (wins)<br>spread 6"]


def test_the_differencing_chapter_steps_through_its_rows_and_each_merge_on_the_merge_line():
    trace = CHAPTER_BY_KEY["differencing"].run().traces[0]
    frames = lesson_frames(trace)
    merges = [f for f in frames if f.event.kind == "merged"]
    rows = trace.num_items // trace.num_packs
    assert len(merges) == rows  # the cut, then k - 1 merges
    text = lines(trace.config)
    for frame in merges:
        assert "merge" in text[line_of(frame.event, trace.config)]
        figure = lesson_step_figure(trace, frames, frame.index, 100.0)
        assert len([a for a in figure.layout.annotations if a.text.startswith("row ")]) == len(frame.event.rows)
    # the last merge leaves exactly the recorded placement
    recorded = [f for f in build_frames(trace) if f.phase == "fill"][-1]
    assert merges[-1].slots == recorded.slots
    last_row = merges[-1].event.rows[0]
    assert [sorted(column) for column in last_row] == [sorted(items) for items in recorded.slots]
    said = {learn(trace, frames, f.index) for f in merges}
    assert len(said) == len(merges)


@settings(max_examples=40, deadline=None)
@given(loads=st.lists(st.integers(0, 9), min_size=12, max_size=12), packs=st.sampled_from([2, 3, 4, 6]))
def test_the_merges_drawn_rebuild_the_engines_differencing_fill(loads, packs):
    trace = pack(torch.tensor([loads], dtype=torch.float64), packs, "fast", trace_layers=[0]).traces[0]
    for candidate in trace.candidates:
        fill = candidate.fill_started
        if fill.rule == "differencing" and candidate.noise_scale == 0:
            stages = recorded_merges(trace.weight, packs, fill, candidate.placements)
            assert stages is not None and len(stages) == 12 // packs
            assert stages == merge_stages(trace.weight, fill.order, packs)


def test_the_restarts_chapter_steps_like_the_others():
    trace = CHAPTER_BY_KEY["restarts"].run().traces[0]
    frames = lesson_frames(trace)
    kinds = [f.event.kind for f in frames]
    assert kinds[0] == "fill_started" and "swapped" in kinds and kinds[-1] == "chosen"


def test_every_item_of_a_lesson_has_its_own_colour_and_moved_items_a_non_black_outline():
    from packviz.viz.figures import ARROW_COLOUR, item_colour

    for num_items in (8, 12, 24, 64):
        colours = [item_colour(i, num_items) for i in range(num_items)]
        assert len(set(colours)) == num_items
    trace = CHAPTER_BY_KEY["paired"].run().traces[0]
    frames = lesson_frames(trace)
    swap = next(f for f in frames if f.phase == "refine")
    figure = lesson_step_figure(trace, frames, swap.index, 100.0)
    outlines = {colour for bar in figure.data if bar.type == "bar" and bar.marker.line.color is not None
                and not isinstance(bar.marker.line.color, str) for colour, width in
                zip(bar.marker.line.color, bar.marker.line.width) if width >= 4}
    assert outlines == {ARROW_COLOUR}
