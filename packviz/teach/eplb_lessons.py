"""The Learn page's two EPLB chapters: replicating hot experts, and the hierarchy.

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

from dataclasses import dataclass

import torch

from packviz.eplb import gpu_loads, rebalance_experts, replicate_experts
from packviz.teach.chapter_texts import ChapterText
from packviz.teach.narration import fmt
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

    @property
    def totals(self) -> list[float]:
        return [sum(value for _, value in bar) for bar in self.parts]


@dataclass(frozen=True)
class EplbStep:
    """A step of an EPLB chapter: what it draws, says, and which line of its pseudo-code runs."""

    bars: Bars
    narration: str
    line: int
    phase: str
    without_replicas: float | None = None  # the packing step's busiest GPU had no expert been replicated
    joint: tuple[float, float] | None = None  # busiest GPU: counts chosen with the packing, DeepSeek's counts


REPLICATION_CODE = (
    "every expert starts with one slot",
    "for each extra slot:",
    "    e = the expert with the most load per replica (load / replicas)",
    "    give e one more replica",
    "pack the replicas (each load / replicas) onto the GPUs",
    "packviz: choose the counts together with the packing (joint replication)",
)

HIERARCHY_CODE = (
    "group load = sum of its experts' loads",
    "pack the groups onto the nodes (groups / nodes each)",
    "on each node: replicate its hottest experts into its slots",
    "on each node: pack its replicas onto its GPUs",
)


def _one(values: tuple[float, ...]) -> torch.Tensor:
    return torch.tensor([list(values)], dtype=torch.float64)


def replication_steps(loads: tuple[float, ...], num_slots: int, num_gpus: int) -> list[EplbStep]:
    """Each extra slot given by DeepSeek's rule, then the replicas packed; ValueError for a shape that cannot work."""
    experts = len(loads)
    if num_slots < experts or num_slots % num_gpus:
        raise ValueError(f"{num_slots} slots must be at least the {experts} experts and split evenly over "
                         f"{num_gpus} GPUs ({slot_counts_hint(num_slots, experts, num_gpus)})")
    names = tuple(f"expert {e}" for e in range(experts))
    counts = [1] * experts
    mean = sum(loads) / num_slots

    def per_replica(title: str, marked: tuple[int, ...] = ()) -> Bars:
        return Bars(title, names, tuple(((f"{e} x{counts[e]}", loads[e] / counts[e]),) for e in range(experts)),
                    marked, mean, "mean slot")

    hottest = max(range(experts), key=lambda e: (loads[e], -e))
    steps = [EplbStep(per_replica("load per replica: one slot each"), (
        f"{experts} experts, {num_slots} slots on {num_gpus} GPUs: {num_slots - experts} extra slots. With one slot "
        f"each, expert {hottest} alone carries {fmt(loads[hottest])}, against a mean slot of {fmt(mean)}: no packing "
        "can spread one expert's load over two GPUs, only a replica can."), 0, "start")]
    for slot in range(experts, num_slots):
        phy2log, _, logcnt = replicate_experts(_one(loads), slot + 1)
        chosen = int(phy2log[0, slot])
        shares = [loads[e] / counts[e] for e in range(experts)]
        runner = max((e for e in range(experts) if e != chosen), key=lambda e: (shares[e], -e), default=None)
        before = per_replica(f"slot {slot}: the most load per replica gets it", (chosen,))
        tie = runner is not None and shares[runner] == shares[chosen]
        text = (f"Slot {slot} goes to expert {chosen}: its load per replica, {fmt(loads[chosen])} / "
                f"{counts[chosen]} = {fmt(shares[chosen])}, is the largest"
                + (f" (expert {runner} ties at {fmt(shares[runner])}; the lower number goes first)" if tie else
                   f" (next: expert {runner} at {fmt(shares[runner])})" if runner is not None else "")
                + f". It now has {counts[chosen] + 1} replicas of {fmt(loads[chosen] / (counts[chosen] + 1))} each.")
        counts = [int(c) for c in logcnt[0].tolist()]
        steps.append(EplbStep(before, text, 2, "replicate"))
    phy2log, _, logcnt = replicate_experts(_one(loads), num_slots)
    replica_loads = (_one(loads) / logcnt).gather(1, phy2log)
    gpus = _packed(replica_loads, phy2log[0].tolist(), num_gpus, "gpu")
    totals = gpus.totals
    text = (f"The {num_slots} replicas, each carrying its expert's load / replicas, packed onto {num_gpus} GPUs "
            f"(DeepSeek's greedy): the busiest GPU holds {fmt(max(totals))}, the mean {fmt(sum(loads) / num_gpus)}.")
    without = None
    if experts % num_gpus == 0:
        without = max(_packed(_one(loads), list(range(experts)), num_gpus, "gpu").totals)
        text += f" Without replicas the same packer's busiest GPU holds {fmt(without)}."
    steps.append(EplbStep(gpus, text, 4, "pack", without))
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
                sum(loads) / num_gpus, "mean")
    extra = [e for e, count in enumerate(counts) if count > 1]
    better = busiest[True] < busiest[False] - 1e-9
    text = (f"packviz can choose the counts together with the packing (joint replication): here the extra replicas "
            f"go to expert{'s' if len(extra) != 1 else ''} {', '.join(map(str, extra)) or 'none'} and, packed with "
            f"the fast preset, the busiest GPU holds {fmt(busiest[True])}; with DeepSeek's counts and the same "
            f"packer it holds {fmt(busiest[False])}"
            + (": counts that look at the packing do better." if better else
               ": on these loads DeepSeek's counts are already as good."))
    return EplbStep(bars, text, 5, "final", joint=(busiest[True], busiest[False]))


def _packed(replica_loads: torch.Tensor, expert_of: list[int], num_packs: int, unit: str) -> Bars:
    """The replicas [1, S] packed by DeepSeek's greedy (the engine's eplb preset), as stacked bars."""
    from packviz.packer import pack

    result = pack(replica_loads, num_packs, "eplb", trace_layers=[0])
    trace = result.traces[0]
    stacks: list[list[tuple[str, float]]] = [[] for _ in range(num_packs)]
    for event in trace.chosen_candidate.events:
        if isinstance(event, Placed):
            stacks[event.pack].append((f"expert {expert_of[event.item]}", event.load))
    mean = float(replica_loads.sum()) / num_packs
    return Bars(f"{unit.upper()} loads after packing", tuple(f"{unit.upper()} {p}" for p in range(num_packs)),
                tuple(tuple(s) for s in stacks), (max(range(num_packs), key=lambda p: sum(v for _, v in stacks[p])),),
                mean, "mean")


def hierarchy_steps(loads: tuple[float, ...], num_replicas: int, num_groups: int, num_nodes: int,
                    num_gpus: int) -> list[EplbStep]:
    """DeepSeek's hierarchical placement, stage by stage, read from ``rebalance_experts``'s plan."""
    experts = len(loads)
    placement = rebalance_experts(_one(loads), num_replicas, num_groups, num_nodes, num_gpus,
                                  enable_hierarchical=True)
    phy2log, logcnt = placement.phy2log[0].tolist(), placement.logcnt[0].tolist()
    per_group, slots_per_gpu, gpus_per_node = experts // num_groups, num_replicas // num_gpus, num_gpus // num_nodes
    group_of = [e // per_group for e in range(experts)]
    node_of_slot = [slot // slots_per_gpu // gpus_per_node for slot in range(num_replicas)]
    node_of_group = {group_of[e]: node_of_slot[slot] for slot, e in enumerate(phy2log)}
    group_load = [sum(loads[e] for e in range(experts) if group_of[e] == g) for g in range(num_groups)]
    steps = [EplbStep(Bars("experts, in their groups", tuple(f"e{e} (g{group_of[e]})" for e in range(experts)),
                           tuple(((f"group {group_of[e]}", loads[e]),) for e in range(experts))), (
        f"{experts} experts in {num_groups} groups of {per_group}; {num_nodes} nodes of {gpus_per_node} GPUs, "
        f"{num_replicas} slots in all. A token's experts come from few groups, so DeepSeek keeps each group on one "
        "node: traffic between nodes is the slow part."), 0, "start")]
    steps.append(EplbStep(Bars("group loads", tuple(f"group {g}" for g in range(num_groups)),
                               tuple(((f"group {g}", group_load[g]),) for g in range(num_groups))), (
        "Stage 1 packs whole groups, so it needs each group's load: "
        + ", ".join(f"group {g} {fmt(group_load[g])}" for g in range(num_groups)) + "."), 0, "groups"))
    node_parts = tuple(tuple((f"group {g}", group_load[g]) for g in range(num_groups) if node_of_group.get(g) == n)
                       for n in range(num_nodes))
    node_totals = [sum(v for _, v in part) for part in node_parts]
    steps.append(EplbStep(Bars("node loads: groups packed onto nodes", tuple(f"node {n}" for n in range(num_nodes)),
                               node_parts, (), sum(loads) / num_nodes, "mean"), (
        f"Stage 1: the groups packed onto the {num_nodes} nodes, {num_groups // num_nodes} each: "
        + "; ".join(f"node {n} takes {', '.join(label for label, _ in node_parts[n])} ({fmt(node_totals[n])})"
                    for n in range(num_nodes)) + "."), 1, "nodes"))
    extra = [e for e in range(experts) if logcnt[e] > 1]
    node_slots = num_replicas // num_nodes
    steps.append(EplbStep(Bars("load per replica, each node's experts", tuple(f"e{e} x{logcnt[e]}"
                                                                              for e in range(experts)),
                               tuple(((f"node {node_of_group[group_of[e]]}", loads[e] / logcnt[e]),)
                                     for e in range(experts)), tuple(extra)), (
        f"Stage 2: each node has {node_slots} slots for its {experts // num_nodes} experts and gives the extra ones "
        "to its hottest experts per replica: "
        + (", ".join(f"expert {e} gets {logcnt[e]} replicas of {fmt(loads[e] / logcnt[e])}" for e in extra)
           if extra else "no expert needs one") + "."), 2, "replicate"))
    gpu_parts: list[list[tuple[str, float]]] = [[] for _ in range(num_gpus)]
    for slot, e in enumerate(phy2log):
        gpu_parts[slot // slots_per_gpu].append((f"expert {e}", loads[e] / logcnt[e]))
    gpu_totals = [sum(v for _, v in part) for part in gpu_parts]
    busiest = max(range(num_gpus), key=lambda g: gpu_totals[g])
    steps.append(EplbStep(Bars("GPU loads: each node's replicas packed onto its GPUs",
                               tuple(f"GPU {g} (node {g // gpus_per_node})" for g in range(num_gpus)),
                               tuple(tuple(p) for p in gpu_parts), (busiest,), sum(loads) / num_gpus, "mean"), (
        f"Stage 3: on each node its replicas are packed onto its {gpus_per_node} GPUs, {slots_per_gpu} each, with "
        f"the packer: GPU loads {', '.join(fmt(v) for v in gpu_totals)}. The busiest, GPU {busiest}, holds "
        f"{fmt(gpu_totals[busiest])} against a mean of {fmt(sum(loads) / num_gpus)}; no expert left its group's "
        "node."), 3, "final"))
    return steps


def eplb_text(key: str, steps: list[EplbStep]) -> ChapterText:
    """The text of an EPLB chapter, from its steps (computed on the loads on screen)."""
    if key == "replication":
        final = next(step for step in steps if step.phase == "pack")
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
    nodes = steps[2].bars.totals
    text = ("With expert groups and several nodes, DeepSeek places in three stages: whole groups onto nodes (a "
            "token's experts then sit on few nodes), then on each node replicas for its hottest experts, then each "
            "node's replicas onto its own GPUs with the packer. Here the nodes hold "
            f"{', '.join(fmt(v) for v in nodes)} and the busiest GPU {fmt(max(final.bars.totals))}.")
    return ChapterText(text, True)


def chapter_steps(eplb: dict[str, int], loads: tuple[float, ...], num_gpus: int) -> list[EplbStep]:
    """The steps of an EPLB chapter (``Chapter.eplb``) on ``loads`` [E] over ``num_gpus`` GPUs;
    ValueError says why a shape cannot work."""
    if "groups" in eplb:
        return hierarchy_steps(loads, eplb["slots"], eplb["groups"], eplb["nodes"], num_gpus)
    return replication_steps(loads, eplb["slots"], num_gpus)
