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

import operator
from typing import NamedTuple

import numpy as np
import torch

from packviz.config import PackerConfig, preset_of
from packviz.engine.driver import threads_for
from packviz.eplb.replicate import (
    joint_replicate,
    replicate_experts,
    same_pack_duplicates,
    slot_order_ranks,
    spread_duplicates,
)
from packviz.packer import pack
from packviz.validate import as_weight_matrix, slot_counts_hint


class PlacementShapeError(ValueError, AssertionError):
    """A cluster shape or argument EPLB cannot place. Both a ValueError (packviz's
    contract) and an AssertionError (what DeepSeek's asserts raise, and what
    vLLM's tests expect for an impossible shape)."""


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
    max_duplicates: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DeepSeek's three stages on CPU float64 weight [L, num_logical]:
    (phy2log, replica rank, logcnt). With ``max_duplicates`` [L, num_nodes]
    stages 2 and 3 are one: replica counts chosen with the packing
    (``joint_replicate``), each node's plan putting at most that many replicas
    beside one of their own expert on a GPU."""
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
    if max_duplicates is None:
        phy2mlog, replica_rank, mlogcnt = replicate_experts(node_load, num_physical // num_nodes)
        # 3. replicas onto the node's GPUs
        replica_load = (node_load / mlogcnt).gather(-1, phy2mlog)
        gpu_pack, gpu_rank = _pack(replica_load, num_gpus // num_nodes, packer, seed)
    else:
        # 2 and 3 together: counts chosen with the packing
        phy2mlog, replica_rank, mlogcnt, gpu_pack, gpu_rank = joint_replicate(
            node_load, num_physical // num_nodes, num_gpus // num_nodes, packer, seed,
            max_duplicates=max_duplicates.reshape(-1))
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


def _whole_number(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int: Python and numpy integers (and 0-d integer tensors)
    are taken, as DeepSeek's arithmetic takes them; bools and floats are not."""
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise PlacementShapeError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise PlacementShapeError(f"{name} must be a whole number >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise PlacementShapeError(f"{name} must be a whole number >= {minimum}, got {number}")
    return number


def _check_shape(num_logical: int, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int) -> None:
    if num_replicas < num_logical:
        raise PlacementShapeError(f"{num_replicas} replicas cannot hold {num_logical} experts "
                                  f"({slot_counts_hint(num_replicas, num_logical, num_gpus)})")
    if num_replicas % num_gpus:
        raise PlacementShapeError(f"{num_replicas} replicas do not split evenly over {num_gpus} GPUs "
                                  f"({slot_counts_hint(num_replicas, num_logical, num_gpus)})")
    if num_gpus % num_nodes:
        raise PlacementShapeError(f"{num_gpus} GPUs do not split evenly over {num_nodes} nodes")
    if num_logical % num_groups:
        raise PlacementShapeError(f"{num_logical} experts do not split evenly into {num_groups} groups")


def _sixth_argument(value: object) -> tuple[bool | None, torch.Tensor | None]:
    """SGLang passes ``enable_hierarchical`` (a bool) sixth, vLLM's async worker
    the previous ``phy2log`` (a tensor). A tensor of any size is a plan, never a
    switch: a one-element plan must not read as True or False."""
    if value is None:
        return None, None
    if isinstance(value, torch.Tensor):
        return None, value
    if isinstance(value, np.ndarray):
        return None, torch.from_numpy(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value), None
    raise PlacementShapeError(
        f"the sixth argument is enable_hierarchical (a bool) or the previous phy2log (a tensor), got {value!r}")


def check_previous_plan(previous: torch.Tensor, num_layers: int, num_logical: int, num_replicas: int,
                        num_gpus: int) -> torch.Tensor:
    """The previous phy2log as an int64 CPU [layers, num_replicas] tensor, or a
    PlacementShapeError naming what does not fit."""
    previous = torch.as_tensor(previous)
    if previous.dtype == torch.bool or previous.is_floating_point() or previous.is_complex():
        raise PlacementShapeError(f"the previous phy2log must hold expert ids (integers), got dtype {previous.dtype}")
    if tuple(previous.shape) != (num_layers, num_replicas):
        raise PlacementShapeError(
            f"the previous phy2log has shape {tuple(previous.shape)}; this rebalance needs "
            f"[{num_layers} layers, {num_replicas} replicas]")
    previous = previous.to(device="cpu", dtype=torch.int64)
    bad = (previous < 0) | (previous >= num_logical)
    if bool(bad.any()):
        layer, slot = (int(v) for v in bad.nonzero()[0])
        raise PlacementShapeError(
            f"the previous phy2log names expert {int(previous[layer, slot])} at layer {layer}, slot {slot}; "
            f"experts are 0..{num_logical - 1}")
    counts = torch.zeros(num_layers, num_logical, dtype=torch.int64).scatter_add_(
        1, previous, torch.ones_like(previous))
    missing = (counts == 0).nonzero()
    if len(missing):
        layer, expert = (int(v) for v in missing[0])
        raise PlacementShapeError(f"the previous phy2log has no replica of expert {expert} at layer {layer}")
    return previous


def placement_from_phy2log(phy2log: torch.Tensor, num_logical: int) -> ExpertPlacement:
    """log2phy and logcnt for a phy2log [layers, num_replicas]; an expert's
    replicas are ranked in slot order."""
    num_layers, num_replicas = phy2log.shape
    logcnt = torch.zeros(num_layers, num_logical, dtype=torch.int64).scatter_add_(
        1, phy2log, torch.ones_like(phy2log))
    # rank of each slot among the slots of its expert: stable sort by expert
    order = torch.sort(phy2log, dim=1, stable=True).indices
    sorted_experts = phy2log.gather(1, order)
    first = torch.cumsum(logcnt, dim=1) - logcnt
    rank_sorted = torch.arange(num_replicas).expand(num_layers, -1) - first.gather(1, sorted_experts)
    replica_rank = torch.empty_like(phy2log).scatter_(1, order, rank_sorted)
    return ExpertPlacement(phy2log, _log2phy(phy2log, replica_rank, logcnt), logcnt)


def _log2phy(phy2log: torch.Tensor, replica_rank: torch.Tensor, logcnt: torch.Tensor) -> torch.Tensor:
    num_layers, num_logical = logcnt.shape
    max_count = int(logcnt.max())
    log2phy = torch.full((num_layers, num_logical, max_count), -1, dtype=torch.int64)
    log2phy.view(num_layers, -1).scatter_(
        -1, phy2log * max_count + replica_rank,
        torch.arange(phy2log.shape[1], dtype=torch.int64).expand(num_layers, -1))
    return log2phy


def rebalance_experts(
    weight: torch.Tensor,
    num_replicas: int,
    num_groups: int | None,
    num_nodes: int,
    num_gpus: int | None = None,
    enable_hierarchical: bool | torch.Tensor | None = None,
    *,
    packer: str | PackerConfig = "eplb",
    seed: int = 0,
    previous: torch.Tensor | None = None,
    tolerance: float = 0.005,
    num_ranks: int | None = None,
    old_global_expert_indices: torch.Tensor | None = None,
    joint_replication: bool = True,
) -> ExpertPlacement:
    """Place ``num_replicas`` expert replicas on ``num_gpus`` GPUs, per layer.

    The positional arguments are DeepSeek's; ``num_groups=None`` (a model
    without expert groups) packs globally. The sixth is SGLang's
    ``enable_hierarchical`` when a bool (it forces the mode; by default the
    placement is hierarchical when the groups divide among the nodes, as in
    DeepSeek) and the previous plan when a tensor (vLLM's async worker passes
    its ``phy2log`` [layers, num_replicas] there): then the result is
    ``replan``'s, within ``tolerance`` of a fresh plan's busiest GPU and moving
    few replicas. vLLM's keyword names (``num_ranks``,
    ``old_global_expert_indices``) work too. Integer arguments may be numpy
    integers. With a packer other than ``eplb`` the replica counts are chosen
    with the packing (``joint_replication=False``: DeepSeek's counts, then the
    packer). A shape that cannot work raises ``PlacementShapeError``, both a
    ValueError and an AssertionError. The tensors come back on ``weight``'s
    device.
    """
    device = weight.device if isinstance(weight, torch.Tensor) else torch.device("cpu")
    weight = as_weight_matrix(weight).cpu()
    num_layers, num_logical = weight.shape
    if num_gpus is None:
        num_gpus = num_ranks
    if num_gpus is None:
        raise PlacementShapeError("num_gpus (vLLM: num_ranks) is missing")
    hierarchical, previous_from_sixth = _sixth_argument(enable_hierarchical)
    previous = next((p for p in (previous, old_global_expert_indices, previous_from_sixth) if p is not None), None)
    num_replicas = _whole_number("num_replicas", num_replicas)
    num_nodes = _whole_number("num_nodes", num_nodes)
    num_gpus = _whole_number("num_gpus", num_gpus)
    if num_groups is not None:
        num_groups = _whole_number("num_groups", num_groups)
    if hierarchical is None:
        hierarchical = num_groups is not None and num_groups % num_nodes == 0
    if hierarchical:
        if num_groups is None:
            raise PlacementShapeError("hierarchical placement needs num_groups (expert groups to put on nodes)")
        _check_shape(num_logical, num_replicas, num_groups, num_nodes, num_gpus)
        if num_groups % num_nodes:
            raise PlacementShapeError(f"{num_groups} expert groups do not split evenly over {num_nodes} nodes")
        shape = (num_groups, num_nodes)
    else:
        _check_shape(num_logical, num_replicas, 1, 1, num_gpus)
        shape = (1, 1)

    if previous is not None:
        from packviz.eplb.replan import replan

        previous = check_previous_plan(previous, num_layers, num_logical, num_replicas, num_gpus)
        placement = replan(weight, previous, *shape, num_gpus, tolerance=tolerance, packer=packer, seed=seed)
        return ExpertPlacement(*(tensor.to(device) for tensor in placement))

    phy2log, replica_rank, logcnt = fresh_plan(weight, num_replicas, *shape, num_gpus, packer, seed,
                                               joint_replication)
    log2phy = _log2phy(phy2log, replica_rank, logcnt)
    return ExpertPlacement(phy2log.to(device), log2phy.to(device), logcnt.to(device))


def fresh_plan(weight: torch.Tensor, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int,
               packer: str | PackerConfig, seed: int,
               joint_replication: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(phy2log, replica rank, logcnt) planned from scratch on CPU float64
    weight [L, num_logical], with a checked shape (one group and one node:
    the global policy). ``eplb`` is DeepSeek's greedy; any other packer
    chooses the replica counts with the packing. Per layer never heavier on
    the busiest GPU than DeepSeek's greedy, and never more replicas beside one
    of their own expert on a GPU than it places."""
    with threads_for(torch.device("cpu"), weight.numel() * num_replicas // max(num_gpus, 1)):
        return _fresh_plan(weight, num_replicas, num_groups, num_nodes, num_gpus, packer, seed, joint_replication)


def _fresh_plan(weight: torch.Tensor, num_replicas: int, num_groups: int, num_nodes: int, num_gpus: int,
                packer: str | PackerConfig, seed: int,
                joint_replication: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shape = (num_replicas, num_groups, num_nodes, num_gpus)
    greedy = _hierarchical(weight, *shape, "eplb", seed)
    if packer == "eplb":
        return greedy
    num_logical = weight.shape[1]
    greedy_waste = gpu_duplicates(greedy[0], num_logical, num_gpus, per_node=num_nodes)       # [L, nodes]
    greedy_peak = gpu_loads(weight, greedy[0], greedy[2], num_gpus).amax(dim=1)
    preset = preset_of(packer)
    # Per layer the lightest busiest GPU of the packer's plan, the plans of the presets
    # it must never be heavier than, and DeepSeek's greedy (a better packer in one
    # stage can still lose in a later one); the packer's own on ties.
    plans = [_packer_plan(weight, shape, packer, seed, joint_replication, greedy_waste, greedy_peak)]
    plans += [_packer_plan(weight, shape, lesser, seed, joint_replication, greedy_waste, greedy_peak)
              for lesser in (preset.never_heavier_than if preset is not None else ())]
    plans.append(greedy)
    peaks = []
    for phy2log, _, logcnt in plans:
        # a plan wasting more slots than the greedy is not taken
        more_waste = gpu_duplicates(phy2log, num_logical, num_gpus).squeeze(1) > greedy_waste.sum(dim=1)
        peak = gpu_loads(weight, phy2log, logcnt, num_gpus).amax(dim=1)
        peaks.append(torch.where(more_waste, torch.inf, peak))
    choice = torch.stack(peaks, dim=1).argmin(dim=1)               # the first of equals
    return tuple(torch.stack([plan[part] for plan in plans], dim=1)[torch.arange(len(choice)), choice]
                 for part in range(3))


def _packer_plan(weight: torch.Tensor, shape: tuple[int, int, int, int], packer: str | PackerConfig, seed: int,
                 joint_replication: bool, greedy_waste: torch.Tensor,
                 greedy_peak: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``packer``'s plan (phy2log, replica rank, logcnt) for ``shape`` (replicas, groups,
    nodes, GPUs), its counts chosen with the packing unless ``joint_replication`` is off,
    wasting no more slots per node than ``greedy_waste`` [L, nodes] where copies can be
    spread without a GPU passing ``greedy_peak`` [L]."""
    num_logical, num_gpus, num_nodes = weight.shape[1], shape[3], shape[2]
    phy2log, replica_rank, logcnt = _hierarchical(weight, *shape, packer, seed,
                                                  max_duplicates=greedy_waste if joint_replication else None)
    # layers wasting more slots than the greedy: spread the copies (the peak may
    # rise, never past the greedy's)
    over = (gpu_duplicates(phy2log, num_logical, num_gpus).squeeze(1) > greedy_waste.sum(dim=1)).nonzero().squeeze(1)
    if len(over):
        phy2log, replica_rank = phy2log.clone(), replica_rank.clone()
        phy2log[over] = spread_duplicates(weight[over], phy2log[over], logcnt[over], num_gpus, num_nodes,
                                          ceiling=greedy_peak[over])
        replica_rank[over] = slot_order_ranks(phy2log[over], num_logical)
    return phy2log, replica_rank, logcnt


def gpu_duplicates(phy2log: torch.Tensor, num_logical: int, num_gpus: int, per_node: int = 1) -> torch.Tensor:
    """[L, per_node]: replicas that share a GPU with another replica of their
    expert, in each of ``per_node`` equal blocks of GPUs (nodes)."""
    num_layers, num_replicas = phy2log.shape
    gpu = (torch.arange(num_replicas) // (num_replicas // num_gpus)).expand(num_layers, -1)
    rows = same_pack_duplicates(phy2log.reshape(num_layers * per_node, -1),
                                gpu.reshape(num_layers * per_node, -1), num_logical)
    return rows.view(num_layers, per_node)
