"""Expert groups on nodes: the part of a hierarchical plan a re-plan must keep.

DeepSeek's hierarchical policy puts every expert group, with all its experts'
replicas, on one node (its experts then talk inside the node), each node taking
``num_groups / num_nodes`` groups. A re-plan that trades replicas across nodes
one at a time breaks that, so a hierarchical re-plan works in two tiers:

- which node each group is on (:func:`group_nodes` reads it off a plan;
  :func:`move_groups` trades whole groups between nodes where a node is too
  heavy for the target: every replica of both groups moves between nodes);
- which GPU of its node each replica is on (:func:`settle_groups` makes a plan
  follow a group-to-node assignment, moving as few replicas as it can; the
  re-plan's steps then stay inside each node).

Shapes: weight [layers, num_logical]; phy2log [layers, num_replicas], slot s on
GPU s // (num_replicas / num_gpus), GPU g on node g // (num_gpus / num_nodes);
expert e in group e // (num_logical / num_groups); assignment [layers, num_groups]
the node of each group.
"""

from __future__ import annotations

import numpy as np
import torch

from packviz.eplb.replicate import spread_duplicates


def _node_of_slot(num_replicas: int, num_gpus: int, num_nodes: int) -> np.ndarray:
    per_gpu = num_replicas // num_gpus
    return np.arange(num_replicas) // per_gpu // (num_gpus // num_nodes)


def group_slots(phy2log: torch.Tensor, num_logical: int, num_groups: int, num_gpus: int,
                num_nodes: int) -> torch.Tensor:
    """[layers, num_groups, num_nodes]: how many slots of each node hold an expert of each group."""
    num_layers, num_replicas = phy2log.shape
    node = torch.from_numpy(_node_of_slot(num_replicas, num_gpus, num_nodes))
    group = phy2log.cpu() // (num_logical // num_groups)
    table = torch.zeros(num_layers, num_groups * num_nodes, dtype=torch.int64)
    keys = group * num_nodes + node
    return table.scatter_add_(1, keys, torch.ones_like(keys)).view(num_layers, num_groups, num_nodes)


def group_nodes(phy2log: torch.Tensor, num_logical: int, num_groups: int, num_gpus: int,
                num_nodes: int) -> torch.Tensor:
    """[layers, num_groups]: a node for every group, ``num_groups / num_nodes`` a
    node, keeping as many of the plan's slots where they are as a greedy matching
    finds (the group with the most slots on one node first). On a plan that keeps
    its groups on nodes, exactly where they are."""
    overlap = group_slots(phy2log, num_logical, num_groups, num_gpus, num_nodes).numpy()
    num_layers = overlap.shape[0]
    per_node = num_groups // num_nodes
    assignment = np.empty((num_layers, num_groups), dtype=np.int64)
    for layer in range(num_layers):
        score = overlap[layer].astype(np.float64)
        room = np.full(num_nodes, per_node)
        placed = np.zeros(num_groups, dtype=bool)
        for _ in range(num_groups):
            masked = np.where(placed[:, None] | (room == 0)[None, :], -1.0, score)
            group, node = divmod(int(masked.argmax()), num_nodes)
            assignment[layer, group] = node
            placed[group] = True
            room[node] -= 1
    return torch.from_numpy(assignment)


def groups_split(phy2log: torch.Tensor, num_logical: int, num_groups: int, num_gpus: int,
                 num_nodes: int) -> torch.Tensor:
    """[layers] bool: some group of the layer has slots on more than one node."""
    on = group_slots(phy2log, num_logical, num_groups, num_gpus, num_nodes) > 0
    return (on.sum(dim=2) > 1).any(dim=1)


def groups_moved(previous: torch.Tensor, phy2log: torch.Tensor, num_logical: int, num_groups: int,
                 num_gpus: int, num_nodes: int) -> torch.Tensor:
    """[layers]: groups whose node in ``phy2log`` is not the one
    :func:`group_nodes` reads off ``previous`` (each such group's replicas all
    crossed between nodes)."""
    before = group_nodes(previous, num_logical, num_groups, num_gpus, num_nodes)
    after = group_nodes(phy2log, num_logical, num_groups, num_gpus, num_nodes)
    return (before != after).sum(dim=1)


def move_groups(weight: torch.Tensor, assignment: torch.Tensor, group_cost: torch.Tensor, target: torch.Tensor,
                num_nodes: int, gpus_per_node: int, max_trades: int | None = None) -> torch.Tensor:
    """[layers, num_groups]: ``assignment`` with whole groups traded between nodes
    until no node's load over its GPUs is above ``target`` [layers] (no plan's
    busiest GPU is lighter than its node's load over the node's GPUs), or no
    trade helps.

    A trade swaps a group of the heaviest node with a group of another node (the
    node keeps its count of groups). Of the trades that bring both nodes within
    the target, the one with the lowest ``group_cost`` [layers, num_groups] (the
    replicas moved: both groups' slots) wins; otherwise the one that lowers the
    heavier of the two nodes most, if it lowers it at all."""
    weight = weight.to(torch.float64).cpu()
    num_layers = weight.shape[0]
    num_groups = assignment.shape[1]
    loads = weight.view(num_layers, num_groups, -1).sum(dim=2).numpy()
    result = assignment.clone().numpy()
    cost = group_cost.double().numpy()
    node_target = target.double().numpy() * gpus_per_node
    trades = num_groups if max_trades is None else max_trades
    for layer in range(num_layers):
        where = result[layer]
        for _ in range(trades):
            node_load = np.bincount(where, weights=loads[layer], minlength=num_nodes)
            heavy = int(node_load.argmax())
            limit = node_target[layer] * (1 + 1e-12)
            if node_load[heavy] <= limit:
                break
            mine = np.flatnonzero(where == heavy)
            theirs = np.flatnonzero(where != heavy)
            if len(theirs) == 0:
                break
            # [mine, theirs]: the two nodes' loads after trading group a for group b
            delta = loads[layer][mine][:, None] - loads[layer][theirs][None, :]
            heavy_after = node_load[heavy] - delta
            other_after = node_load[where[theirs]][None, :] + delta
            worst = np.maximum(heavy_after, other_after)
            price = cost[layer][mine][:, None] + cost[layer][theirs][None, :]
            reaching = worst <= limit
            if reaching.any():
                pick = np.where(reaching, price + worst / (2 * node_load[heavy]), np.inf).argmin()
            elif worst.min() < node_load[heavy] * (1 - 1e-12):
                pick = worst.argmin()
            else:
                break
            a, b = divmod(int(pick), len(theirs))
            group_a, group_b = mine[a], theirs[b]
            where[group_a], where[group_b] = where[group_b], heavy
        result[layer] = where
    return torch.from_numpy(result)


def settle_groups(weight: torch.Tensor, previous: torch.Tensor, assignment: torch.Tensor, num_gpus: int,
                  num_nodes: int) -> torch.Tensor:
    """[layers, num_replicas]: ``previous`` changed so every group sits on its
    node in ``assignment``, moving as few replicas as this finds.

    A slot whose expert's group belongs to its node keeps it. The other slots of
    a node are free; every expert of the node's groups without a replica there
    gets one (the heaviest first, on the node's lightest GPU with a free slot),
    a free slot left over goes to the expert with the most load per replica
    (DeepSeek's rule) on the lightest GPU that does not hold it yet. When a node
    has fewer free slots than experts to seat, replicas of its experts with two
    or more are freed, the lightest replica first. The steps of a re-plan then
    balance each node's GPUs."""
    weight = weight.to(torch.float64).cpu().numpy()
    plan = previous.cpu().numpy().copy()
    where = assignment.cpu().numpy()
    num_layers, num_replicas = plan.shape
    num_logical = weight.shape[1]
    num_groups = where.shape[1]
    group_size = num_logical // num_groups
    per_gpu = num_replicas // num_gpus
    gpus_per_node = num_gpus // num_nodes
    slots_per_node = per_gpu * gpus_per_node
    for layer in range(num_layers):
        expert_node = np.repeat(where[layer], group_size)
        for node in range(num_nodes):
            first = node * slots_per_node
            slots = np.arange(first, first + slots_per_node)
            experts = np.flatnonzero(expert_node == node)
            if (expert_node[plan[layer, slots]] != node).any() or not np.isin(experts, plan[layer, slots]).all():
                _settle_node(plan[layer], slots, experts, weight[layer], per_gpu)
    settled = torch.from_numpy(plan)
    # a node whose only free slots sat beside a replica of the expert seated there
    # holds a second copy on one GPU: swap it with a replica elsewhere in the node
    counts = torch.zeros(num_layers, num_logical, dtype=torch.int64).scatter_add_(1, settled, torch.ones_like(settled))
    anywhere = torch.full((num_layers,), torch.inf, dtype=torch.float64)
    return spread_duplicates(torch.from_numpy(weight), settled, counts, num_gpus, num_nodes, ceiling=anywhere)


def _settle_node(row: np.ndarray, slots: np.ndarray, experts: np.ndarray, weight: np.ndarray, per_gpu: int) -> None:
    """Seat ``experts`` (the node's groups') in the node's ``slots`` of ``row``
    [num_replicas] in place (see :func:`settle_groups`); ``weight`` [num_logical]."""
    first = int(slots[0])
    num_gpus = len(slots) // per_gpu
    mine = np.isin(row[slots], experts)
    free = [int(s) for s in slots[~mine]]
    count = np.bincount(row[slots[mine]], minlength=len(weight))
    unseated = [int(e) for e in experts if count[e] == 0]
    # free replicas of experts with two or more, the lightest replica first
    while len(free) < len(unseated):
        victim = min((int(e) for e in experts if count[e] > 1), key=lambda e: (weight[e] / count[e], e))
        free.append(next(int(s) for s in slots if row[s] == victim and int(s) not in free))
        count[victim] -= 1
    taken = set(free)
    gpu_load = np.zeros(num_gpus)
    held = np.zeros((num_gpus, len(weight)), dtype=bool)
    for s in slots:
        if int(s) not in taken:
            gpu_load[(s - first) // per_gpu] += weight[row[s]] / count[row[s]]
            held[(s - first) // per_gpu, row[s]] = True
    free_by_gpu = [[s for s in free if (s - first) // per_gpu == g] for g in range(num_gpus)]

    def seat(expert: int) -> None:
        options = [g for g in range(num_gpus) if free_by_gpu[g] and not held[g, expert]] \
            or [g for g in range(num_gpus) if free_by_gpu[g]]
        gpu = min(options, key=lambda g: (gpu_load[g], g))
        row[free_by_gpu[gpu].pop(0)] = expert
        count[expert] += 1
        gpu_load[gpu] += weight[expert] / count[expert]
        held[gpu, expert] = True

    for expert in sorted(unseated, key=lambda e: (-weight[e], e)):
        seat(expert)
    while any(free_by_gpu):
        seat(max((int(e) for e in experts), key=lambda e: (weight[e] / count[e], -e)))
