"""Self-study: a fresh question from a fresh instance, every time, and the lesson's recap.

A practice question is asked about a real run: a chapter's packer on new
random loads, one of its steps where there is a choice to predict (the
greedy's pack, or the trade a swap makes). The answer is the recorded event
and every wrong option says why (``packviz.teach.quiz``), so there is always
a new question and never one the engine did not answer. The recap is the
lesson's numbers, each computed from its chapter's run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from packviz.teach.aging_lesson import served_means
from packviz.teach.eplb_lessons import chapter_steps
from packviz.teach.lesson_frames import lesson_frames
from packviz.teach.lessons import CHAPTER_BY_KEY, random_loads
from packviz.teach.narration import fmt
from packviz.teach.quiz import Question, question_for
from packviz.trace.replay import LayerTrace
from packviz.trace.timeline import Frame

# The chapters whose steps make questions: the greedy's choice of pack, and the trades of swaps.
PRACTICE_CHAPTERS = ("greedy", "one-swap", "two-swap", "paired")


@dataclass(frozen=True)
class Practice:
    """``question`` about the step after frame ``index`` of ``frames``, a run of ``chapter``'s packer."""

    chapter: str
    trace: LayerTrace
    frames: list[Frame]
    index: int
    question: Question


def fresh_question(seed: int) -> Practice:
    """A question on a new instance: the same ``seed``, the same question."""
    generator = random.Random(seed)
    for attempt in range(50):
        chapter = CHAPTER_BY_KEY[generator.choice(PRACTICE_CHAPTERS)]
        loads = random_loads(len(chapter.loads), seed * 1000 + attempt)
        trace = chapter.run(loads).traces[0]
        frames = lesson_frames(trace)
        asked = [(i, q) for i in range(len(frames) - 1) if (q := question_for(trace, frames, i)) is not None]
        # swaps are rarer than placements: ask about one whenever the run made one
        swaps = [(i, q) for i, q in asked if frames[i + 1].phase == "refine"]
        pool = swaps if swaps and generator.random() < 0.7 else asked
        if pool:
            index, question = generator.choice(pool)
            return Practice(chapter.key, trace, frames, index, question)
    raise RuntimeError("no instance with a question found")  # pragma: no cover - every greedy fill has one


def lesson_recap() -> list[str]:
    """The lesson in its own numbers, one line per idea, each from its chapter's run."""
    runs = {key: CHAPTER_BY_KEY[key].run().traces[0] for key in ("greedy", "one-swap", "two-swap", "pruning",
                                                                   "choice", "paired", "differencing")}
    greedy = runs["greedy"].chosen_candidate
    one = runs["one-swap"].chosen_candidate
    two = runs["two-swap"].chosen_candidate
    stuck = CHAPTER_BY_KEY["two-swap"].run(two_swap=False).traces[0].chosen_candidate
    pruning = runs["pruning"]
    choice = runs["choice"]
    paired = runs["paired"].chosen_candidate
    differencing = CHAPTER_BY_KEY["differencing"]
    plain = differencing.run(**differencing.compare_options).traces[0].chosen_candidate
    filled = next(c for c in runs["differencing"].candidates if c.fill_started.rule == "differencing")
    replication, hierarchy = (CHAPTER_BY_KEY[key] for key in ("replication", "hierarchy"))
    replicated = chapter_steps(replication.eplb, replication.loads, replication.num_packs)
    packed = [step for step in replicated if step.phase == "pack"][-1]
    grouped = chapter_steps(hierarchy.eplb, hierarchy.loads, hierarchy.num_packs)
    nodes = [step for step in grouped if step.phase == "nodes"][-1].bars.totals
    aging = CHAPTER_BY_KEY["aging"]
    aged = chapter_steps(aging.eplb, aging.loads, aging.num_packs)
    last_way, mean_way = served_means(aged)
    return [
        f"The greedy fill leaves a spread of {fmt(greedy.final_spread)} (ch. 2); 1-swaps, heaviest against "
        f"lightest, take it to {fmt(one.final_spread)} in {len(one.swaps)} moves (ch. 5).",
        f"A 2-swap frees a stuck pair: {fmt(two.spread_history[0])} to {fmt(two.final_spread)}, where 1-swaps stay "
        f"at {fmt(stuck.final_spread)} (ch. 6).",
        f"The best of {len(pruning.restart_spreads)} noisy fills leaves {fmt(min(pruning.restart_spreads))}, the "
        f"greedy {fmt(pruning.restart_spreads[0])}; {len(pruning.kept_restarts)} go on and restart "
        f"{choice.chosen_candidate.restart} wins at {fmt(choice.chosen_candidate.final_spread)} (ch. 3, 4, 7).",
        f"Paired moves: {fmt(paired.spread_history[0])} to {fmt(paired.final_spread)} in "
        f"{len({s.iteration for s in paired.swaps})} iterations (ch. 8).",
        f"Differencing leaves {fmt(filled.initial_spread)} before any swap, the greedy {fmt(plain.initial_spread)} "
        "(ch. 9).",
        f"Replicas: the busiest GPU holds {fmt(max(packed.bars.totals))}, {fmt(packed.without_replicas)} without "
        f"(ch. 10); groups kept on nodes ({', '.join(fmt(v) for v in nodes)}): busiest GPU "
        f"{fmt(max(grouped[-1].bars.totals))}, LB {fmt(grouped[-1].bars.bound)} (ch. 11).",
        f"Plans age: planned on the last window a plan serves the next at {fmt(last_way)} on average, planned on "
        f"the mean of the last {aging.eplb['windows']} at {fmt(mean_way)} (ch. 12).",
    ]
