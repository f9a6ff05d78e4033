"""The one place where an event changes a placement.

``PackState.apply`` is used by ``trace.replay``, by the frames of the step
view, by the engine's recorder to check itself against the engine, and by
the Learn page's answer key: a second copy of this logic could disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

from packviz.trace.events import Event, Placed, Swapped


class EventMismatch(ValueError):
    """An event that does not fit the state it is applied to."""


class PackState:
    """Slots [pack][rank] -> item (-1 while empty) and each pack's load."""

    def __init__(self, weight: Sequence[float], num_packs: int) -> None:
        self.weight = list(weight)
        self.num_packs = num_packs
        self.per_pack = len(self.weight) // num_packs
        self.slots = [[-1] * self.per_pack for _ in range(num_packs)]
        self.loads = [0.0] * num_packs
        self.pack_of = [-1] * len(self.weight)

    def copy(self) -> PackState:
        other = PackState.__new__(PackState)
        other.weight, other.num_packs, other.per_pack = self.weight, self.num_packs, self.per_pack
        other.slots = [row[:] for row in self.slots]
        other.loads = self.loads[:]
        other.pack_of = self.pack_of[:]
        return other

    def apply(self, event: Event) -> None:
        """Apply one event; events that do not move items leave the state as it is."""
        if isinstance(event, Placed):
            if self.pack_of[event.item] != -1 or self.slots[event.pack][event.rank] != -1:
                raise EventMismatch(f"{event} reuses an item or a slot")
            self.slots[event.pack][event.rank] = event.item
            self.pack_of[event.item] = event.pack
            self._resum(event.pack)
        elif isinstance(event, Swapped):
            for item_a, rank_a, item_b, rank_b in zip(event.items_from_a, event.ranks_in_a, event.items_from_b,
                                                      event.ranks_in_b):
                if self.slots[event.pack_a][rank_a] != item_a or self.slots[event.pack_b][rank_b] != item_b:
                    raise EventMismatch(f"{event} does not match the placement so far")
                self.slots[event.pack_a][rank_a], self.slots[event.pack_b][rank_b] = item_b, item_a
                self.pack_of[item_a], self.pack_of[item_b] = event.pack_b, event.pack_a
            self._resum(event.pack_a)
            self._resum(event.pack_b)

    def _resum(self, pack: int) -> None:
        # Re-summed, not adjusted, so rounding never drifts over many moves.
        self.loads[pack] = sum(self.weight[i] for i in self.slots[pack] if i >= 0)

    @property
    def spread(self) -> float:
        return max(self.loads) - min(self.loads)

    @property
    def max_load(self) -> float:
        return max(self.loads)

    @property
    def complete(self) -> bool:
        return -1 not in self.pack_of

    def counts(self) -> list[int]:
        return [sum(1 for item in row if item >= 0) for row in self.slots]

    def heaviest(self) -> int:
        """The heaviest pack, the lowest-numbered on a tie."""
        return max(range(self.num_packs), key=lambda p: (self.loads[p], -p))

    def lightest(self, with_room: bool = False) -> int:
        """The lightest pack (with room, if asked), the lowest-numbered on a tie."""
        packs = [p for p, count in enumerate(self.counts()) if count < self.per_pack] if with_room \
            else range(self.num_packs)
        return min(packs, key=lambda p: (self.loads[p], p))

    def placement(self) -> tuple[list[int], list[int]]:
        """(pack_index[n], rank_in_pack[n]) of a complete state."""
        pack_index = [-1] * len(self.weight)
        rank_in_pack = [-1] * len(self.weight)
        for pack, row in enumerate(self.slots):
            for rank, item in enumerate(row):
                if item >= 0:
                    pack_index[item], rank_in_pack[item] = pack, rank
        return pack_index, rank_in_pack

    def table(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(row) for row in self.slots)
