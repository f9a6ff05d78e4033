"""Re-planning from the previous placement: a fresh plan's balance, few experts moved.

Every public EPLB plans from scratch at each rebalance, and a fresh plan puts
about nine in ten slots' experts on other GPUs, each a copy of the expert's
weights. ``replan`` starts from the previous plan instead (GPU ids are fixed)
and changes it one step at a time, where the busiest GPU is, until every
layer's busiest GPU is within ``tolerance`` of a fresh plan's:

- a swap: a replica on the busiest GPU trades places with one on another GPU
  (the two experts move);
- a retarget: a slot holding a replica of an expert with two or more (one that
  has cooled) becomes one more replica of an expert on the busiest GPU (one
  expert moves; its load spreads over one replica more).

A replica *moves* when its expert was not on that GPU in the previous plan;
undoing an earlier step moves nothing. Each step takes, among the steps that
bring the busiest GPU (and every GPU the step touches) within the target, the
one moving fewest replicas; when none does, the one lowering the busiest GPU
most per replica moved. Steps never put two replicas of one expert on a GPU.
With nodes, a replica whose expert was on no GPU of its new node counts
``INTER_NODE_PRICE`` moves when steps are compared (its weights cross the
slower link, and its expert group leaves its node), so a step inside a node
wins over one across nodes that moves as many or a few more. A layer the steps cannot bring within the target takes the
fresh plan, its GPUs renumbered to keep as many experts in place as a greedy
matching finds, so the tolerance always holds.

All steps are taken for every layer at once (tensors [layers, ...]).

Shapes: weight [layers, num_logical]; previous and phy2log [layers, num_replicas],
slot s on GPU s // (num_replicas / num_gpus).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from packviz.config import PackerConfig
from packviz.engine.driver import threads_for
from packviz.eplb.cluster import Cluster, policy_bound
from packviz.eplb.groups import group_nodes, group_slots, groups_moved, groups_split, move_groups, settle_groups
from packviz.eplb.moves import moves_between
from packviz.eplb.placement import (
    ExpertPlacement,
    PlacementShapeError,
    _whole_number,
    check_previous_plan,
    fresh_plan,
    gpu_loads,
    placement_from_phy2log,
)
from packviz.validate import as_weight_matrix

# What a move across nodes counts as when steps are compared (a move inside a
# node counts 1): among steps that reach the target, one inside a node wins
# over one across nodes that moves as many replicas.
INTER_NODE_PRICE = 1.5
_NO_PROGRESS = 1e-12
# A step trades with the lightest GPUs: at least this many of them (or half).
PARTNER_GPUS = 8


@dataclass(frozen=True)
class MoveCount:
    """Replicas moved per layer [layers], split by where their weights come from:
    ``intra_node`` when the expert was on another GPU of the same node before,
    ``inter_node`` when it was on no GPU of that node."""

    total: torch.Tensor
    intra_node: torch.Tensor
    inter_node: torch.Tensor


@dataclass(frozen=True)
class Replan:
    """A re-plan and what it cost. Per layer [layers]: ``peak`` the busiest GPU's
    load, ``fresh_peak`` a fresh plan's, ``kept_peak`` the previous plan's on these
    loads; ``from_fresh`` where the renumbered fresh plan was taken; ``fresh`` the
    fresh plan's phy2log [layers, num_replicas] (the reference, as planned).

    With a tolerance and no fresh plan given, a layer the steps bring within
    tolerance of the policy's lower bound (so of any plan) takes that bound as
    ``fresh_peak``, and when every layer does no fresh plan is made (``fresh``
    None).

    Hierarchical: ``groups_moved`` [layers] the expert groups whose node changed
    (all their replicas crossed between nodes; every other move stays inside a
    node); ``repair_moves`` [layers] the replicas moved only to bring a plan in
    place that spread a group over nodes back to one node a group (a move budget
    counts the moves after those). Both zero in global mode."""

    placement: ExpertPlacement
    moves: MoveCount
    peak: torch.Tensor
    fresh_peak: torch.Tensor
    kept_peak: torch.Tensor
    from_fresh: torch.Tensor
    fresh: torch.Tensor | None
    groups_moved: torch.Tensor
    repair_moves: torch.Tensor


def holdings(phy2log: torch.Tensor, num_logical: int, num_gpus: int) -> torch.Tensor:
    """[layers, num_gpus, num_logical]: how many replicas of each expert each GPU holds."""
    num_layers, num_replicas = phy2log.shape
    gpu = torch.arange(num_replicas, device=phy2log.device) // (num_replicas // num_gpus)
    flat = (gpu * num_logical).unsqueeze(0) + phy2log
    held = torch.zeros(num_layers, num_gpus * num_logical, dtype=torch.int64, device=phy2log.device)
    return held.scatter_add_(1, flat, torch.ones_like(flat)).view(num_layers, num_gpus, num_logical)


def count_moves(previous: torch.Tensor, phy2log: torch.Tensor, num_gpus: int, num_nodes: int = 1) -> MoveCount:
    """Replicas of ``phy2log`` whose expert was not on their GPU in ``previous``
    (both [layers, num_replicas]), per layer, split into intra- and inter-node:
    :func:`packviz.eplb.moves.moves_between`'s rows counted per layer."""
    num_layers, num_replicas = phy2log.shape
    cluster = Cluster(num_replicas, None, num_nodes, num_gpus, "global")
    moves = moves_between(previous, phy2log, cluster)
    intra = moves.intra_node
    total = torch.bincount(moves.layer, minlength=num_layers)
    within = torch.bincount(moves.layer[intra], minlength=num_layers)
    return MoveCount(total, within, total - within)


def _mode(num_groups: int | None, num_nodes: int, hierarchical: bool | None) -> tuple[int, int]:
    """(groups, nodes) of the fresh plan: DeepSeek's rule unless forced."""
    if hierarchical is None:
        hierarchical = num_groups is not None and num_groups % num_nodes == 0
    if not hierarchical:
        return 1, 1
    if num_groups is None or num_groups % num_nodes:
        raise PlacementShapeError(f"{num_groups} expert groups do not split evenly over {num_nodes} nodes")
    return num_groups, num_nodes


class _Search:
    """The step-by-step search on every layer at once (see the module's docstring)."""

    def __init__(self, weight: torch.Tensor, previous: torch.Tensor, num_gpus: int, num_nodes: int,
                 inter_node_price: float, start: torch.Tensor | None = None, within_nodes: bool = False) -> None:
        self.weight = weight
        self.num_layers, self.num_logical = weight.shape
        self.num_replicas = previous.shape[1]
        self.num_gpus = num_gpus
        self.per_gpu = self.num_replicas // num_gpus
        self.gpu_of_slot = torch.arange(self.num_replicas) // self.per_gpu
        self.node_of_gpu = torch.arange(num_gpus) // (num_gpus // num_nodes)
        self.previous = previous
        old_has = holdings(previous, self.num_logical, num_gpus) > 0
        old_node_has = old_has.view(self.num_layers, num_nodes, -1, self.num_logical).any(dim=2)
        on_node = old_node_has[:, self.node_of_gpu]               # [L, m, n]
        self.price_table = torch.where(old_has, 0.0, torch.where(on_node, 1.0, inter_node_price))
        # the steps start from ``start`` (the previous plan, or that plan with its
        # groups settled on their nodes) and count moves from the previous plan
        self.start = previous.clone() if start is None else start.clone()
        self.start_moves = count_moves(previous, self.start, num_gpus, num_nodes).total
        self.phy2log = self.start.clone()
        self.moves = self.start_moves.clone()
        # hierarchical: a step trades only inside the busiest GPU's node, so every
        # expert group stays on the node it is on
        self.within_nodes = within_nodes and num_nodes > 1
        partner_pool = num_gpus // num_nodes if self.within_nodes else num_gpus
        self.num_partners = min(partner_pool - 1, max(PARTNER_GPUS, partner_pool // 2))

    def counts(self, phy2log: torch.Tensor) -> torch.Tensor:
        return torch.zeros(phy2log.shape[0], self.num_logical, dtype=torch.int64).scatter_add_(
            1, phy2log, torch.ones_like(phy2log))

    def peaks(self) -> torch.Tensor:
        """[L]: each layer's busiest GPU now."""
        return _peak_of(self.weight, self.phy2log, self.num_gpus)

    def restart(self, layers: torch.Tensor, start: torch.Tensor | None = None,
                start_moves: torch.Tensor | None = None) -> None:
        """Those layers back at their start (or at ``start`` [len(layers), S],
        ``start_moves`` moves from the previous plan, from now on)."""
        if start is not None:
            self.start[layers] = start
            self.start_moves[layers] = start_moves
        self.phy2log[layers] = self.start[layers]
        self.moves[layers] = self.start_moves[layers]

    def run(self, target: torch.Tensor, budget: torch.Tensor | None, stop_at_target: bool,
            max_steps: int, layers: torch.Tensor | None = None) -> None:
        """Steps until each layer's busiest GPU is at most ``target`` [L] (when
        ``stop_at_target``), no step helps, or the layer's moves would pass ``budget``
        (counted from the start); on the ``layers`` [L] bool given, else on all."""
        active = torch.ones(self.num_layers, dtype=torch.bool) if layers is None else layers.clone()
        if budget is not None:
            budget = budget + self.start_moves
        with threads_for(torch.device("cpu"), self.num_layers * self.per_gpu * self.num_replicas):
            self._run(active, target, budget, not self.within_nodes, stop_at_target, max_steps)

    def _run(self, active: torch.Tensor, target: torch.Tensor, budget: torch.Tensor | None, cross_nodes: bool,
             stop_at_target: bool, max_steps: int) -> None:
        for _ in range(max_steps):
            layers = active.nonzero().squeeze(1)
            if len(layers) == 0:
                return
            done = self._step(layers, target[layers], None if budget is None else budget[layers], cross_nodes,
                              stop_at_target)
            active[layers[done]] = False

    def _step(self, layers: torch.Tensor, target: torch.Tensor, budget: torch.Tensor | None, cross_nodes: bool,
              stop_at_target: bool) -> torch.Tensor:
        """One step on ``layers``; returns which of them are finished."""
        num_layers, n, m, k = len(layers), self.num_logical, self.num_gpus, self.per_gpu
        weight = self.weight[layers]
        phy2log = self.phy2log[layers]
        count = self.counts(phy2log)
        share = weight / count                                     # [A, n] load of one replica
        slot_load = share.gather(1, phy2log)                       # [A, S]
        loads = torch.zeros(num_layers, m, dtype=torch.float64).index_add_(1, self.gpu_of_slot, slot_load)
        peak, busiest = loads.max(dim=1)                           # [A]
        finished = peak <= target if stop_at_target else torch.zeros(num_layers, dtype=torch.bool)
        held = holdings(phy2log, n, m)                             # [A, m, n]
        flat_held = held.view(num_layers, -1)
        price_table = self.price_table[layers].view(num_layers, -1)  # the same, inter-node moves dearer
        rows = torch.arange(num_layers)

        def at(table: torch.Tensor, gpu: torch.Tensor, expert: torch.Tensor) -> torch.Tensor:
            gpu, expert = torch.broadcast_tensors(gpu, expert)
            return table.gather(1, (gpu * n + expert).reshape(num_layers, -1)).view(expert.shape)

        def delta(changes) -> tuple[torch.Tensor, torch.Tensor]:
            """(moves, price) added by (gpu, expert gained, expert lost) changes."""
            moves, price = 0, 0
            for gpu, gained, lost in changes:
                plus, minus = at(price_table, gpu, gained), at(price_table, gpu, lost)
                price = price + plus - minus
                moves = moves + (plus > 0).to(torch.int64) - (minus > 0).to(torch.int64)
            return moves, price

        busy_slots = busiest.unsqueeze(1) * k + torch.arange(k)    # [A, k]
        x = phy2log.gather(1, busy_slots)                          # experts on the busiest GPU
        a = slot_load.gather(1, busy_slots)                        # their replica loads
        x3 = x.unsqueeze(2)                                        # [A, k, 1]
        # the slots j a step may take: those of the lightest GPUs (the ones with room)
        if cross_nodes:
            candidates = loads
        else:
            same_node = self.node_of_gpu.unsqueeze(0) == self.node_of_gpu[busiest].unsqueeze(1)
            candidates = torch.where(same_node, loads, torch.full_like(loads, torch.inf))
        partners = candidates.topk(self.num_partners + 1, dim=1, largest=False).indices   # [A, q + 1]
        slots_j = (partners.unsqueeze(2) * k + torch.arange(k)).view(num_layers, -1)  # [A, J]
        gpu_j = slots_j // k
        y_j = phy2log.gather(1, slots_j)
        load_j = slot_load.gather(1, slots_j)
        num_slots = slots_j.shape[1]
        y3 = y_j.unsqueeze(1)                                      # [A, 1, J] the expert of every slot j
        g3 = gpu_j.unsqueeze(1)                                    # [A, 1, J] its GPU
        b3 = busiest.view(-1, 1, 1)
        other = g3 != b3
        if not cross_nodes:
            other = other & (self.node_of_gpu[g3] == self.node_of_gpu[b3])
        load_g = loads.gather(1, gpu_j).unsqueeze(1)               # [A, 1, J]
        y_on_b = at(flat_held, b3, y3)                             # [A, 1, S] copies of y on the busiest
        x_on_g = at(flat_held, g3, x3) > 0                         # [A, k, S]
        distinct = x3 != y3

        # 0. swap: x (slot i on the busiest GPU) <-> y (slot j on GPU g)
        moved = a.unsqueeze(2) - load_j.unsqueeze(1)               # [A, k, J] load leaving the busiest
        swap_ok = other & (moved > 0) & (y_on_b == 0) & ~x_on_g & distinct
        swap_peak = torch.maximum(peak.view(-1, 1, 1) - moved, load_g + moved)
        swap_changes = [(b3, y3, x3), (g3, x3, y3)]

        # the rise on every GPU holding a replica of an expert that gives one up
        rise = torch.where(count > 1, weight / (count - 1).clamp(min=1) - share, torch.zeros_like(share))  # [A, n]
        risen = torch.where(held > 0, loads.unsqueeze(2) + held * rise.unsqueeze(1),
                            torch.full(held.shape, -torch.inf, dtype=torch.float64))
        risen[rows, busiest] = -torch.inf                          # the busiest GPU is reckoned apart
        top = risen.topk(min(2, m), dim=1)
        first_value, first_gpu = top.values[:, 0], top.indices[:, 0]                      # [A, n]
        second_value = top.values[:, 1] if m > 1 else torch.full_like(first_value, -torch.inf)

        # 1. retarget elsewhere: slot j (y, which keeps a replica) becomes one more replica of x
        count_x = count.gather(1, x).unsqueeze(2).double()        # [A, k, 1]
        weight_x = weight.gather(1, x).unsqueeze(2)
        rise_y = rise.gather(1, y_j).unsqueeze(1)                  # [A, 1, J]
        count_y = count.gather(1, y_j).unsqueeze(1)
        retarget_b = peak.view(-1, 1, 1) + weight_x / (count_x + 1) - weight_x / count_x + y_on_b * rise_y
        retarget_g = load_g - load_j.unsqueeze(1) + weight_x / (count_x + 1) \
            + (at(flat_held, g3, y3) - 1) * rise_y
        third = torch.where(first_gpu.gather(1, y_j) == gpu_j,
                            second_value.gather(1, y_j), first_value.gather(1, y_j)).unsqueeze(1)
        retarget_ok = other & (count_y > 1) & distinct & ~x_on_g
        retarget_peak = torch.maximum(torch.maximum(retarget_b, retarget_g), third)
        retarget_changes = [(g3, x3, y3)]

        kinds = [(swap_ok, swap_peak, swap_changes), (retarget_ok, retarget_peak, retarget_changes)]
        shapes = [(num_layers, k, num_slots), (num_layers, k, num_slots)]        # [A, k, J] each
        ok = torch.cat([ok.expand(shape).reshape(num_layers, -1) for (ok, _, _), shape in zip(kinds, shapes)], 1)
        step_peak = torch.cat([p.expand(shape).reshape(num_layers, -1) for (_, p, _), shape in zip(kinds, shapes)], 1)
        costs = [delta(changes) for _, _, changes in kinds]
        step_cost = torch.cat([c[0].expand(shape).reshape(num_layers, -1) for c, shape in zip(costs, shapes)], 1)
        step_price = torch.cat([c[1].expand(shape).reshape(num_layers, -1) for c, shape in zip(costs, shapes)], 1)
        ok &= step_peak < (peak * (1 - _NO_PROGRESS)).unsqueeze(1)
        if budget is not None:
            ok &= (self.moves[layers].unsqueeze(1) + step_cost) <= budget.unsqueeze(1)
        reaching = ok & (step_peak <= target.unsqueeze(1))
        # reaching the target: the lowest price, then the lighter result
        cheapest = torch.where(reaching, step_price + step_peak / (2 * peak.unsqueeze(1)),
                               torch.full_like(step_peak, torch.inf)).min(dim=1)
        # otherwise: the most lowering of the busiest GPU per replica moved
        per_move = torch.where(ok, (peak.unsqueeze(1) - step_peak) / (step_price.clamp(min=0) + 0.5),
                               torch.full_like(step_peak, -torch.inf)).max(dim=1)
        choice = torch.where(reaching.any(dim=1), cheapest.indices, per_move.indices)
        can = ok.any(dim=1) & ~finished
        finished |= ~can

        go = can.nonzero().squeeze(1)
        if len(go):
            sizes = [shape[1] * shape[2] for shape in shapes]
            pick = choice[go]
            kind = (pick >= sizes[0]).long()
            rest = pick - kind * sizes[0]
            i, j = rest // num_slots, rest % num_slots
            slot_i = busy_slots[go, i]
            updated = phy2log[go]
            local = torch.arange(len(go))
            swap, elsewhere = kind == 0, kind == 1
            x_go = x[go, i]
            j_slot = slots_j[go, j]
            y_go = updated[local, j_slot]
            updated[local[swap], j_slot[swap]] = x_go[swap]
            updated[local[swap], slot_i[swap]] = y_go[swap]
            updated[local[elsewhere], j_slot[elsewhere]] = x_go[elsewhere]
            self.phy2log[layers[go]] = updated
            self.moves[layers[go]] += step_cost[go, pick].long()
        return finished


def _greedy_matching(overlap: torch.Tensor) -> torch.Tensor:
    """[L, a, a] overlap of new unit r with old unit c -> [L, a]: the old unit each
    new unit takes, the largest remaining overlap first."""
    num_layers, size, _ = overlap.shape
    score = overlap.double().clone()
    match = torch.empty(num_layers, size, dtype=torch.int64)
    rows = torch.arange(num_layers)
    for _ in range(size):
        best = score.view(num_layers, -1).argmax(dim=1)
        new_unit, old_unit = best // size, best % size
        match[rows, new_unit] = old_unit
        score[rows, new_unit, :] = -1
        score[rows, :, old_unit] = -1
    return match


def renumber_gpus(fresh: torch.Tensor, previous: torch.Tensor, num_logical: int, num_gpus: int,
                  num_nodes: int) -> torch.Tensor:
    """``fresh`` [L, S] with its nodes and GPUs renumbered (a plan's balance does
    not depend on the numbers) to keep many experts where ``previous`` had them,
    and inside each GPU an expert that stays keeps its slot."""
    num_layers, num_replicas = fresh.shape
    per_gpu = num_replicas // num_gpus
    gpus_per_node = num_gpus // num_nodes
    new = (holdings(fresh, num_logical, num_gpus) > 0).double()
    old = (holdings(previous, num_logical, num_gpus) > 0).double()
    new_node = new.view(num_layers, num_nodes, gpus_per_node, -1).amax(dim=2)
    old_node = old.view(num_layers, num_nodes, gpus_per_node, -1).amax(dim=2)
    node_match = _greedy_matching(new_node @ old_node.transpose(1, 2))             # [L, nodes]
    gpu_target = torch.empty(num_layers, num_gpus, dtype=torch.int64)
    for node in range(num_nodes):
        new_gpus = torch.arange(node * gpus_per_node, (node + 1) * gpus_per_node)
        old_first = node_match[:, node] * gpus_per_node                              # [L]
        old_gpus = old_first.unsqueeze(1) + torch.arange(gpus_per_node)              # [L, gpn]
        new_sets = new[:, new_gpus]
        old_sets = old.gather(1, old_gpus.unsqueeze(2).expand(-1, -1, num_logical))
        inner = _greedy_matching(new_sets @ old_sets.transpose(1, 2))
        gpu_target[:, new_gpus] = old_gpus.gather(1, inner)
    renumbered = torch.empty_like(fresh)
    slot_in_gpu = torch.arange(num_replicas) % per_gpu
    target_slot = gpu_target.gather(1, (torch.arange(num_replicas) // per_gpu).expand(num_layers, -1)) * per_gpu \
        + slot_in_gpu
    renumbered.scatter_(1, target_slot, fresh)
    return renumbered


def keep_slots(phy2log: torch.Tensor, previous: torch.Tensor, per_gpu: int) -> torch.Tensor:
    """Reorder each GPU's slots so an expert it held before sits in its old slot
    (as vLLM's ``preserve_intragpu_slots``): no copy inside the GPU either."""
    num_layers, num_replicas = phy2log.shape
    new = phy2log.view(num_layers, num_replicas // per_gpu, per_gpu)
    old = previous.view(num_layers, num_replicas // per_gpu, per_gpu)
    same = new.unsqueeze(3) == old.unsqueeze(2)                          # [L, m, new k, old k]
    result = new.clone()
    if per_gpu == 1:
        return phy2log.clone()
    # a python pass over the GPUs that hold a returning expert away from its old slot
    candidates = (same.any(dim=3) & ~torch.diagonal(same, dim1=2, dim2=3)).any(dim=2).nonzero().tolist()
    for layer, gpu in candidates:
        experts = new[layer, gpu].tolist()
        before = old[layer, gpu].tolist()
        placed: list[int | None] = [None] * per_gpu
        waiting = []
        for expert in experts:
            slot = next((s for s, e in enumerate(before) if e == expert and placed[s] is None), None)
            if slot is None:
                waiting.append(expert)
            else:
                placed[slot] = expert
        free = iter(s for s in range(per_gpu) if placed[s] is None)
        for expert in waiting:
            placed[next(free)] = expert
        result[layer, gpu] = torch.tensor(placed)
    return result.view(num_layers, num_replicas)


def plan_moves(
    weight: torch.Tensor,
    previous_phy2log: torch.Tensor,
    num_groups: int | None,
    num_nodes: int,
    num_gpus: int,
    *,
    tolerance: float | None = 0.005,
    max_moves: int | None = None,
    packer: str | PackerConfig = "best",
    seed: int = 0,
    hierarchical: bool | None = None,
    max_steps: int | None = None,
    inter_node_price: float = INTER_NODE_PRICE,
    fresh: torch.Tensor | None = None,
) -> Replan:
    """The re-plan and its costs. With ``tolerance``: each layer's busiest GPU at
    most (1 + tolerance) x a fresh plan's, moving as few replicas as the steps
    find. With ``max_moves`` (and ``tolerance=None``): the lightest busiest GPU
    the steps reach moving at most that many replicas per layer. ``fresh``: the
    fresh plan's phy2log [layers, num_replicas] when the caller has made it
    already (with ``packer`` and ``seed`` on these loads), else made here."""
    weight = as_weight_matrix(weight).cpu()
    num_layers, num_logical = weight.shape
    num_nodes = _whole_number("num_nodes", num_nodes)
    num_gpus = _whole_number("num_gpus", num_gpus)
    if num_gpus % num_nodes:
        raise PlacementShapeError(f"{num_gpus} GPUs do not split evenly over {num_nodes} nodes")
    previous = torch.as_tensor(previous_phy2log)
    num_replicas = previous.shape[-1] if previous.dim() == 2 else 0
    if num_replicas % num_gpus or num_replicas < num_logical:
        raise PlacementShapeError(
            f"the previous phy2log has {num_replicas} replicas: needs a multiple of {num_gpus} GPUs, "
            f"at least {num_logical} experts")
    previous = check_previous_plan(previous, num_layers, num_logical, num_replicas, num_gpus)
    if tolerance is None and max_moves is None:
        raise ValueError("give a tolerance or a move budget (max_moves)")
    if tolerance is not None and not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    groups, nodes = _mode(num_groups, num_nodes, hierarchical)
    if groups > 1 and num_logical % groups:
        raise PlacementShapeError(f"{num_logical} experts do not split evenly into {groups} groups")

    old_count = torch.zeros(num_layers, num_logical, dtype=torch.int64).scatter_add_(
        1, previous, torch.ones_like(previous))
    kept_peak = gpu_loads(weight, previous, old_count, num_gpus).amax(dim=1)
    # hierarchical: every group stays on one node, so the steps start from the plan
    # in place with its groups settled on their nodes and never cross a node
    nested = groups > 1 and nodes > 1
    start = _settled(weight, previous, groups, nodes, num_gpus) if nested else previous
    search = _Search(weight, previous, num_gpus, num_nodes, inter_node_price, start=start, within_nodes=nested)
    repair_moves = search.start_moves.clone()
    steps = max_steps if max_steps is not None else 4 * num_gpus + 16
    budget = None if max_moves is None else torch.full((num_layers,), int(max_moves))
    per_gpu = num_replicas // num_gpus
    everywhere = torch.ones(num_layers, dtype=torch.bool)

    if fresh is not None:
        fresh = torch.as_tensor(fresh).cpu()
        if tuple(fresh.shape) != (num_layers, num_replicas):
            raise PlacementShapeError(f"the fresh plan is {tuple(fresh.shape)}, expected {(num_layers, num_replicas)}")
        fresh_peak = _peak_of(weight, fresh, num_gpus)
        planned_fresh = everywhere
    elif tolerance is not None:
        # No plan of the policy is lighter than its lower bound, so when the steps
        # bring every layer within tolerance of the bound they are within tolerance
        # of a fresh plan, which is then not made (it is most of a re-plan's time).
        # Otherwise the fresh plan is made for every layer (the packer's result on a
        # layer depends on the layers planned with it) and the layers that missed
        # the bound take their steps again towards its target.
        fresh_peak = _policy_bound(weight, num_replicas, groups, nodes, num_gpus)
        if nested:
            _trade_groups(search, weight, fresh_peak * (1 + tolerance), everywhere, groups, nodes, num_gpus)
        search.run(fresh_peak * (1 + tolerance), budget, True, steps)
        missed = (search.peaks() > fresh_peak * (1 + tolerance)) | (search.moves > num_replicas // 2)
        planned_fresh = missed if bool(missed.any()) else torch.zeros_like(missed)
        if bool(missed.any()):
            fresh = fresh_plan(weight, num_replicas, groups, nodes, num_gpus, packer, seed)[0]
            # a layer within tolerance of the bound keeps its steps and the bound as its reference
            fresh_peak[missed] = _peak_of(weight[missed], fresh[missed], num_gpus)
            search.restart(missed.nonzero().squeeze(1))
    else:
        fresh = fresh_plan(weight, num_replicas, groups, nodes, num_gpus, packer, seed)[0]
        fresh_peak = _peak_of(weight, fresh, num_gpus)
        planned_fresh = everywhere

    if tolerance is not None:
        target, stop = fresh_peak * (1 + tolerance), True
    else:
        target, stop = fresh_peak, False
    if nested and tolerance is not None:
        # a node heavier than the target over its GPUs cannot be balanced inside:
        # such layers trade whole groups between nodes first
        _trade_groups(search, weight, target, planned_fresh, groups, nodes, num_gpus)
    search.run(target, budget, stop, steps, layers=planned_fresh)
    phy2log = search.phy2log

    from_fresh = torch.zeros(num_layers, dtype=torch.bool)
    if tolerance is not None:
        count = search.counts(phy2log)
        peak = gpu_loads(weight, phy2log, count, num_gpus).amax(dim=1)
        mine = count_moves(previous, phy2log, num_gpus, num_nodes).total
        # a renumbered fresh plan moves at least the slots of the GPUs above the target
        # that the kept plan has; only layers where it might win are renumbered
        maybe = ((peak > target) | (mine > per_gpu * 4)) & planned_fresh
        if bool(maybe.any()):
            layers = maybe.nonzero().squeeze(1)
            renumbered = renumber_gpus(fresh[layers], previous[layers], num_logical, num_gpus, num_nodes)
            fresh_moves = count_moves(previous[layers], renumbered, num_gpus, num_nodes).total
            within_budget = torch.ones_like(fresh_moves, dtype=torch.bool) if max_moves is None \
                else fresh_moves <= max_moves
            take = ((peak[layers] > target[layers]) | (fresh_moves < mine[layers])) & within_budget
            chosen = layers[take]
            if len(chosen):
                from_fresh[chosen] = True
                phy2log = phy2log.clone()
                phy2log[chosen] = keep_slots(renumbered[take], previous[chosen], num_replicas // num_gpus)

    placement = placement_from_phy2log(phy2log, num_logical)
    peak = gpu_loads(weight, placement.phy2log, placement.logcnt, num_gpus).amax(dim=1)
    moved_groups = groups_moved(previous, phy2log, num_logical, groups, num_gpus, nodes) if nested \
        else torch.zeros(num_layers, dtype=torch.int64)
    return Replan(placement, count_moves(previous, phy2log, num_gpus, num_nodes), peak, fresh_peak, kept_peak,
                  from_fresh, fresh, moved_groups, repair_moves)


def _settled(weight: torch.Tensor, previous: torch.Tensor, groups: int, nodes: int, num_gpus: int) -> torch.Tensor:
    """``previous`` with every group on one node (itself where it already is)."""
    num_logical = weight.shape[1]
    split = groups_split(previous, num_logical, groups, num_gpus, nodes)
    if not bool(split.any()):
        return previous
    settled = previous.clone()
    layers = split.nonzero().squeeze(1)
    assignment = group_nodes(previous[layers], num_logical, groups, num_gpus, nodes)
    settled[layers] = settle_groups(weight[layers], previous[layers], assignment, num_gpus, nodes)
    return settled


def _trade_groups(search: _Search, weight: torch.Tensor, target: torch.Tensor, layers: torch.Tensor, groups: int,
                  nodes: int, num_gpus: int) -> None:
    """Restart the ``layers`` [L] bool whose heaviest node is above ``target`` [L]
    over its GPUs from their start with whole groups traded between nodes
    (:func:`packviz.eplb.groups.move_groups`, the groups with fewest slots first)."""
    num_logical = weight.shape[1]
    gpus_per_node = num_gpus // nodes
    node_loads = weight.view(weight.shape[0], groups, -1).sum(dim=2)
    start = search.start
    assignment = group_nodes(start, num_logical, groups, num_gpus, nodes)
    per_node = torch.zeros(weight.shape[0], nodes, dtype=torch.float64).scatter_add_(1, assignment, node_loads)
    heavy = layers & (per_node.amax(dim=1) > target * gpus_per_node * (1 + 1e-12))
    if not bool(heavy.any()):
        return
    chosen = heavy.nonzero().squeeze(1)
    slots = group_slots(start[chosen], num_logical, groups, num_gpus, nodes).sum(dim=2)
    traded = move_groups(weight[chosen], assignment[chosen], slots, target[chosen], nodes, gpus_per_node)
    changed = (traded != assignment[chosen]).any(dim=1)
    if not bool(changed.any()):
        return
    chosen, traded = chosen[changed], traded[changed]
    new_start = settle_groups(weight[chosen], start[chosen], traded, num_gpus, nodes)
    search.restart(chosen, new_start, count_moves(search.previous[chosen], new_start, num_gpus, nodes).total)


def _peak_of(weight: torch.Tensor, phy2log: torch.Tensor, num_gpus: int) -> torch.Tensor:
    """[L]: the busiest GPU's load of ``phy2log`` [L, S] on ``weight`` [L, n]."""
    count = torch.zeros_like(weight, dtype=torch.int64).scatter_add_(1, phy2log, torch.ones_like(phy2log))
    return gpu_loads(weight, phy2log, count, num_gpus).amax(dim=1)


def _policy_bound(weight: torch.Tensor, num_replicas: int, groups: int, nodes: int, num_gpus: int) -> torch.Tensor:
    """[L]: no plan made with (groups, nodes) has a lighter busiest GPU
    (:func:`packviz.eplb.cluster.policy_bound`)."""
    hierarchical = groups > 1 and nodes > 1
    cluster = Cluster(num_replicas, groups if hierarchical else None, nodes if hierarchical else 1, num_gpus,
                      "hierarchical" if hierarchical else "global")
    bound = policy_bound(weight, cluster)
    if hierarchical and groups == 2 * nodes:
        # two groups a node: pairing the heaviest group with the lightest, the
        # second with the second lightest and so on is the best pairing, so its
        # heaviest pair over a node's GPUs bounds every plan (tighter than the
        # general packing bound: on DeepSeek-V3's 8 groups on 4 nodes a fresh
        # plan is within 0.5% of it on about nine layers in ten, of the general
        # one on about seven)
        group_loads = weight.view(weight.shape[0], groups, -1).sum(dim=2).sort(dim=1, descending=True).values
        pairs = group_loads[:, :nodes] + group_loads[:, nodes:].flip(1)
        bound = torch.maximum(bound, pairs.amax(dim=1) / (num_gpus // nodes))
    return bound


def replan(
    weight: torch.Tensor,
    previous_phy2log: torch.Tensor,
    num_groups: int | None,
    num_nodes: int,
    num_gpus: int,
    *,
    tolerance: float = 0.005,
    packer: str | PackerConfig = "best",
    seed: int = 0,
    hierarchical: bool | None = None,
) -> ExpertPlacement:
    """A placement for ``weight`` [layers, num_logical] whose busiest GPU per layer
    is at most (1 + tolerance) x a fresh plan's (``packer``'s), moving as few
    replicas from ``previous_phy2log`` [layers, num_replicas] as it can."""
    return plan_moves(weight, previous_phy2log, num_groups, num_nodes, num_gpus, tolerance=tolerance,
                      packer=packer, seed=seed, hierarchical=hierarchical).placement


def replan_within_budget(
    weight: torch.Tensor,
    previous_phy2log: torch.Tensor,
    num_groups: int | None,
    num_nodes: int,
    num_gpus: int,
    max_moves: int,
    *,
    packer: str | PackerConfig = "best",
    seed: int = 0,
    hierarchical: bool | None = None,
    fresh: torch.Tensor | None = None,
) -> Replan:
    """The lightest busiest GPU per layer the steps reach moving at most
    ``max_moves`` replicas per layer from ``previous_phy2log`` (``fresh`` as in
    :func:`plan_moves`)."""
    if not isinstance(max_moves, int) or isinstance(max_moves, bool) or max_moves < 0:
        raise ValueError(f"max_moves must be a whole number >= 0, got {max_moves!r}")
    return plan_moves(weight, previous_phy2log, num_groups, num_nodes, num_gpus, tolerance=None,
                      max_moves=max_moves, packer=packer, seed=seed, hierarchical=hierarchical, fresh=fresh)


@dataclass(frozen=True)
class MovesCurve:
    """Balance against moves: for each budget (replicas per layer), the mean over
    layers of the busiest GPU over a fresh plan's, its worst layer, and the mean
    replicas moved."""

    budgets: list[int]
    mean_ratio: list[float]
    worst_ratio: list[float]
    mean_moves: list[float]

    def rows(self) -> list[dict[str, float]]:
        return [{"budget": b, "mean_ratio": r, "worst_ratio": w, "mean_moves": m}
                for b, r, w, m in zip(self.budgets, self.mean_ratio, self.worst_ratio, self.mean_moves)]


def balance_moves_curve(
    weight: torch.Tensor,
    previous_phy2log: torch.Tensor,
    num_groups: int | None,
    num_nodes: int,
    num_gpus: int,
    budgets: list[int] | None = None,
    *,
    packer: str | PackerConfig = "best",
    seed: int = 0,
    hierarchical: bool | None = None,
) -> MovesCurve:
    """``replan_within_budget`` at each budget (default 0, 1, 2, 4, ... up to the
    slots per layer), all against one fresh plan."""
    num_replicas = torch.as_tensor(previous_phy2log).shape[-1]
    if budgets is None:
        budgets = [0] + [2 ** e for e in range(num_replicas.bit_length()) if 2 ** e <= num_replicas]
    ratios, worst, moves = [], [], []
    fresh = None
    for budget in budgets:
        result = replan_within_budget(weight, previous_phy2log, num_groups, num_nodes, num_gpus, int(budget),
                                      packer=packer, seed=seed, hierarchical=hierarchical, fresh=fresh)
        # the fresh plan the first budget made serves every other budget
        fresh = result.fresh
        ratio = result.peak / result.fresh_peak.clamp(min=torch.finfo(torch.float64).tiny)
        ratios.append(float(ratio.mean()))
        worst.append(float(ratio.max()))
        moves.append(float(result.moves.total.double().mean()))
    return MovesCurve(list(budgets), ratios, worst, moves)
