"""The frames of the step-by-step views, rebuilt from a layer's events.

A :class:`Frame` is the state after one event of a candidate's story (see
``LayerTrace.story``): the event itself, the slot table and pack loads, and
the items to mark. Frames hold no words: ``packviz.teach.narration`` says what a
frame shows, in the explorer's voice or the teacher's. Nothing here runs the
algorithm; every state comes from ``PackState.apply``.
"""

from __future__ import annotations

from dataclasses import dataclass

from packviz.trace.events import Event, Placed, Swapped
from packviz.trace.replay import LayerTrace
from packviz.trace.state import PackState

PHASE_OF_EVENT = {
    "fill_started": "start",
    "placed": "fill",
    "merged": "fill",  # a differencing merge, worked out by packviz.teach.differencing
    "pruned": "prune",
    "swapped": "refine",
    "refinement_stopped": "stop",
    "chosen": "final",
}
PHASES = ("start", "fill", "prune", "refine", "stop", "final")


@dataclass(frozen=True)
class Frame:
    index: int
    event: Event
    slots: tuple[tuple[int, ...], ...]  # [pack][rank] -> item, -1 while empty
    loads: tuple[float, ...]

    @property
    def phase(self) -> str:
        return PHASE_OF_EVENT[self.event.kind]

    @property
    def highlight(self) -> tuple[int, ...]:
        """The items this event placed or moved."""
        if isinstance(self.event, Placed):
            return (self.event.item,)
        if isinstance(self.event, Swapped):
            return self.event.items_from_a + self.event.items_from_b
        return ()

    @property
    def spread(self) -> float:
        return max(self.loads) - min(self.loads)


def build_frames(trace: LayerTrace, candidate: int | None = None) -> list[Frame]:
    """One frame per event of the chosen candidate's story (or another kept one's)."""
    state = PackState(trace.weight, trace.num_packs)
    frames = []
    for index, event in enumerate(trace.story(candidate)):
        state.apply(event)
        frames.append(Frame(index, event, state.table(), tuple(state.loads)))
    return frames


def state_before(trace: LayerTrace, frames: list[Frame], index: int) -> PackState:
    """The state just before frame ``index``'s event (the empty packs for the first)."""
    state = PackState(trace.weight, trace.num_packs)
    if index > 0:
        previous = frames[index - 1]
        state.slots = [list(row) for row in previous.slots]
        state.loads = list(previous.loads)
        for pack, row in enumerate(previous.slots):
            for item in row:
                if item >= 0:
                    state.pack_of[item] = pack
    return state


def phase_starts(frames: list[Frame]) -> dict[str, int]:
    """The first frame of each phase present, in order."""
    starts: dict[str, int] = {}
    for frame in frames:
        starts.setdefault(frame.phase, frame.index)
    return starts
