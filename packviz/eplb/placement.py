"""DeepSeek EPLB's expert placement, with packviz's packer inside.

``rebalance_experts`` is a drop-in for DeepSeek's ``eplb.rebalance_experts``
(the call SGLang and vLLM make): replicate the hottest experts into redundant
slots, then pack the slots onto GPUs, hierarchically (expert groups onto nodes
first) when the groups divide among the nodes. Any preset or config can do the
packing; the result is never heavier on any layer's busiest GPU than DeepSeek's
own greedy (``eplb``) gives.

Exactness of the ``eplb`` preset: every stage sorts loads heaviest first and
puts each into the lightest pack with room, the lowest-numbered pack on a tie,
exactly as DeepSeek does. Where two loads that a stage sorts are equal,
packviz places the lower-indexed one first (a stable sort); DeepSeek's
``torch.sort`` does not promise an order for equal keys, so with ties the two
may place tied items differently. DeepSeek also works in float32: loads that
are distinct in float64 but equal in float32 are ties to DeepSeek. So: for
whole-number loads below 2**24 whose sorted values are distinct in each stage,
the placement is DeepSeek's, bit for bit; with ties it is DeepSeek's algorithm
with ties taken by index. tests/test_eplb.py checks both statements.

Shapes: weight [layers, num_logical]; phy2log [layers, num_replicas];
log2phy [layers, num_logical, max_count] (-1 padded); logcnt [layers, num_logical].
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from packviz.config import PackerConfig
from packviz.packer import pack
from packviz.validate import as_weight_matrix


class ExpertPlacement(NamedTuple):
    """Unpacks as DeepSeek's ``(phy2log, log2phy, logcnt)``."""

    phy2log: torch.Tensor
    log2phy: torch.Tensor
    logcnt: torch.Tensor

    @property
    def replica_rank(self) -> torch.Tensor:
        """[layers, num_replicas]: which replica of its expert each slot holds (0..logcnt-1)."""
        num_layers, num_logical, max_count = self.log2phy.shape
        slots = self.log2phy.reshape(num_layers, -1)
        present = slots >= 0
        layer_of = torch.arange(num_layers, device=slots.device).unsqueeze(1).expand_as(slots)
        ranks = torch.arange(max_count, device=slots.device).repeat(num_logical).expand(num_layers, -1)
        rank = torch.empty_like(self.phy2log)
        rank[layer_of[present], slots[present]] = ranks[present]
        return rank


def replicate_experts(weight: torch.Tensor, num_physical: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Give each extra slot to the expert with the most load per replica
    (the lowest-numbered expert on a tie).

    Returns phy2log [X, num_physical], replica rank [X, num_physical] and
    logcnt [X, num_logical].
    """
    num_rows, num_logical = weight.shape
    if num_physical < num_logical:
        raise ValueError(f"{num_physical} slots cannot hold {num_logical} experts")
    device = weight.device
    phy2log = torch.arange(num_physical, dtype=torch.int64, device=device).repeat(num_rows, 1)
    replica_rank = torch.zeros(num_rows, num_physical, dtype=torch.int64, device=device)
    logcnt = torch.ones(num_rows, num_logical, dtype=torch.int64, device=device)
    rows = torch.arange(num_rows, device=device)
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
    """DeepSeek's three stages on CPU float64 weight [L, num_logical]:
    (phy2log, replica rank, logcnt)."""
    num_layers, num_logical = weight.shape
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


def gpu_loads(weight: torch.Tensor, phy2log: torch.Tensor, logcnt: torch.Tensor, num_gpus: int) -> torch.Tensor:
    """[layers, num_gpus]: each GPU's load when every replica of an expert
    takes an equal share of its load (weight [L, num_logical])."""
    weight = as_weight_matrix(weight).to(phy2log.device)
    slot_load = (weight / logcnt).gather(1, phy2log)
    return slot_load.view(weight.shape[0], num_gpus, -1).sum(dim=2)


def _check_shape(num_logical: int, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int) -> None:
    for name, value in (("num_replicas", num_replicas), ("num_groups", num_groups), ("num_nodes", num_nodes),
                        ("num_gpus", num_gpus)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if num_replicas < num_logical:
        raise ValueError(f"{num_replicas} replicas cannot hold {num_logical} experts")
    if num_replicas % num_gpus:
        raise ValueError(f"{num_replicas} replicas do not split evenly over {num_gpus} GPUs")
    if num_gpus % num_nodes:
        raise ValueError(f"{num_gpus} GPUs do not split evenly over {num_nodes} nodes")
    if num_logical % num_groups:
        raise ValueError(f"{num_logical} experts do not split evenly into {num_groups} groups")


def rebalance_experts(
    weight: torch.Tensor,
    num_replicas: int,
    num_groups: int | None,
    num_nodes: int,
    num_gpus: int,
    enable_hierarchical: bool | None = None,
    *,
    packer: str | PackerConfig = "eplb",
    seed: int = 0,
) -> ExpertPlacement:
    """Place ``num_replicas`` expert replicas on ``num_gpus`` GPUs, per layer.

    The positional arguments are DeepSeek's; ``num_groups=None`` (a model
    without expert groups) packs globally. ``enable_hierarchical`` (SGLang's
    switch) forces the mode; by default it is hierarchical when the groups
    divide among the nodes, as in DeepSeek. The tensors come back on
    ``weight``'s device.
    """
    device = weight.device if isinstance(weight, torch.Tensor) else torch.device("cpu")
    weight = as_weight_matrix(weight).cpu()
    num_layers, num_logical = weight.shape
    if enable_hierarchical is None:
        enable_hierarchical = num_groups is not None and num_nodes > 0 and num_groups % num_nodes == 0
    if enable_hierarchical:
        if num_groups is None:
            raise ValueError("hierarchical placement needs num_groups (expert groups to put on nodes)")
        _check_shape(num_logical, num_replicas, num_groups, num_nodes, num_gpus)
        if num_groups % num_nodes:
            raise ValueError(f"{num_groups} expert groups do not split evenly over {num_nodes} nodes")
        shape = (num_groups, num_nodes)
    else:
        _check_shape(num_logical, num_replicas, 1, 1, num_gpus)
        shape = (1, 1)
    phy2log, replica_rank, logcnt = _hierarchical(weight, num_replicas, *shape, num_gpus, packer, seed)

    if packer != "eplb":
        # Per layer, keep DeepSeek's greedy where it leaves a lighter busiest GPU:
        # a better packer in one stage can still lose in a later one.
        greedy = _hierarchical(weight, num_replicas, *shape, num_gpus, "eplb", seed)
        mine = gpu_loads(weight, phy2log, logcnt, num_gpus).amax(dim=1)
        theirs = gpu_loads(weight, greedy[0], greedy[2], num_gpus).amax(dim=1)
        use_greedy = (theirs < mine).unsqueeze(1)
        phy2log = torch.where(use_greedy, greedy[0], phy2log)
        replica_rank = torch.where(use_greedy, greedy[1], replica_rank)
        logcnt = torch.where(use_greedy, greedy[2], logcnt)

    max_count = int(logcnt.max())
    log2phy = torch.full((num_layers, num_logical, max_count), -1, dtype=torch.int64)
    log2phy.view(num_layers, -1).scatter_(
        -1, phy2log * max_count + replica_rank,
        torch.arange(num_replicas, dtype=torch.int64).expand(num_layers, -1))
    return ExpertPlacement(phy2log.to(device), log2phy.to(device), logcnt.to(device))
