"""The events the engine records for a traced layer: one typed stream.

A candidate's story is ``FillStarted``, one ``Placed`` per item, then (for
the layer) ``Pruned``, the candidate's ``Swapped`` moves, ``RefinementStopped``
with its reason, and the layer's ``Chosen``. Everything that shows a run
(replay, frames, narration, the quiz) reads these and nothing else; applying
them to a :class:`packviz.trace.state.PackState` rebuilds the placement.
"""

from __future__ import annotations

from dataclasses import dataclass

# Why a candidate's refinement ended.
STOP_NO_MOVE = "no improving move"
STOP_LOWER_BOUND = "reached the lower bound"
STOP_ITERATION_CAP = "iteration cap"
STOP_REFINEMENT_OFF = "refinement off"
STOP_REASONS = (STOP_NO_MOVE, STOP_LOWER_BOUND, STOP_ITERATION_CAP, STOP_REFINEMENT_OFF)


@dataclass(frozen=True, slots=True)
class FillStarted:
    """A restart's fill begins: items in ``order`` (heaviest first by the
    restart's perturbed keys), placed by ``rule``: ``greedy`` (each to the
    lightest pack with room), ``snake`` (dealt 0..m-1, m-1..0, ...) or
    ``differencing`` (where the merges of the differencing method put it)."""

    restart: int
    noise_scale: float
    order: tuple[int, ...]
    rule: str = "greedy"
    kind: str = "fill_started"

    @property
    def snake(self) -> bool:
        return self.rule == "snake"


@dataclass(frozen=True, slots=True)
class Placed:
    """The fill put ``item`` (true ``load``) into ``pack`` at ``rank``."""

    step: int
    item: int
    load: float
    pack: int
    rank: int
    pack_load_after: float
    kind: str = "placed"


@dataclass(frozen=True, slots=True)
class Pruned:
    """The layer kept ``kept_restarts`` (best first) of all restarts, whose
    spreads after the fill are ``restart_spreads``."""

    restart_spreads: tuple[float, ...]
    kept_restarts: tuple[int, ...]
    select_by: str
    kind: str = "pruned"


@dataclass(frozen=True, slots=True)
class Swapped:
    """One refinement move: ``items_from_a`` left pack ``pack_a`` for ``pack_b``.

    ``items_from_a[i]`` takes the slot (rank) that ``items_from_b[i]`` left, and
    the other way round. ``difference_before`` is D, pack_a's load minus
    pack_b's before the move; ``moved_load`` is d, what pack_a gives up net.
    """

    iteration: int
    move_kind: str  # "1-swap" or "2-swap"
    pack_a: int
    pack_b: int
    items_from_a: tuple[int, ...]
    items_from_b: tuple[int, ...]
    ranks_in_a: tuple[int, ...]
    ranks_in_b: tuple[int, ...]
    difference_before: float
    moved_load: float
    spread_before: float
    spread_after: float
    kind: str = "swapped"


@dataclass(frozen=True, slots=True)
class RefinementStopped:
    """The candidate's refinement ended after ``iterations`` iterations, for ``reason``."""

    iterations: int
    reason: str
    kind: str = "refinement_stopped"


@dataclass(frozen=True, slots=True)
class Chosen:
    """The layer's result is kept candidate ``candidate`` (restart ``restart``)."""

    candidate: int
    restart: int
    num_candidates: int
    select_by: str
    max_load: float
    spread: float
    kind: str = "chosen"


Event = FillStarted | Placed | Pruned | Swapped | RefinementStopped | Chosen
EVENT_KINDS: tuple[str, ...] = ("fill_started", "placed", "pruned", "swapped", "refinement_stopped", "chosen")
