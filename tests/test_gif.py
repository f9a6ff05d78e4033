"""The lesson animation as a GIF: frames, timing, colours, outlines and layout."""

from __future__ import annotations

import io
from itertools import pairwise

import pytest
import torch
from PIL import Image, ImageChops

import packviz
from packviz import metrics
from packviz.teach import narration
from packviz.trace import timeline
from packviz.trace.events import Placed
from packviz.viz import gif

WEIGHT = torch.tensor([[48, 20, 77, 48, 48, 68, 99, 82, 34, 45, 72, 36]], dtype=torch.float64)


@pytest.fixture(scope="module")
def lesson():
    trace = packviz.pack(WEIGHT, 3, "restarts-2swap", num_restarts=1, trace_layers=[0]).traces[0]
    frames = timeline.build_frames(trace)
    captions = [narration.learn(trace, frames, i) for i in range(len(frames))]
    lower_bound = float(metrics.lower_bound(WEIGHT, 3)[0])
    return trace, frames, captions, lower_bound


@pytest.fixture(scope="module")
def light(lesson):
    return gif.animation_gif(*lesson)


@pytest.fixture(scope="module")
def dark(lesson):
    return gif.animation_gif(*lesson, dark=True)


def _frames(data: bytes) -> list[Image.Image]:
    image = Image.open(io.BytesIO(data))
    out = []
    for index in range(image.n_frames):
        image.seek(index)
        out.append(image.convert("RGB"))
    return out


def _durations(data: bytes) -> list[int]:
    image = Image.open(io.BytesIO(data))
    durations = []
    for index in range(image.n_frames):
        image.seek(index)
        durations.append(image.info["duration"])
    return durations


def test_the_lesson_has_the_swaps_the_other_tests_rely_on(lesson):
    _, frames, _, _ = lesson
    kinds = [f.event.move_kind for f in frames if f.phase == "refine"]
    assert kinds == ["2-swap", "1-swap", "1-swap"]


def test_gif_has_one_frame_per_step_the_size_asked_and_loops_forever(lesson, light):
    _, frames, _, _ = lesson
    image = Image.open(io.BytesIO(light))
    assert image.format == "GIF"
    assert image.n_frames == len(frames)
    assert image.size == (960, 540)
    assert image.info["loop"] == 0
    assert image.is_animated


def test_each_frame_shows_frame_ms_and_the_last_three_times_as_long(lesson):
    data = gif.animation_gif(*lesson, frame_ms=500)
    durations = _durations(data)
    assert durations[:-1] == [500] * (len(durations) - 1)
    assert durations[-1] == 500 * gif.LAST_FRAME_HOLD == 1500


def test_other_sizes_are_honoured(lesson):
    image = Image.open(io.BytesIO(gif.animation_gif(*lesson, size=(640, 360))))
    assert image.size == (640, 360)
    assert image.n_frames == len(lesson[1])


def test_a_placement_changes_the_pixels_of_its_slot(lesson, light):
    trace, frames, captions, lower_bound = lesson
    images = _frames(light)
    layouts = gif.frame_layouts(trace, frames, lower_bound, captions)
    checked = 0
    for k in range(1, len(frames)):
        event = frames[k].event
        if not isinstance(event, Placed) or not isinstance(frames[k - 1].event, Placed):
            continue
        box = layouts[k].segment_box(frames[k].slots, trace.weight, event.pack, event.rank)
        assert box is not None
        x0, y0, _, y1 = box
        point = (x0 + 8, (y0 + y1) // 2)  # inside the outline, left of the centred label
        assert images[k].getpixel(point) == gif.item_colour(event.item, num_items=trace.num_items)
        assert images[k - 1].getpixel(point) != images[k].getpixel(point)
        plot = (layouts[k].left, layouts[k].top, layouts[k].right, layouts[k].bottom)
        difference = ImageChops.difference(images[k - 1].crop(plot), images[k].crop(plot))
        assert difference.getbbox() is not None
        checked += 1
    assert checked == 11  # the 12 placements, less the first (after the fill-started frame)


def test_a_swap_changes_the_picture(lesson, light):
    trace, frames, captions, lower_bound = lesson
    images = _frames(light)
    layouts = gif.frame_layouts(trace, frames, lower_bound, captions)
    k = next(i for i, f in enumerate(frames) if f.phase == "refine")
    plot = (layouts[k].left, layouts[k].top, layouts[k].right, layouts[k].bottom)
    assert layouts[k] == layouts[k - 1]
    assert ImageChops.difference(images[k - 1].crop(plot), images[k].crop(plot)).getbbox() is not None


def test_the_background_is_light_or_dark(light, dark):
    def brightness(pixel):
        return sum(pixel) / 3

    for image in _frames(light)[:2] + _frames(light)[-1:]:
        assert brightness(image.getpixel((1, 1))) > 230
        assert brightness(image.getpixel((image.width - 2, image.height - 2))) > 230
    for image in _frames(dark)[:2] + _frames(dark)[-1:]:
        assert brightness(image.getpixel((1, 1))) < 40
        assert brightness(image.getpixel((image.width - 2, image.height - 2))) < 40
    assert _frames(light)[0].getpixel((1, 1)) == gif.LIGHT.background
    assert _frames(dark)[0].getpixel((1, 1)) == gif.DARK.background


@pytest.mark.parametrize("dark_mode", [False, True])
def test_the_item_an_event_placed_has_a_thick_outline_that_goes_when_it_is_no_longer_new(lesson, dark_mode):
    trace, frames, captions, lower_bound = lesson
    colours = gif.style(dark_mode)
    images = _frames(gif.animation_gif(*lesson, dark=dark_mode))
    layouts = gif.frame_layouts(trace, frames, lower_bound, captions)
    # frame 1 places item 6 in pack 0, rank 0; frame 2 places item 7 elsewhere
    assert frames[1].highlight == (6,) and frames[2].highlight == (7,)
    assert frames[2].slots[0][0] == 6 and layouts[1] == layouts[2]
    x0, y0, x1, y1 = layouts[1].segment_box(frames[1].slots, trace.weight, 0, 0)
    middle = (y0 + y1) // 2
    for dx in (1, 2, 3):
        assert images[1].getpixel((x0 + dx, middle)) == colours.highlight
        assert images[2].getpixel((x0 + dx, middle)) == gif.item_colour(6, dark_mode, trace.num_items)
    assert images[1].getpixel(((x0 + x1) // 2, y0 + 2)) == colours.highlight
    assert images[2].getpixel(((x0 + x1) // 2, y0 + 2)) == gif.item_colour(6, dark_mode, trace.num_items)


def test_a_swap_outlines_the_items_it_moved_even_below_the_axis_break(lesson, light):
    trace, frames, captions, lower_bound = lesson
    images = _frames(light)
    layouts = gif.frame_layouts(trace, frames, lower_bound, captions)
    k = next(i for i, f in enumerate(frames) if f.phase == "refine")
    assert layouts[k].zoomed
    for item in frames[k].highlight:
        pack, rank = next((p, r) for p, row in enumerate(frames[k].slots) for r, i in enumerate(row) if i == item)
        x0, y0, _, y1 = layouts[k].segment_box(frames[k].slots, trace.weight, pack, rank)
        assert layouts[k].top <= y0 < y1 <= layouts[k].bottom
        assert images[k].getpixel((x0 + 1, (y0 + y1) // 2)) == gif.LIGHT.highlight


def test_items_keep_their_okabe_ito_colour_and_neighbours_of_one_colour_stay_apart(lesson, light):
    trace, frames, captions, lower_bound = lesson
    assert [gif.item_colour(i) for i in range(16)] == [gif._rgb(c) for c in gif.OKABE_ITO * 2]
    assert gif.item_colour(7, dark=True) != gif.DARK.background
    images = _frames(light)
    layouts = gif.frame_layouts(trace, frames, lower_bound, captions)
    last = len(frames) - 1
    for pack, row in enumerate(frames[last].slots):
        for rank in range(1, len(row)):
            x0, _, _, y1 = layouts[last].segment_box(frames[last].slots, trace.weight, pack, rank)
            if y1 < layouts[last].break_px - 3:  # not on the zigzag of the break
                assert images[last].getpixel((x0 + 8, y1)) == gif.LIGHT.background  # the thin line between
                assert images[last].getpixel((x0 + 8, y1 - 2)) == gif.item_colour(row[rank], num_items=trace.num_items)


def test_segments_of_a_pack_stack_without_overlap_and_in_proportion_to_their_loads(lesson):
    trace, frames, captions, lower_bound = lesson
    layouts = gif.frame_layouts(trace, frames, lower_bound, captions)
    weight = trace.weight
    fill = next(i for i, f in enumerate(frames) if f.phase == "prune") - 1  # the last placement, axis from 0
    layout = layouts[fill]
    assert not layout.zoomed and layout.y_min == 0
    scale = (layout.bottom - layout.top) / (layout.y_max - layout.y_min)
    spans = []
    for pack, row in enumerate(frames[fill].slots):
        boxes = [layout.segment_box(frames[fill].slots, weight, pack, rank) for rank in range(len(row))]
        assert boxes[0][3] == layout.bottom
        for below, above in pairwise(boxes):
            assert above[3] == below[1]  # shares its lower edge with the top of the one below
            assert above[1] < above[3]
        for box, item in zip(boxes, row):
            assert abs((box[3] - box[1]) - weight[item] * scale) <= 1
            assert box[0] == boxes[0][0] and box[2] == boxes[0][2]
        assert abs((layout.bottom - boxes[-1][1]) - frames[fill].loads[pack] * scale) <= 1
        spans.append((boxes[0][0], boxes[0][2]))
    for left, right in pairwise(spans):
        assert left[1] < right[0]  # bars do not touch
    assert layout.segment_box(frames[1].slots, weight, 1, 0) is None  # an empty slot has no box


def test_the_axis_starts_at_zero_for_the_fill_and_near_the_loads_once_placed(lesson):
    trace, frames, captions, lower_bound = lesson
    layouts = gif.frame_layouts(trace, frames, lower_bound, captions)
    for frame, layout in zip(frames, layouts):
        if frame.phase in ("start", "fill"):
            assert layout.y_min == 0 and not layout.zoomed
        else:
            assert layout.zoomed
            assert 0 < layout.y_min <= min(frame.loads)
            assert layout.y_max > max(*frame.loads, lower_bound)
            # a unit of load is drawn several times taller than on an axis from 0
            unit_px = (layout.break_px - layout.top) / (layout.y_max - layout.y_min)
            assert unit_px >= 3 * (layout.bottom - layout.top) / layout.y_max
            # loads above the break keep one scale
            low, high = layout.y_min, layout.y_max
            assert layout.y_px(low) == layout.break_px and layout.y_px(high) == layout.top
            assert layout.y_px(0) == layout.bottom
    settled = [f for f in frames if f.phase not in ("start", "fill")]
    widest = max(settled, key=lambda f: f.spread)
    layout = layouts[widest.index]
    spread_px = layout.y_px(min(widest.loads)) - layout.y_px(max(widest.loads))
    assert spread_px >= 0.2 * (layout.break_px - layout.top)  # the spread is plain to see
    final = layouts[-1]
    weight = trace.weight
    for pack, row in enumerate(frames[-1].slots):
        boxes = [final.segment_box(frames[-1].slots, weight, pack, rank) for rank in range(len(row))]
        for below, above in pairwise(boxes):
            assert above[3] == below[1]
        assert all(final.top <= b[1] < b[3] <= final.bottom for b in boxes)  # every item shows


def test_the_axis_stays_at_zero_when_loads_are_not_far_above_it():
    uneven = packviz.pack(torch.tensor([[100, 1, 1, 1, 1, 1]], dtype=torch.float64), 2, "restarts-2swap",
                          num_restarts=1, trace_layers=[0]).traces[0]
    uneven_frames = timeline.build_frames(uneven)
    layouts = gif.frame_layouts(uneven, uneven_frames, 102.0, [""] * len(uneven_frames))
    assert all(layout.y_min == 0 for layout in layouts)


def test_item_labels_and_dark_mode_change_the_picture_not_the_frames(lesson, light):
    trace = lesson[0]
    labelled = gif.animation_gif(*lesson, item_labels=[f"expert {i}" for i in range(trace.num_items)])
    assert Image.open(io.BytesIO(labelled)).n_frames == len(lesson[1])
    last_plain, last_labelled = _frames(light)[-1], _frames(labelled)[-1]
    assert ImageChops.difference(last_plain, last_labelled).getbbox() is not None


def test_more_than_the_cap_is_sampled_evenly_keeping_the_first_and_last(lesson):
    trace, frames, captions, lower_bound = lesson
    many = (frames * (600 // len(frames) + 1))[:600]
    many_captions = (captions * (600 // len(captions) + 1))[:600]
    kept = gif.sample_indices(600)
    assert kept[0] == 0 and kept[-1] == 599
    assert len(kept) == gif.MAX_FRAMES == 400
    assert all(b > a for a, b in pairwise(kept))
    assert max(b - a for a, b in pairwise(kept)) <= 2  # even: no long jumps
    assert gif.sample_indices(25) == list(range(25))
    data = gif.animation_gif(trace, many, many_captions, lower_bound, frame_ms=100, size=(320, 200))
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == len(kept) <= 400
    durations = _durations(data)
    assert durations[0] == 100 and durations[-1] == 300


def test_bad_arguments_are_refused(lesson):
    trace, frames, captions, lower_bound = lesson
    with pytest.raises(ValueError, match="captions"):
        gif.animation_gif(trace, frames, captions[:-1], lower_bound)
    with pytest.raises(ValueError, match="no frames"):
        gif.animation_gif(trace, [], [], lower_bound)
    with pytest.raises(ValueError, match="frame_ms"):
        gif.animation_gif(trace, frames, captions, lower_bound, frame_ms=0)
    with pytest.raises(ValueError, match="too small"):
        gif.animation_gif(trace, frames, captions, lower_bound, size=(100, 80))


def test_no_lower_bound_still_draws(lesson):
    trace, frames, captions, _ = lesson
    data = gif.animation_gif(trace, frames, captions, float("nan"))
    assert Image.open(io.BytesIO(data)).n_frames == len(frames)


def test_the_lessons_gif_is_the_pages_picture_step_for_step():
    """One frame per Learn step, the page's item colours (past eight items too), the axis from 0,
    and on a swap an arrow per moved item in the page's moved-item colour."""
    from packviz.teach.lesson_frames import lesson_frames
    from packviz.teach.lessons import CHAPTER_BY_KEY
    from packviz.viz.figures import lesson_step_figure
    from packviz.viz.lesson_style import MOVED_COLOUR, item_rgb, rgb

    trace = CHAPTER_BY_KEY["two-swap"].run().traces[0]
    frames = lesson_frames(trace)
    captions = [narration.learn(trace, frames, i) for i in range(len(frames))]
    bound = float(metrics.lower_bound(torch.tensor([trace.weight], dtype=torch.float64), 3)[0])
    data = gif.animation_gif(trace, frames, captions, bound, break_axis=False)
    assert Image.open(io.BytesIO(data)).n_frames == len(frames)
    layouts = gif.frame_layouts(trace, frames, bound, captions, break_axis=False)
    assert all(layout.y_min == 0 and not layout.zoomed for layout in layouts)
    images = gif.render_frames(trace, frames, captions, bound, break_axis=False)
    swap = next(i for i, f in enumerate(frames) if f.phase == "refine")
    # the page colours item 7 as the GIF does (it was black in the GIF, lavender on the page)
    figure = lesson_step_figure(trace, frames, swap, bound)
    stacks = [t for t in figure.data if t.type == "bar" and any(":" in c for c in t.text or ())]
    bar = next(t for t in stacks if 7 in [int(c.split(":")[0]) for c in t.text if c])
    page_colour = bar.marker.color[[int(c.split(":")[0]) if c else -1 for c in bar.text].index(7)]
    assert rgb(page_colour) == item_rgb(7, trace.num_items) == gif.item_colour(7, num_items=trace.num_items)
    moved = rgb(MOVED_COLOUR)
    before = images[swap - 1]
    layout = layouts[swap]
    gaps = [(x, y) for x in range(layout.left, layout.right) for y in range(layout.top, layout.bottom, 3)
            if all(not (x0 <= x <= x1) for x0, x1 in (layout.bar_span(p) for p in range(trace.num_packs)))]
    assert sum(images[swap].getpixel(p) == moved for p in gaps) > 10  # arrows between the bars
    assert sum(before.getpixel(p) == moved for p in gaps) == 0
