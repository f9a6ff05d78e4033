"""Predict the next move: a question about the event after a frame, answered by the trace.

At a frame whose next event places an item, the room picks the pack; before
a swap, it picks the trade; before a differencing merge, the two rows. The
answer is the recorded event; the wrong options are other packs with room,
other trades between the same packs, or other pairs of live rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packviz.teach.differencing import Merged, row_spread
from packviz.teach.narration import fill_rule, fmt, learn
from packviz.teach.reference import SwapOption, swap_options
from packviz.trace.events import Placed, Swapped
from packviz.trace.replay import LayerTrace
from packviz.trace.timeline import Frame, state_before

MAX_OPTIONS = 4


@dataclass(frozen=True)
class Question:
    """``answer`` is what the run did; ``accepted`` adds the options that tie
    with it (as good a move; the run took one by its tie rule)."""

    prompt: str
    options: tuple[str, ...]
    answer: str
    explanation: str
    accepted: tuple[str, ...] = ()
    reasons: tuple[tuple[str, str], ...] = ()  # (option, why it is not the answer, or why it ties)

    def is_right(self, choice: str | None) -> bool:
        return choice == self.answer or choice in self.accepted

    def reason(self, choice: str) -> str:
        return dict(self.reasons).get(choice, "")

    def verdict(self, choice: str) -> str:
        """What the room is told on Reveal, for ``choice``."""
        # an explanation may open with the answer's own name ("node 1 is the lightest"): a new sentence
        explanation = self.explanation[:1].upper() + self.explanation[1:]
        if choice == self.answer:
            return f"Right: {choice}. {explanation}"
        if choice in self.accepted:
            return f"Right too: {choice} {self.reason(choice)} {explanation}"
        return f"Not this time: {choice} {self.reason(choice)} The answer is {self.answer}. {explanation}"


def describe_trade(items_from_a: Sequence[int], items_from_b: Sequence[int], moved: float) -> str:
    def side(items: Sequence[int]) -> str:
        return f"item {items[0]}" if len(items) == 1 else "items " + " + ".join(map(str, items))
    return f"{side(items_from_a)} ⇄ {side(items_from_b)} (d = {fmt(moved)})"


def question_for(trace: LayerTrace, frames: Sequence[Frame], index: int) -> Question | None:
    """A question about frame ``index + 1``'s event, or None where there is no choice to make."""
    if index + 1 >= len(frames):
        return None
    event = frames[index + 1].event
    if isinstance(event, Merged):
        before = frames[index].event
        return _merge_question(trace, before, event) if isinstance(before, Merged) else None
    state = state_before(trace, list(frames), index + 1)
    explanation = learn(trace, frames, index + 1)
    if isinstance(event, Placed):
        if fill_rule(frames, index + 1) != "greedy":
            return None  # only the greedy's choice can be predicted from the loads on screen
        counts = state.counts()
        open_packs = [p for p, count in enumerate(counts) if count < trace.items_per_pack]
        if len(open_packs) < 2:
            return None
        tied = tuple(f"pack {p}" for p in open_packs if state.loads[p] == state.loads[event.pack])
        if len(tied) == len(open_packs):
            return None  # every pack with room is as light: nothing to predict
        if len(tied) > 1:
            explanation += f" Packs {', '.join(t.removeprefix('pack ') for t in tied)} tie; the lowest number wins."
        lightest = fmt(state.loads[event.pack])
        reasons = []
        for p in open_packs:
            if p == event.pack:
                continue
            if f"pack {p}" in tied:
                reasons.append((f"pack {p}", f"is as light as pack {event.pack} (both {lightest}): an equally good "
                                             f"choice; the run takes the lowest number, pack {event.pack}."))
            else:
                reasons.append((f"pack {p}", f"holds {fmt(state.loads[p])}, more than pack {event.pack}'s "
                                             f"{lightest}: the greedy takes the lightest pack with room."))
        full = [p for p, count in enumerate(counts) if count == trace.items_per_pack]
        return Question(
            f"Item {event.item} (load {fmt(event.load)}) is next. Which pack does it go to?",
            tuple(f"pack {p}" for p in open_packs), f"pack {event.pack}", explanation,
            tuple(t for t in tied if t != f"pack {event.pack}"),
            tuple(reasons) + tuple((f"pack {p}", "is full.") for p in full),
        )
    if isinstance(event, Swapped):
        size = len(event.items_from_a)
        options: list[SwapOption] = swap_options(state, event.pack_a, event.pack_b, size)
        answer = describe_trade(event.items_from_a, event.items_from_b, event.moved_load)
        others = sorted((o for o in options if (o.items_from_a, o.items_from_b) !=
                         (event.items_from_a, event.items_from_b)), key=lambda o: -o.spread_score)
        shown = others[:MAX_OPTIONS - 1]
        picked = [describe_trade(o.items_from_a, o.items_from_b, o.moved) for o in shown]
        choices = sorted([answer, *picked])
        # a trade that leaves the pair just as even is as good an answer
        target = abs(event.difference_before - 2 * event.moved_load)
        tied = tuple(describe_trade(o.items_from_a, o.items_from_b, o.moved) for o in shown
                     if o.helps and abs(o.difference - 2 * o.moved) == target)
        if tied:
            explanation += " Another trade here is exactly as good; the run takes the first it finds."
        half = event.difference_before / 2
        reasons = []
        for option in shown:
            words = describe_trade(option.items_from_a, option.items_from_b, option.moved)
            d = fmt(option.moved)
            if words in tied:
                reasons.append((words, f"moves d = {d}, as close to D/2 = {fmt(half)} as the run's d = "
                                       f"{fmt(event.moved_load)}: an equally good trade; the run takes the first "
                                       "it finds."))
            elif option.moved <= 0:
                reasons.append((words, f"moves d = {d}, not more than 0: the heavier pack would not get lighter."))
            elif option.moved >= option.difference:
                reasons.append((words, f"moves d = {d}, not less than D = {fmt(option.difference)}: the packs would "
                                       "swap places and end at least as far apart."))
            else:
                reasons.append((words, f"moves d = {d}: allowed (0 < d < D), but farther from D/2 = {fmt(half)} "
                                       f"than d = {fmt(event.moved_load)}."))
        return Question(
            f"Next, pack {event.pack_a} ({fmt(state.loads[event.pack_a])}) and pack {event.pack_b} "
            f"({fmt(state.loads[event.pack_b])}) trade {size} item{'s' if size > 1 else ''} each: D = "
            f"{fmt(event.difference_before)}. Which trade does the algorithm make?",
            tuple(choices), answer, explanation, tied, tuple(reasons),
        )
    return None


def _rows_words(pair: Sequence[int]) -> str:
    first, second = sorted(pair)
    return f"rows {first} and {second}"


def _merge_question(trace: LayerTrace, before: Merged, event: Merged) -> Question | None:
    """Which two live rows merge next: the two of largest spread (ties to the lower row numbers)."""
    if event.into is None or len(before.rows) < 3:
        return None  # two rows left: nothing to choose
    spread = {row_id: row_spread(row, trace.weight) for row_id, row in zip(before.row_ids, before.rows)}
    answer_pair = (event.into, event.taken)
    answer = _rows_words(answer_pair)
    ranked = sorted(spread, key=lambda r: (-spread[r], r))
    # the wrong pairs worth asking: the largest with a smaller one, and the two next largest
    pairs = [(ranked[0], r) for r in ranked[1:]] + [(ranked[1], r) for r in ranked[2:]]
    others = [p for p in pairs if set(p) != set(answer_pair)][:MAX_OPTIONS - 1]
    wanted = sorted(spread[r] for r in answer_pair)
    tied = tuple(_rows_words(p) for p in others if sorted(spread[r] for r in p) == wanted)
    reasons = []
    for pair in others:
        words = _rows_words(pair)
        if words in tied:
            reasons.append((words, f"have spreads {fmt(spread[pair[0]])} and {fmt(spread[pair[1]])}, as large as "
                                   f"{answer}'s: an equally good merge; the run takes the lower row numbers."))
        else:
            smaller = min(pair, key=lambda r: (spread[r], -r))
            reasons.append((words, f"leave out a larger spread: row {smaller}'s {fmt(spread[smaller])} is below "
                                   f"the two largest, {fmt(wanted[1])} and {fmt(wanted[0])}."))
    listed = ", ".join(f"row {r} {fmt(spread[r])}" for r in before.row_ids)
    explanation = (f"The two rows of largest spread merge: row {event.into} ({fmt(spread[event.into])}) and row "
                   f"{event.taken} ({fmt(spread[event.taken])}), so their big differences can cancel.")
    return Question(
        f"{len(before.rows)} rows are left, spreads {listed}. Which two rows merge next?",
        tuple(sorted([answer, *(_rows_words(p) for p in others)])), answer, explanation, tied, tuple(reasons),
    )
