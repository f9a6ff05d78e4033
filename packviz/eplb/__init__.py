"""EPLB: replicate hot experts, then place them over nodes and GPUs with the packer."""

from packviz.eplb.placement import (
    ExpertPlacement,
    PlacementShapeError,
    gpu_loads,
    placement_from_phy2log,
    rebalance_experts,
)
from packviz.eplb.replicate import replicate_experts

__all__ = ["ExpertPlacement", "PlacementShapeError", "gpu_loads", "placement_from_phy2log", "rebalance_experts",
           "replicate_experts"]
