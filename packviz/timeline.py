"""The frames of the step-by-step view, rebuilt from a layer's trace.

Each :class:`Frame` is the state of the chosen candidate after one recorded
event (the empty start, each greedy placement, each refinement move), with
the items to highlight and a sentence that says what happened. Nothing here
runs the algorithm: it only applies the recorded events in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from packviz.trace import LayerTrace

PHASES = ("start", "fill", "refine", "final")


@dataclass(frozen=True)
class Frame:
    index: int
    phase: str
    slots: tuple[tuple[int, ...], ...]  # [pack][rank] -> item, -1 while empty
    loads: tuple[float, ...]
    highlight: tuple[int, ...]
    narration: str

    @property
    def spread(self) -> float:
        return max(self.loads) - min(self.loads)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.4g}"


def _items(items: tuple[int, ...]) -> str:
    return " and ".join(str(i) for i in items) if len(items) <= 2 else ", ".join(map(str, items))


def build_frames(trace: LayerTrace, candidate: int | None = None) -> list[Frame]:
    """Frames of the chosen candidate (or another kept one) from its events."""
    chosen = trace.candidates[trace.chosen if candidate is None else candidate]
    weight = trace.weight
    num_packs, per_pack = trace.num_packs, trace.items_per_pack
    slots = [[-1] * per_pack for _ in range(num_packs)]
    loads = [0.0] * num_packs
    frames: list[Frame] = []

    def emit(phase: str, highlight: tuple[int, ...], narration: str) -> None:
        frames.append(Frame(len(frames), phase, tuple(tuple(row) for row in slots), tuple(loads),
                            highlight, narration))

    noise = "" if chosen.noise_scale == 0 else f" (restart {chosen.restart}, noise up to {chosen.noise_scale:.0%})"
    rule = ("deals them to the packs in snake order" if trace.config.start == "snake"
            else "puts each into the lightest pack that still has room")
    emit("start", (), f"{trace.num_items} items into {num_packs} packs of {per_pack}: the fill takes "
         f"them heaviest first{noise} and {rule}.")
    for placement in chosen.placements:
        slots[placement.pack][placement.rank] = placement.item
        loads[placement.pack] = placement.pack_load_after
        if per_pack == 1:
            room = "its own pack"
        elif trace.config.start == "snake":
            room = "dealt in snake order (0 to m-1, then back)"
        else:
            room = "the lightest pack with room"
        emit("fill", (placement.item,),
             f"Step {placement.step + 1}: item {placement.item} (load {_fmt(placement.load)}) goes to pack "
             f"{placement.pack}, {room}; pack {placement.pack} now holds {_fmt(placement.pack_load_after)}.")
    for number, swap in enumerate(chosen.swaps, start=1):
        for item_a, rank_a, item_b, rank_b in zip(swap.items_from_a, swap.ranks_in_a, swap.items_from_b,
                                                  swap.ranks_in_b):
            slots[swap.pack_a][rank_a] = item_b
            slots[swap.pack_b][rank_b] = item_a
        loads[swap.pack_a] = sum(weight[i] for i in slots[swap.pack_a])
        loads[swap.pack_b] = sum(weight[i] for i in slots[swap.pack_b])
        plural = "s" if len(swap.items_from_a) > 1 else ""
        emit("refine", swap.items_from_a + swap.items_from_b,
             f"{swap.kind} (move {number}, iteration {swap.iteration + 1}): item{plural} "
             f"{_items(swap.items_from_a)} of pack {swap.pack_a} trade{'' if plural else 's'} places with "
             f"item{plural} {_items(swap.items_from_b)} "
             f"of pack {swap.pack_b}, moving {_fmt(swap.moved_load)}; spread {_fmt(swap.spread_before)} to "
             f"{_fmt(swap.spread_after)}.")
    moves = len(chosen.swaps)
    emit("final", (), f"Done: candidate {trace.chosen + 1} of {len(trace.candidates)} kept (restart "
         f"{chosen.restart}) wins after {moves} move{'s' if moves != 1 else ''}; max pack load "
         f"{_fmt(max(loads))}, spread {_fmt(max(loads) - min(loads))}.")
    return frames


def phase_starts(frames: list[Frame]) -> dict[str, int]:
    """The first frame of each phase present, in order."""
    starts: dict[str, int] = {}
    for frame in frames:
        starts.setdefault(frame.phase, frame.index)
    return starts
