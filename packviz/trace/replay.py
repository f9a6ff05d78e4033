"""What the engine did, step by step, for the layers asked for.

The engine's recorder fills these records while it runs; the animation,
narration and quizzes only read them. A candidate holds its own events (its
fill, its moves, why it stopped); the layer holds the pruning and the
choice. ``LayerTrace.story`` lays one candidate's events out in the order
they happened, and ``replay`` rebuilds the placement from them alone: it
must equal the engine's result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from packviz.config import PackerConfig
from packviz.trace.events import Chosen, Event, FillStarted, Placed, Pruned, RefinementStopped, Swapped
from packviz.trace.state import PackState


@dataclass
class CandidateTrace:
    """One kept restart: its fill, its refinement moves and why they stopped."""

    restart: int
    noise_scale: float
    events: list[Event] = field(default_factory=list)

    @property
    def fill_started(self) -> FillStarted:
        return next(e for e in self.events if isinstance(e, FillStarted))

    @property
    def placements(self) -> list[Placed]:
        return [e for e in self.events if isinstance(e, Placed)]

    @property
    def swaps(self) -> list[Swapped]:
        return [e for e in self.events if isinstance(e, Swapped)]

    @property
    def stopped(self) -> RefinementStopped | None:
        return next((e for e in self.events if isinstance(e, RefinementStopped)), None)

    @property
    def initial_spread(self) -> float:
        placements = self.placements
        loads: dict[int, float] = {}
        for placement in placements:
            loads[placement.pack] = placement.pack_load_after
        values = list(loads.values())
        return max(values) - min(values) if len(values) > 1 else 0.0

    @property
    def final_spread(self) -> float:
        swaps = self.swaps
        return swaps[-1].spread_after if swaps else self.initial_spread

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
    candidates: list[CandidateTrace] = field(default_factory=list)
    pruned: Pruned | None = None
    choice: Chosen | None = None

    @property
    def num_items(self) -> int:
        return len(self.weight)

    @property
    def items_per_pack(self) -> int:
        return self.num_items // self.num_packs

    @property
    def chosen(self) -> int:
        return self.choice.candidate if self.choice is not None else 0

    @property
    def chosen_candidate(self) -> CandidateTrace:
        return self.candidates[self.chosen]

    @property
    def restart_spreads(self) -> list[float]:
        return list(self.pruned.restart_spreads) if self.pruned else []

    @property
    def kept_restarts(self) -> list[int]:
        return list(self.pruned.kept_restarts) if self.pruned else []

    def story(self, candidate: int | None = None) -> list[Event]:
        """One candidate's events in the order they happened: its fill, the
        layer's pruning, its moves and stop, and the layer's choice."""
        chosen = self.candidates[self.chosen if candidate is None else candidate]
        fill = [e for e in chosen.events if isinstance(e, (FillStarted, Placed))]
        refine = [e for e in chosen.events if isinstance(e, (Swapped, RefinementStopped))]
        layer_events = [self.pruned] if self.pruned is not None else []
        closing = [self.choice] if self.choice is not None else []
        return [*fill, *layer_events, *refine, *closing]


def replay(trace: LayerTrace, candidate: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rebuild ``(pack_index[n], rank_in_pack[n])`` from the recorded events.

    Uses the chosen candidate unless ``candidate`` names another; raises
    ValueError when the events contradict each other.
    """
    state = PackState(trace.weight, trace.num_packs)
    for event in trace.story(candidate):
        state.apply(event)
    if not state.complete:
        raise ValueError("the fill did not place every item")
    pack_index, rank_in_pack = state.placement()
    return torch.tensor(pack_index, dtype=torch.int64), torch.tensor(rank_in_pack, dtype=torch.int64)
