"""A quiz session: N questions drawn across the chapters, each from a real run on a fresh instance.

Each question is asked about a run made for it: a packing chapter's packer on new random loads
(the greedy's next pack, the best 1-swap or 2-swap, the differencing fill's next merge), an EPLB
chapter's plan on new loads (the next spare slot, the node a group goes to, the GPU a replica goes
to), or the loads themselves (the lower bound LB). The same seed gives the same questions, so a
link with the seed replays the session.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from packviz.metrics import crowding_bound, lower_bound, lower_bounds
from packviz.teach.eplb_lessons import Bars, chapter_steps
from packviz.teach.lesson_frames import lesson_frames
from packviz.teach.lessons import CHAPTER_BY_KEY, random_loads
from packviz.teach.narration import fmt
from packviz.teach.practice import Practice, fresh_question
from packviz.teach.quiz import Question, question_for

# what a session draws from, in turn: each kind a chapter's idea
KINDS = ("bound", "greedy", "swap", "merge", "spare slot", "group to node", "replica to GPU")


@dataclass(frozen=True)
class SessionQuestion:
    """One question of a session: ``practice`` for a packing run's step, ``bars`` for an EPLB step
    or the loads of a bound question (what the page draws beside the question)."""

    kind: str
    chapter: str
    question: Question
    practice: Practice | None = None
    bars: Bars | None = None


def _summed(values: list[float]) -> str:
    return " + ".join(fmt(v) for v in values)


def bound_terms(loads: list[float], packs: int) -> list[tuple[float, str]]:
    """The family of lower bounds on the busiest pack, each with the sentence that proves it:
    (value, words), in ``lower_bounds``' order and with its values."""
    per_pack = len(loads) // packs
    heaviest_first = sorted(loads, reverse=True)
    lightest_first = sorted(loads)
    values = lower_bounds(torch.tensor([loads], dtype=torch.float64), packs)[0].tolist()

    def lightest(count: int) -> str:
        named = "the lightest" if count == 1 else f"the {count} lightest"
        return f"{named} ({_summed(lightest_first[:count])})"

    def with_lightest(count: int) -> str:
        return f" with at least {lightest(count)}" if count else ""

    terms = [(values[0], f"the average pack (the total {fmt(sum(loads))} over {packs} packs)"),
             (values[1], f"the heaviest item's pack, {fmt(heaviest_first[0])}{with_lightest(per_pack - 1)}")]
    for t in range(1, per_pack):
        # of the t*m + 1 heaviest, some pack holds t + 1: at least the t + 1 lightest of them
        count = t * packs + 1
        shared = heaviest_first[count - t - 1: count]
        terms.append((values[t + 1], f"a pack holding {t + 1} of the {count} heaviest items ({packs} packs, so "
                                     f"{t + 1} meet), at least {_summed(shared)}"
                                     + (f" plus {lightest(per_pack - t - 1)}" if per_pack - t - 1 else "")))
    return terms


def _bound_question(generator: random.Random) -> SessionQuestion:
    """The lower bound of fresh loads: the best of the family (and the crowding bound), not the average."""
    packs = generator.choice((3, 4))
    per_pack = generator.choice((2, 3))
    loads = random_loads(packs * per_pack, generator.randrange(1 << 30))
    weight = torch.tensor([loads], dtype=torch.float64)
    bound = float(lower_bound(weight, packs)[0])
    terms = bound_terms(loads, packs)
    largest = max(value for value, _ in terms)
    crowding = float(crowding_bound(weight, packs)[0])
    heaviest = max(loads)
    # what each wrong option is, in words: a true bound that is not the largest, or the heaviest item alone
    named = {fmt(value): words for value, words in reversed(terms)}
    partners = sorted(loads)[:per_pack - 1]
    alone = (f"the heaviest item alone; its pack holds {per_pack - 1} more item{'s' if per_pack > 2 else ''}, "
             f"at least {_summed(partners)}, so that pack holds at least {fmt(terms[1][0])}.")
    options = sorted({fmt(v) for v in (bound, heaviest, *(value for value, _ in terms))}, key=float)[:4]
    if fmt(bound) not in options:
        options = sorted({*options[:3], fmt(bound)}, key=float)
    steps = "; ".join(f"{words}: {fmt(value)}" for value, words in terms)
    why = (f"Every packing has a pack at least as heavy as each of these: {steps}"
           + (f"; and the crowding bound (so many heavy items that several packs take two): {fmt(crowding)}"
              if crowding > largest + 1e-9 * max(1.0, abs(largest)) else "")
           + ". LB is the largest of them"
           + (", rounded up as every pack holds whole loads" if bound > max(largest, crowding) else "")
           + f": {fmt(bound)}.")
    reasons = []
    for option in options:
        if option == fmt(bound):
            continue
        if option in named:
            reasons.append((option, f"is {named[option]}: a true bound, but not the largest."))
        elif option == fmt(heaviest):
            reasons.append((option, f"is {alone}"))
        else:
            reasons.append((option, f"is below LB: some pack must hold at least {fmt(bound)}."))
    question = Question(f"{len(loads)} items ({', '.join(fmt(v) for v in loads)}) into {packs} packs of "
                        f"{per_pack}. What is the lower bound LB on the busiest pack?", tuple(options), fmt(bound),
                        why, (), tuple(reasons))
    bars = Bars("the loads", tuple(f"item {i}" for i in range(len(loads))),
                tuple(((f"item {i}", v),) for i, v in enumerate(loads)))
    return SessionQuestion("bound", "problem", question, bars=bars)


def _eplb_question(kind: str, generator: random.Random) -> SessionQuestion | None:
    key = "replication" if kind in ("spare slot",) or (kind == "replica to GPU" and generator.random() < 0.5) \
        else "hierarchy"
    chapter = CHAPTER_BY_KEY[key]
    loads = random_loads(len(chapter.loads), generator.randrange(1 << 30))
    steps = chapter_steps(chapter.eplb, loads, chapter.num_packs)
    endings = {"spare slot": "Which expert gets it?", "group to node": "Which node gets it?",
               "replica to GPU": "Which GPU gets it?"}
    asked = [s for s in steps if s.question is not None and s.question.prompt.endswith(endings[kind])
             and not all(s.question.is_right(o) for o in s.question.options)]
    if not asked:
        return None
    step = generator.choice(asked)
    return SessionQuestion(kind, key, step.question, bars=step.bars)


def _packing_question(kind: str, seed: int) -> SessionQuestion | None:
    practice = fresh_question(seed)
    is_swap = practice.frames[practice.index + 1].phase == "refine"
    if is_swap != (kind == "swap"):
        return None
    return SessionQuestion(kind, practice.chapter, practice.question, practice=practice)


def _merge_question(generator: random.Random) -> SessionQuestion | None:
    """The differencing chapter's packer on fresh loads: which two rows merge next."""
    chapter = CHAPTER_BY_KEY["differencing"]
    loads = random_loads(len(chapter.loads), generator.randrange(1 << 30))
    trace = chapter.run(loads).traces[0]
    frames = lesson_frames(trace)
    asked = [(i, q) for i in range(len(frames) - 1)
             if (q := question_for(trace, frames, i)) is not None and q.prompt.endswith("merge next?")]
    if not asked:
        return None
    index, question = generator.choice(asked)
    practice = Practice(chapter.key, trace, frames, index, question)
    return SessionQuestion("merge", chapter.key, question, practice=practice)


def session_questions(seed: int, count: int) -> list[SessionQuestion]:
    """``count`` questions across the chapters' kinds (each kind in turn, from a shuffled start);
    the same seed, the same questions."""
    generator = random.Random(seed)
    kinds = list(KINDS)
    generator.shuffle(kinds)
    questions: list[SessionQuestion] = []
    attempt = 0
    while len(questions) < count:
        kind = kinds[len(questions) % len(kinds)]
        attempt += 1
        if kind == "bound":
            found = _bound_question(generator)
        elif kind == "merge":
            found = _merge_question(generator)
        elif kind in ("greedy", "swap"):
            found = _packing_question(kind, generator.randrange(1 << 30))
        else:
            found = _eplb_question(kind, generator)
        if found is not None:
            questions.append(found)
        elif attempt > 50 * count:  # pragma: no cover - every kind has questions on most instances
            raise RuntimeError(f"no {kind} question found")
    return questions
