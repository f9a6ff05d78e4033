"""Plain, slow reference answers the tests compare the engine against."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st


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
