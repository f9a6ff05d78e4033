"""How many replicas each expert gets: DeepSeek's rule, and counts chosen with the packing.

DeepSeek (and SGLang and vLLM after it) fixes the counts before packing: each
redundant slot goes to the expert with the most load per replica. The packing
cannot undo a bad choice of counts. ``joint_replicate`` chooses the counts
together with the packing.

Shapes: weight [X, num_logical]; phy2log and replica rank [X, num_physical];
logcnt [X, num_logical].
"""

from __future__ import annotations

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
# Rows of at most this many experts whose count vectors that could beat
# DeepSeek's (each expert's share below its busiest pack) number at most this
# many (vectors x slots cells) try every one: a search one replica at a time can
# miss counts that only pay several moves away (a third replica of the coldest
# expert, to pair with hot ones, in place of a fifth of a hot one).
JOINT_EXHAUSTIVE_MAX_EXPERTS = 16
JOINT_EXHAUSTIVE_CELLS = 1 << 18
# Of those, the packer re-packs the vectors its lower bound leaves room for, the
# most promising first, up to this many cells per row (DeepSeek's greedy, exact
# with two slots per pack, judges every one).
JOINT_EXHAUSTIVE_PACKER_CELLS = 1 << 14


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


def _count_ranges(weight: torch.Tensor, num_physical: int, num_packs: int, ceiling: torch.Tensor,
                  max_duplicates: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(lowest, highest) count [X, n] of each expert in a count vector whose
    busiest pack can be lighter than ``ceiling`` [X]: its share of the load must
    be (w / count < ceiling); the others at their lowest; and a count past
    ``num_packs`` puts copies together, at most ``max_duplicates`` [X] of them."""
    share = weight / ceiling.unsqueeze(1)
    lowest = (torch.floor(share * (1 - 1e-9)) + 1).nan_to_num(1).clamp(min=1, max=num_physical).long()
    highest = num_physical - (lowest.sum(dim=1, keepdim=True) - lowest)
    if max_duplicates is not None:
        highest = torch.minimum(highest, num_packs + max_duplicates.unsqueeze(1))
    return lowest, highest


def _count_vector_totals(lowest: torch.Tensor, highest: torch.Tensor, num_physical: int) -> torch.Tensor:
    """[X]: how many count vectors (lowest <= count <= highest, summing to
    ``num_physical``) each row has, as a float (it may be astronomical)."""
    num_rows, n = lowest.shape
    ways = torch.zeros(num_rows, num_physical + 1, dtype=torch.float64)
    ways[:, 0] = 1
    total = torch.arange(num_physical + 1)
    for expert in range(n):
        prefix = torch.nn.functional.pad(ways.cumsum(dim=1), (1, 0))            # prefix[s] = ways[< s]
        top = (total.unsqueeze(0) - lowest[:, expert:expert + 1] + 1).clamp(min=0)
        bottom = (total.unsqueeze(0) - highest[:, expert:expert + 1]).clamp(min=0)
        ways = prefix.gather(1, top) - prefix.gather(1, bottom.clamp(max=num_physical + 1).minimum(top))
    return ways[:, num_physical]


def _count_vectors(lowest: list[int], highest: list[int], num_physical: int) -> torch.Tensor:
    """[V, n]: every count vector with lowest <= count <= highest summing to
    ``num_physical``, in lexicographic order."""
    vectors = torch.zeros(1, 0, dtype=torch.int64)
    rest_low, rest_high = sum(lowest), sum(highest)
    for low, high in zip(lowest, highest):
        rest_low, rest_high = rest_low - low, rest_high - high
        left = num_physical - vectors.sum(dim=1)
        # this expert's count leaves the others between their lowest and highest totals
        bottom = (left - rest_high).clamp(min=low)
        top = (left - rest_low).clamp(max=high)
        options = (top - bottom + 1).clamp(min=0)
        parent = torch.repeat_interleave(torch.arange(len(vectors)), options)
        first = torch.cumsum(options, dim=0) - options
        value = bottom[parent] + torch.arange(len(parent)) - first[parent]
        vectors = torch.cat([vectors[parent], value.unsqueeze(1)], dim=1)
    return vectors


def _every_count_vector(weight: torch.Tensor, vectors: list[torch.Tensor], num_packs: int, packer, seed: int,
                        max_duplicates: torch.Tensor | None, ceiling: torch.Tensor):
    """The lightest packing of rows weight [X, n] over their count vectors
    (``vectors``: [V_x, n] per row): every vector packed by DeepSeek's greedy,
    and those whose lower bound stays under the lightest found by ``packer``
    (most promising first, within JOINT_EXHAUSTIVE_PACKER_CELLS). Returns
    (phy2log, rank, logcnt, pack_index, rank_in_pack, peak) [X, ...]; a row's peak
    is inf where no vector beats ``ceiling`` [X] within ``max_duplicates`` [X]."""
    from packviz.metrics import lower_bounds

    num_rows, n = weight.shape
    row_of = torch.cat([torch.full((len(v),), row) for row, v in enumerate(vectors)])
    counts = torch.cat(vectors)
    num_physical = int(counts[0].sum())
    per_row = max(1, JOINT_EXHAUSTIVE_PACKER_CELLS // num_physical)

    def judged(rows, candidates, judge):
        found = _peaks(weight[rows], candidates, num_packs, judge, seed, spread_at_any_cost=True)
        peak = found[4]
        if max_duplicates is not None:
            wasted = same_pack_duplicates(found[0], found[2], n)
            peak = torch.where(wasted > max_duplicates[rows], torch.inf, peak)
        return found, peak

    # every vector by the greedy; then the packer where the bound leaves room below the lightest so far
    greedy, greedy_peak = judged(row_of, counts, "eplb")
    lightest = torch.minimum(ceiling, torch.full_like(ceiling, torch.inf).scatter_reduce(
        0, row_of, greedy_peak, "amin"))
    phy, _ = slots_from_counts(counts)
    bound = lower_bounds((weight[row_of] / counts).gather(1, phy), num_packs).amax(dim=1)
    room = bound < lightest[row_of] * (1 - 1e-12)
    picked = []
    for row in range(num_rows):
        mine = (room & (row_of == row)).nonzero().squeeze(1)
        mine = mine[torch.sort(bound[mine], stable=True).indices][:per_row]
        picked.append(mine)
    picked = torch.cat(picked)
    parts = [(greedy, greedy_peak, row_of, counts)]
    if packer != "eplb" and len(picked):
        found, peak = judged(row_of[picked], counts[picked], packer)
        parts.insert(0, (found, peak, row_of[picked], counts[picked]))
    found = [torch.cat([part[0][index] for part in parts]) for index in range(4)]
    peak = torch.cat([part[1] for part in parts])
    owner = torch.cat([part[2] for part in parts])
    count = torch.cat([part[3] for part in parts])
    best_peak = torch.full((num_rows,), torch.inf, dtype=torch.float64).scatter_reduce(0, owner, peak, "amin")
    # the first of each row's lightest (the packer's before the greedy's, lexicographic order)
    at_best = (peak <= best_peak[owner]).nonzero().squeeze(1)
    first = torch.full((num_rows,), len(peak), dtype=torch.int64).scatter_reduce(0, owner[at_best], at_best, "amin")
    has = first < len(peak)
    pick = first.clamp(max=len(peak) - 1)
    best_peak = torch.where(has & (best_peak < ceiling * (1 - 1e-12)), best_peak, torch.inf)
    phy2log, rank, pack_index, rank_in_pack = (part[pick] for part in found)
    return phy2log, rank, count[pick], pack_index, rank_in_pack, best_peak


def joint_replicate(weight: torch.Tensor, num_physical: int, num_packs: int, packer, seed: int = 0,
                    max_rounds: int | None = None, max_duplicates: torch.Tensor | None = None):
    """Replica counts chosen together with the packing, for each row of weight [X, n].

    Rows of few experts whose count vectors that could beat DeepSeek's are
    few try every one of them (see ``_every_count_vector``). Other rows start
    from DeepSeek's counts; each round moves one replica from a donor to an
    expert on the busiest pack in every way the candidates allow, re-packs
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
    result = [start[0].clone(), start[1].clone(), logcnt.clone(), start[2].clone(), start[3].clone()]
    searched = torch.zeros(num_rows, dtype=torch.bool)
    if n <= JOINT_EXHAUSTIVE_MAX_EXPERTS:
        searched = _search_every_count_vector(weight, logcnt, start, num_physical, num_packs, packer, seed,
                                              max_duplicates, result)
    rows = (~searched).nonzero().squeeze(1)
    if len(rows):
        found = _beam_search(weight[rows], logcnt[rows], [part[rows] for part in start], num_physical, num_packs,
                             packer, seed, max_rounds, None if max_duplicates is None else max_duplicates[rows])
        for index, value in enumerate(found):
            result[index][rows] = value
    return tuple(result)


def _search_every_count_vector(weight: torch.Tensor, logcnt: torch.Tensor, start: list[torch.Tensor],
                               num_physical: int, num_packs: int, packer, seed: int,
                               max_duplicates: torch.Tensor | None, result: list[torch.Tensor]) -> torch.Tensor:
    """``joint_replicate`` for the rows whose count vectors that could beat
    DeepSeek's counts are few: each tries them all (``_every_count_vector``)
    and takes the lightest where it is lighter, writing into ``result``. The
    bar is the lighter of DeepSeek's counts packed by ``packer`` and by the
    greedy, each where it keeps to ``max_duplicates``. Returns [X] bool: the
    rows searched so."""
    n = weight.shape[1]

    def within(found):
        peak = found[4].clone()
        if max_duplicates is not None:
            peak[same_pack_duplicates(found[0], found[2], n) > max_duplicates] = torch.inf
        return peak

    ceiling = within(start)
    if packer != "eplb":
        ceiling = torch.minimum(ceiling, within(_peaks(weight, logcnt, num_packs, "eplb", seed)))
    lowest, highest = _count_ranges(weight, num_physical, num_packs, ceiling, max_duplicates)
    totals = _count_vector_totals(lowest, highest, num_physical)
    mean = weight.sum(dim=1) / num_packs
    # rows at the mean have nothing to gain; rows with no finite bar search everything, if that is small
    searched = (totals * num_physical <= JOINT_EXHAUSTIVE_CELLS) & ((start[4] > mean) | ceiling.isinf())
    rows = searched.nonzero().squeeze(1)
    if len(rows) == 0:
        return searched
    # rows in batches of at most JOINT_EXHAUSTIVE_CELLS cells (memory stays that of one row's search)
    batch: list[tuple[int, torch.Tensor]] = []
    for position, row in enumerate(rows.tolist()):
        vectors = _count_vectors(lowest[row].tolist(), highest[row].tolist(), num_physical)
        if len(vectors):
            batch.append((row, vectors))
        cells = sum(len(v) for _, v in batch) * num_physical
        last = position == len(rows) - 1
        if batch and (last or cells + float(totals[rows[position + 1]]) * num_physical > JOINT_EXHAUSTIVE_CELLS):
            chosen = torch.tensor([r for r, _ in batch])
            phy2log, rank, counts, pack_index, rank_in_pack, peak = _every_count_vector(
                weight[chosen], [v for _, v in batch], num_packs, packer, seed,
                None if max_duplicates is None else max_duplicates[chosen], ceiling[chosen])
            lighter = peak < ceiling[chosen] * (1 - 1e-12)
            for index, value in enumerate((phy2log, rank, counts, pack_index, rank_in_pack)):
                result[index][chosen[lighter]] = value[lighter]
            batch = []
    return searched


def _beam_search(weight: torch.Tensor, logcnt: torch.Tensor, start: list[torch.Tensor], num_physical: int,
                 num_packs: int, packer, seed: int, max_rounds: int | None, max_duplicates: torch.Tensor | None):
    """``joint_replicate`` on rows weight [X, n] by a beam from DeepSeek's counts
    ``logcnt`` and their packing ``start``."""
    num_rows, n = weight.shape
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
