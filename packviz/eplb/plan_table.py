"""Plans side by side on the same loads: no EPLB, DeepSeek's greedy and each preset, under each policy,
each beside its policy's lower bound, so the price of keeping expert groups on nodes shows."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import torch

from packviz.eplb.cluster import Cluster, balance, place, trivial_phy2log

NO_EPLB = "no EPLB"


def policies_for(cluster: Cluster, num_logical: int) -> list[Cluster]:
    """The cluster under the hierarchical and the global policy, where each can work."""
    options = [dataclasses.replace(cluster, policy=policy) for policy in ("hierarchical", "global")]
    return [option for option in options if option.problem(num_logical) is None]


def plan_rows(weight: torch.Tensor, cluster: Cluster, presets: Sequence[str], seed: int = 0) -> list[dict]:
    """One row per (plan, policy): ``plan`` (no EPLB, or the preset packing
    each stage; ``eplb`` is DeepSeek's greedy), ``policy``, ``balancedness``
    (mean / max GPU load), ``imbalance`` ((max - mean) / mean), ``bound_over_mean``
    (the policy's lower bound over the mean), each a mean over layers, and ``seconds``."""
    num_layers, num_logical = weight.shape
    rows = []
    for option in policies_for(cluster, num_logical):
        policy = "hierarchical" if option.hierarchical else "global"
        for name in (NO_EPLB, *presets):
            start = time.perf_counter()
            if name == NO_EPLB:
                plan = trivial_phy2log(num_layers, num_logical, option)
            else:
                plan = place(weight, option, name, seed).phy2log
            seconds = time.perf_counter() - start
            score = balance(weight, plan, option)
            rows.append({"plan": name, "policy": policy, "balancedness": float(score.balancedness.mean()),
                         "imbalance": float(score.imbalance.mean()),
                         "bound_over_mean": float(score.bound_over_mean.mean()), "seconds": seconds})
    return rows
