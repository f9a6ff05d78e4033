"""The Learn page's core: events, pseudo-code, narration, the quiz and the chapters, on real runs."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from packviz import PRESETS, pack, replay
from packviz.config import resolve_config
from packviz.teach.lessons import CHAPTER_BY_KEY, CHAPTERS, TWO_SWAP_LOADS, format_loads, parse_loads
from packviz.teach.narration import explore, learn
from packviz.teach.pseudocode import line_of, lines
from packviz.teach.quiz import describe_trade, question_for
from packviz.teach.reference import best_option, next_pack, swap_options
from packviz.trace.events import EVENT_KINDS, Chosen, FillStarted, Placed, Pruned, RefinementStopped, Swapped
from packviz.trace.state import EventMismatch, PackState
from packviz.trace.timeline import build_frames, state_before

SMALL = {"num_restarts": 16, "num_refined": 4}


def _options(preset: str) -> dict:
    return SMALL if preset.startswith("restarts") else {}


@settings(max_examples=25, deadline=None)
@given(loads=st.lists(st.integers(0, 50), min_size=12, max_size=12), packs=st.sampled_from([2, 3, 4, 6]),
       preset=st.sampled_from(sorted(PRESETS)), seed=st.integers(0, 9))
def test_events_replay_to_the_engines_placement_for_every_preset_and_candidate(loads, packs, preset, seed):
    weight = torch.tensor([loads], dtype=torch.float64)
    result = pack(weight, packs, preset, seed=seed, trace_layers=[0], **_options(preset))
    trace = result.traces[0]
    pack_index, rank_in_pack = replay(trace)
    assert torch.equal(pack_index, result.pack_index[0]) and torch.equal(rank_in_pack, result.rank_in_pack[0])
    story = trace.story()
    assert isinstance(story[0], FillStarted) and isinstance(story[-1], Chosen)
    assert sum(isinstance(e, Placed) for e in story) == 12
    assert sum(isinstance(e, Pruned) for e in story) == 1 and sum(isinstance(e, RefinementStopped) for e in story) == 1
    kinds = [e.kind for e in story]
    # one stream, in the order things happened
    assert kinds.index("pruned") > max(i for i, k in enumerate(kinds) if k == "placed")
    assert all(kinds.index("pruned") < i < kinds.index("refinement_stopped") for i, k in enumerate(kinds)
               if k == "swapped")
    assert list(build_frames(trace)[-1].loads) == pytest.approx(result.pack_loads[0].tolist(), rel=1e-12, abs=1e-9)
    for candidate in range(len(trace.candidates)):
        state = PackState(trace.weight, packs)
        for event in trace.story(candidate):
            state.apply(event)
        assert state.complete and state.counts() == [12 // packs] * packs


def test_a_swap_that_does_not_fit_the_state_is_refused():
    result = pack(torch.tensor([list(TWO_SWAP_LOADS)], dtype=torch.float64), 3, "restarts-2swap", num_restarts=1,
                  trace_layers=[0])
    trace = result.traces[0]
    state = PackState(trace.weight, 3)
    swap = trace.chosen_candidate.swaps[0]
    with pytest.raises(EventMismatch):
        state.apply(swap)  # nothing placed yet


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("scope", ["extremes", "top-k", "heaviest-vs-all", "paired"])
def test_every_event_kind_maps_to_a_pseudocode_line(preset, scope):
    config = resolve_config(preset, swap_scope=scope)
    text = lines(config)
    events = [FillStarted(0, 0.0, (0,)), Placed(0, 0, 1.0, 0, 0, 1.0), Pruned((0.0,), (0,), "spread"),
              Swapped(0, "1-swap", 0, 1, (0,), (1,), (0,), (0,), 2.0, 1.0, 2.0, 0.0),
              RefinementStopped(1, "no improving move"), Chosen(0, 0, 1, "spread", 1.0, 0.0)]
    assert sorted(e.kind for e in events) == sorted(EVENT_KINDS)
    seen = set()
    for event in events:
        if event.kind == "swapped" and not config.refines:
            continue
        line = line_of(event, config)
        assert 0 <= line < len(text)
        seen.add(line)
    keywords = {"placed": "pack", "chosen": "return", "pruned": "prun", "fill_started": "order"}
    for event in events:
        if event.kind in keywords:
            assert keywords[event.kind] in text[line_of(event, config)]
    assert len(seen) == len(events) - (0 if config.refines else 1)


def test_the_crafted_instance_needs_a_two_swap():
    """At the greedy fill of the two-swap chapter no 1-swap between the heaviest and
    lightest pack has 0 < d < D, and a 2-swap does."""
    chapter = CHAPTER_BY_KEY["two-swap"]
    trace = chapter.run().traces[0]
    frames = build_frames(trace)
    filled = state_before(trace, frames, next(i for i, f in enumerate(frames) if f.phase == "prune") + 1)
    heaviest, lightest = filled.heaviest(), filled.lightest()
    assert best_option(swap_options(filled, heaviest, lightest, 1)) is None
    two = best_option(swap_options(filled, heaviest, lightest, 2))
    assert two is not None and two.helps
    # and the engine agrees: 1-swaps alone never move, the real run opens with that 2-swap
    stuck = chapter.run(two_swap=False).traces[0].chosen_candidate
    assert stuck.swaps == [] and stuck.stopped.reason == "no improving move"
    first = trace.chosen_candidate.swaps[0]
    assert first.move_kind == "2-swap" and first.moved_load == pytest.approx(two.moved)
    assert trace.chosen_candidate.final_spread < stuck.final_spread


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)]


@pytest.mark.parametrize("key", ["one-swap", "two-swap", "paired", "greedy"])
def test_narration_numbers_are_the_traces(key):
    trace = CHAPTER_BY_KEY[key].run().traces[0]
    frames = build_frames(trace)
    for index, frame in enumerate(frames):
        event = frame.event
        said, short = learn(trace, frames, index), explore(trace, frames, index)
        if isinstance(event, Swapped):
            d_match = re.search(r"d = (-?[\d,.]+)", said)
            big_d = re.search(r"D = (-?[\d,.]+)", said)
            assert float(d_match.group(1).replace(",", "")) == pytest.approx(event.moved_load, abs=0.5)
            assert float(big_d.group(1).replace(",", "")) == pytest.approx(event.difference_before, abs=0.5)
            assert f"pack {event.pack_a}" in said and f"pack {event.pack_b}" in said
            before = state_before(trace, frames, index)
            assert event.difference_before == pytest.approx(before.loads[event.pack_a] - before.loads[event.pack_b])
            assert 0 < event.moved_load < event.difference_before
            assert f"spread {event.spread_before:,.0f} to {event.spread_after:,.0f}" in short
        if isinstance(event, Placed):
            assert said.startswith(f"Item {event.item} (load {event.load:,.0f}) goes to pack {event.pack}") or \
                said.startswith("Every pack is empty")
            before = state_before(trace, frames, index)
            assert next_pack(before) == event.pack
            lightest = re.search(r"lightest, at (-?[\d,.]+)", said)
            assert float(lightest.group(1).replace(",", "")) == pytest.approx(before.loads[event.pack])


def test_the_quiz_answer_is_the_recorded_event():
    trace = CHAPTER_BY_KEY["two-swap"].run().traces[0]
    frames = build_frames(trace)
    asked = 0
    for index in range(len(frames) - 1):
        question = question_for(trace, frames, index)
        event = frames[index + 1].event
        if question is None:
            assert not isinstance(event, Swapped)
            continue
        asked += 1
        assert question.answer in question.options and len(set(question.options)) == len(question.options)
        if isinstance(event, Placed):
            assert question.answer == f"pack {event.pack}"
        else:
            assert question.answer == describe_trade(event.items_from_a, event.items_from_b, event.moved_load)
            assert len(question.options) >= 2
        assert question.explanation.startswith(learn(trace, frames, index + 1))
        assert question.is_right(question.answer) and all(question.is_right(a) for a in question.accepted)
        wrong = [option for option in question.options if not question.is_right(option)]
        assert wrong and not any(question.is_right(option) for option in wrong)
    assert asked >= 10


def test_a_trade_as_good_as_the_recorded_one_also_counts_as_right():
    """Two-swap chapter, before the 2-swap: d = 4 and d = 10 are equally close to D/2 = 7."""
    trace = CHAPTER_BY_KEY["two-swap"].run().traces[0]
    frames = build_frames(trace)
    index = next(i for i, f in enumerate(frames) if isinstance(f.event, Swapped)) - 1
    question = question_for(trace, frames, index)
    tied = [option for option in question.options if "(d = 4)" in option]
    assert question.answer.endswith("(d = 10)") and tied and all(question.is_right(t) for t in tied)


def test_each_chapter_shows_what_its_text_claims():
    runs = {chapter.key: chapter.run().traces[0] for chapter in CHAPTERS}
    assert runs["greedy"].chosen_candidate.swaps == []
    one = runs["one-swap"].chosen_candidate.swaps
    assert len(one) >= 2 and all(s.move_kind == "1-swap" for s in one)
    spreads = runs["restarts"].restart_spreads
    assert len(set(spreads)) >= 3 and min(spreads[1:]) < spreads[0]
    assert runs["pruning"].kept_restarts[0] == 0 and len(runs["pruning"].kept_restarts) == 3
    assert runs["choice"].chosen_candidate.restart != 0
    paired = runs["paired"].chosen_candidate.swaps
    iterations = [s.iteration for s in paired]
    assert max(iterations.count(i) for i in set(iterations)) >= 2
    two = runs["two-swap"].chosen_candidate
    assert two.spread_history[0] == 14 and two.final_spread == 1
    differencing = runs["differencing"]
    assert differencing.chosen_candidate.restart == 1 and differencing.chosen_candidate.final_spread == 2
    assert [c.events[0].rule for c in differencing.candidates if c.restart == 0] == ["greedy"]
    assert differencing.chosen_candidate.events[0].rule == "differencing"
    greedy_only = CHAPTER_BY_KEY["differencing"].run(**CHAPTER_BY_KEY["differencing"].compare_options)
    assert greedy_only.traces[0].chosen_candidate.final_spread == 18
    for key, trace in runs.items():
        assert len(build_frames(trace)) == len(trace.story()), key


def test_loads_travel_in_links_and_bad_ones_say_why():
    loads = (48.0, 20.5, 0.0)
    assert parse_loads(format_loads(loads), 3) == loads
    assert format_loads((48.0, 20.5)) == "48,20.5"
    for text, packs, message in (("1,2,x", 3, "item 2: 'x' is not a number"), ("1,2", 3, "do not split"),
                                 ("1,-2,3", 3, "item 1: '-2' is not a finite number >= 0"), ("1", 1, "2 to 64"),
                                 ("1,inf,3", 3, "finite number"), ("1, ,3", 3, "item 1 has no load")):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_loads(text, packs)


def test_the_differencing_chapter_says_how_its_fill_works():
    trace = CHAPTER_BY_KEY["differencing"].run().traces[0]
    frames = build_frames(trace)
    opening = learn(trace, frames, 0)
    assert "rows of one item per pack" in opening and "This is restart 1" in opening
    assert "lightest pack that still has room" not in opening


def test_pruning_by_max_load_does_not_claim_the_greedy_is_kept():
    generator = torch.Generator().manual_seed(4)
    for _ in range(50):
        weight = torch.randint(1, 100, (1, 24), generator=generator).double()
        trace = pack(weight, 4, "best", trace_layers=[0]).traces[0]
        if 0 not in trace.kept_restarts:
            break
    else:
        pytest.fail("no instance where best drops the greedy")
    frames = build_frames(trace)
    pruning = next(i for i, f in enumerate(frames) if isinstance(f.event, Pruned))
    said = learn(trace, frames, pruning)
    assert "always kept" not in said and "No fill heavier than restart 0" in said and "not needed" in said


def test_practice_questions_come_from_fresh_real_runs_and_every_wrong_option_says_why():
    from packviz.teach.practice import fresh_question

    seen = set()
    for seed in range(12):
        practice = fresh_question(seed)
        question, trace, frames = practice.question, practice.trace, practice.frames
        seen.add(tuple(trace.weight))
        event = frames[practice.index + 1].event
        if isinstance(event, Placed):
            assert question.answer == f"pack {event.pack}"
        else:
            assert question.answer == describe_trade(event.items_from_a, event.items_from_b, event.moved_load)
        for option in question.options:
            verdict = question.verdict(option)
            if option == question.answer:
                assert verdict.startswith(f"Right: {option}")
            else:
                assert question.reason(option), option  # told why, never only "wrong"
                assert verdict.startswith("Right too" if question.is_right(option) else "Not this time")
    assert len(seen) == 12  # a new instance every time
    assert fresh_question(3) == fresh_question(3)


def test_a_tie_is_right_and_says_which_pack_the_run_takes():
    trace = CHAPTER_BY_KEY["greedy"].run().traces[0]
    frames = build_frames(trace)
    question = question_for(trace, frames, 1)  # packs 1 and 2 both empty
    tied = question.accepted[0]
    said = question.verdict(tied)
    assert said.startswith(f"Right too: {tied} is as light as {question.answer}")
    assert f"the run takes the lowest number, {question.answer}" in said


def test_a_wrong_trade_that_is_allowed_is_told_it_is_farther_from_half_of_d():
    trace = CHAPTER_BY_KEY["two-swap"].run().traces[0]
    frames = build_frames(trace)
    index = next(i for i, f in enumerate(frames) if isinstance(f.event, Swapped) and f.event.move_kind == "1-swap")
    question = question_for(trace, frames, index - 1)
    reasons = [question.reason(o) for o in question.options if not question.is_right(o)]
    assert reasons and all(("farther from D/2" in r) or ("not more than 0" in r) or ("not less than D" in r)
                           for r in reasons)
