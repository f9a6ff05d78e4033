"""packviz: balanced packing for MoE expert placement, seen step by step."""

from packviz.config import DEFAULT_PRESET, PRESETS, PackerConfig, Preset, resolve_config
from packviz.packer import PackResult, pack
from packviz.trace.events import Chosen, FillStarted, Placed, Pruned, RefinementStopped, Swapped
from packviz.trace.replay import CandidateTrace, LayerTrace, replay

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "CandidateTrace",
    "Chosen",
    "FillStarted",
    "LayerTrace",
    "PackResult",
    "PackerConfig",
    "Placed",
    "Preset",
    "Pruned",
    "RefinementStopped",
    "Swapped",
    "pack",
    "replay",
    "resolve_config",
]
