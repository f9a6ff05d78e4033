"""The step-by-step frames, rebuilt from real traces of every preset, checked against the engine's result,
and the numbers their narration says checked against the trace."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import torch
from oracles import TRACED_PRESET_OPTIONS

import packviz
from packviz.data.generators import moe
from packviz.teach.narration import explore, learn
from packviz.trace.events import Chosen, FillStarted, Placed, Pruned, RefinementStopped, Swapped
from packviz.trace.replay import LayerTrace
from packviz.trace.timeline import PHASES, Frame, build_frames, phase_starts, state_before

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
PRESET_OPTIONS = TRACED_PRESET_OPTIONS
LOAD_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Shape:
    weight: torch.Tensor
    num_packs: int
    traced_layer: int


def read_sample_csv(file_name: str) -> tuple[list[str], torch.Tensor]:
    with open(SAMPLE_DIR / file_name, newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return header, torch.tensor([[float(cell) for cell in row] for row in rows], dtype=torch.float64)


def make_shape(name: str) -> Shape:
    if name == "teaching":
        return Shape(read_sample_csv("teaching_12_items.csv")[1], 3, 0)
    if name == "deepseek_readme_layer_1":
        return Shape(read_sample_csv("deepseek_readme.csv")[1], 4, 1)
    if name == "random_integers":
        generator = torch.Generator().manual_seed(0)
        return Shape(torch.randint(1, 1000, (3, 48), generator=generator).double(), 8, 2)
    if name == "random_floats":
        generator = torch.Generator().manual_seed(1)
        return Shape(torch.rand(2, 32, generator=generator, dtype=torch.float64) * 50, 4, 0)
    if name == "one_item_per_pack":
        return Shape(torch.tensor([[5.0, 3.0, 9.0, 1.0, 7.0]]), 5, 0)
    if name == "moe":
        return Shape(moe(2, 32, seed=3), 8, 1)
    raise KeyError(name)


SHAPE_NAMES = ["teaching", "deepseek_readme_layer_1", "random_integers", "random_floats", "one_item_per_pack",
               "moe"]
CASES = [(shape_name, preset) for shape_name in SHAPE_NAMES for preset in PRESET_OPTIONS]


@cache
def packed(shape_name: str, preset: str) -> tuple[Shape, packviz.PackResult, LayerTrace]:
    shape = make_shape(shape_name)
    result = packviz.pack(shape.weight, shape.num_packs, preset, trace_layers=[shape.traced_layer],
                          **PRESET_OPTIONS[preset])
    return shape, result, result.traces[shape.traced_layer]


def expected_phases(trace: LayerTrace, candidate_index: int) -> list[str]:
    candidate = trace.candidates[candidate_index]
    return (["start"] + ["fill"] * len(candidate.placements) + ["prune"] * (trace.pruned is not None)
            + ["refine"] * len(candidate.swaps) + ["stop"] * (candidate.stopped is not None) + ["final"])


def pack_sums(frame: Frame, weight: list[float]) -> list[float]:
    return [sum(weight[item] for item in row if item >= 0) for row in frame.slots]


def changed_packs(before: Frame, after: Frame) -> set[int]:
    return {pack for pack in range(len(after.slots))
            if before.loads[pack] != after.loads[pack] or before.slots[pack] != after.slots[pack]}


def filled_slots(frame: Frame) -> int:
    return sum(item >= 0 for row in frame.slots for item in row)


# ----- the frames


@pytest.mark.parametrize(("shape_name", "preset"), CASES)
def test_frames_are_start_fills_prune_refines_stop_final_in_order(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    frames = build_frames(trace)
    assert trace.choice is not None and trace.pruned is not None
    assert len(trace.chosen_candidate.placements) == trace.num_items
    assert [frame.phase for frame in frames] == expected_phases(trace, trace.chosen)
    assert [frame.index for frame in frames] == list(range(len(frames)))
    assert [frame.event for frame in frames] == trace.story()
    assert {frame.phase for frame in frames} <= set(PHASES)


@pytest.mark.parametrize(("shape_name", "preset"), CASES)
def test_start_frame_is_empty(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    start = build_frames(trace)[0]
    assert start.phase == "start" and isinstance(start.event, FillStarted)
    assert start.event.restart == trace.chosen_candidate.restart
    assert len(start.slots) == trace.num_packs
    assert all(row == (-1,) * trace.items_per_pack for row in start.slots)
    assert start.loads == (0.0,) * trace.num_packs
    assert start.highlight == ()
    assert start.spread == 0


@pytest.mark.parametrize(("shape_name", "preset"), CASES)
def test_final_frame_is_the_engines_placement(shape_name, preset):
    shape, result, trace = packed(shape_name, preset)
    final = build_frames(trace)[-1]
    assert final.phase == "final" and isinstance(final.event, Chosen)
    assert final.highlight == ()
    pack_index = result.pack_index[shape.traced_layer].tolist()
    rank_in_pack = result.rank_in_pack[shape.traced_layer].tolist()
    expected_slots = [[-1] * trace.items_per_pack for _ in range(trace.num_packs)]
    for item, (pack, rank) in enumerate(zip(pack_index, rank_in_pack)):
        expected_slots[pack][rank] = item
    assert [list(row) for row in final.slots] == expected_slots
    engine_loads = result.pack_loads[shape.traced_layer]
    torch.testing.assert_close(torch.tensor(final.loads, dtype=torch.float64), engine_loads, rtol=0,
                               atol=LOAD_TOLERANCE)
    assert final.spread == pytest.approx(float(engine_loads.max() - engine_loads.min()), abs=LOAD_TOLERANCE)
    assert final.event.max_load == pytest.approx(max(final.loads), abs=LOAD_TOLERANCE)
    assert final.event.spread == pytest.approx(final.spread, abs=LOAD_TOLERANCE)


@pytest.mark.parametrize(("shape_name", "preset"), CASES)
def test_each_fill_frame_places_one_item_into_one_pack(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    frames = build_frames(trace)
    placements = trace.chosen_candidate.placements
    for index, placement in enumerate(placements, start=1):
        previous, frame = frames[index - 1], frames[index]
        assert frame.phase == "fill" and frame.event == placement
        assert frame.highlight == (placement.item,)
        assert previous.slots[placement.pack][placement.rank] == -1
        assert frame.slots[placement.pack][placement.rank] == placement.item
        assert changed_packs(previous, frame) == {placement.pack}
        assert filled_slots(frame) == filled_slots(previous) + 1 == index
        assert frame.loads[placement.pack] == pytest.approx(previous.loads[placement.pack] + trace.weight[
            placement.item], abs=LOAD_TOLERANCE)
        assert frame.loads[placement.pack] == pytest.approx(placement.pack_load_after, abs=LOAD_TOLERANCE)
        assert placement.load == pytest.approx(trace.weight[placement.item])
        assert list(frame.loads) == pytest.approx(pack_sums(frame, trace.weight), abs=LOAD_TOLERANCE)
    last_fill = frames[len(placements)]
    assert filled_slots(last_fill) == trace.num_items
    assert last_fill.spread == pytest.approx(trace.chosen_candidate.initial_spread, abs=LOAD_TOLERANCE)


@pytest.mark.parametrize(("shape_name", "preset"), CASES)
def test_each_refine_frame_applies_one_swap(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    frames = build_frames(trace)
    refine_indices = [frame.index for frame in frames if frame.phase == "refine"]
    swaps = trace.chosen_candidate.swaps
    assert len(refine_indices) == len(swaps)
    for index, swap in zip(refine_indices, swaps):
        previous, frame = frames[index - 1], frames[index]
        assert frame.event == swap
        assert frame.highlight == swap.items_from_a + swap.items_from_b
        assert len(swap.items_from_a) == len(swap.items_from_b) == {"1-swap": 1, "2-swap": 2}[swap.move_kind]
        assert changed_packs(previous, frame) <= {swap.pack_a, swap.pack_b}
        for item_a, rank_a, item_b, rank_b in zip(swap.items_from_a, swap.ranks_in_a, swap.items_from_b,
                                                  swap.ranks_in_b):
            assert previous.slots[swap.pack_a][rank_a] == item_a
            assert previous.slots[swap.pack_b][rank_b] == item_b
            assert frame.slots[swap.pack_a][rank_a] == item_b
            assert frame.slots[swap.pack_b][rank_b] == item_a
        moved = sum(trace.weight[i] for i in swap.items_from_a) - sum(trace.weight[i] for i in swap.items_from_b)
        assert swap.moved_load == pytest.approx(moved, abs=LOAD_TOLERANCE)
        assert swap.difference_before == pytest.approx(previous.loads[swap.pack_a] - previous.loads[swap.pack_b],
                                                       abs=LOAD_TOLERANCE)
        assert frame.loads[swap.pack_a] == pytest.approx(previous.loads[swap.pack_a] - moved, abs=LOAD_TOLERANCE)
        assert frame.loads[swap.pack_b] == pytest.approx(previous.loads[swap.pack_b] + moved, abs=LOAD_TOLERANCE)
        assert previous.spread == pytest.approx(swap.spread_before, abs=LOAD_TOLERANCE)
        assert frame.spread == pytest.approx(swap.spread_after, abs=LOAD_TOLERANCE)
        assert frame.spread <= previous.spread + LOAD_TOLERANCE


@pytest.mark.parametrize(("shape_name", "preset"), CASES)
def test_prune_stop_and_final_frames_move_nothing(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    frames = build_frames(trace)
    for frame in frames[1:]:
        if frame.phase in ("prune", "stop", "final"):
            previous = frames[frame.index - 1]
            assert frame.slots == previous.slots and frame.loads == previous.loads
            assert frame.highlight == ()


@pytest.mark.parametrize(("shape_name", "preset"), CASES)
def test_phase_starts_are_the_first_frame_of_each_phase(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    frames = build_frames(trace)
    num_fills, num_swaps = len(trace.chosen_candidate.placements), len(trace.chosen_candidate.swaps)
    starts = phase_starts(frames)
    expected = {"start": 0, "fill": 1, "prune": 1 + num_fills}
    if num_swaps:
        expected["refine"] = 2 + num_fills
    expected["stop"] = 2 + num_fills + num_swaps
    expected["final"] = 3 + num_fills + num_swaps
    assert starts == expected
    assert list(starts) == [phase for phase in PHASES if phase in expected]
    for phase, index in starts.items():
        assert frames[index].phase == phase
        assert all(frame.phase != phase for frame in frames[:index])


def test_plain_greedy_has_no_refine_phase():
    _, _, trace = packed("random_integers", "eplb")
    frames = build_frames(trace)
    assert "refine" not in phase_starts(frames)
    assert len(frames) == trace.num_items + 4  # start, fills, prune, stop, final


@pytest.mark.parametrize(("shape_name", "preset"), [("teaching", "restarts-2swap"), ("random_floats", "best"),
                                                    ("moe", "fast")])
def test_state_before_a_frame_is_the_previous_frames_state(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    frames = build_frames(trace)
    empty = state_before(trace, frames, 0)
    assert empty.loads == [0.0] * trace.num_packs and all(item == -1 for item in empty.pack_of)
    for index in range(1, len(frames)):
        before = state_before(trace, frames, index)
        assert before.table() == frames[index - 1].slots
        assert tuple(before.loads) == frames[index - 1].loads
        for pack, row in enumerate(frames[index - 1].slots):
            assert all(before.pack_of[item] == pack for item in row if item >= 0)
        # applying the frame's own event to it gives the frame
        before.apply(frames[index].event)
        assert before.table() == frames[index].slots


# ----- the explorer's narration: the numbers it says are the trace's

NUMBER = r"-?[\d,]*\.?\d+(?:e[-+]\d+)?"
FILL_NARRATION = re.compile(
    rf"Step (\d+): item (\d+) \(load ({NUMBER})\) goes to pack (\d+), (.+); pack (\d+) now holds ({NUMBER})\.$")
SWAP_NARRATION = re.compile(
    rf"([12]-swap) \(move (\d+), iteration (\d+)\): items? ([\d, and]+?) of pack (\d+) trades? places with "
    rf"items? ([\d, and]+?) of pack (\d+), moving ({NUMBER}); spread ({NUMBER}) to ({NUMBER})\.$")
START_NARRATION = re.compile(r"^(\d+) items into (\d+) packs of (\d+): the fill takes them heaviest first"
                             r"(?: \(restart (\d+), noise up to (\d+)%\))? and ")
PRUNE_NARRATION = re.compile(r"^Pruning: (\d+) of (\d+) restarts? kept for refinement, by ")
STOP_NARRATION = re.compile(r"^Refinement stops after (\d+) iterations?: (.+)\.$")
FINAL_NARRATION = re.compile(rf"^Done: candidate (\d+) of (\d+) kept \(restart (\d+)\) wins after (\d+) moves?; "
                             rf"max pack load ({NUMBER}), spread ({NUMBER})\.$")


def assert_shown(text: str, value: float) -> None:
    """A narrated number matches ``value`` up to the narration's rounding (whole numbers from 100 up, four
    significant digits below)."""
    rounding = 0.5 if abs(value) >= 100 else abs(value) * 5e-4
    assert abs(float(text.replace(",", "")) - value) <= rounding + 1e-9, (text, value)


def item_ids(text: str) -> tuple[int, ...]:
    return tuple(int(number) for number in re.findall(r"\d+", text))


@pytest.mark.parametrize(("shape_name", "preset"), CASES)
def test_explore_narration_says_the_traces_numbers(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    frames = build_frames(trace)
    candidate = trace.chosen_candidate
    starts = phase_starts(frames)

    start = START_NARRATION.match(explore(trace, frames, 0))
    assert start, explore(trace, frames, 0)
    assert tuple(map(int, start.group(1, 2, 3))) == (trace.num_items, trace.num_packs, trace.items_per_pack)
    if candidate.noise_scale == 0:
        assert start.group(4) is None
    else:
        assert int(start.group(4)) == candidate.restart
        assert int(start.group(5)) == round(candidate.noise_scale * 100)

    # the first, a middle and the last placement
    for position in sorted({0, trace.num_items // 2, trace.num_items - 1}):
        placement, narration = candidate.placements[position], explore(trace, frames, 1 + position)
        match = FILL_NARRATION.match(narration)
        assert match, narration
        assert int(match.group(1)) == placement.step + 1 == position + 1
        assert int(match.group(2)) == placement.item
        assert_shown(match.group(3), trace.weight[placement.item])
        assert int(match.group(4)) == int(match.group(6)) == placement.pack
        assert_shown(match.group(7), frames[1 + position].loads[placement.pack])
        if trace.items_per_pack == 1:
            assert match.group(5) == "its own pack"

    prune = PRUNE_NARRATION.match(explore(trace, frames, starts["prune"]))
    assert prune, explore(trace, frames, starts["prune"])
    assert (int(prune.group(1)), int(prune.group(2))) == (len(trace.kept_restarts), len(trace.restart_spreads))

    for number, swap in enumerate(candidate.swaps, start=1):
        index = starts["refine"] + number - 1
        narration = explore(trace, frames, index)
        match = SWAP_NARRATION.match(narration)
        assert match, narration
        assert match.group(1) == swap.move_kind
        assert int(match.group(2)) == number
        assert int(match.group(3)) == swap.iteration + 1
        assert item_ids(match.group(4)) == swap.items_from_a
        assert int(match.group(5)) == swap.pack_a
        assert item_ids(match.group(6)) == swap.items_from_b
        assert int(match.group(7)) == swap.pack_b
        assert_shown(match.group(8), swap.moved_load)
        assert_shown(match.group(9), frames[index - 1].spread)
        assert_shown(match.group(10), frames[index].spread)

    stop = STOP_NARRATION.match(explore(trace, frames, starts["stop"]))
    assert stop, explore(trace, frames, starts["stop"])
    assert int(stop.group(1)) == candidate.stopped.iterations
    assert stop.group(2) == candidate.stopped.reason
    if candidate.swaps:
        assert candidate.stopped.iterations >= candidate.swaps[-1].iteration + 1

    final = FINAL_NARRATION.match(explore(trace, frames, len(frames) - 1))
    assert final, explore(trace, frames, len(frames) - 1)
    assert int(final.group(1)) == trace.chosen + 1
    assert int(final.group(2)) == len(trace.candidates)
    assert int(final.group(3)) == candidate.restart
    assert int(final.group(4)) == len(candidate.swaps)
    assert_shown(final.group(5), max(frames[-1].loads))
    assert_shown(final.group(6), frames[-1].spread)


@pytest.mark.parametrize(("shape_name", "preset"), [("teaching", "restarts-2swap"), ("random_integers", "best"),
                                                    ("random_floats", "fast")])
def test_learn_narration_gives_d_and_big_d_of_each_swap(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    frames = build_frames(trace)
    swap_indices = [frame.index for frame in frames if frame.phase == "refine"]
    assert swap_indices
    for index in swap_indices:
        narration = learn(trace, frames, index)
        previous, event = frames[index - 1], frames[index].event
        match = re.search(rf"[Pp]ack (\d+) is heavier than pack (\d+) by D = ({NUMBER})\..* moves d = ({NUMBER}) from "
                          rf"pack (\d+) to pack (\d+)\.", narration)
        assert match, narration
        assert (int(match.group(1)), int(match.group(2))) == (event.pack_a, event.pack_b)
        assert (int(match.group(5)), int(match.group(6))) == (event.pack_a, event.pack_b)
        assert_shown(match.group(3), previous.loads[event.pack_a] - previous.loads[event.pack_b])
        assert_shown(match.group(4), sum(trace.weight[i] for i in event.items_from_a)
                     - sum(trace.weight[i] for i in event.items_from_b))
        # the rule the narration states holds for the numbers it states
        assert 0 < event.moved_load < event.difference_before


def test_learn_narration_names_the_lightest_pack_with_room():
    _, _, trace = packed("teaching", "eplb")
    frames = build_frames(trace)
    for index in range(1, 1 + trace.num_items):
        previous, placement = frames[index - 1], frames[index].event
        room = [pack for pack, row in enumerate(previous.slots) if -1 in row]
        lightest_load = min(previous.loads[pack] for pack in room)
        assert placement.pack in room
        assert previous.loads[placement.pack] == lightest_load
        match = re.search(rf"it is the lightest, at ({NUMBER})\. It now holds ({NUMBER})\.",
                          learn(trace, frames, index))
        assert match, learn(trace, frames, index)
        assert_shown(match.group(1), lightest_load)
        assert_shown(match.group(2), frames[index].loads[placement.pack])


# ----- the teaching sample: 2-swaps, told in the plural


def test_teaching_sample_two_swap_frames():
    _, result, trace = packed("teaching", "restarts-2swap")
    candidates_with_two_swaps = [index for index, candidate in enumerate(trace.candidates)
                                 if any(swap.move_kind == "2-swap" for swap in candidate.swaps)]
    assert candidates_with_two_swaps, "restarts-2swap makes no 2-swap on the teaching sample"
    for candidate_index in candidates_with_two_swaps:
        frames = build_frames(trace, candidate=candidate_index)
        for frame in frames:
            if frame.phase != "refine" or frame.event.move_kind != "2-swap":
                continue
            swap = frame.event
            assert len(frame.highlight) == 4 and len(set(frame.highlight)) == 4
            assert (f"items {swap.items_from_a[0]} and {swap.items_from_a[1]} of pack {swap.pack_a} trade places "
                    f"with items {swap.items_from_b[0]} and {swap.items_from_b[1]} of pack {swap.pack_b}"
                    ) in explore(trace, frames, frame.index)
            assert "two items for two" in learn(trace, frames, frame.index)
    # the refined teaching layer beats the plain greedy's spread
    greedy = packviz.pack(trace.weight, trace.num_packs, "eplb").pack_loads[0]
    refined = result.pack_loads[0]
    assert float(refined.max() - refined.min()) < float(greedy.max() - greedy.min())


# ----- another kept candidate


def other_candidate_index(trace: LayerTrace) -> int:
    """A kept candidate that is not the winner, one whose placement differs from the winner's where there is one."""
    others = [index for index in range(len(trace.candidates)) if index != trace.chosen]
    assert others, "the trace kept a single candidate"
    winner = packviz.replay(trace)
    for index in others:
        if not all(torch.equal(mine, theirs) for mine, theirs in zip(packviz.replay(trace, index), winner)):
            return index
    return others[0]


@pytest.mark.parametrize("shape_name", ["teaching", "random_integers", "random_floats", "moe"])
@pytest.mark.parametrize("preset", ["restarts-2swap", "best"])
def test_another_kept_candidate_ends_in_its_own_final_state(shape_name, preset):
    _, _, trace = packed(shape_name, preset)
    index = other_candidate_index(trace)
    candidate = trace.candidates[index]
    frames = build_frames(trace, candidate=index)
    assert [frame.phase for frame in frames] == expected_phases(trace, index)
    assert frames[0].event.restart == candidate.restart
    assert [frame.event for frame in frames if frame.phase == "fill"] == candidate.placements
    assert [frame.event for frame in frames if frame.phase == "refine"] == candidate.swaps
    pack_index, rank_in_pack = packviz.replay(trace, index)
    final = frames[-1]
    for item, (pack, rank) in enumerate(zip(pack_index.tolist(), rank_in_pack.tolist())):
        assert final.slots[pack][rank] == item
    expected_loads = torch.zeros(trace.num_packs, dtype=torch.float64).index_add_(
        0, pack_index, torch.tensor(trace.weight, dtype=torch.float64))
    assert list(final.loads) == pytest.approx(expected_loads.tolist(), abs=LOAD_TOLERANCE)
    assert final.spread == pytest.approx(candidate.final_spread, abs=LOAD_TOLERANCE)
    start = START_NARRATION.match(explore(trace, frames, 0))
    assert start
    if candidate.noise_scale > 0:
        assert int(start.group(4)) == candidate.restart


def test_another_kept_candidates_final_narration_is_true():
    _, _, trace = packed("teaching", "restarts-2swap")
    winner_moves = len(trace.chosen_candidate.swaps)
    others = [index for index, candidate in enumerate(trace.candidates)
              if index != trace.chosen and len(candidate.swaps) != winner_moves]
    if not others:
        pytest.skip("every kept candidate made as many moves as the winner")
    candidate = trace.candidates[others[0]]
    frames = build_frames(trace, candidate=others[0])
    narration = explore(trace, frames, len(frames) - 1)
    moves = len(candidate.swaps)
    assert narration.startswith(f"Done: restart {candidate.restart} ends after {moves} move"), narration
    assert f"max pack load {max(frames[-1].loads):,.0f}, spread {frames[-1].spread:,.0f}" in narration
    assert f"keeps candidate {trace.chosen + 1} (restart {trace.chosen_candidate.restart}) instead" in narration


# ----- one item per pack, and the snake fill


def test_one_item_per_pack_fills_each_pack_once():
    shape, result, trace = packed("one_item_per_pack", "best")
    frames = build_frames(trace)
    assert trace.items_per_pack == 1
    fills = [frame for frame in frames if frame.phase == "fill"]
    assert sorted(frame.slots.index((frame.highlight[0],)) for frame in fills) == list(range(trace.num_packs))
    assert all("its own pack" in explore(trace, frames, frame.index) for frame in fills)
    assert sorted(frames[-1].loads) == sorted(shape.weight[0].tolist())
    assert frames[-1].spread == pytest.approx(float(shape.weight.max() - shape.weight.min()))
    assert result.pack_loads[0].tolist() == list(frames[-1].loads)
    assert "refine" not in phase_starts(frames)


def test_snake_fill_is_narrated_as_snake_order():
    shape = make_shape("random_integers")
    result = packviz.pack(shape.weight, shape.num_packs, "fast", start="snake", trace_layers=[0])
    trace = result.traces[0]
    frames = build_frames(trace)
    assert frames[0].event.snake
    assert "snake order" in explore(trace, frames, 0)
    assert all("snake order" in explore(trace, frames, frame.index) for frame in frames if frame.phase == "fill")
    final_loads = torch.tensor(frames[-1].loads, dtype=torch.float64)
    torch.testing.assert_close(final_loads, result.pack_loads[0], rtol=0, atol=LOAD_TOLERANCE)


def test_events_of_each_phase_have_their_type():
    _, _, trace = packed("random_integers", "restarts-2swap")
    types = {"start": FillStarted, "fill": Placed, "prune": Pruned, "refine": Swapped, "stop": RefinementStopped,
             "final": Chosen}
    for frame in build_frames(trace):
        assert isinstance(frame.event, types[frame.phase])
