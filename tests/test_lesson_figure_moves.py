"""A move in Learn's step figure reads on a laptop: arrows that do not knot, labels that do not collide."""

from __future__ import annotations

import itertools
import re

import pytest

from packviz.teach.lesson_frames import lesson_frames
from packviz.teach.lessons import CHAPTER_BY_KEY
from packviz.teach.narration import fmt
from packviz.viz.figures import ARROW_COLOUR, lesson_step_figure

PRESENT_FONT = 22  # what Learn's present mode asks for


def swap_steps(key: str):
    trace = CHAPTER_BY_KEY[key].run().traces[0]
    frames = lesson_frames(trace)
    return trace, frames, [f.index for f in frames if f.phase == "refine" and f.event.kind == "swapped"]


def arrows(figure) -> list:
    return [a for a in figure.layout.annotations if a.showarrow and a.arrowcolor == ARROW_COLOUR]


def crosses(p1, p2, q1, q2) -> bool:
    """Whether segments p1-p2 and q1-q2 cross (touching ends count)."""
    def turn(a, b, c):
        value = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return (value > 1e-12) - (value < -1e-12)

    return turn(p1, p2, q1) * turn(p1, p2, q2) <= 0 and turn(q1, q2, p1) * turn(q1, q2, p2) <= 0


@pytest.mark.parametrize("key", ["paired", "two-swap", "one-swap"])
def test_each_moved_item_has_one_arrow_from_its_pack_to_the_other_and_no_two_cross(key):
    trace, frames, steps = swap_steps(key)
    assert steps
    for index in steps:
        swap = frames[index].event
        figure = lesson_step_figure(trace, frames, index, 100.0, height=470, font=PRESENT_FONT)
        drawn = arrows(figure)
        assert len(drawn) == len(swap.items_from_a) + len(swap.items_from_b)
        segments = [((a.ax, a.ay), (a.x, a.y)) for a in drawn]
        ends = sorted((round(tail[0]), round(head[0])) for tail, head in segments)
        assert ends == sorted([(swap.pack_a, swap.pack_b)] * len(swap.items_from_a)
                              + [(swap.pack_b, swap.pack_a)] * len(swap.items_from_b))
        for (tail, head) in segments:
            # inside the bars' bands, not at the packs' tops: arrows start and end within a bar
            assert abs(tail[0] - round(tail[0])) < 0.375 and abs(head[0] - round(head[0])) < 0.375
            assert 0 < tail[1] < max(frames[index - 1].loads) and 0 < head[1] < max(frames[index].loads)
        for first, second in itertools.combinations(segments, 2):
            assert not crosses(*first, *second), (key, index, first, second)


def test_step_28_of_the_paired_chapter_is_a_two_for_two_trade_drawn_as_opposite_arrows():
    trace, frames, _ = swap_steps("paired")
    before, after = frames[27], frames[28]
    swap = after.event
    assert (len(swap.items_from_a), len(swap.items_from_b)) == (2, 2)
    drawn = arrows(lesson_step_figure(trace, frames, 28, 100.0, height=470, font=PRESENT_FONT))

    def centre(frame, pack, item):
        row = frame.slots[pack]
        return sum(trace.weight[i] for i in row[:row.index(item)]) + trace.weight[item] / 2

    lifts = set()
    for items, source, target, sign in ((swap.items_from_a, swap.pack_a, swap.pack_b, 1),
                                        (swap.items_from_b, swap.pack_b, swap.pack_a, -1)):
        for item in items:
            # from the item where it is to where it lands, pack A's above and pack B's below those heights
            found = [a for a in drawn if round(a.ax) == source
                     and a.ay - centre(before, source, item) == pytest.approx(a.y - centre(after, target, item))]
            assert len(found) == 1
            lifts.add(round(sign * (found[0].y - centre(after, target, item)), 9))
    assert len(lifts) == 1 and lifts.pop() > 0


def test_a_crowded_move_labels_only_its_two_packs_and_numbers_the_ticks():
    trace, frames, steps = swap_steps("paired")
    assert trace.num_packs * 2 > 8  # two panels of six packs
    for index in steps:
        swap = frames[index].event
        figure = lesson_step_figure(trace, frames, index, 100.0, height=470, font=PRESENT_FONT)
        # the distance bars carry no numbers (neighbours' labels touched); the titles name the two packs'
        assert not [t for t in figure.data if t.name == "distance to the mean"]
        titles = [a.text for a in figure.layout.annotations if a.text.startswith(("before the swap", "after"))]
        for title in titles:
            named = {int(p) for p in re.findall(r"pack (\d+) [+-]", title)}
            assert named == {swap.pack_a, swap.pack_b}, title
        # each pack's number and total under it, in type a room reads
        for axis, panel in ((figure.layout.xaxis3, frames[index - 1]), (figure.layout.xaxis4, frames[index])):
            assert list(axis.ticktext) == [f"{p}<br><b>{fmt(panel.loads[p])}</b>" for p in range(trace.num_packs)]
            assert axis.tickfont.size >= 16


def test_a_roomy_step_keeps_every_packs_distance_label():
    trace, frames, steps = swap_steps("one-swap")  # 3 packs: two panels of three fit
    figure = lesson_step_figure(trace, frames, steps[0], 100.0)
    distances = [t for t in figure.data if t.name == "distance to the mean"]
    assert len(distances) == 2 and all(len(t.text) == 3 and all(t.text) for t in distances)


@pytest.mark.parametrize("bars", [9, 16, 17, 32, 64, 100, 512])
def test_many_packs_are_numbered_every_few_with_at_most_sixteen_numbers(bars):
    from packviz.viz.figures import _tick_step

    step = _tick_step(bars)
    assert bars / step <= 16 and (step == 1 or bars / (step // 2 or 1) > 16)
    assert str(step)[0] in "125" and set(str(step)[1:]) <= {"0"}


def test_a_presenter_step_of_32_packs_numbers_every_fifth_pack_and_fits_the_line_names():
    import torch

    from packviz.config import resolve_config
    from packviz.packer import pack
    from packviz.trace.timeline import build_frames
    from packviz.viz.figures import lesson_figure

    generator = torch.Generator().manual_seed(3)
    weight = torch.randint(1, 1000, (1, 32 * 9), generator=generator).double()
    trace = pack(weight, 32, resolve_config("fast"), trace_layers=[0]).traces[0]
    frames = build_frames(trace)
    index = next(f.index for f in frames if f.phase == "refine" and f.event.kind == "swapped")
    figure = lesson_figure(trace, frames, index, 100.0, font=PRESENT_FONT)
    stacks = (figure.layout.xaxis3, figure.layout.xaxis4)
    assert all(list(axis.ticktext) == [str(p) for p in range(0, 32, 5)] for axis in stacks)
    names = [a.text for a in figure.layout.annotations if a.text.startswith(("LB ", "mean "))]
    assert len(names) == 2
    # about half an em a character at the names' size, and some room
    assert figure.layout.margin.r >= 0.5 * (PRESENT_FONT - 2) * max(map(len, names))
