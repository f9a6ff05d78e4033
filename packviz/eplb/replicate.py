"""How many replicas each expert gets: DeepSeek's rule, and counts chosen with the packing.

DeepSeek (and SGLang and vLLM after it) fixes the counts before packing: each
redundant slot goes to the expert with the most load per replica. The packing
cannot undo a bad choice of counts. ``joint_replicate`` chooses the counts
together with the packing.

Shapes: weight [X, num_logical]; phy2log and replica rank [X, num_physical];
logcnt [X, num_logical].
"""

from __future__ import annotations

import itertools
import math

import torch


def replicate_experts(weight: torch.Tensor, num_physical: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DeepSeek's replication: give each extra slot to the expert with the most
    load per replica (the lowest-numbered expert on a tie).

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


def slots_from_counts(logcnt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """phy2log and replica rank [X, sum of counts] for replica counts [X, num_logical]:
    each expert's replicas side by side, in expert order."""
    num_rows, num_logical = logcnt.shape
    device = logcnt.device
    experts = torch.arange(num_logical, device=device).expand(num_rows, -1)
    phy2log = torch.repeat_interleave(experts.reshape(-1), logcnt.reshape(-1)).view(num_rows, -1)
    first = torch.cumsum(logcnt, dim=1) - logcnt
    position = torch.arange(phy2log.shape[1], device=device).expand(num_rows, -1)
    replica_rank = position - first.gather(1, phy2log)
    return phy2log, replica_rank


# Joint replication: how many candidate count vectors one round tries per row.
JOINT_RECEIVERS = 3      # the heaviest replicas on the busiest pack get one replica more ...
JOINT_DONORS = 3         # ... from the experts whose replica removed raises their share least
JOINT_MAX_ROUNDS = 12
# Count vectors kept from round to round on small rows.
JOINT_BEAM = 8
JOINT_PATIENCE = 4
# Rows whose busiest pack is within this of the mean are left as they are.
JOINT_GAIN_FLOOR = 1e-3
# Rows with at most this many experts try every (donor, receiver) pair each round.
JOINT_ALL_PAIRS_UP_TO = 16
# Candidates of small rows are judged with the packer up to this many (row,
# candidate, slot) cells; others with DeepSeek's greedy packing (fast, vectorised).
JOINT_PACKER_CELLS = 1 << 16
# Rows with few enough count vectors (vectors x rows x slots cells) try every one
# with the packer: a search one replica at a time can miss counts that only pay
# two or more moves away (such as a second replica of a cold expert, to fill a
# slot without a second copy of a hot one beside it).
JOINT_EXHAUSTIVE_CELLS = 1 << 15


def slot_order_ranks(phy2log: torch.Tensor, num_logical: int) -> torch.Tensor:
    """[L, S]: each slot's replica rank among its expert's slots, in slot order."""
    num_layers, num_replicas = phy2log.shape
    logcnt = torch.zeros(num_layers, num_logical, dtype=torch.int64).scatter_add_(
        1, phy2log, torch.ones_like(phy2log))
    order = torch.sort(phy2log, dim=1, stable=True).indices
    first = torch.cumsum(logcnt, dim=1) - logcnt
    rank_sorted = torch.arange(num_replicas).expand(num_layers, -1) - first.gather(1, phy2log.gather(1, order))
    return torch.empty_like(phy2log).scatter_(1, order, rank_sorted)


def spread_duplicates(weight: torch.Tensor, phy2log: torch.Tensor, logcnt: torch.Tensor, num_gpus: int,
                      num_nodes: int = 1, ceiling: torch.Tensor | None = None) -> torch.Tensor:
    """``phy2log`` [L, S] with replicas that share a GPU with another replica of
    their expert swapped with a replica of another expert on another GPU of
    the node: the swap that leaves the two GPUs lightest, if they stay at or
    below ``ceiling`` [L] (default: the layer's busiest GPU), making no new
    pair. (A packer sees loads, not experts: equal replica loads can land on
    one GPU, wasting a slot.)"""
    num_layers, num_replicas = phy2log.shape
    per_gpu = num_replicas // num_gpus
    gpu = torch.arange(num_replicas) // per_gpu
    node = gpu // (num_gpus // num_nodes)
    phy2log = phy2log.clone()
    slot_load = (weight / logcnt).gather(1, phy2log)
    stuck = torch.zeros(num_layers, dtype=torch.bool)
    for _ in range(num_replicas):
        grouped = phy2log.view(num_layers, num_gpus, per_gpu)
        same = grouped.unsqueeze(3) == grouped.unsqueeze(2)                      # [L, m, k, k]
        earlier = torch.ones(per_gpu, per_gpu, dtype=torch.bool).tril(-1)       # a second copy on the GPU
        second = (same & earlier).any(dim=3).view(num_layers, -1) & ~stuck.unsqueeze(1)
        layers = second.any(dim=1).nonzero().squeeze(1)
        if len(layers) == 0:
            break
        slot = second[layers].double().argmax(dim=1)                             # one per layer
        expert, load = phy2log[layers, slot], slot_load[layers, slot]
        gpu_loads_now = slot_load[layers].view(len(layers), num_gpus, per_gpu).sum(dim=2)
        peak = gpu_loads_now.amax(dim=1, keepdim=True)
        if ceiling is not None:
            peak = torch.maximum(peak, ceiling[layers].unsqueeze(1))
        held = torch.zeros(len(layers), num_gpus, weight.shape[1], dtype=torch.bool)
        held.view(len(layers), -1).scatter_(1, gpu * weight.shape[1] + phy2log[layers], True)
        home = gpu[slot]                                                          # [A]
        y = phy2log[layers]                                                       # [A, S] partner experts
        new_home = gpu_loads_now.gather(1, home.unsqueeze(1)) - load.unsqueeze(1) + slot_load[layers]
        new_other = gpu_loads_now[:, gpu] + load.unsqueeze(1) - slot_load[layers]
        rows = torch.arange(len(layers)).unsqueeze(1)
        home_node = home // (num_gpus // num_nodes)
        ok = (gpu.unsqueeze(0) != home.unsqueeze(1)) & (node.unsqueeze(0) == home_node.unsqueeze(1)) \
            & (y != expert.unsqueeze(1)) & ~held[rows, home.unsqueeze(1), y] \
            & ~held[rows, gpu.unsqueeze(0), expert.unsqueeze(1)] \
            & (new_home <= peak) & (new_other <= peak)
        score = torch.where(ok, torch.maximum(new_home, new_other), torch.full_like(new_home, torch.inf))
        best = score.argmin(dim=1)
        can = ok.any(dim=1)
        stuck[layers[~can]] = True
        go, partner = layers[can], best[can]
        moved, slot_go = phy2log[go, partner], slot[can]
        phy2log[go, partner], phy2log[go, slot_go] = phy2log[go, slot_go], moved
        slot_load[go, partner], slot_load[go, slot_go] = slot_load[go, slot_go], slot_load[go, partner].clone()
    return phy2log


def _greedy(loads: torch.Tensor, num_packs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DeepSeek's greedy on rows [X, s] at once, to judge candidates quickly:
    (pack_index, rank_in_pack, peak [X])."""
    num_rows, num_items = loads.shape
    per_pack = num_items // num_packs
    order = torch.sort(loads, dim=1, descending=True, stable=True).indices
    pack_load = torch.zeros(num_rows, num_packs, dtype=torch.float64)
    pack_count = torch.zeros(num_rows, num_packs, dtype=torch.int64)
    pack_index = torch.empty_like(order)
    rank_in_pack = torch.empty_like(order)
    rows = torch.arange(num_rows)
    for position in range(num_items):
        item = order[:, position]
        lightest = torch.where(pack_count < per_pack, pack_load, torch.inf).argmin(dim=1)
        pack_index[rows, item] = lightest
        rank_in_pack[rows, item] = pack_count[rows, lightest]
        pack_load[rows, lightest] += loads[rows, item]
        pack_count[rows, lightest] += 1
    return pack_index, rank_in_pack, pack_load.amax(dim=1)


def _peaks(weight: torch.Tensor, logcnt: torch.Tensor, num_packs: int, packer, seed: int,
           spread_at_any_cost: bool = False):
    """Pack each row's replicas for the counts [X, n]: (phy2log, rank, pack_index, rank_in_pack, peak [X])."""
    from packviz.packer import pack

    phy2log, _ = slots_from_counts(logcnt)
    replica_load = (weight / logcnt).gather(1, phy2log)
    if packer == "eplb":
        pack_index, rank_in_pack, peak = _greedy(replica_load, num_packs)
    else:
        result = pack(replica_load, num_packs, packer, seed=seed, device="cpu")
        pack_index, rank_in_pack, peak = result.pack_index, result.rank_in_pack, result.pack_loads.amax(dim=1)
    # in slot order (pack by pack), with equal-load copies of one expert spread where a swap allows
    per_pack = phy2log.shape[1] // num_packs
    slots = torch.empty_like(phy2log).scatter_(1, pack_index * per_pack + rank_in_pack, phy2log)
    if bool((same_pack_duplicates(phy2log, pack_index, weight.shape[1]) > 0).any()):
        if spread_at_any_cost:
            # a packer sees loads, not experts: the lightest packing may pair two copies of
            # one expert where one unit more on the busiest pack would keep them apart
            ceiling = torch.full((slots.shape[0],), torch.inf, dtype=torch.float64)
            slots = spread_duplicates(weight, slots, logcnt, num_packs, ceiling=ceiling)
            peak = (weight / logcnt).gather(1, slots).view(len(slots), num_packs, per_pack).sum(dim=2).amax(dim=1)
        else:
            slots = spread_duplicates(weight, slots, logcnt, num_packs)
    position = torch.arange(slots.shape[1]).expand_as(slots)
    return slots, slot_order_ranks(slots, weight.shape[1]), position // per_pack, position % per_pack, peak


def same_pack_duplicates(phy2log: torch.Tensor, pack_index: torch.Tensor, num_logical: int) -> torch.Tensor:
    """[X]: replicas that share a pack with another replica of their expert (each wastes a slot)."""
    key = torch.sort(pack_index * num_logical + phy2log, dim=1).values
    return (key[:, 1:] == key[:, :-1]).sum(dim=1)


def _candidates(weight: torch.Tensor, logcnt: torch.Tensor, phy2log: torch.Tensor, pack_index: torch.Tensor,
                pack_loads_peak_pack: torch.Tensor) -> torch.Tensor:
    """[X, C, n] count vectors one replica away from ``logcnt``: from a donor
    (an expert with two or more) to a receiver (an expert on the busiest pack)."""
    num_rows, n = logcnt.shape
    share = weight / logcnt
    if n <= JOINT_ALL_PAIRS_UP_TO:
        receivers = torch.arange(n).expand(num_rows, -1)
        donors = torch.arange(n).expand(num_rows, -1)
    else:
        # receivers: the heaviest replicas on the busiest pack
        on_busiest = pack_index == pack_loads_peak_pack.unsqueeze(1)
        replica_share = torch.where(on_busiest, share.gather(1, phy2log), torch.full_like(share[:, :1], -1.0))
        top = replica_share.topk(min(JOINT_RECEIVERS, phy2log.shape[1]), dim=1).indices
        receivers = phy2log.gather(1, top)
        # donors: the experts whose share rises least when they lose a replica
        after = torch.where(logcnt > 1, weight / (logcnt - 1).clamp(min=1), torch.full_like(share, torch.inf))
        donors = after.topk(min(JOINT_DONORS, n), dim=1, largest=False).indices
    r, d = receivers.shape[1], donors.shape[1]
    candidate = logcnt.unsqueeze(1).repeat(1, r * d, 1)                          # [X, C, n]
    receiver = receivers.repeat_interleave(d, dim=1)                             # [X, C]
    donor = donors.repeat(1, r)
    valid = (logcnt.gather(1, donor) > 1) & (donor != receiver)
    candidate.scatter_add_(2, receiver.unsqueeze(2), valid.long().unsqueeze(2))
    candidate.scatter_add_(2, donor.unsqueeze(2), -valid.long().unsqueeze(2))
    return candidate


def _every_count_vector(weight: torch.Tensor, logcnt: torch.Tensor, start: list[torch.Tensor], num_packs: int,
                        packer, seed: int, max_duplicates: torch.Tensor | None):
    """``joint_replicate`` on tiny rows: every count vector (each expert at least
    one replica) packed by ``packer``; each row takes the lightest (the first of
    equals) where it beats the start, DeepSeek's counts."""
    num_rows, n = weight.shape
    num_physical = start[0].shape[1]
    cuts = torch.tensor(list(itertools.combinations(range(1, num_physical), n - 1)), dtype=torch.int64)
    bounds = torch.cat([torch.zeros(len(cuts), 1, dtype=torch.int64), cuts.view(len(cuts), n - 1),
                        torch.full((len(cuts), 1), num_physical)], dim=1)
    vectors = bounds.diff(dim=1)                                                  # [V, n]
    num_vectors = len(vectors)
    phy, rank, pack_index, rank_in_pack, peak = _peaks(
        weight.repeat_interleave(num_vectors, dim=0), vectors.repeat(num_rows, 1), num_packs, packer, seed,
        spread_at_any_cost=True)
    peak = peak.view(num_rows, num_vectors)
    start_peak = start[4].clone()
    if max_duplicates is not None:
        wasted = same_pack_duplicates(phy, pack_index, n).view(num_rows, num_vectors)
        peak = torch.where(wasted > max_duplicates.unsqueeze(1), torch.inf, peak)
        start_peak[same_pack_duplicates(start[0], start[2], n) > max_duplicates] = torch.inf
    best = peak.argmin(dim=1)
    pick = torch.arange(num_rows) * num_vectors + best
    take = peak.gather(1, best.unsqueeze(1)).squeeze(1) < start_peak * (1 - 1e-12)
    result = [start[0].clone(), start[1].clone(), logcnt.clone(), start[2].clone(), start[3].clone()]
    for index, value in enumerate((phy[pick], rank[pick], vectors[best], pack_index[pick], rank_in_pack[pick])):
        result[index][take] = value[take]
    return tuple(result)


def joint_replicate(weight: torch.Tensor, num_physical: int, num_packs: int, packer, seed: int = 0,
                    max_rounds: int | None = None, max_duplicates: torch.Tensor | None = None):
    """Replica counts chosen together with the packing, for each row of weight [X, n].

    Starts from DeepSeek's counts. Each round moves one replica from a donor to
    an expert on the busiest pack in every way the candidates allow, re-packs
    each, and keeps the lightest few count vectors (a beam: on small rows
    several, so a move that does not pay at once can lead to one that does; on
    large rows one). A row stops after a few rounds without a lighter busiest
    pack. Candidates are judged with ``packer`` while that is cheap, else with
    DeepSeek's greedy packing, and the counts found are then packed by
    ``packer`` once. Returns (phy2log, replica rank, logcnt, pack_index,
    rank_in_pack), each [X, ...]; no row's busiest pack is heavier than
    ``packer`` gives on DeepSeek's counts. With ``max_duplicates`` [X], no count
    vector whose packing puts more replicas beside one of their own expert on a
    pack is taken.
    """
    weight = weight.to(torch.float64)
    num_rows, n = weight.shape
    _, _, logcnt = replicate_experts(weight, num_physical)
    start = list(_peaks(weight, logcnt, num_packs, packer, seed))     # phy2log, rank, pack, rank_in_pack, peak
    if num_physical == n:
        return start[0], start[1], logcnt, start[2], start[3]
    if math.comb(num_physical - 1, n - 1) * num_rows * num_physical <= JOINT_EXHAUSTIVE_CELLS:
        return _every_count_vector(weight, logcnt, start, num_packs, packer, seed, max_duplicates)
    small = n <= JOINT_ALL_PAIRS_UP_TO
    beam_width = JOINT_BEAM if small else 1
    rounds = max_rounds if max_rounds is not None else (2 * num_physical if small else JOINT_MAX_ROUNDS)
    num_candidates = beam_width * (n * n if small else JOINT_RECEIVERS * min(JOINT_DONORS, n))
    judge = packer if small and num_rows * num_candidates * num_physical <= JOINT_PACKER_CELLS else "eplb"
    judged = start if judge == packer else list(_peaks(weight, logcnt, num_packs, judge, seed))
    best_count, best_peak = logcnt.clone(), judged[4].clone()
    start_peak = start[4].clone()          # what a found vector must beat: inf where the start wastes too much
    if max_duplicates is not None:
        best_peak[same_pack_duplicates(judged[0], judged[2], n) > max_duplicates] = torch.inf
        start_peak[same_pack_duplicates(start[0], start[2], n) > max_duplicates] = torch.inf
    # the beam: [X, B, n] count vectors and their packings
    beam = logcnt.unsqueeze(1).repeat(1, beam_width, 1)
    beam_phy = judged[0].unsqueeze(1).repeat(1, beam_width, 1)
    beam_pack = judged[2].unsqueeze(1).repeat(1, beam_width, 1)
    # a row whose busiest pack is already at the mean has nothing to gain
    mean = weight.sum(dim=1) / num_packs
    active = (start[4] > mean * (1 + JOINT_GAIN_FLOOR)) | start_peak.isinf()
    # rounds a row goes on without a lighter busiest pack (the beam may still be climbing out)
    patience = JOINT_PATIENCE if small else 1
    stale = torch.zeros(num_rows, dtype=torch.int64)
    mix = torch.randint(1, 1 << 40, (n,), generator=torch.Generator().manual_seed(12345))
    for _ in range(rounds):
        rows = active.nonzero().squeeze(1)
        if len(rows) == 0:
            break
        flat_beam = beam[rows].view(-1, n)
        flat_weight = weight[rows].repeat_interleave(beam_width, dim=0)
        phy = beam_phy[rows].view(flat_beam.shape[0], -1)
        pack_of = beam_pack[rows].view(flat_beam.shape[0], -1)
        loads = torch.zeros(flat_beam.shape[0], num_packs, dtype=torch.float64).scatter_add_(
            1, pack_of, (flat_weight / flat_beam).gather(1, phy))
        candidates = _candidates(flat_weight, flat_beam, phy, pack_of, loads.argmax(dim=1))
        candidates = candidates.view(len(rows), -1, n)                             # [A, B*C, n]
        width = candidates.shape[1]
        phy_c, _, pack_c, _, peak_c = _peaks(weight[rows].repeat_interleave(width, dim=0),
                                             candidates.reshape(-1, n), num_packs, judge, seed)
        peak_c = peak_c.view(len(rows), width)
        if max_duplicates is not None:
            wasted = same_pack_duplicates(phy_c, pack_c, n).view(len(rows), width)
            peak_c = torch.where(wasted > max_duplicates[rows].unsqueeze(1), peak_c + torch.inf, peak_c)
        # distinct count vectors only: equal vectors share a key, the later ones are pushed back
        key = (candidates * mix).sum(dim=2)
        order = torch.sort(key, dim=1, stable=True)
        repeat = torch.zeros_like(key, dtype=torch.bool)
        repeat[:, 1:] = order.values[:, 1:] == order.values[:, :-1]
        duplicate = torch.zeros_like(repeat).scatter_(1, order.indices, repeat)
        ranked = torch.where(duplicate, peak_c + torch.inf, peak_c).topk(beam_width, dim=1, largest=False)
        pick = ranked.indices                                                      # [A, B]
        beam[rows] = candidates.gather(1, pick.unsqueeze(2).expand(-1, -1, n))
        beam_phy[rows] = phy_c.view(len(rows), width, -1).gather(1, pick.unsqueeze(2).expand(-1, -1, num_physical))
        beam_pack[rows] = pack_c.view(len(rows), width, -1).gather(
            1, pick.unsqueeze(2).expand(-1, -1, num_physical))
        better = ranked.values[:, 0] < best_peak[rows] * (1 - 1e-12)
        kept = rows[better]
        best_count[kept] = beam[kept, 0]
        best_peak[kept] = ranked.values[better, 0]
        stale[rows] = torch.where(better, 0, stale[rows] + 1)
        active[rows[stale[rows] >= patience]] = False

    result = [start[0], start[1], logcnt, start[2], start[3]]
    changed = (best_count != logcnt).any(dim=1).nonzero().squeeze(1)
    if len(changed):
        found = _peaks(weight[changed], best_count[changed], num_packs, packer, seed)
        take = found[4] < start_peak[changed] * (1 - 1e-12)
        if max_duplicates is not None:
            take &= same_pack_duplicates(found[0], found[2], n) <= max_duplicates[changed]
        rows = changed[take]
        for index, value in zip((0, 1, 3, 4), (found[0], found[1], found[2], found[3])):
            result[index][rows] = value[take]
        result[2] = logcnt.clone()
        result[2][rows] = best_count[rows]
    return tuple(result)
