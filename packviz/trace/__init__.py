"""Stage 3, events and frames: what the engine recorded, and the states replaying it gives."""

from packviz.trace.replay import CandidateTrace, LayerTrace, replay

__all__ = ["CandidateTrace", "LayerTrace", "replay"]
