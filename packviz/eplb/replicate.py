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
