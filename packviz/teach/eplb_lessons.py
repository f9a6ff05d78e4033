"""The Learn page's EPLB chapters: replicating hot experts, and the hierarchy (why plans age:
``aging_lesson``).

Balanced packing is half of DeepSeek's EPLB. Before packing, the hottest
experts get extra replicas (each slot to the expert with the most load per
replica); with expert groups, the groups go to nodes first, then each node
replicates and packs its own experts onto its GPUs. Each step here is
computed with ``packviz.eplb``'s public functions (``replicate_experts``,
``rebalance_experts``) and the packer on the loads on screen; nothing is
typed by hand.

Shapes: loads [E] (one layer); the tensors the API returns are [1, ...].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from packviz.eplb import gpu_loads, rebalance_experts, replicate_experts
from packviz.metrics import lower_bound
from packviz.teach.chapter_texts import ChapterText
from packviz.teach.narration import fmt
from packviz.teach.quiz import Question
from packviz.trace.events import Placed
from packviz.validate import slot_counts_hint


@dataclass(frozen=True)
class Bars:
    """One bar chart: ``parts[b]`` stacks bar b from (label, value) pieces."""

    title: str
    labels: tuple[str, ...]
    parts: tuple[tuple[tuple[str, float], ...], ...]
    marked: tuple[int, ...] = ()
    line: float | None = None  # a dashed reference (the mean)
    line_label: str = ""
    bound: float | None = None  # the lower bound on the busiest bar, drawn where the bars are GPUs
    queue: tuple[str, ...] = ()  # what is still to place, next first
    axis: str = "load"  # what the bars measure, the y axis's title

    @property
    def totals(self) -> list[float]:
        return [sum(value for _, value in bar) for bar in self.parts]


@dataclass(frozen=True)
class EplbStep:
    """A step of an EPLB chapter: what it draws, says, and which line of its pseudo-code runs;
    ``question`` asks the room what the next step does (None where there is no choice)."""

    bars: Bars
    narration: str
    line: int
    phase: str
    without_replicas: float | None = None  # the packing step's busiest GPU had no expert been replicated
    joint: tuple[float, float] | None = None  # busiest GPU: counts chosen with the packing, DeepSeek's counts
    question: Question | None = None


REPLICATION_CODE = (
    "every expert starts with one slot",
    "for each extra slot:",
    "    e = the expert with the most load per replica (load / replicas)",
    "    give e one more replica",
    "for each replica, heaviest first: put it on the lightest GPU with room",
    "packviz: choose the counts together with the packing (joint replication)",
)

HIERARCHY_CODE = (
    "group load = sum of its experts' loads",
    "for each group, heaviest first: put it on the lightest node with room",
    "on each node: each extra slot to its expert with the most load per replica",
    "on each node: each replica, heaviest first, to its lightest GPU with room",
)

# The most answers a question offers: the run's and the nearest others.
MAX_CHOICES = 4


def _one(values: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor([list(values)], dtype=torch.float64)


def _bound(values: list[float], num_bins: int) -> float:
    """The packing's lower bound on the busiest of ``num_bins`` bins holding ``values`` [S] (S/num_bins each)."""
    return float(lower_bound(_one(tuple(values)), num_bins)[0])


def _slot_question(slot: int, shares: dict[int, float], chosen: int, where: str = "") -> Question:
    """Which expert gets ``slot``: the experts [e -> load per replica] compete, ``chosen`` is the run's."""
    ranked = sorted(shares, key=lambda e: (-shares[e], e))
    shown = sorted(ranked[:MAX_CHOICES] if chosen in ranked[:MAX_CHOICES] else [chosen, *ranked[:MAX_CHOICES - 1]])
    tied = tuple(f"expert {e}" for e in shown if e != chosen and shares[e] == shares[chosen])
    reasons = tuple(
        (f"expert {e}", f"also carries {fmt(shares[e])} per replica: as good a choice; the run gives the slot to "
                        f"the lower number, expert {chosen}.") if f"expert {e}" in tied else
        (f"expert {e}", f"carries {fmt(shares[e])} per replica, less than expert {chosen}'s {fmt(shares[chosen])}.")
        for e in shown if e != chosen)
    return Question(f"Slot {slot} is spare{where}. Which expert gets it?", tuple(f"expert {e}" for e in shown),
                    f"expert {chosen}", f"Expert {chosen} has the most load per replica, {fmt(shares[chosen])}.",
                    tied, reasons)


def _bin_question(thing: str, load: float, unit: str, loads: list[float], open_bins: list[int], target: int,
                  names: list[str] | None = None) -> Question | None:
    """Which bin (GPU or node) takes ``thing``: the open bins with their loads, ``target`` the run's.
    None when only one bin has room (nothing to predict)."""
    if len(open_bins) < 2:
        return None
    name = (lambda b: names[b]) if names else (lambda b: f"{unit} {b}")
    lightest = min(loads[b] for b in open_bins)
    tied = tuple(name(b) for b in open_bins if b != target and loads[b] == loads[target])
    if len(tied) == len(open_bins) - 1:
        return None  # every bin with room is as light: nothing to predict
    reasons = []
    for b in open_bins:
        if b == target:
            continue
        if name(b) in tied:
            reasons.append((name(b), f"is as light as {name(target)} (both {fmt(loads[b])}): as good a choice; the "
                                     "run takes the lowest number."))
        else:
            reasons.append((name(b), f"holds {fmt(loads[b])}, more than {name(target)}'s {fmt(loads[target])}: the "
                                     f"{unit} with room that is lightest takes it."))
    why = (f"{name(target)} is the lightest {unit} with room ({fmt(loads[target])})." if loads[target] == lightest
           else f"The plan puts it on {name(target)}.")
    return Question(f"{thing} ({fmt(load)}) is next. Which {unit} gets it?", tuple(name(b) for b in open_bins),
                    name(target), why, tied, tuple(reasons))


def _fill_steps(items: list[tuple[str, int, float]], targets: list[int], num_bins: int, per_bin: int,
                unit: str, line: int, phase: str, bins: list[list[tuple[str, float]]], title: str,
                mean: float, bound: float, names: list[str] | None = None,
                first_bin: int = 0) -> tuple[Question | None, list[EplbStep]]:
    """One step per item placed: ``items`` [(what, expert or group, load)] in the order placed, ``targets``
    their bins (from the plan); ``bins`` the stacks so far (extended in place). Returns the question
    about the first placement (for the step before) and the steps, each asking about the next."""
    name = (lambda b: names[b]) if names else (lambda b: f"{unit.upper()} {b}")
    steps: list[EplbStep] = []
    questions: list[Question | None] = []
    for position, ((what, key, load), target) in enumerate(zip(items, targets)):
        local = [sum(v for _, v in stack) for stack in bins[first_bin:first_bin + num_bins]]
        open_bins = [b for b in range(num_bins) if len(bins[first_bin + b]) < per_bin]
        questions.append(_bin_question(what[0].upper() + what[1:], load, unit, local, open_bins, target,
                                       [name(first_bin + b) for b in range(num_bins)]))
        lightest = min(local[b] for b in open_bins)
        tied = [b for b in open_bins if local[b] == lightest]
        why = (f"the lightest {unit} with room ({fmt(lightest)})" if local[target] == lightest and len(tied) == 1
               else f"the lightest {unit} with room ({fmt(lightest)}; tied, the lowest number goes first)"
               if local[target] == lightest
               else f"where the plan puts it (it held {fmt(local[target])})")
        bins[first_bin + target].append((key, load))
        totals = [sum(v for _, v in stack) for stack in bins]
        label = f"{what} ({fmt(load)}) goes to {name(first_bin + target)}, {why}: it now holds " \
                f"{fmt(totals[first_bin + target])}."
        queue = tuple(f"{key.replace('expert ', 'e').replace('group ', 'g')} ({fmt(v)})"
                      for _, key, v in items[position + 1:])
        steps.append(EplbStep(Bars(title, tuple(name(b) for b in range(len(bins))),
                                   tuple(tuple(stack) for stack in bins), (first_bin + target,), mean, "mean",
                                   bound, queue), label[0].upper() + label[1:], line, phase))
    with_questions = [replace(step, question=question) for step, question in zip(steps, [*questions[1:], None])]
    return questions[0] if questions else None, with_questions


def _slot_steps(loads: tuple[float, ...], experts: list[int], num_slots: int, line: int, where: str,
                bars_of: Callable[[dict[int, int], int], Bars]) -> tuple[Question | None, list[EplbStep], list[int]]:
    """Each spare slot of ``experts`` (their ``num_slots`` slots) to the most load per replica, as
    ``replicate_experts`` gives them. ``bars_of(counts, chosen)`` draws a state. Returns the question
    about the first spare slot, the steps (each asking about the next) and the final counts [E]."""
    counts = {e: 1 for e in experts}
    own = tuple(loads[e] for e in experts)
    steps, questions = [], []
    for slot in range(len(experts), num_slots):
        phy2log, _, _ = replicate_experts(_one(own), slot + 1)
        chosen = experts[int(phy2log[0, slot])]
        shares = {e: loads[e] / counts[e] for e in experts}
        questions.append(_slot_question(slot, shares, chosen, where))
        others = [e for e in experts if e != chosen]
        runner = max(others, key=lambda e: (shares[e], -e), default=None)
        tie = runner is not None and shares[runner] == shares[chosen]
        text = (f"Slot {slot}{where} goes to expert {chosen}: its load per replica, {fmt(loads[chosen])} / "
                f"{counts[chosen]} = {fmt(shares[chosen])}, is the largest"
                + (f" (expert {runner} ties at {fmt(shares[runner])}; the lower number goes first)" if tie else
                   f" (next: expert {runner} at {fmt(shares[runner])})" if runner is not None else "")
                + f". It now has {counts[chosen] + 1} replicas of {fmt(loads[chosen] / (counts[chosen] + 1))} each.")
        counts[chosen] += 1
        steps.append(EplbStep(bars_of(dict(counts), chosen), text, line, "replicate"))
    with_questions = [replace(step, question=question) for step, question in zip(steps, [*questions[1:], None])]
    return (questions[0] if questions else None), with_questions, counts


def _replicas_heaviest_first(loads: tuple[float, ...], counts: dict[int, int], experts: list[int]) \
        -> list[tuple[str, int, float]]:
    """Every replica of ``experts`` as (name, expert, load), heaviest first (lower expert first on a tie)."""
    replicas = [(f"a replica of expert {e}", e, loads[e] / counts[e]) for e in experts for _ in range(counts[e])]
    return sorted(replicas, key=lambda r: (-r[2], r[1]))


def _node_packing(loads: tuple[float, ...], experts_in_slots: list[int], logcnt: list[int], num_gpus: int,
                  gpu_of_slot: list[int]) -> tuple[list[tuple[str, str, float]], list[int]]:
    """The order in which a node's replicas reach its GPUs: the packer (DeepSeek's greedy) run again on
    the node's replicas in replication order, when it lands each GPU's loads where the plan has them;
    else the plan's own slots, heaviest first. Returns [(what, expert key, load)] and each one's GPU."""
    own = sorted(set(experts_in_slots))
    # replication order: each expert once, then the extra replicas as replicate_experts gave them
    phy2log, _, _ = replicate_experts(_one(tuple(loads[e] for e in own)), len(experts_in_slots))
    experts = [own[i] for i in phy2log[0].tolist()]
    shares = [loads[e] / logcnt[e] for e in experts]
    placed = _packed(_one(tuple(shares)), num_gpus)
    share_of_slot = [loads[e] / logcnt[e] for e in experts_in_slots]
    if all(sorted(v for v, g in zip(share_of_slot, gpu_of_slot) if g == gpu) ==
           sorted(load for _, g, load in placed if g == gpu) for gpu in range(num_gpus)):
        return ([(f"a replica of expert {experts[i]}", f"expert {experts[i]}", load) for i, _, load in placed],
                [gpu for _, gpu, _ in placed])
    order = sorted(range(len(experts_in_slots)), key=lambda i: (-share_of_slot[i], i))
    return ([(f"a replica of expert {experts_in_slots[i]}", f"expert {experts_in_slots[i]}", share_of_slot[i])
             for i in order], [gpu_of_slot[i] for i in order])


def replication_steps(loads: tuple[float, ...], num_slots: int, num_gpus: int) -> list[EplbStep]:
    """Each extra slot given by DeepSeek's rule, then the replicas packed one by one; ValueError for a shape
    that cannot work."""
    experts = len(loads)
    if num_slots < experts or num_slots % num_gpus:
        raise ValueError(f"{num_slots} slots must be at least the {experts} experts and split evenly over "
                         f"{num_gpus} GPUs ({slot_counts_hint(num_slots, experts, num_gpus)})")
    names = tuple(f"expert {e}" for e in range(experts))
    mean = sum(loads) / num_slots

    def per_replica(counts: dict[int, int], chosen: int | None = None) -> Bars:
        title = "load per replica: one slot each" if chosen is None else "load per replica, after this slot"
        return Bars(title, names, tuple(((f"expert {e}", loads[e] / counts[e]),) for e in range(experts)),
                    (chosen,) if chosen is not None else (), mean, "mean slot")

    hottest = max(range(experts), key=lambda e: (loads[e], -e))
    first, slot_steps, counts = _slot_steps(loads, list(range(experts)), num_slots, 3, "", per_replica)
    steps = [EplbStep(per_replica({e: 1 for e in range(experts)}), (
        f"{experts} experts, {num_slots} slots on {num_gpus} GPUs: {num_slots - experts} extra slots. With one slot "
        f"each, expert {hottest} alone carries {fmt(loads[hottest])}, against a mean slot of {fmt(mean)}: no packing "
        "can spread one expert's load over two GPUs, only a replica can."), 0, "start", question=first)]
    steps += slot_steps
    phy2log, _, logcnt = replicate_experts(_one(loads), num_slots)
    assert [int(c) for c in logcnt[0].tolist()] == [counts[e] for e in range(experts)]
    replica_loads = (_one(loads) / logcnt).gather(1, phy2log)
    placements = _packed(replica_loads, num_gpus)
    expert_of = phy2log[0].tolist()
    order = [(f"a replica of expert {expert_of[slot]}", expert_of[slot], load) for slot, _, load in placements]
    shares = [load for _, _, load in order]
    bound = _bound(shares, num_gpus)
    bins: list[list[tuple[str, float]]] = [[] for _ in range(num_gpus)]
    question, fill = _fill_steps([(w, f"expert {e}", v) for w, e, v in order], [gpu for _, gpu, _ in placements],
                                 num_gpus, num_slots // num_gpus, "GPU", 4, "pack", bins, "GPU loads as the replicas "
                                 "are packed", sum(loads) / num_gpus, bound)
    steps[-1] = replace(steps[-1], question=question)
    totals = fill[-1].bars.totals
    text = (f" All {num_slots} replicas packed (DeepSeek's greedy): the busiest GPU holds {fmt(max(totals))}, the mean "
            f"{fmt(sum(loads) / num_gpus)}, the lower bound LB {fmt(bound)}.")
    without = None
    if experts % num_gpus == 0:
        without = max(_packed_totals(_one(loads), num_gpus))
        text += f" Without replicas the same packer's busiest GPU holds {fmt(without)}."
    fill[-1] = replace(fill[-1], narration=fill[-1].narration + text, without_replicas=without)
    steps += fill
    steps.append(_joint_step(loads, num_slots, num_gpus))
    return steps


def _joint_step(loads: tuple[float, ...], num_slots: int, num_gpus: int) -> EplbStep:
    """The same slots with packviz's counts chosen together with the packing
    (``rebalance_experts``'s joint replication, fast packer), against DeepSeek's counts and that packer."""
    weight = _one(loads)
    plans = {joint: rebalance_experts(weight, num_slots, None, 1, num_gpus, packer="fast", joint_replication=joint)
             for joint in (True, False)}
    busiest = {joint: float(gpu_loads(weight, plan.phy2log, plan.logcnt, num_gpus).max())
               for joint, plan in plans.items()}
    joint = plans[True]
    per_gpu = num_slots // num_gpus
    counts = joint.logcnt[0].tolist()
    stacks = [[] for _ in range(num_gpus)]
    for slot, expert in enumerate(joint.phy2log[0].tolist()):
        stacks[slot // per_gpu].append((f"expert {expert}", loads[expert] / counts[expert]))
    totals = [sum(v for _, v in stack) for stack in stacks]
    bars = Bars("GPU loads, counts chosen with the packing", tuple(f"GPU {g}" for g in range(num_gpus)),
                tuple(tuple(stack) for stack in stacks), (max(range(num_gpus), key=lambda g: totals[g]),),
                sum(loads) / num_gpus, "mean", _bound([v for stack in stacks for _, v in stack], num_gpus))
    extra = [e for e, count in enumerate(counts) if count > 1]
    better = busiest[True] < busiest[False] - 1e-9
    parts = [f"expert {e} gets {counts[e]} replicas" for e in extra]
    given = (" and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts) + ", the others one each"
             if parts else "every expert keeps one replica")
    mean_load = sum(loads) / len(loads)
    cold = [e for e in extra if loads[e] < mean_load]
    why = (f" Expert{'s' if len(cold) > 1 else ''} {', '.join(map(str, cold))} {'are' if len(cold) > 1 else 'is'} "
           "below the mean load, yet replicated: small replicas fill the gaps the hot experts leave on their GPUs."
           if cold else "")
    text = (f"packviz can choose the counts together with the packing (joint replication). Here {given}. "
            f"Packed with the fast preset, the busiest GPU holds {fmt(busiest[True])}; with DeepSeek's counts and "
            f"the same packer it holds {fmt(busiest[False])}"
            + (": counts that look at the packing do better." if better else
               ": on these loads DeepSeek's counts are already as good.") + why)
    return EplbStep(bars, text, 5, "final", joint=(busiest[True], busiest[False]))


def _packed(replica_loads: torch.Tensor, num_packs: int) -> list[tuple[int, int, float]]:
    """The replicas [1, S] packed by DeepSeek's greedy (the engine's eplb preset), in the order it
    placed them: (replica, pack, load) each."""
    from packviz.packer import pack

    trace = pack(replica_loads, num_packs, "eplb", trace_layers=[0]).traces[0]
    return [(event.item, event.pack, event.load) for event in trace.chosen_candidate.events
            if isinstance(event, Placed)]


def _packed_totals(replica_loads: torch.Tensor, num_packs: int) -> list[float]:
    totals = [0.0] * num_packs
    for _, pack, load in _packed(replica_loads, num_packs):
        totals[pack] += load
    return totals


def hierarchy_steps(loads: tuple[float, ...], num_replicas: int, num_groups: int, num_nodes: int,
                    num_gpus: int) -> list[EplbStep]:
    """DeepSeek's hierarchical placement, one decision a step, read from ``rebalance_experts``'s plan:
    each group to a node, each node's spare slots, each replica to a GPU. ValueError for a shape
    that cannot work."""
    experts = len(loads)
    problems = [why for bad, why in (
        (num_groups < 1 or experts % num_groups, f"{experts} experts do not split into {num_groups} groups"),
        (num_nodes < 1 or num_groups % num_nodes, f"{num_groups} groups do not split over {num_nodes} nodes"),
        (num_gpus % max(num_nodes, 1), f"{num_gpus} GPUs do not split over {num_nodes} nodes"),
        (num_replicas % max(num_gpus, 1) or num_replicas < experts,
         f"{num_replicas} slots must be at least the {experts} experts and split evenly over {num_gpus} GPUs"),
    ) if bad]
    if problems:
        raise ValueError(problems[0])
    placement = rebalance_experts(_one(loads), num_replicas, num_groups, num_nodes, num_gpus,
                                  enable_hierarchical=True)
    phy2log, logcnt = placement.phy2log[0].tolist(), placement.logcnt[0].tolist()
    per_group, slots_per_gpu, gpus_per_node = experts // num_groups, num_replicas // num_gpus, num_gpus // num_nodes
    group_of = [e // per_group for e in range(experts)]
    node_of_slot = [slot // slots_per_gpu // gpus_per_node for slot in range(num_replicas)]
    node_of_group = {group_of[e]: node_of_slot[slot] for slot, e in enumerate(phy2log)}
    group_load = [sum(loads[e] for e in range(experts) if group_of[e] == g) for g in range(num_groups)]
    node_names = [f"node {n}" for n in range(num_nodes)]
    steps = [EplbStep(Bars("experts, in their groups", tuple(f"e{e} (g{group_of[e]})" for e in range(experts)),
                           tuple(((f"group {group_of[e]}", loads[e]),) for e in range(experts))), (
        f"{experts} experts in {num_groups} groups of {per_group}; {num_nodes} nodes of {gpus_per_node} GPUs, "
        f"{num_replicas} slots in all. A token's experts come from few groups, so DeepSeek keeps each group on one "
        "node: traffic between nodes is the slow part."), 0, "start")]
    steps.append(EplbStep(Bars("group loads", tuple(f"group {g}" for g in range(num_groups)),
                               tuple(((f"group {g}", group_load[g]),) for g in range(num_groups))), (
        "Stage 1 packs whole groups, so it needs each group's load: "
        + ", ".join(f"group {g} {fmt(group_load[g])}" for g in range(num_groups)) + "."), 0, "groups"))
    # stage 1: the groups, heaviest first, each onto the node the plan gives it
    groups = sorted(range(num_groups), key=lambda g: (-group_load[g], g))
    node_bins: list[list[tuple[str, float]]] = [[] for _ in range(num_nodes)]
    question, fill = _fill_steps([(f"group {g}", f"group {g}", group_load[g]) for g in groups],
                                 [node_of_group[g] for g in groups], num_nodes, num_groups // num_nodes, "node", 1,
                                 "nodes", node_bins, "node loads as the groups are packed", sum(loads) / num_nodes,
                                 _bound(group_load, num_nodes), node_names)
    steps[-1] = replace(steps[-1], question=question)
    steps += fill
    # stage 2: each node's spare slots, one by one
    node_slots = num_replicas // num_nodes
    counts = {e: 1 for e in range(experts)}

    def per_replica(now: dict[int, int], chosen: int | None) -> Bars:
        shown = {**counts, **now}
        return Bars("load per replica, each node's experts", tuple(f"e{e} x{shown[e]}" for e in range(experts)),
                    tuple(((f"node {node_of_group[group_of[e]]}", loads[e] / shown[e]),) for e in range(experts)),
                    (chosen,) if chosen is not None else ())

    for node in range(num_nodes):
        own = [e for e in range(experts) if node_of_group[group_of[e]] == node]
        question, slot_steps, node_counts = _slot_steps(loads, own, node_slots, 2, f" on node {node}", per_replica)
        steps[-1] = replace(steps[-1], question=question)
        if not slot_steps:
            continue
        counts.update(node_counts)
        steps += slot_steps
    assert [counts[e] for e in range(experts)] == logcnt
    # stage 3: each node's replicas, heaviest first, onto its GPUs (the GPU the plan gives each)
    gpu_bins: list[list[tuple[str, float]]] = [[] for _ in range(num_gpus)]
    gpu_names = [f"GPU {g} (node {g // gpus_per_node})" for g in range(num_gpus)]
    replica_loads = [loads[e] / logcnt[e] for e in phy2log]
    bound = _bound(replica_loads, num_gpus)
    for node in range(num_nodes):
        slots = [slot for slot in range(num_replicas) if node_of_slot[slot] == node]
        items, targets = _node_packing(loads, [phy2log[slot] for slot in slots], logcnt, gpus_per_node,
                                       [slot // slots_per_gpu - node * gpus_per_node for slot in slots])
        question, fill = _fill_steps(items, targets, gpus_per_node, slots_per_gpu, "GPU", 3, "pack", gpu_bins,
                                     "GPU loads: each node's replicas packed onto its GPUs", sum(loads) / num_gpus,
                                     bound, gpu_names, first_bin=node * gpus_per_node)
        steps[-1] = replace(steps[-1], question=question)
        steps += fill
    gpu_totals = steps[-1].bars.totals
    busiest = max(range(num_gpus), key=lambda g: gpu_totals[g])
    steps[-1] = replace(steps[-1], bars=replace(steps[-1].bars, marked=(busiest,)), narration=(
        steps[-1].narration + f" All placed: GPU loads {', '.join(fmt(v) for v in gpu_totals)}. The busiest, GPU "
        f"{busiest}, holds {fmt(gpu_totals[busiest])} against a mean of {fmt(sum(loads) / num_gpus)} and LB "
        f"{fmt(bound)}; no expert left its group's node."))
    return steps


def eplb_text(key: str, steps: list[EplbStep]) -> ChapterText:
    """The text of an EPLB chapter, from its steps (computed on the loads on screen)."""
    if key == "aging":
        from packviz.teach.aging_lesson import aging_text

        return aging_text(steps)
    if key == "replication":
        final = [step for step in steps if step.phase == "pack"][-1]
        given = [step.bars.marked[0] for step in steps if step.phase == "replicate"]
        busiest = max(final.bars.totals)
        text = ("Packing cannot split an expert: one very hot expert sets its GPU's load whatever the packer does. "
                "DeepSeek's EPLB first gives the spare slots to replicas, each extra slot to the expert with the most "
                "load per replica (its load / its replicas so far), and every replica takes an equal share. "
                f"Here the {len(given)} extra slots go to expert{'s' if len(given) != 1 else ''} "
                f"{', '.join(map(str, given))}; packed, the busiest GPU holds {fmt(busiest)}.")
        if steps[-1].joint is not None:
            chosen, deepseek = steps[-1].joint
            text += (f" Counts chosen with the packing (packviz's joint replication, fast packer) leave "
                     f"{fmt(chosen)} where DeepSeek's counts and the same packer leave {fmt(deepseek)}.")
        without = final.without_replicas
        if without is not None:
            if busiest < without:
                return ChapterText(text + f" Without replicas it would hold {fmt(without)}.", True)
            return ChapterText(text + f" On these loads replicas do not help: without them the busiest GPU also "
                                      f"holds {fmt(without)}.", False)
        return ChapterText(text, True)
    final = steps[-1]
    nodes = [step for step in steps if step.phase == "nodes"][-1].bars.totals
    text = ("With expert groups and several nodes, DeepSeek places in three stages: whole groups onto nodes (a "
            "token's experts then sit on few nodes), then on each node replicas for its hottest experts, then each "
            "node's replicas onto its own GPUs with the packer. Here the nodes hold "
            f"{', '.join(fmt(v) for v in nodes)} and the busiest GPU {fmt(max(final.bars.totals))}.")
    return ChapterText(text, True)


def chapter_steps(eplb: dict[str, int], loads: tuple[float, ...], num_gpus: int) -> list[EplbStep]:
    """The steps of an EPLB chapter (``Chapter.eplb``) on ``loads`` [E] over ``num_gpus`` GPUs;
    ValueError says why a shape cannot work."""
    if "windows" in eplb:
        from packviz.teach.aging_lesson import aging_steps  # it draws with this module's Bars

        return aging_steps(loads, eplb["slots"], eplb["windows"], num_gpus)
    if "groups" in eplb:
        return hierarchy_steps(loads, eplb["slots"], eplb["groups"], eplb["nodes"], num_gpus)
    return replication_steps(loads, eplb["slots"], num_gpus)
