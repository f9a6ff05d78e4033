"""Each chapter's words come from its run: on its own loads, on edited loads, and when the claim fails."""

from __future__ import annotations

import random
import re

import pytest
import torch

from packviz.metrics import lower_bound, lower_bounds
from packviz.teach.chapter_texts import chapter_text
from packviz.teach.lessons import CHAPTER_BY_KEY, CHAPTERS
from packviz.teach.narration import learn
from packviz.trace.events import Chosen, Pruned, RefinementStopped
from packviz.trace.timeline import build_frames


def told(key: str, loads: tuple[float, ...] | None = None):
    chapter = CHAPTER_BY_KEY[key]
    trace = chapter.run(loads).traces[0]
    compare = chapter.run(loads, **chapter.compare_options).traces[0] if chapter.compare_options else None
    return chapter_text(key, trace, compare), trace, compare


def numbers(text: str) -> set[float]:
    return {float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


def run_numbers(trace, compare) -> set[float]:
    """Every number a chapter may honestly quote from its run(s)."""
    found: set[float] = set()
    for run in filter(None, (trace, compare)):
        weight = torch.tensor([run.weight], dtype=torch.float64)
        bound = float(lower_bound(weight, run.num_packs)[0])
        found |= {*run.weight, bound, sum(run.weight), *lower_bounds(weight, run.num_packs)[0].tolist()}
        found |= set(range(0, max(run.num_items, 12) + 1))  # counts, items, packs, restarts, rows
        found |= {*run.restart_spreads, *(round(c.noise_scale * 100) for c in run.candidates)}
        for candidate in run.candidates:
            found |= set(candidate.spread_history)
            for swap in candidate.swaps:
                found |= {swap.difference_before, swap.moved_load, swap.spread_after}
        for index in range(len(run.candidates)):
            loads = build_frames(run, index)[-1].loads
            found |= {*loads, max(loads) - min(loads), max(loads) - bound}
    return {round(v, 6) for v in found} | {round(v, 2) for v in found}  # fmt keeps two decimals


@pytest.mark.parametrize("key", [chapter.key for chapter in CHAPTERS if chapter.eplb is None])
def test_each_chapter_shows_its_claim_on_its_own_loads_with_the_runs_numbers(key):
    text, trace, compare = told(key)
    assert text.shows_claim, text.text
    assert "On these loads" not in text.text
    assert numbers(text.text) <= run_numbers(trace, compare), numbers(text.text) - run_numbers(trace, compare)


@pytest.mark.parametrize("key", [chapter.key for chapter in CHAPTERS if chapter.eplb is None])
@pytest.mark.parametrize("seed", range(6))
def test_on_edited_loads_every_number_is_the_edited_runs(key, seed):
    chapter = CHAPTER_BY_KEY[key]
    generator = random.Random(seed)
    loads = tuple(float(generator.randint(1, 300)) for _ in chapter.loads)
    text, trace, compare = told(key, loads)
    assert numbers(text.text) <= run_numbers(trace, compare), numbers(text.text) - run_numbers(trace, compare)
    # a claim the run no longer shows is said in a sentence of its own
    assert text.shows_claim == ("On these loads" not in text.text)


def test_the_problem_chapter_quotes_the_bound_of_the_loads_on_screen():
    text, _, _ = told("problem", (100, 44, 70, 86, 59, 64, 60, 83, 66))
    assert "Here it is 211" in text.text and "183" not in text.text
    own, _, _ = told("problem")
    assert "Here it is 183" in own.text and "64 + 60 + 59" in own.text


def test_the_two_swap_chapter_says_what_the_two_swap_did_and_what_the_one_swaps_did():
    text, trace, compare = told("two-swap")
    swaps = trace.chosen_candidate.swaps
    assert swaps[0].move_kind == "2-swap" and (swaps[0].spread_before, swaps[0].spread_after) == (14, 8)
    assert "takes the spread to 8" in text.text and "take it to 1" in text.text and "14 to 1" not in text.text
    assert f"stops at spread {compare.chosen_candidate.final_spread:.0f}" in text.text


def test_a_chapter_whose_claim_fails_on_edited_loads_says_so():
    # all equal loads: no trade moves anything, no restart differs, no 2-swap helps
    flat = (5.0,) * 12
    for key in ("two-swap", "restarts", "choice"):
        text, _, _ = told(key, flat)
        assert not text.shows_claim and "On these loads" in text.text, key
    one, _, _ = told("one-swap", (5.0,) * 9)
    assert not one.shows_claim and "no 1-swap" in one.text


def _said_at(trace, kind) -> str:
    frames = build_frames(trace)
    return learn(trace, frames, next(i for i, f in enumerate(frames) if isinstance(f.event, kind)))


def test_pruning_says_the_tie_rule_and_what_was_dropped():
    trace = CHAPTER_BY_KEY["pruning"].run().traces[0]
    spreads, kept = trace.restart_spreads, trace.kept_restarts
    said = _said_at(trace, Pruned)
    dropped = [r for r in range(len(spreads)) if r not in kept]
    assert all(f"restart {r} ({spreads[r]:.0f})" in said.split("Dropped:")[1] for r in dropped)
    tie = [r for r in dropped if spreads[r] == spreads[kept[-1]]]
    assert tie, "the chapter's instance has a tie at the cut"
    assert f"Restart {tie[0]} ties with restart {kept[-1]}" in said and "lower restart number" in said


def test_a_run_without_refinement_never_speaks_of_refining():
    trace = CHAPTER_BY_KEY["differencing"].run().traces[0]
    for kind in (Pruned, RefinementStopped, Chosen):
        said = _said_at(trace, kind)
        assert "go on to refinement" not in said and "refined candidates" not in said, said
        assert "This preset does not refine" not in said, said
    assert "0 iterations" in _said_at(trace, RefinementStopped)


def test_the_final_choice_names_every_candidates_spread():
    trace = CHAPTER_BY_KEY["choice"].run().traces[0]
    said = _said_at(trace, Chosen)
    for candidate in trace.candidates:
        if candidate.restart != trace.chosen_candidate.restart:
            assert f"{candidate.final_spread:.0f} (restart {candidate.restart})" in said
