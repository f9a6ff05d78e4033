"""What a frame shows, in words: apart from the frames, so that the explorer
and the teacher can say different things about the same step.

``explore`` is one short sentence of what happened. ``learn`` says why, with
the numbers a newcomer needs to check it: the lightest pack with room, D and
d of a swap and the rule 0 < d < D, why refinement stopped, why this
candidate won. Every number comes from the frame's event or the state
before it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from packviz.teach.differencing import Merged, row_spread, row_sums
from packviz.text import format_load
from packviz.trace.events import (
    STOP_ITERATION_CAP,
    STOP_LOWER_BOUND,
    STOP_NO_MOVE,
    Chosen,
    FillStarted,
    Placed,
    Pruned,
    RefinementStopped,
    Swapped,
)
from packviz.trace.replay import LayerTrace
from packviz.trace.timeline import Frame, state_before

VOICES = ("explore", "learn")


def fmt(value: float) -> str:
    """Loads as people read them: :func:`packviz.text.format_load`, the one rule of
    every text, chart and GIF."""
    return format_load(value)


def _items(items: Sequence[int]) -> str:
    return " and ".join(str(i) for i in items) if len(items) <= 2 else ", ".join(map(str, items))


def narrate(trace: LayerTrace, frames: Sequence[Frame], index: int, voice: str = "explore") -> str:
    if voice not in VOICES:
        raise ValueError(f"voice must be one of {', '.join(VOICES)}, got {voice!r}")
    return (explore if voice == "explore" else learn)(trace, frames, index)


_FILL_RULE_WORDS = {
    "greedy": "puts each into the lightest pack that still has room",
    "snake": "deals them to the packs in snake order",
    "differencing": ("cuts them into rows of one item per pack and merges the two rows of largest spread, "
                     "heaviest pack with lightest, until one row is left (the differencing method)"),
}


def fill_rule(frames: Sequence[Frame], index: int) -> str:
    """The rule of the fill that frame ``index`` belongs to. A story holds one
    candidate's fill and opens with it, so the search ends at the first frame
    (captions for every frame would otherwise scan back over all before it)."""
    opening = (frame.event for frame in itertools.islice(frames, index + 1) if isinstance(frame.event, FillStarted))
    return next((event.rule for event in opening), "greedy")


def explore(trace: LayerTrace, frames: Sequence[Frame], index: int) -> str:
    """What happened at this step, in one sentence; loads printed as the step chart
    beside it prints them (``packviz.text.format_load``: 8,092.5, not 8,092)."""
    fmt = format_load
    frame = frames[index]
    event = frame.event
    if isinstance(event, Merged):
        if event.into is None:
            return f"The sorted items cut into {len(event.rows)} rows of {trace.num_packs}."
        return f"Merge {event.stage}: row {event.taken} joins row {event.into}, lightest column with heaviest."
    per_pack = trace.items_per_pack
    if isinstance(event, FillStarted):
        noise = "" if event.noise_scale == 0 else f" (restart {event.restart}, noise up to {event.noise_scale:.0%})"
        rule = _FILL_RULE_WORDS[event.rule]
        return (f"{trace.num_items} items into {trace.num_packs} packs of {per_pack}: the fill takes them heaviest "
                f"first{noise} and {rule}.")
    if isinstance(event, Placed):
        if per_pack == 1:
            room = "its own pack"
        elif fill_rule(frames, index) == "snake":
            room = "dealt in snake order (0 to m-1, then back)"
        elif fill_rule(frames, index) == "differencing":
            room = "where the differencing merges put it"
        else:
            room = "the lightest pack with room"
        return (f"Step {event.step + 1}: item {event.item} (load {fmt(event.load)}) goes to pack {event.pack}, "
                f"{room}; pack {event.pack} now holds {fmt(event.pack_load_after)}.")
    if isinstance(event, Pruned):
        total = len(event.restart_spreads)
        return (f"Pruning: {len(event.kept_restarts)} of {total} restart{'s' if total != 1 else ''} kept for "
                f"refinement, by {_select_words(event.select_by)}.")
    if isinstance(event, Swapped):
        number = sum(1 for f in frames[:index + 1] if isinstance(f.event, Swapped))
        plural = "s" if len(event.items_from_a) > 1 else ""
        return (f"{event.move_kind} (move {number}, iteration {event.iteration + 1}): item{plural} "
                f"{_items(event.items_from_a)} of pack {event.pack_a} trade{'' if plural else 's'} places with "
                f"item{plural} {_items(event.items_from_b)} of pack {event.pack_b}, moving {fmt(event.moved_load)}; "
                f"spread {fmt(event.spread_before)} to {fmt(event.spread_after)}.")
    if isinstance(event, RefinementStopped):
        return f"Refinement stops after {event.iterations} iteration{'s' if event.iterations != 1 else ''}: " \
               f"{event.reason}."
    assert isinstance(event, Chosen)
    moves = sum(1 for f in frames if isinstance(f.event, Swapped))
    shown = frames[0].event.restart if isinstance(frames[0].event, FillStarted) else event.restart
    if shown != event.restart:
        # The story of a kept candidate that lost: its own numbers, then the winner.
        return (f"Done: restart {shown} ends after {moves} move{'s' if moves != 1 else ''} with max pack load "
                f"{fmt(max(frame.loads))}, spread {fmt(frame.spread)}; the layer keeps candidate "
                f"{event.candidate + 1} (restart {event.restart}) instead.")
    return (f"Done: candidate {event.candidate + 1} of {event.num_candidates} kept (restart {event.restart}) wins "
            f"after {moves} move{'s' if moves != 1 else ''}; max pack load {fmt(event.max_load)}, spread "
            f"{fmt(event.spread)}.")


def _select_words(select_by: str) -> str:
    return "the smallest heaviest pack (then spread)" if select_by == "max_load" else \
        "the smallest spread (heaviest minus lightest pack)"


def learn(trace: LayerTrace, frames: Sequence[Frame], index: int) -> str:
    """Why this step happened, with the numbers to check it."""
    frame = frames[index]
    event = frame.event
    if isinstance(event, Merged):
        return _learn_merged(trace, event)
    before = state_before(trace, list(frames), index)
    if isinstance(event, FillStarted):
        return _learn_fill_started(trace, event)
    if isinstance(event, Placed):
        if event.rank == 0 and before.counts()[event.pack] == 0 and all(c == 0 for c in before.counts()):
            first = "Every pack is empty, so the first item goes to pack 0. "
        else:
            first = ""
        if fill_rule(frames, index) == "snake":
            return (f"{first}Item {event.item} (load {fmt(event.load)}) is dealt to pack {event.pack}: snake order "
                    f"deals 0, 1, ..., {trace.num_packs - 1}, then back.")
        if fill_rule(frames, index) == "differencing":
            return (f"Item {event.item} (load {fmt(event.load)}) goes to pack {event.pack}, slot {event.rank}: the "
                    f"differencing method cut the order into rows of {trace.num_packs} items, one per pack, and "
                    "merged the two rows of largest spread (heaviest pack with lightest) until one row was left; "
                    "this is where that put the item.")
        counts = before.counts()
        full = [p for p, c in enumerate(counts) if c == trace.items_per_pack]
        room = [p for p, c in enumerate(counts) if c < trace.items_per_pack]
        lightest = min(before.loads[p] for p in room)
        full_words = f" (pack{'s' if len(full) > 1 else ''} {_items(full)} full)" if full else ""
        return (f"{first}Item {event.item} (load {fmt(event.load)}) goes to pack {event.pack}: of the packs with "
                f"room{full_words}, it is the lightest, at {fmt(lightest)}. It now holds "
                f"{fmt(event.pack_load_after)}.")
    if isinstance(event, Pruned):
        return _learn_pruned(trace, event)
    if isinstance(event, Swapped):
        return _learn_swap(trace, event)
    if isinstance(event, RefinementStopped):
        return _learn_stop(trace, frame, event)
    assert isinstance(event, Chosen)
    if event.num_candidates == 1:
        return (f"A single candidate, so nothing to choose: this placement is the answer. Its heaviest pack holds "
                f"{fmt(event.max_load)}, the lightest {fmt(event.max_load - event.spread)}: spread "
                f"{fmt(event.spread)}.")
    return _learn_chosen(trace, event)


def _ties(value: float, other: float) -> bool:
    # the engine ranks on whole units of 1e-12 of the largest load: nearer than that is a tie
    return abs(value - other) <= 1e-12 * max(1.0, abs(value), abs(other))


def _listed(restarts: Sequence[int], spreads: Sequence[float], limit: int = 8) -> str:
    named = ", ".join(f"restart {r} ({fmt(spreads[r])})" for r in list(restarts)[:limit])
    return named + (", ..." if len(restarts) > limit else "")


def _learn_pruned(trace: LayerTrace, event: Pruned) -> str:
    kept = list(event.kept_restarts)
    spreads = event.restart_spreads
    total = len(spreads)
    refines = trace.config.refines
    go_on = "go on to refinement" if refines else "are kept as candidates (this run does not refine them)"
    if total == 1:
        after = "goes on to refinement" if refines else "is the answer"
        return f"A single fill, so there is nothing to prune: it {after}."
    if len(kept) == total:
        return (f"All {total} restarts are filled at once, and all of them {go_on}: nothing is pruned here. "
                f"Spreads after the fill: {_listed(kept, spreads)}.")
    dropped = [r for r in range(total) if r not in kept]
    if event.select_by != "spread":
        return (f"All {total} restarts are filled at once; only the {len(kept)} with "
                f"{_select_words(event.select_by)} {go_on}: {_listed(kept, spreads)}. Dropped: "
                f"{_listed(dropped, spreads)}. No fill heavier than restart 0, the plain greedy, goes on before it, "
                "so the result is never heavier than the greedy's"
                + (" (here the greedy itself is not needed)." if 0 not in kept else "."))
    others = [r for r in kept if r != 0]
    text = (f"All {total} restarts are filled at once. Restart 0, the plain greedy ({fmt(spreads[0])}), is always "
            "kept, so the result is never worse than it")
    if others:
        text += (f"; of the others, the {len(others)} with the smallest spread {go_on}: "
                 f"{_listed(others, spreads)}")
    text += f". Dropped: {_listed(dropped, spreads)}."
    last = others[-1] if others else None
    tied = [r for r in dropped if r != 0 and last is not None and _ties(spreads[r], spreads[last])]
    if tied:
        text += (f" Restart {_items(tied)} ties with restart {last} at {fmt(spreads[last])}; on a tie the lower "
                 "restart number goes first.")
    return text


def _learn_chosen(trace: LayerTrace, event: Chosen) -> str:
    refined = "refined" if trace.config.refines else "kept"
    finals = {c.restart: c.final_spread for c in trace.candidates}
    others = [r for r in finals if r != event.restart]
    text = (f"Of the {event.num_candidates} {refined} candidates, restart {event.restart} has "
            f"{_select_words(event.select_by)}: heaviest pack {fmt(event.max_load)}, spread {fmt(event.spread)}. ")
    if others:
        text += "The others end at spread " + ", ".join(f"{fmt(finals[r])} (restart {r})" for r in others[:7]) + ". "
    tied = [r for r in others if _ties(finals[r], event.spread)]
    if tied and event.select_by == "spread":
        text += (f"Restart {_items(tied)} ties at {fmt(event.spread)}; on a tie the candidate kept first wins. ")
    return text + "Its placement is the answer for this layer."


def _learn_fill_started(trace: LayerTrace, event: FillStarted) -> str:
    weight = trace.weight
    text = (f"{trace.num_items} items must go into {trace.num_packs} packs, exactly {trace.items_per_pack} each. "
            f"The fill sorts them heaviest first and {_FILL_RULE_WORDS[event.rule]}.")
    if event.noise_scale == 0:
        return text + f" This is restart {event.restart}: the true loads, no noise."
    inverted = next(((a, b) for a, b in zip(event.order, event.order[1:]) if weight[a] < weight[b]), None)
    text += (f" This is restart {event.restart}: it sorts by load x (1 + U(0,1) x {event.noise_scale:.3g}), a "
             "random nudge of up to " f"{event.noise_scale:.0%}, so each restart tries another order.")
    if inverted:
        a, b = inverted
        text += f" Here item {a} (load {fmt(weight[a])}) comes before item {b} (load {fmt(weight[b])})."
    return text


def _learn_swap(trace: LayerTrace, event: Swapped) -> str:
    big_d, small_d = event.difference_before, event.moved_load
    weight = trace.weight

    def side(items: tuple[int, ...]) -> str:
        named = " and ".join(f"item {i} (load {fmt(weight[i])})" for i in items)
        return named

    what = "one item for one" if event.move_kind == "1-swap" else "two items for two"
    text = (f"Iteration {event.iteration + 1}: pack {event.pack_a} is heavier than pack {event.pack_b} by "
            f"D = {fmt(big_d)}. Trading {what}, {side(event.items_from_a)} for {side(event.items_from_b)}, moves "
            f"d = {fmt(small_d)} from pack {event.pack_a} to pack {event.pack_b}. Because 0 < d < D, both packs "
            f"end between their old loads; the best trade moves d closest to D/2 = {fmt(big_d / 2)}. ")
    if event.spread_after == event.spread_before:
        return text + (f"These two packs even out, but other packs set the spread, which stays "
                       f"{fmt(event.spread_after)}.")
    return text + f"Spread {fmt(event.spread_before)} to {fmt(event.spread_after)}."


def _learn_merged(trace: LayerTrace, event: Merged) -> str:
    weight = trace.weight

    def row_words(row_id: int, row: tuple[tuple[int, ...], ...]) -> str:
        sums = row_sums(row, weight)
        return f"row {row_id} ({', '.join(fmt(v) for v in sums)}: spread {fmt(max(sums) - min(sums))})"

    rows = dict(zip(event.row_ids, event.rows))
    if event.into is None:
        listed = "; ".join(row_words(r, row) for r, row in list(rows.items())[:6])
        return (f"The {trace.num_items} items, heaviest first, are cut into {len(rows)} rows of {trace.num_packs}: "
                f"each row is a partial packing, one item per pack. {listed}"
                f"{'; ...' if len(rows) > 6 else ''}. Each merge joins the two rows of largest spread.")
    spread_a, spread_b = event.spreads_before
    merged = rows[event.into]
    text = (f"Merge {event.stage}: the two rows of largest spread are row {event.into} ({fmt(spread_a)}) and row "
            f"{event.taken} ({fmt(spread_b)}). Row {event.taken}'s lightest column joins row {event.into}'s heaviest, "
            f"its next lightest the next heaviest, and so on, so the big differences cancel: row {event.into} now "
            f"holds {', '.join(fmt(v) for v in row_sums(merged, weight))}, spread {fmt(row_spread(merged, weight))}.")
    if len(rows) == 1:
        text += " One row is left: its columns are the packs."
    return text


def _learn_stop(trace: LayerTrace, frame: Frame, event: RefinementStopped) -> str:
    text = _learn_stop_reason(trace, frame, event)
    if trace.choice is not None and trace.choice.num_candidates == 1:
        # the lesson shows no separate frame for choosing among one candidate
        text += (f" A single candidate, so this placement is the answer: heaviest pack {fmt(max(frame.loads))}, "
                 f"spread {fmt(frame.spread)}.")
    return text


def _learn_stop_reason(trace: LayerTrace, frame: Frame, event: RefinementStopped) -> str:
    config = trace.config
    if event.reason == STOP_LOWER_BOUND:
        return ("Refinement stops: the heaviest pack has reached the lower bound, the least any placement can "
                "reach, so no move could do better.")
    if event.reason == STOP_ITERATION_CAP:
        return f"Refinement stops at the iteration cap ({config.max_iterations}); a move might still have helped."
    if event.reason == STOP_NO_MOVE:
        kinds = " or ".join(k for k, on in (("1-swap", config.one_swap), ("2-swap", config.two_swap)) if on)
        return (f"Refinement stops: no {kinds} moves a d with 0 < d < D between the packs it may join, so every "
                f"trade would leave the spread as wide or wider. Spread {fmt(frame.spread)}.")
    if config.max_iterations == 0 and (config.one_swap or config.two_swap):
        return ("Refinement is off here (at most 0 iterations): each kept candidate stays as its fill left it, so "
                "what is shown is the fill alone.")
    return "This preset does not refine: the fill's placement is the answer."
