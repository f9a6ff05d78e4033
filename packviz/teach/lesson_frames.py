"""The frames the Learn page steps through: the run's frames, each one new.

``build_frames`` gives one frame per recorded event. A lesson drops the
events that change nothing a room can see (pruning a single fill, the stop
of a run that does not refine, the choice among a single candidate right
after its stop, whose words the stop frame then says) and shows a
differencing fill as its rows and merges instead of one placement per item,
so no two consecutive frames look alike.
"""

from __future__ import annotations

from dataclasses import replace

from packviz.teach.differencing import recorded_merges
from packviz.trace.events import Chosen, FillStarted, Placed, Pruned, RefinementStopped
from packviz.trace.replay import LayerTrace
from packviz.trace.timeline import Frame, build_frames


def _silent(trace: LayerTrace, frames: list[Frame], index: int) -> bool:
    event = frames[index].event
    if isinstance(event, Pruned):
        return len(event.restart_spreads) == 1
    if isinstance(event, RefinementStopped):
        return not trace.config.refines
    if isinstance(event, Chosen):
        return event.num_candidates == 1 and index > 0 and isinstance(frames[index - 1].event, RefinementStopped) \
            and trace.config.refines
    return False


def lesson_frames(trace: LayerTrace, candidate: int | None = None) -> list[Frame]:
    """The frames of the chosen candidate's story (or another's), as the Learn page shows them."""
    frames = build_frames(trace, candidate)
    shown: list[Frame] = []
    fill = frames[0].event if frames and isinstance(frames[0].event, FillStarted) else None
    placed = [f for f in frames if isinstance(f.event, Placed)]
    stages = recorded_merges(trace.weight, trace.num_packs, fill, [f.event for f in placed]) if fill else None
    empty = frames[0] if frames else None
    for index, frame in enumerate(frames):
        if _silent(trace, frames, index):
            continue
        if stages is not None and isinstance(frame.event, Placed):
            if frame is placed[-1]:
                # the rows, then each merge; the last merge leaves the placement the fill recorded
                for stage in stages:
                    base = frame if stage is stages[-1] else empty
                    shown.append(replace(base, event=stage))
            continue
        shown.append(frame)
    return [replace(frame, index=position) for position, frame in enumerate(shown)]
