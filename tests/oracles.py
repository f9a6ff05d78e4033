"""Plain, slow reference answers the tests compare the engine against."""

from __future__ import annotations

import itertools
import math

from hypothesis import strategies as st

from packviz.engine import tie_window


@st.composite
def balanced_instance(draw, packs: tuple[int, int], per_pack: tuple[int, int], max_load: int):
    """(whole-number loads, number of packs) with n = packs * per_pack items."""
    num_packs = draw(st.integers(*packs))
    size = num_packs * draw(st.integers(*per_pack))
    return draw(st.lists(st.integers(0, max_load), min_size=size, max_size=size)), num_packs


def brute_force_optimum(weight: list[float], num_packs: int) -> float:
    """The smallest possible max pack load, by trying every balanced partition."""
    per_pack = len(weight) // num_packs
    best = float("inf")

    def assign(remaining: list[int], loads: list[float]) -> None:
        nonlocal best
        if not remaining:
            best = min(best, max(loads))
            return
        first, rest = remaining[0], remaining[1:]
        for mates in itertools.combinations(rest, per_pack - 1):
            left = [i for i in rest if i not in mates]
            assign(left, [*loads, weight[first] + sum(weight[i] for i in mates)])

    assign(list(range(len(weight))), [])
    return best


# Tie-heavy loads: the values where rounding to units, tie windows and equal
# keys decide the placement, so where an engine bug shows first.
TIE_HEAVY_FAMILIES: tuple[str, ...] = (
    "small integers",  # 0..3
    "all equal",
    "mostly zeros",
    "thousandths",  # 100 + i/1000
    "thirds",  # k/3
    "relative 1e-9",  # multiples of 10 times (1 + j*1e-9)
    "absolute 3e-9",  # multiples of 10 plus j*3e-9
    "huge",  # 1e12..1e15, some a few units apart
    "tiny",  # multiples of 1e-12
    "huge and tiny",
    "sub-unit",  # multiples of 10 plus j*4e-11: apart by less than the engine's unit
)


def _tie_heavy_value(family: str) -> st.SearchStrategy[float]:
    tens = st.integers(1, 18).map(lambda x: 10.0 * x)
    huge = st.tuples(st.integers(1, 9), st.integers(12, 15), st.integers(0, 3)).map(
        lambda t: t[0] * 10.0 ** t[1] + t[2])
    tiny = st.integers(0, 3).map(lambda k: k * 1e-12)
    return {
        "small integers": st.integers(0, 3).map(float),
        "mostly zeros": st.integers(0, 9).map(lambda i: 0.0 if i < 7 else (i - 6) / 2),
        "thousandths": st.integers(0, 9).map(lambda i: 100 + i / 1000),
        "thirds": st.integers(0, 12).map(lambda k: k / 3.0),
        "relative 1e-9": st.tuples(tens, st.integers(0, 9)).map(lambda t: t[0] * (1 + t[1] * 1e-9)),
        "absolute 3e-9": st.tuples(tens, st.integers(0, 9)).map(lambda t: t[0] + t[1] * 3e-9),
        "huge": huge,
        "tiny": tiny,
        "huge and tiny": st.one_of(huge, tiny),
        "sub-unit": st.tuples(tens, st.integers(0, 9)).map(lambda t: t[0] + t[1] * 4e-11),
    }[family]


@st.composite
def tie_heavy_layer(draw, num_items: int) -> list[float]:
    """One layer of ``num_items`` loads from one tie-heavy family."""
    family = draw(st.sampled_from(TIE_HEAVY_FAMILIES))
    if family == "all equal":
        value = draw(st.sampled_from([0.0, 1.0, 1 / 3, 70.000000021, 1e-12, 1e15]))
        return [value] * num_items
    return draw(st.lists(_tie_heavy_value(family), min_size=num_items, max_size=num_items))


@st.composite
def tie_heavy_instance(draw, max_packs: int = 8, max_per_pack: int = 6, max_layers: int = 3):
    """(loads [layers][items], number of packs, layer ids): every layer from its
    own tie-heavy family, n = packs * per_pack items, random layer ids."""
    num_packs = draw(st.integers(1, max_packs))
    num_items = num_packs * draw(st.integers(1, max_per_pack))
    num_layers = draw(st.integers(1, max_layers))
    rows = [draw(tie_heavy_layer(num_items)) for _ in range(num_layers)]
    layer_ids = draw(st.lists(st.integers(0, 2**20), min_size=num_layers, max_size=num_layers))
    return rows, num_packs, layer_ids


def greedy_slack_units(num_restarts: int, num_refined: int, select_by: str, num_items: int) -> dict[str, float]:
    """How far, in the engine's whole-number units, a config's max load and
    spread may lie above the plain greedy's (``eplb``) on one layer; a
    missing entry is not promised at all.

    Every decision is taken on units, where sums are exact. Restart 0 is the
    plain greedy fill; it is always refined, or (pruned by max load) only
    fills no heavier than it are kept before it; a move is taken only when it
    gains more than its threshold, so both packs it touches end strictly
    between their old loads: no move raises the heaviest pack or widens the
    spread. No candidate whose heaviest pack outweighs the greedy's is
    chosen, so the max load never exceeds the greedy's: slack 0. A config
    chosen by spread picks among the rest by tie keys, where values within
    ``tie_window`` units of their sorted neighbour share a key: a chain of K
    candidates spans up to K - 1 windows, so its spread may lie that far
    above refined restart 0's, itself no wider than the greedy's.
    """
    slack = {"max_load": 0.0}
    if select_by == "spread":
        slack["spread"] = (min(num_refined, num_restarts) - 1) * tie_window(num_items)
    return slack


# Presets for traced runs in the tests: small restart counts keep them fast, while
# restarts-2swap still keeps several candidates to refine.
TRACED_PRESET_OPTIONS = {
    "eplb": {},
    "fast": {},
    "best": {},
    "restarts-2swap": {"num_restarts": 16, "num_refined": 8},
}


def differencing_oracle(loads: list[float], num_packs: int) -> list[int]:
    """The balanced largest differencing method, restated one merge at a time:
    the pack of each item, for loads sorted heaviest first (ties by index) and
    compared exactly (fit for whole-number loads)."""
    order = sorted(range(len(loads)), key=lambda item: (-loads[item], item))
    # each row: per pack (in that row's numbering) its sum and its items
    rows = {t: [[loads[item], [item]] for item in order[t * num_packs:(t + 1) * num_packs]]
            for t in range(len(loads) // num_packs)}

    def row_spread(row: list) -> float:
        return max(s for s, _ in row) - min(s for s, _ in row)

    while len(rows) > 1:
        ranked = sorted(rows, key=lambda t: (-row_spread(rows[t]), t))
        first, second = ranked[0], ranked[1]
        heavy = sorted(range(num_packs), key=lambda p: (-rows[first][p][0], p))
        light = sorted(range(num_packs), key=lambda p: (rows[second][p][0], p))
        for into, taken in zip(heavy, light, strict=True):
            rows[first][into][0] += rows[second][taken][0]
            rows[first][into][1] += rows[second][taken][1]
        del rows[second]
    (last,) = rows.values()
    pack_of = [0] * len(loads)
    for pack, (_, items) in enumerate(last):
        for item in items:
            pack_of[item] = pack
    return pack_of


def replication_lower_bound(shares: list[float], num_packs: int) -> float:
    """FACTS' family for replica loads ``shares`` on ``num_packs`` packs of equal
    item counts: the mean, and for t = 0..k-1 the t+1 loads some pack must take
    among the t*m+1 heaviest, plus the k-t-1 smallest."""
    ordered = sorted(shares, reverse=True)
    per_pack = len(ordered) // num_packs
    bound = sum(ordered) / num_packs
    for t in range(per_pack):
        top = sum(ordered[t * num_packs - t:t * num_packs + 1])
        bound = max(bound, top + sum(ordered[len(ordered) - (per_pack - t - 1):]) if per_pack - t - 1 else top)
    return bound


def best_placement_of_counts(weight: list[float], counts: list[int], num_packs: int, cutoff: float) -> float:
    """The lightest busiest pack over every placement of ``counts`` replicas of each
    expert (replica load weight / count) on ``num_packs`` packs of equal slot counts,
    no two copies of an expert on one pack; inf when none is below ``cutoff``.

    Packs are filled one at a time, each with the heaviest expert that has a copy
    left plus k - 1 other experts (every choice tried; a run of packs headed by the
    same expert takes its partners in one order only), cut off at ``cutoff``."""
    num_experts = len(weight)
    per_pack = sum(counts) // num_packs
    order = sorted(range(num_experts), key=lambda e: (-weight[e] / counts[e], e))
    share = [weight[e] / counts[e] for e in order]
    left = [counts[e] for e in order]
    best = cutoff

    def fill(packs_left: int, peak: float, head: int, partners: tuple[int, ...]) -> None:
        nonlocal best
        if packs_left == 0:
            best = peak
            return
        if sum(c * s for c, s in zip(left, share)) / packs_left >= best:
            return
        live = [e for e in range(num_experts) if left[e] > 0]
        if len(live) < per_pack or any(left[e] > packs_left for e in live):
            return
        first = live[0]
        forced = [e for e in live[1:] if left[e] == packs_left]
        free = [e for e in live[1:] if left[e] < packs_left]
        if len(forced) > per_pack - 1:
            return
        for extra in reversed(list(itertools.combinations(free, per_pack - 1 - len(forced)))):
            mates = tuple(sorted(forced + list(extra)))
            if first == head and mates < partners:
                continue
            load = share[first] + sum(share[e] for e in mates)
            if max(peak, load) >= best:
                continue
            for e in (first, *mates):
                left[e] -= 1
            fill(packs_left - 1, max(peak, load), first, mates)
            for e in (first, *mates):
                left[e] += 1

    fill(num_packs, 0.0, -1, ())
    return best if best < cutoff else float("inf")


def replication_optimum(weight: list[float], num_slots: int, num_packs: int) -> tuple[float, list[int]]:
    """The exhaustive optimum of replica counts and placement together: over every
    count vector (each expert 1..num_packs replicas, ``num_slots`` in all) and
    every placement of its replicas with no two copies of an expert on one pack,
    (the lightest busiest pack, its counts). Tiny layers only.

    Count vectors are tried in the order of their lower bound (the mean, FACTS'
    family of the replica loads), and the search stops at the first whose bound
    is no lighter than the best found; only vectors whose every replica is lighter
    than the best of DeepSeek's counts are listed."""
    num_experts = len(weight)
    if not num_experts <= num_slots <= num_experts * num_packs or num_slots % num_packs:
        raise ValueError(f"{num_experts} experts cannot fill {num_slots} slots on {num_packs} packs, one copy each")
    deepseek = [1] * num_experts
    for _ in range(num_slots - num_experts):
        open_experts = [e for e in range(num_experts) if deepseek[e] < num_packs]
        deepseek[max(open_experts, key=lambda e: (weight[e] / deepseek[e], -e))] += 1
    best = best_placement_of_counts(weight, deepseek, num_packs, float("inf"))
    best_counts = deepseek
    listed: list[tuple[float, list[int]]] = []

    def choose(expert: int, slots_left: int, counts: list[int]) -> None:
        if expert == num_experts:
            if slots_left == 0:
                shares = [w / c for w, c in zip(weight, counts) for _ in range(c)]
                listed.append((replication_lower_bound(shares, num_packs), list(counts)))
            return
        lowest = max(1, math.floor(weight[expert] / best) + 1) if best < float("inf") else 1
        highest = min(num_packs, slots_left - (num_experts - expert - 1))
        for count in range(lowest, highest + 1):
            choose(expert + 1, slots_left - count, [*counts, count])

    choose(0, num_slots, [])
    for bound, counts in sorted(listed, key=lambda entry: entry[0]):
        if bound >= best:
            break
        peak = best_placement_of_counts(weight, counts, num_packs, best)
        if peak < best:
            best, best_counts = peak, counts
    return best, best_counts
