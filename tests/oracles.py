"""Plain, slow reference answers the tests compare the engine against."""

from __future__ import annotations

import itertools


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
