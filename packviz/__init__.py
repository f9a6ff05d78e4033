"""packviz: balanced packing for MoE expert placement, seen step by step."""

from packviz.config import DEFAULT_PRESET, PRESETS, PackerConfig, Preset, resolve_config
from packviz.packer import PackResult, pack
from packviz.trace import CandidateTrace, LayerTrace, Placement, Swap, replay

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "CandidateTrace",
    "LayerTrace",
    "PackResult",
    "PackerConfig",
    "Placement",
    "Preset",
    "Swap",
    "pack",
    "replay",
    "resolve_config",
]
