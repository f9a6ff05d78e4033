"""What the engine did, step by step, for the layers asked for.

The engine fills these records while it runs (see ``engine.TraceRecorder``);
the animation and narration only read them. ``replay`` rebuilds a layer's
placement from the events alone, and must equal the engine's result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from packviz.config import PackerConfig


@dataclass(frozen=True, slots=True)
class Placement:
    """The greedy fill put ``item`` (true ``load``) into ``pack`` at ``rank``."""

    step: int
    item: int
    load: float
    pack: int
    rank: int
    pack_load_after: float


@dataclass(frozen=True, slots=True)
class Swap:
    """One refinement move: ``items_from_a`` left pack ``pack_a`` for ``pack_b``.

    ``items_from_a[i]`` takes the slot (rank) that ``items_from_b[i]`` left, and
    the other way round; ``kind`` is ``"1-swap"`` or ``"2-swap"``.
    """

    iteration: int
    kind: str
    pack_a: int
    pack_b: int
    items_from_a: tuple[int, ...]
    items_from_b: tuple[int, ...]
    ranks_in_a: tuple[int, ...]
    ranks_in_b: tuple[int, ...]
    moved_load: float
    spread_before: float
    spread_after: float


@dataclass
class CandidateTrace:
    """One kept restart: its greedy fill, then its refinement moves."""

    restart: int
    noise_scale: float
    placements: list[Placement] = field(default_factory=list)
    swaps: list[Swap] = field(default_factory=list)
    initial_spread: float = 0.0
    final_spread: float = 0.0

    @property
    def spread_history(self) -> list[float]:
        """Spread after the fill and after each move."""
        return [self.initial_spread] + [swap.spread_after for swap in self.swaps]


@dataclass
class LayerTrace:
    """Everything the engine did for one layer."""

    layer: int
    weight: list[float]
    num_packs: int
    config: PackerConfig
    restart_spreads: list[float] = field(default_factory=list)
    kept_restarts: list[int] = field(default_factory=list)
    candidates: list[CandidateTrace] = field(default_factory=list)
    chosen: int = 0

    @property
    def num_items(self) -> int:
        return len(self.weight)

    @property
    def items_per_pack(self) -> int:
        return self.num_items // self.num_packs

    @property
    def chosen_candidate(self) -> CandidateTrace:
        return self.candidates[self.chosen]


def replay(trace: LayerTrace, candidate: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rebuild ``(pack_index[n], rank_in_pack[n])`` from the recorded events.

    Uses the chosen candidate unless ``candidate`` names another; raises
    ValueError when the events contradict each other.
    """
    chosen = trace.candidates[trace.chosen if candidate is None else candidate]
    n = trace.num_items
    pack_index = [-1] * n
    rank_in_pack = [-1] * n
    slots: dict[tuple[int, int], int] = {}
    for placement in chosen.placements:
        key = (placement.pack, placement.rank)
        if pack_index[placement.item] != -1 or key in slots:
            raise ValueError(f"placement {placement} reuses an item or a slot")
        pack_index[placement.item] = placement.pack
        rank_in_pack[placement.item] = placement.rank
        slots[key] = placement.item
    if -1 in pack_index:
        raise ValueError("the fill did not place every item")
    for swap in chosen.swaps:
        moves = zip(swap.items_from_a, swap.ranks_in_a, swap.items_from_b, swap.ranks_in_b)
        for item_a, rank_a, item_b, rank_b in moves:
            if slots.get((swap.pack_a, rank_a)) != item_a or slots.get(
                (swap.pack_b, rank_b)
            ) != item_b:
                raise ValueError(f"swap {swap} does not match the placement so far")
            slots[(swap.pack_a, rank_a)] = item_b
            slots[(swap.pack_b, rank_b)] = item_a
            pack_index[item_a], rank_in_pack[item_a] = swap.pack_b, rank_b
            pack_index[item_b], rank_in_pack[item_b] = swap.pack_a, rank_a
    return (
        torch.tensor(pack_index, dtype=torch.int64),
        torch.tensor(rank_in_pack, dtype=torch.int64),
    )
