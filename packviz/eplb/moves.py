"""What it costs to go from one plan to the next: the replicas whose weights must be copied.

A replica moves when its expert was not on that GPU in the previous plan: the
GPU must receive the expert's weights. An expert that stays on a GPU costs
nothing, whatever slot it lands in there (a copy within the GPU is not a
transfer). The weights come from a GPU that held the expert before, one on the
receiving GPU's node where there is one (the cheap link), else the
lowest-numbered holder.

Transfer time estimate: every GPU receives its moved replicas over its own
links, all GPUs at once; a GPU's time is its intra-node bytes over the
intra-node bandwidth plus its inter-node bytes over the inter-node bandwidth;
the re-plan takes as long as the slowest GPU.

Shapes: phy2log [layers, num_replicas].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from packviz.eplb.cluster import Cluster

MOVE_COLUMNS = ("layer", "expert", "replica", "from_node", "from_gpu", "from_slot", "to_node", "to_gpu", "to_slot",
                "bytes")
# DeepSeek-V3's routed expert in FP8: three 7168 x 2048 matrices, one byte a weight.
DEEPSEEK_V3_EXPERT_BYTES = 3 * 7168 * 2048
INTRA_NODE_GBPS = 400.0  # NVLink-class, per GPU and direction
INTER_NODE_GBPS = 50.0  # a 400 Gb/s NIC per GPU


def replica_rank(phy2log: torch.Tensor) -> torch.Tensor:
    """[layers, num_replicas]: which replica of its expert each slot holds, counted in slot order."""
    phy2log = phy2log.cpu()
    ordered, order = torch.sort(phy2log, dim=1, stable=True)
    first = torch.searchsorted(ordered.contiguous(), ordered.contiguous(), side="left")
    ranks_sorted = torch.arange(phy2log.shape[1]).expand_as(ordered) - first
    return torch.empty_like(phy2log).scatter_(1, order, ranks_sorted)


@dataclass(frozen=True)
class Moves:
    """One row per moved replica; every field a [moves] int64 tensor, named as :data:`MOVE_COLUMNS`
    (``from_slot`` / ``to_slot``: the slot's index on its GPU)."""

    layer: torch.Tensor
    expert: torch.Tensor
    replica: torch.Tensor
    from_node: torch.Tensor
    from_gpu: torch.Tensor
    from_slot: torch.Tensor
    to_node: torch.Tensor
    to_gpu: torch.Tensor
    to_slot: torch.Tensor
    bytes: torch.Tensor
    num_gpus: int

    def __len__(self) -> int:
        return int(self.layer.numel())

    @property
    def intra_node(self) -> torch.Tensor:
        """[moves] bool: the weights come from a GPU of the same node."""
        return self.from_node == self.to_node

    @property
    def intra_bytes(self) -> int:
        return int(self.bytes[self.intra_node].sum())

    @property
    def inter_bytes(self) -> int:
        return int(self.bytes[~self.intra_node].sum())

    @property
    def total_bytes(self) -> int:
        return int(self.bytes.sum())

    def transfer_seconds(self, intra_gbps: float = INTRA_NODE_GBPS, inter_gbps: float = INTER_NODE_GBPS) -> float:
        """The slowest receiving GPU's time (see the module's estimate); bandwidths in GB/s (1e9 bytes)."""
        if not len(self):
            return 0.0
        intra = torch.zeros(self.num_gpus, dtype=torch.float64)
        inter = torch.zeros(self.num_gpus, dtype=torch.float64)
        size = self.bytes.to(torch.float64)
        intra.index_add_(0, self.to_gpu[self.intra_node], size[self.intra_node])
        inter.index_add_(0, self.to_gpu[~self.intra_node], size[~self.intra_node])
        return float((intra / (intra_gbps * 1e9) + inter / (inter_gbps * 1e9)).max())

    def rows(self) -> list[tuple[int, ...]]:
        columns = [getattr(self, name).tolist() for name in MOVE_COLUMNS]
        return list(zip(*columns))


def moves_between(previous: torch.Tensor, plan: torch.Tensor, cluster: Cluster,
                  expert_bytes: int = DEEPSEEK_V3_EXPERT_BYTES) -> Moves:
    """The replicas ``plan`` needs copied that ``previous`` did not have on
    their GPU (both [layers, num_replicas] for ``cluster``)."""
    previous, plan = previous.cpu(), plan.cpu()
    if previous.shape != plan.shape:
        raise ValueError(f"the previous plan is {tuple(previous.shape)} (layers x slots), the new one "
                         f"{tuple(plan.shape)}: moves need the same layers and slots")
    if plan.shape[1] != cluster.num_replicas:
        raise ValueError(f"the plans have {plan.shape[1]} slots, the cluster {cluster.num_replicas}")
    num_layers, num_slots = plan.shape
    num_logical = int(max(previous.max(), plan.max())) + 1
    gpu = cluster.gpu_of_slot()
    node = cluster.node_of_gpu()

    # was (layer, gpu, expert) held before?
    held = torch.zeros(num_layers, cluster.num_gpus * num_logical, dtype=torch.bool)
    held.scatter_(1, gpu * num_logical + previous, True)
    moved = ~held.gather(1, gpu * num_logical + plan)

    # the first old slot of each expert, per node and overall
    none = num_slots
    slots = torch.arange(num_slots).expand(num_layers, -1)
    first_on_node = torch.full((num_layers, cluster.num_nodes * num_logical), none, dtype=torch.int64)
    first_on_node.scatter_reduce_(1, node[gpu] * num_logical + previous, slots, reduce="amin")
    first_any = torch.full((num_layers, num_logical), none, dtype=torch.int64)
    first_any.scatter_reduce_(1, previous, slots, reduce="amin")

    layer, to_phys = moved.nonzero(as_tuple=True)
    expert = plan[layer, to_phys]
    to_gpu = gpu[to_phys]
    to_node = node[to_gpu]
    local = first_on_node[layer, to_node * num_logical + expert]
    source = torch.where(local < none, local, first_any[layer, expert])
    if bool((source == none).any()):
        index = int((source == none).nonzero()[0])
        raise ValueError(f"layer {int(layer[index])}: expert {int(expert[index])} has no replica in the "
                         "previous plan to copy from")
    from_gpu = gpu[source]
    return Moves(
        layer=layer, expert=expert, replica=replica_rank(plan)[layer, to_phys],
        from_node=node[from_gpu], from_gpu=from_gpu, from_slot=source % cluster.slots_per_gpu,
        to_node=to_node, to_gpu=to_gpu, to_slot=to_phys % cluster.slots_per_gpu,
        bytes=torch.full_like(layer, int(expert_bytes)), num_gpus=cluster.num_gpus,
    )
