"""Plain answers for one step, for the Learn page: which pack takes the next
item, and every swap between two packs with its d and whether 0 < d < D.

These read a :class:`PackState`; they do not run the algorithm. The page
shows them as the candidates a move weighed, and tests check them against
the moves the engine recorded.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from packviz.trace.state import PackState


@dataclass(frozen=True)
class SwapOption:
    """Trading ``items_from_a`` (of the heavier pack) for ``items_from_b``:
    it moves ``moved`` = d from pack a to pack b, whose difference is D."""

    items_from_a: tuple[int, ...]
    items_from_b: tuple[int, ...]
    moved: float
    difference: float

    @property
    def helps(self) -> bool:
        """0 < d < D: both packs end strictly between their old loads."""
        return 0 < self.moved < self.difference

    @property
    def spread_score(self) -> float:
        """D - |D - 2d|: how much the pair's difference shrinks (best at d = D/2)."""
        return self.difference - abs(self.difference - 2 * self.moved)


def swap_options(state: PackState, pack_a: int, pack_b: int, items_per_side: int) -> list[SwapOption]:
    """Every trade of ``items_per_side`` items of pack a for as many of pack b."""
    weight = state.weight
    side_a = [i for i in state.slots[pack_a] if i >= 0]
    side_b = [i for i in state.slots[pack_b] if i >= 0]
    difference = state.loads[pack_a] - state.loads[pack_b]
    options = []
    for give in itertools.combinations(side_a, items_per_side):
        for take in itertools.combinations(side_b, items_per_side):
            moved = sum(weight[i] for i in give) - sum(weight[i] for i in take)
            options.append(SwapOption(give, take, moved, difference))
    return options


def best_option(options: list[SwapOption]) -> SwapOption | None:
    """The helping option with the highest spread score, or None."""
    helping = [option for option in options if option.helps]
    return max(helping, key=lambda option: option.spread_score) if helping else None


def next_pack(state: PackState) -> int:
    """Where the greedy fill puts the next item: the lightest pack with room."""
    return state.lightest(with_room=True)
