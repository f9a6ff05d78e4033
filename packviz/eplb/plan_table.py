"""Plans side by side on the same loads: no EPLB, DeepSeek's greedy and each preset, under each policy,
each beside its policy's lower bound, so the price of keeping expert groups on nodes shows."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import torch

from packviz.eplb.cluster import Cluster, balance, place, trivial_phy2log

NO_EPLB = "no EPLB"

# (loads [layers, num_logical], cluster, preset) -> (phy2log [layers, num_replicas], seconds it took to make)
TimedPlanner = Callable[[torch.Tensor, Cluster, str], "tuple[torch.Tensor, float]"]


def timed_place(weight: torch.Tensor, cluster: Cluster, preset: str, seed: int = 0) -> tuple[torch.Tensor, float]:
    """``place``'s phy2log [layers, num_replicas] and the seconds it took."""
    start = time.perf_counter()
    plan = place(weight, cluster, preset, seed).phy2log.cpu()
    return plan, time.perf_counter() - start


def policies_for(cluster: Cluster, num_logical: int) -> list[Cluster]:
    """The cluster under the hierarchical and the global policy, where each can work."""
    options = [dataclasses.replace(cluster, policy=policy) for policy in ("hierarchical", "global")]
    return [option for option in options if option.problem(num_logical) is None]


def plan_rows(weight: torch.Tensor, cluster: Cluster, presets: Sequence[str], seed: int = 0,
              planner: TimedPlanner | None = None,
              progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """One row per (plan, policy): ``plan`` (no EPLB, or the preset packing
    each stage; ``eplb`` is DeepSeek's greedy), ``policy``, ``balancedness``
    (mean / max GPU load), ``imbalance`` ((max - mean) / mean), ``bound_over_mean``
    (the policy's lower bound over the mean), each a mean over the MoE layers
    (a dense layer, all zero, has nothing to balance), and ``seconds`` (the
    plan's making). ``planner`` makes each plan (default :func:`timed_place`; a
    caller with a cache of plans passes its own, so a plan on screen is not
    made twice); ``progress(done, total)`` after each plan."""
    num_layers, num_logical = weight.shape
    planner = planner or (lambda loads, option, name: timed_place(loads, option, name, seed))
    options = policies_for(cluster, num_logical)
    total, rows = len(options) * (1 + len(presets)), []
    for option in options:
        policy = "hierarchical" if option.hierarchical else "global"
        for name in (NO_EPLB, *presets):
            if name == NO_EPLB:
                start = time.perf_counter()
                plan = trivial_phy2log(num_layers, num_logical, option)
                seconds = time.perf_counter() - start
            else:
                plan, seconds = planner(weight, option, name)
            score = balance(weight, plan, option)
            rows.append({"plan": name, "policy": policy, "balancedness": score.mean_balancedness,
                         "imbalance": score.mean_imbalance, "bound_over_mean": score.mean_bound_over_mean,
                         "seconds": seconds})
            if progress is not None:
                progress(len(rows), total)
    return rows
