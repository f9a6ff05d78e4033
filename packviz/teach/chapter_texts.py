"""Each chapter's text, filled from the run on the loads on screen.

A chapter makes one claim (restarts can beat the greedy, a 2-swap frees a
stuck pair, ...). Its text is a template: every number in it comes from the
run (and, where the chapter sets one beside it, the comparison run), and
the claim is checked on that run. When an edited instance no longer shows
it, the text says so in a sentence of its own, instead of telling the
room something the chart contradicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from packviz.metrics import lower_bound, lower_bounds
from packviz.teach.narration import fmt
from packviz.teach.reference import best_option, swap_options
from packviz.trace.replay import LayerTrace
from packviz.trace.state import PackState
from packviz.trace.timeline import build_frames


@dataclass(frozen=True)
class ChapterText:
    """``text`` for the page; ``shows_claim`` is False when these loads do not
    show what the chapter is about (the text then says so)."""

    text: str
    shows_claim: bool
    point: str = ""  # the chapter's point in a line, kept on screen when presenting


def _bound(trace: LayerTrace) -> float:
    return float(lower_bound(torch.tensor([trace.weight], dtype=torch.float64), trace.num_packs)[0])


def _filled(trace: LayerTrace, candidate: int | None = None) -> PackState:
    """The state right after the candidate's fill (before any move)."""
    chosen = trace.candidates[trace.chosen if candidate is None else candidate]
    state = PackState(trace.weight, trace.num_packs)
    for event in chosen.placements:
        state.apply(event)
    return state


def _final_loads(trace: LayerTrace) -> tuple[float, ...]:
    return build_frames(trace)[-1].loads


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _problem(trace: LayerTrace, compare: LayerTrace | None) -> ChapterText:
    weight = sorted(trace.weight, reverse=True)
    m, k, n = trace.num_packs, trace.items_per_pack, trace.num_items
    bound = _bound(trace)
    family = lower_bounds(torch.tensor([trace.weight], dtype=torch.float64), m)[0].tolist()
    text = ("An MoE layer has n experts (the items) with loads, the tokens routed to each. They go onto m GPUs (the "
            f"packs), exactly n/m each (here {n} items, {m} packs of {k}), and the busiest GPU sets the pace of the "
            "whole step. No placement can beat the lower bound LB (the dashed orange line), the largest of a few "
            f"simple bounds such as the average pack. Here it is {fmt(bound)}")
    # which bound gives LB, said in the words that prove it (rounded up for whole loads)
    best = max(range(len(family)), key=lambda i: (family[i], -i))
    if family[best] < bound - 0.5 - 1e-9:
        text += (": a crowding bound, from the packs that must hold more than their share of the heaviest items "
                 f"(the average pack is only {fmt(family[0])}).")
    elif best == 0:
        text += f": the total {fmt(sum(weight))} over {m} packs is {fmt(family[0])} on average, and some pack is at " \
                "least average."
    elif best == 1:
        lightest = weight[n - (k - 1):] if k > 1 else []
        parts = " + ".join(fmt(v) for v in [weight[0], *lightest])
        text += f": the pack of the heaviest item holds at least it and the {k - 1} lightest, {parts}."
    else:
        t = best - 1
        top = weight[t * m - t: t * m + 1]
        rest = weight[n - (k - t - 1):] if k - t - 1 > 0 else []
        parts = " + ".join(fmt(v) for v in [*top, *rest])
        text += (f": {t * m + 1} items cannot go {t} per pack into {m} packs, so some pack holds {t + 1} of the "
                 f"{t * m + 1} heaviest, at least the lightest {t + 1} of them"
                 + (f", plus the {k - t - 1} lightest items" if rest else "") + f", {parts}.")
    why = text[text.index(f"Here it is {fmt(bound)}") + len(f"Here it is {fmt(bound)}"):]
    return ChapterText(text, True, f"No placement beats the lower bound LB = {fmt(bound)}{why}")


def _greedy(trace: LayerTrace, compare: LayerTrace | None) -> ChapterText:
    loads = _final_loads(trace)
    bound = _bound(trace)
    last = trace.chosen_candidate.placements[-1]
    text = ("DeepSeek's EPLB sorts the items heaviest first and puts each into the lightest pack that still has room. "
            "Big items go first, while there is still room to even them out; small ones fill the gaps at the end "
            f"(here the last, item {last.item} of load {fmt(last.load)}, goes to pack {last.pack}). The fill ends "
            f"with packs from {fmt(min(loads))} to {fmt(max(loads))}: spread {fmt(max(loads) - min(loads))}, the "
            f"heaviest {fmt(max(loads) - bound)} above LB = {fmt(bound)}.")
    return ChapterText(text, True)


def _restarts(trace: LayerTrace, compare: LayerTrace | None) -> ChapterText:
    spreads = trace.restart_spreads
    noise = max(c.noise_scale for c in trace.candidates) if trace.candidates else 0.0
    text = ("The greedy order is one guess. Each restart nudges every load by a random factor of up to "
            f"{noise:.0%} (restart 0 keeps the true loads) and fills again: a slightly different order can leave a "
            f"smaller spread. All {len(spreads)} restarts run at once, as one batch on the GPU.")
    if len(spreads) < 2:
        return ChapterText(text, False)
    best = min(range(1, len(spreads)), key=lambda r: (spreads[r], r))
    if spreads[best] < spreads[0]:
        # the fills' spreads: refinement, later in the chapter, narrows them further
        return ChapterText(text + f" Here the plain greedy's fill leaves a spread of {fmt(spreads[0])}; restart "
                                  f"{best}'s leaves {fmt(spreads[best])}, before any refinement.", True)
    return ChapterText(text + f" On these loads no noisy restart's fill beats the plain greedy's spread of "
                              f"{fmt(spreads[0])} (the best, restart {best}, leaves {fmt(spreads[best])}): the "
                              "restarts do not help here.", False)


def _pruning(trace: LayerTrace, compare: LayerTrace | None) -> ChapterText:
    kept, spreads = trace.kept_restarts, trace.restart_spreads
    text = ("Refining every restart would cost too much, so only the few with the smallest spread after the fill "
            f"go on: here {len(kept)} of {len(spreads)}. Restart 0, the plain greedy, is always among them, so the "
            "answer is never worse than the greedy.")
    dropped = [r for r in range(len(spreads)) if r not in kept]
    if not dropped:
        return ChapterText(text + " On these loads and settings every restart is kept: nothing is pruned.", False)
    best_dropped = min(dropped, key=lambda r: (spreads[r], r))
    return ChapterText(text + f" The best restart dropped, restart {best_dropped}, had spread "
                              f"{fmt(spreads[best_dropped])}.", True)


def _one_swap(trace: LayerTrace, compare: LayerTrace | None) -> ChapterText:
    candidate = trace.chosen_candidate
    history = candidate.spread_history
    text = ("Take the heaviest pack H and the lightest L, D apart. Trading an item of H for a lighter one of L moves "
            "d = their difference. If 0 < d < D both packs end between their old loads, and d closest to D/2 evens "
            "them out best.")
    swaps = candidate.swaps
    if swaps:
        first = swaps[0]
        return ChapterText(text + f" Here the first trade has D = {fmt(first.difference_before)} and d = "
                                  f"{fmt(first.moved_load)}; {_plural(len(swaps), 'move')} (all 1-swaps) take the "
                                  f"spread from {fmt(history[0])} to {fmt(history[-1])}.", True)
    return ChapterText(text + f" On these loads no 1-swap between the heaviest and lightest pack has 0 < d < D: the "
                              f"fill's spread of {fmt(history[0])} stays.", False)


def _two_swap(trace: LayerTrace, compare: LayerTrace | None) -> ChapterText:
    candidate = trace.chosen_candidate
    history = candidate.spread_history
    filled = _filled(trace)
    heavy, light = filled.heaviest(), filled.lightest()
    one = best_option(swap_options(filled, heavy, light, 1))
    two = best_option(swap_options(filled, heavy, light, 2)) if filled.per_pack >= 2 else None
    swaps = candidate.swaps
    text = "When every single trade between the heaviest and lightest pack moves d outside 0 < d < D, 1-swaps are " \
           "stuck; trading two items for two reaches sums that no single item can."
    if one is None and two is not None and swaps and swaps[0].move_kind == "2-swap":
        first = swaps[0]
        rest = swaps[1:]
        text += (f" Here that is so after the fill (spread {fmt(history[0])}): the 2-swap moves d = "
                 f"{fmt(first.moved_load)} of D = {fmt(first.difference_before)} and takes the spread to "
                 f"{fmt(first.spread_after)}")
        if rest:
            kinds = sorted({s.move_kind for s in rest})
            text += (f"; {_plural(len(rest), 'more move')} ({' and '.join(kinds)}) take it to {fmt(history[-1])}")
        text += "."
        if compare is not None:
            text += (f" With 1-swaps alone the run stops at spread {fmt(compare.chosen_candidate.final_spread)}.")
        return ChapterText(text, True)
    if one is not None:
        why = (f"a 1-swap helps at once (d = {fmt(one.moved)} of D = {fmt(one.difference)}), so 1-swaps are not "
               "stuck")
    elif two is None:
        why = "no 2-swap helps either"
    else:
        why = "the run does not open with a 2-swap"
    return ChapterText(text + f" On these loads that does not happen: after the fill (spread {fmt(history[0])}) "
                              f"{why}. The run ends at spread {fmt(history[-1])}.", False)


def _choice(trace: LayerTrace, compare: LayerTrace | None) -> ChapterText:
    winner = trace.chosen_candidate
    finals = ", ".join(f"restart {c.restart} ends at {fmt(c.final_spread)}" for c in trace.candidates)
    text = (f"Each kept candidate is refined on its own ({finals}). At the end the one with the smallest spread "
            f"wins")
    if winner.restart != 0:
        greedy = next((c for c in trace.candidates if c.restart == 0), None)
        against = f", where the plain greedy ends at {fmt(greedy.final_spread)}" if greedy else ""
        return ChapterText(text + f": here not the plain greedy but noisy restart {winner.restart}, at spread "
                                  f"{fmt(winner.final_spread)}{against}.", True)
    return ChapterText(text + f". On these loads that is the plain greedy itself (spread "
                              f"{fmt(winner.final_spread)}): no noisy restart does better here.", False)


def _paired(trace: LayerTrace, compare: LayerTrace | None) -> ChapterText:
    candidate = trace.chosen_candidate
    swaps = candidate.swaps
    iterations = [s.iteration for s in swaps]
    widest = max((iterations.count(i) for i in set(iterations)), default=0)
    loads = _final_loads(trace)
    bound = _bound(trace)
    text = ("packviz's fast and best presets pair the i-th heaviest pack with the i-th lightest and swap in every pair "
            "at once: many packs even out per iteration instead of two (the steps of one iteration share its "
            f"number). Here {_plural(len(swaps), 'move')} in {_plural(len(set(iterations)), 'iteration')} take the "
            f"spread from {fmt(candidate.spread_history[0])} to {fmt(candidate.spread_history[-1])}, up to {widest} "
            "in one iteration")
    stopped = candidate.stopped.reason if candidate.stopped else ""
    if max(loads) <= bound:
        text += f", and it stops ({stopped}) with the heaviest pack on LB = {fmt(bound)} itself: nothing better exists."
    else:
        text += (f"; it stops ({stopped}) with the heaviest pack at {fmt(max(loads))}, {fmt(max(loads) - bound)} "
                 f"above LB = {fmt(bound)}.")
    if widest < 2:
        return ChapterText(text + " On these loads no iteration makes two moves at once, so the pairing does not "
                                  "show here.", False)
    return ChapterText(text, True)


def _differencing(trace: LayerTrace, compare: LayerTrace | None) -> ChapterText:
    m = trace.num_packs
    rows = trace.num_items // m
    text = ("The greedy decides one item at a time. The differencing method cuts the sorted items into rows of one "
            f"item per pack (here {rows} rows of {m}) and merges the two rows with the largest spread, the heaviest "
            "pack of one with the lightest of the other, until one row is left. packviz's fast preset fills both "
            "ways and keeps the one with the lighter heaviest pack (best adds noisy differencing fills); this "
            "chapter stops before refining.")
    by_rule = {c.fill_started.rule: c for c in trace.candidates}
    differencing = by_rule.get("differencing")
    greedy = compare.chosen_candidate if compare is not None else by_rule.get("greedy")
    if differencing is None or greedy is None:
        return ChapterText(text, False)
    d_spread, g_spread = differencing.initial_spread, greedy.initial_spread
    if d_spread < g_spread:
        return ChapterText(text + f" Before any swap its spread is {fmt(d_spread)}, where the greedy's is "
                                  f"{fmt(g_spread)}.", True)
    return ChapterText(text + f" On these loads it does not beat the greedy: spread {fmt(d_spread)} against the "
                              f"greedy's {fmt(g_spread)}.", False)


_TEXTS: dict[str, Callable[[LayerTrace, LayerTrace | None], ChapterText]] = {
    "problem": _problem,
    "greedy": _greedy,
    "restarts": _restarts,
    "pruning": _pruning,
    "one-swap": _one_swap,
    "two-swap": _two_swap,
    "choice": _choice,
    "paired": _paired,
    "differencing": _differencing,
}


def chapter_text(key: str, trace: LayerTrace, compare: LayerTrace | None = None) -> ChapterText:
    """The text of chapter ``key`` for its run ``trace`` (and ``compare``, the
    run the chapter sets beside it, when it has one)."""
    return _TEXTS[key](trace, compare)
