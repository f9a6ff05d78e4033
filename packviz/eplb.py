"""DeepSeek EPLB's expert placement, with packviz's packer inside.

``rebalance_experts`` follows DeepSeek's eplb.py: replicate the hottest
experts into redundant slots, then pack the slots onto GPUs, hierarchically
(expert groups onto nodes first) when the groups divide among the nodes.
With the ``eplb`` preset it reproduces DeepSeek's placement exactly; any
other preset or config swaps in a better packer.

Shapes: weight [layers, num_logical]; phy2log [layers, num_replicas];
log2phy [layers, num_logical, max_count] (-1 padded); logcnt [layers, num_logical].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from packviz.config import PackerConfig
from packviz.packer import pack
from packviz.validate import as_weight_matrix


@dataclass(frozen=True)
class ExpertPlacement:
    phy2log: torch.Tensor
    log2phy: torch.Tensor
    logcnt: torch.Tensor


def replicate_experts(weight: torch.Tensor, num_physical: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Give each extra slot to the expert with the most load per replica.

    Returns phy2log [X, num_physical], replica rank [X, num_physical] and
    logcnt [X, num_logical].
    """
    num_rows, num_logical = weight.shape
    if num_physical < num_logical:
        raise ValueError(f"{num_physical} slots cannot hold {num_logical} experts")
    phy2log = torch.arange(num_physical, dtype=torch.int64).repeat(num_rows, 1)
    replica_rank = torch.zeros(num_rows, num_physical, dtype=torch.int64)
    logcnt = torch.ones(num_rows, num_logical, dtype=torch.int64)
    rows = torch.arange(num_rows)
    for slot in range(num_logical, num_physical):
        hottest = (weight / logcnt).max(dim=-1).indices
        phy2log[:, slot] = hottest
        replica_rank[:, slot] = logcnt[rows, hottest]
        logcnt[rows, hottest] += 1
    return phy2log, replica_rank, logcnt


def _inverse(permutation: torch.Tensor) -> torch.Tensor:
    inverse = torch.empty_like(permutation)
    positions = torch.arange(permutation.size(1), dtype=torch.int64).expand(permutation.shape)
    return inverse.scatter_(1, permutation, positions)


def _pack(weight: torch.Tensor, num_packs: int, packer: str | PackerConfig, seed: int):
    result = pack(weight, num_packs, packer, seed=seed, device="cpu")
    return result.pack_index, result.rank_in_pack


def _hierarchical(
    weight: torch.Tensor,
    num_physical: int,
    num_groups: int,
    num_nodes: int,
    num_gpus: int,
    packer: str | PackerConfig,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    num_layers, num_logical = weight.shape
    if num_logical % num_groups or num_groups % num_nodes or num_gpus % num_nodes:
        raise ValueError(
            f"{num_logical} experts, {num_groups} groups, {num_nodes} nodes and {num_gpus} GPUs "
            "do not divide evenly"
        )
    if num_physical % num_gpus:
        raise ValueError(f"{num_physical} slots do not split evenly over {num_gpus} GPUs")
    group_size = num_logical // num_groups
    groups_per_node = num_groups // num_nodes
    slots_per_gpu = num_physical // num_gpus

    # 1. expert groups onto nodes
    group_load = weight.unflatten(-1, (num_groups, group_size)).sum(-1)
    group_pack, group_rank = _pack(group_load, num_nodes, packer, seed)
    log2mlog = (((group_pack * groups_per_node + group_rank) * group_size).unsqueeze(-1)
                + torch.arange(group_size, dtype=torch.int64)).flatten(-2)
    mlog2log = _inverse(log2mlog)

    # 2. replicas within each node
    node_load = weight.gather(-1, mlog2log).view(-1, num_logical // num_nodes)
    phy2mlog, replica_rank, mlogcnt = replicate_experts(node_load, num_physical // num_nodes)

    # 3. replicas onto the node's GPUs
    replica_load = (node_load / mlogcnt).gather(-1, phy2mlog)
    gpu_pack, gpu_rank = _pack(replica_load, num_gpus // num_nodes, packer, seed)
    phy2pphy = gpu_pack * slots_per_gpu + gpu_rank
    pphy2phy = _inverse(phy2pphy)

    pphy2mlog = phy2mlog.gather(-1, pphy2phy)
    node_offset = torch.arange(0, num_logical, num_logical // num_nodes, dtype=torch.int64).view(1, -1, 1)
    pphy2mlog = (pphy2mlog.view(num_layers, num_nodes, -1) + node_offset).flatten(-2)
    pphy2log = mlog2log.gather(-1, pphy2mlog)
    pphy_rank = replica_rank.gather(-1, pphy2phy).view(num_layers, -1)
    logcnt = mlogcnt.view(num_layers, -1).gather(-1, log2mlog)
    return pphy2log, pphy_rank, logcnt


def rebalance_experts(
    weight: torch.Tensor,
    num_replicas: int,
    num_groups: int,
    num_nodes: int,
    num_gpus: int,
    packer: str | PackerConfig = "eplb",
    seed: int = 0,
) -> ExpertPlacement:
    """Place ``num_replicas`` expert replicas on ``num_gpus`` GPUs, per layer."""
    weight = as_weight_matrix(weight)
    num_layers, num_logical = weight.shape
    if num_groups % num_nodes == 0:
        phy2log, replica_rank, logcnt = _hierarchical(
            weight, num_replicas, num_groups, num_nodes, num_gpus, packer, seed)
    else:
        phy2log, replica_rank, logcnt = _hierarchical(
            weight, num_replicas, 1, 1, num_gpus, packer, seed)
    max_count = int(logcnt.max())
    log2phy = torch.full((num_layers, num_logical, max_count), -1, dtype=torch.int64)
    log2phy.view(num_layers, -1).scatter_(
        -1, phy2log * max_count + replica_rank,
        torch.arange(num_replicas, dtype=torch.int64).expand(num_layers, -1))
    return ExpertPlacement(phy2log=phy2log, log2phy=log2phy, logcnt=logcnt)
