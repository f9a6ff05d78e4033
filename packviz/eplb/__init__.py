"""EPLB: replicate hot experts, then place them over nodes and GPUs with the packer."""

from packviz.eplb.placement import ExpertPlacement, gpu_loads, rebalance_experts, replicate_experts

__all__ = ["ExpertPlacement", "gpu_loads", "rebalance_experts", "replicate_experts"]
