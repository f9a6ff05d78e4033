"""Which logical expert each item of a load matrix stands for.

A load matrix for the packer holds one column per physical slot. When hot
experts are replicated (EPLB's replication step), several slots serve one
expert, each with an equal share of its load; :class:`SlotMap` keeps that
map from where the replicas are made to every view and export, so a
placement can always say which expert went where.

Shapes (L layers, n slots, E logical experts):

    phy2log       [L, n]  int64, the expert each slot serves
    replica_rank  [L, n]  int64, which replica of its expert the slot is (0-based)
    logcnt        [L, E]  int64, replicas per expert (>= 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SlotMap:
    phy2log: torch.Tensor
    replica_rank: torch.Tensor
    logcnt: torch.Tensor
    expert_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        layers, slots = self.phy2log.shape
        if tuple(self.replica_rank.shape) != (layers, slots) or self.logcnt.shape[0] != layers:
            raise ValueError("phy2log, replica_rank and logcnt disagree on layers or slots")
        if self.expert_names is not None and len(self.expert_names) != self.num_experts:
            raise ValueError(f"{len(self.expert_names)} expert names for {self.num_experts} experts")

    @classmethod
    def identity(cls, num_layers: int, num_items: int, expert_names: Sequence[str] | None = None) -> SlotMap:
        """Every item is its own expert: no replicas."""
        experts = torch.arange(num_items, dtype=torch.int64).expand(num_layers, -1).contiguous()
        return cls(experts, torch.zeros_like(experts), torch.ones_like(experts),
                   tuple(expert_names) if expert_names else None)

    @property
    def num_layers(self) -> int:
        return self.phy2log.shape[0]

    @property
    def num_slots(self) -> int:
        return self.phy2log.shape[1]

    @property
    def num_experts(self) -> int:
        return self.logcnt.shape[1]

    @property
    def replicated(self) -> bool:
        return self.num_slots > self.num_experts

    def layers(self, start: int, stop: int) -> SlotMap:
        """The map of rows start..stop-1 (a layer packed alone)."""
        return SlotMap(self.phy2log[start:stop], self.replica_rank[start:stop], self.logcnt[start:stop],
                       self.expert_names)

    def expert_name(self, expert: int) -> str:
        return self.expert_names[expert] if self.expert_names else str(expert)

    def item_labels(self, layer: int) -> list[str]:
        """A label per item of one layer: ``expert 7`` or ``expert 7 (replica 2 of 3)``,
        with the expert's column name where the data had one."""
        experts = self.phy2log[layer].tolist()
        ranks = self.replica_rank[layer].tolist()
        counts = self.logcnt[layer].tolist()
        labels = []
        for expert, rank in zip(experts, ranks):
            name = f" '{self.expert_names[expert]}'" if self.expert_names else ""
            replica = f" (replica {rank + 1} of {counts[expert]})" if counts[expert] > 1 else ""
            labels.append(f"expert {expert}{name}{replica}")
        return labels


def replicate(weight: torch.Tensor, num_slots: int,
              expert_names: Sequence[str] | None = None) -> tuple[torch.Tensor, SlotMap]:
    """EPLB's replication: each extra slot goes to the expert with the most
    load per replica. Returns the per-slot loads [L, num_slots] (each replica
    carries load / replicas) and the map from slots to experts."""
    from packviz.eplb import replicate_experts

    weight = torch.as_tensor(weight, dtype=torch.float64)
    phy2log, replica_rank, logcnt = replicate_experts(weight, num_slots)
    slots = SlotMap(phy2log, replica_rank, logcnt, tuple(expert_names) if expert_names else None)
    return (weight / logcnt).gather(1, phy2log), slots
