"""The cluster a placement is for, and the checks every plan must pass.

A cluster has ``num_nodes`` nodes of ``num_gpus / num_nodes`` GPUs each and
``num_replicas`` physical expert slots per MoE layer, ``num_replicas /
num_gpus`` on every GPU. Physical slot ``p`` sits on GPU ``p // slots_per_gpu``
(the EP rank, as in SGLang's and DeepSeek's ``phy2log``), at index ``p %
slots_per_gpu`` on it, and GPU ``g`` on node ``g // gpus_per_node``.

Shapes: phy2log [layers, num_replicas] logical expert ids; weight
[layers, num_logical] loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from packviz.eplb.placement import ExpertPlacement, rebalance_experts
from packviz.metrics import lower_bound
from packviz.validate import slot_counts_hint

Policy = Literal["auto", "hierarchical", "global"]
POLICIES: tuple[Policy, ...] = ("auto", "hierarchical", "global")


@dataclass(frozen=True)
class Cluster:
    """Slots, expert groups, nodes and GPUs of one deployment (``num_groups=None``: no expert groups)."""

    num_replicas: int
    num_groups: int | None
    num_nodes: int
    num_gpus: int
    policy: Policy = "auto"

    @property
    def slots_per_gpu(self) -> int:
        return self.num_replicas // self.num_gpus

    @property
    def gpus_per_node(self) -> int:
        return self.num_gpus // self.num_nodes

    @property
    def hierarchical(self) -> bool:
        """DeepSeek's rule under ``auto``: hierarchical when the groups divide among the nodes."""
        if self.policy == "global":
            return False
        if self.policy == "hierarchical":
            return True
        return self.num_groups is not None and self.num_groups % self.num_nodes == 0

    def problem(self, num_logical: int) -> str | None:
        """One sentence saying why this shape cannot place ``num_logical`` experts, or None."""
        for name, value in (("slots", self.num_replicas), ("nodes", self.num_nodes), ("GPUs", self.num_gpus)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return f"The number of {name} must be a whole number of at least 1, not {value!r}."
        if self.num_groups is not None and (not isinstance(self.num_groups, int) or self.num_groups < 1):
            return f"The number of expert groups must be a whole number of at least 1, not {self.num_groups!r}."
        slots_hint = slot_counts_hint(self.num_replicas, num_logical, self.num_gpus)
        if self.num_replicas < num_logical:
            return (f"{self.num_replicas} slots are fewer than the {num_logical} experts: "
                    f"every expert needs at least one slot ({slots_hint}).")
        if self.num_replicas % self.num_gpus:
            # GPU counts that also split over the nodes, so the hint does not lead to the next refusal
            gpus_hint = _divisors_hint(self.num_replicas, "GPU", self.num_gpus, multiple_of=self.num_nodes)
            # other slot counts on these GPUs help only where the GPUs split over the nodes
            fits_nodes = self.num_gpus % self.num_nodes == 0
            hints = "; ".join(hint for hint in (slots_hint if fits_nodes else "", gpus_hint) if hint)
            return (f"{self.num_replicas} slots do not split evenly over {self.num_gpus} GPUs: "
                    f"every GPU needs the same number of slots ({hints}).")
        if self.num_gpus % self.num_nodes:
            return (f"{self.num_gpus} GPUs do not split evenly over {self.num_nodes} nodes "
                    f"({_divisors_hint(self.num_gpus, 'node', self.num_nodes)}).")
        if self.hierarchical:
            if self.num_groups is None:
                return "The hierarchical policy needs expert groups to put on nodes; give a number of groups."
            if num_logical % self.num_groups:
                return (f"{num_logical} experts do not split evenly into {self.num_groups} expert groups "
                        f"({_divisors_hint(num_logical, 'group', self.num_groups)}).")
            if self.num_groups % self.num_nodes:
                return (f"{self.num_groups} expert groups do not split evenly over {self.num_nodes} nodes, "
                        "which the hierarchical policy needs (choose global or auto, or another node count).")
        return None

    def check(self, num_logical: int) -> None:
        """Raise ValueError with :meth:`problem`'s sentence when the shape cannot work."""
        problem = self.problem(num_logical)
        if problem:
            raise ValueError(problem)

    def gpu_of_slot(self) -> torch.Tensor:
        """[num_replicas]: the GPU (EP rank) of every physical slot."""
        return torch.arange(self.num_replicas) // self.slots_per_gpu

    def node_of_gpu(self) -> torch.Tensor:
        """[num_gpus]: the node of every GPU."""
        return torch.arange(self.num_gpus) // self.gpus_per_node


def _divisors_hint(total: int, what: str, near: int, multiple_of: int = 1) -> str:
    """The whole divisors of ``total`` (multiples of ``multiple_of``) nearest
    ``near``, in order; empty when there is none."""
    counts = [d for d in range(multiple_of, min(total, 1 << 16) + 1, multiple_of) if total % d == 0]
    if not counts:
        return ""
    nearest = sorted(sorted(counts, key=lambda d: (abs(d - near), d))[:6])
    return f"{what} counts near {near} that work: {', '.join(map(str, nearest))}"


def default_cluster(num_logical: int, num_groups: int | None = None) -> Cluster:
    """A deployment like DeepSeek-V3's for ``num_logical`` experts: the largest
    power of two up to 32 GPUs that leaves each GPU at least 4 experts, one
    redundant slot per GPU, 8 GPUs a node; ``num_groups`` expert groups (the
    model's, e.g. DeepSeek-V3's 8, see ``packviz.eplb.models``) where they divide
    the experts, else none (data that names no groups gets none)."""
    gpus = max([g for g in (1, 2, 4, 8, 16, 32) if num_logical % g == 0 and num_logical // g >= 4] or [1])
    nodes = max(1, gpus // 8)
    groups = num_groups if num_groups and num_groups > 1 and num_logical % num_groups == 0 else None
    return Cluster(num_logical + gpus, groups, nodes, gpus)


def place(weight: torch.Tensor, cluster: Cluster, packer: str = "eplb", seed: int = 0) -> ExpertPlacement:
    """``rebalance_experts`` for this cluster, after :meth:`Cluster.check`."""
    cluster.check(weight.shape[-1])
    return rebalance_experts(weight, cluster.num_replicas, cluster.num_groups, cluster.num_nodes, cluster.num_gpus,
                             enable_hierarchical=cluster.hierarchical, packer=packer, seed=seed)


def trivial_phy2log(num_layers: int, num_logical: int, cluster: Cluster) -> torch.Tensor:
    """[layers, num_replicas]: no EPLB: expert e in slot e, the extra slots
    cycling over the experts in order (no load looked at)."""
    cluster.check(num_logical)
    return (torch.arange(cluster.num_replicas) % num_logical).expand(num_layers, -1).contiguous()


def replica_counts(phy2log: torch.Tensor, num_logical: int) -> torch.Tensor:
    """[layers, num_logical]: how many slots serve each expert."""
    counts = torch.zeros(phy2log.shape[0], num_logical, dtype=torch.int64)
    return counts.scatter_add_(1, phy2log.cpu(), torch.ones_like(phy2log, device="cpu"))


def slot_loads(weight: torch.Tensor, phy2log: torch.Tensor) -> torch.Tensor:
    """[layers, num_replicas]: each slot's load when an expert's load is shared
    equally by its replicas (weight [layers, num_logical], e.g. the next window's)."""
    weight = weight.to(torch.float64).cpu()
    phy2log = phy2log.cpu()
    counts = replica_counts(phy2log, weight.shape[1]).clamp_min(1)
    return (weight / counts).gather(1, phy2log)


def gpu_load(weight: torch.Tensor, phy2log: torch.Tensor, cluster: Cluster) -> torch.Tensor:
    """[layers, num_gpus]: each GPU's load under the plan."""
    return slot_loads(weight, phy2log).view(phy2log.shape[0], cluster.num_gpus, -1).sum(dim=2)


def node_load(weight: torch.Tensor, phy2log: torch.Tensor, cluster: Cluster) -> torch.Tensor:
    """[layers, num_nodes]: each node's load under the plan."""
    return gpu_load(weight, phy2log, cluster).view(phy2log.shape[0], cluster.num_nodes, -1).sum(dim=2)


def moe_layers(weight: torch.Tensor) -> torch.Tensor:
    """[layers] bool: the layers with any expert load. An engine's statistics
    cover every layer of the model (SGLang's for DeepSeek-V3: 61 rows), and a
    dense layer's row is all zero: it has no experts to balance, so it stays out
    of every mean and every colour scale (weight [layers, num_logical] or
    [steps, layers, num_logical])."""
    weight = torch.as_tensor(weight)
    while weight.dim() > 2:
        weight = weight.sum(dim=0)
    return weight.to(torch.float64).abs().sum(dim=-1) > 0


def layers_phrase(moe: torch.Tensor) -> str:
    """"58 MoE layers" or "58 MoE layers of 61 (3 dense, no load: 0, 1, 2)" from
    ``moe`` [layers] bool."""
    total, count = int(moe.numel()), int(moe.sum())
    if count == total:
        return f"{total} MoE layer{'s' if total != 1 else ''}"
    dense = (~moe).nonzero().flatten().tolist()
    shown = ", ".join(map(str, dense[:6])) + (", …" if len(dense) > 6 else "")
    return f"{count} MoE layer{'s' if count != 1 else ''} of {total} ({len(dense)} dense, no load: {shown})"


def moe_mean(values: torch.Tensor, moe: torch.Tensor) -> float:
    """The mean of ``values`` [layers] over the MoE layers (``moe`` [layers]
    bool); over every layer when none has load."""
    chosen = values[moe] if bool(moe.any()) else values
    return float(chosen.to(torch.float64).mean())


@dataclass(frozen=True)
class Balance:
    """Per-layer balance of a plan on some loads; every field [layers] float64.

    balancedness = mean / max GPU load (SGLang and vLLM report it),
    imbalance = (max - mean) / mean (TensorRT-LLM reports it),
    bound = a lower bound on any plan's busiest GPU for the cluster's policy.
    A dense layer (no load) scores 1 / 0 / 1 per layer and stays out of the
    ``mean_*`` figures, which average the MoE layers only."""

    max_load: torch.Tensor
    mean_load: torch.Tensor
    bound: torch.Tensor

    @property
    def moe(self) -> torch.Tensor:
        """[layers] bool: the layers with load (see :func:`moe_layers`)."""
        return self.mean_load > 0

    @property
    def mean_balancedness(self) -> float:
        return moe_mean(self.balancedness, self.moe)

    @property
    def mean_imbalance(self) -> float:
        return moe_mean(self.imbalance, self.moe)

    @property
    def mean_bound_over_mean(self) -> float:
        return moe_mean(self.bound_over_mean, self.moe)

    @property
    def worst_max_over_mean(self) -> float:
        """The busiest GPU over its layer's mean, in the worst MoE layer."""
        values = self.imbalance + 1
        return float((values[self.moe] if bool(self.moe.any()) else values).max())

    @property
    def balancedness(self) -> torch.Tensor:
        return torch.where(self.max_load > 0, self.mean_load / self.max_load.clamp_min(1e-300),
                           torch.ones_like(self.max_load))

    @property
    def imbalance(self) -> torch.Tensor:
        return torch.where(self.mean_load > 0, self.max_load / self.mean_load.clamp_min(1e-300) - 1,
                           torch.zeros_like(self.max_load))

    @property
    def bound_over_mean(self) -> torch.Tensor:
        return torch.where(self.mean_load > 0, self.bound / self.mean_load.clamp_min(1e-300),
                           torch.ones_like(self.bound))


def policy_bound(weight: torch.Tensor, cluster: Cluster) -> torch.Tensor:
    """[layers]: no plan of this policy has a lighter busiest GPU.

    Global: the mean GPU load. Hierarchical: each expert group's load stays on
    one node, so the busiest node is at least the packing lower bound of the
    group loads on the nodes, and its busiest GPU at least that over its GPUs."""
    weight = weight.to(torch.float64).cpu()
    mean = weight.sum(dim=1) / cluster.num_gpus
    if not cluster.hierarchical or cluster.num_nodes == 1:
        return mean
    groups = weight.view(weight.shape[0], cluster.num_groups, -1).sum(dim=2)
    node_bound = lower_bound(groups, cluster.num_nodes) / cluster.gpus_per_node
    return torch.maximum(mean, node_bound)


def balance(weight: torch.Tensor, phy2log: torch.Tensor, cluster: Cluster) -> Balance:
    """The balance of plan ``phy2log`` on loads ``weight`` [layers, num_logical]."""
    loads = gpu_load(weight, phy2log, cluster)
    return Balance(loads.amax(dim=1), weight.to(torch.float64).cpu().sum(dim=1) / cluster.num_gpus,
                   policy_bound(weight, cluster))


@dataclass(frozen=True)
class PlanChecks:
    """What :func:`check_plan` found. ``missing``: (layer, expert) without a
    slot; ``split_groups``: (layer, group, nodes) in hierarchical mode;
    ``duplicates`` [layers]: slots holding an expert already on the same GPU."""

    missing: list[tuple[int, int]]
    uneven_gpus: bool
    split_groups: list[tuple[int, int, list[int]]]
    duplicates: torch.Tensor

    @property
    def ok(self) -> bool:
        """Duplicates waste slots but break nothing; the rest makes a plan unusable."""
        return not self.missing and not self.uneven_gpus and not self.split_groups

    def sentences(self) -> list[str]:
        out = []
        if self.missing:
            layer, expert = self.missing[0]
            out.append(f"{len(self.missing)} (layer, expert) pairs have no slot, the first layer {layer}, "
                       f"expert {expert}: tokens routed there would have nowhere to go.")
        if self.uneven_gpus:
            out.append("The GPUs do not all hold the same number of slots.")
        if self.split_groups:
            layer, group, nodes = self.split_groups[0]
            out.append(f"{len(self.split_groups)} expert groups are spread over several nodes, the first "
                       f"group {group} of layer {layer} on nodes {', '.join(map(str, nodes))}.")
        wasted = int(self.duplicates.sum())
        if wasted:
            layer = int(self.duplicates.argmax())
            out.append(f"{wasted} slots in all hold a replica of an expert already on the same GPU "
                       f"(most in layer {layer}: {int(self.duplicates[layer])}); each wastes a slot.")
        return out


def check_plan(phy2log: torch.Tensor, num_logical: int, cluster: Cluster) -> PlanChecks:
    """Every expert has a slot; every GPU the same number of slots; in
    hierarchical mode every expert group on one node; same-GPU duplicates counted."""
    phy2log = phy2log.cpu()
    num_layers, num_slots = phy2log.shape
    counts = replica_counts(phy2log, num_logical)
    missing = [tuple(pair) for pair in (counts == 0).nonzero().tolist()]
    uneven = num_slots != cluster.num_replicas or num_slots % cluster.num_gpus != 0
    split: list[tuple[int, int, list[int]]] = []
    duplicates = torch.zeros(num_layers, dtype=torch.int64)
    if uneven:
        return PlanChecks(missing, True, split, duplicates)
    gpu = cluster.gpu_of_slot().expand(num_layers, -1)
    # one key per (gpu, expert): a key seen twice on one layer is a wasted slot
    keys = gpu * num_logical + phy2log
    per_gpu = torch.zeros(num_layers, cluster.num_gpus * num_logical, dtype=torch.int64)
    per_gpu.scatter_add_(1, keys, torch.ones_like(keys))
    duplicates = (per_gpu - 1).clamp_min(0).sum(dim=1)
    if cluster.hierarchical and cluster.num_groups and num_logical % cluster.num_groups == 0:
        group = phy2log // (num_logical // cluster.num_groups)
        node = cluster.node_of_gpu()[gpu]
        seen = torch.zeros(num_layers, cluster.num_groups, cluster.num_nodes, dtype=torch.bool)
        seen.view(num_layers, -1).scatter_(1, group * cluster.num_nodes + node, True)
        for layer, grp in (seen.sum(dim=2) > 1).nonzero().tolist():
            split.append((layer, grp, seen[layer, grp].nonzero().flatten().tolist()))
    return PlanChecks(missing, False, split, duplicates)

