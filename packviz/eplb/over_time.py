"""Plan on window i, score on window i + 1: how a placement holds up as the loads move on.

A serving engine re-plans from the loads it has seen (SGLang every
``eplb_rebalance_num_iterations`` forward passes, vLLM every ``step_interval``
steps over a ``window_size`` window) and then serves the loads to come. So a
plan is judged on the window after the one it was made from. Each planner is
one entry of a dict, name -> callable, so another strategy (a re-planner
that keeps most of the previous plan) is one more line:

    planners = {"kept": kept_planner(cluster, "fast"), "fresh": fresh_planner(cluster, "fast"),
                "re-plan": replanning_planner(cluster, packviz.eplb.replan.replan, "best")}

Shapes: steps [S, layers, num_logical]; windows [W, layers, num_logical].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from packviz.eplb.cluster import Cluster, balance, check_plan, place
from packviz.eplb.moves import DEEPSEEK_V3_EXPERT_BYTES, Moves, moves_between
from packviz.eplb.placement import ExpertPlacement

# (loads of one window [layers, num_logical], the plan in place or None at the
# start) -> the plan for the next window, phy2log [layers, num_replicas]
Planner = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def windows(steps: torch.Tensor, window: int) -> torch.Tensor:
    """[S // window, layers, num_logical]: the loads of consecutive windows of
    ``window`` steps each, summed; a last, shorter window is left out."""
    if steps.dim() != 3:
        raise ValueError(f"expected [steps, layers, experts] loads, got shape {tuple(steps.shape)}")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"the window must be a whole number of steps >= 1, got {window!r}")
    count = steps.shape[0] // window
    if count < 2:
        raise ValueError(f"{steps.shape[0]} steps make {count} window(s) of {window}; scoring a plan on the "
                         "next window needs at least 2: choose a shorter window")
    return steps[:count * window].to(torch.float64).reshape(count, window, *steps.shape[1:]).sum(dim=1)


def fresh_planner(cluster: Cluster, packer: str = "eplb", seed: int = 0) -> Planner:
    """Plan from scratch on every window, as SGLang and vLLM do."""
    return lambda weight, previous: place(weight, cluster, packer, seed).phy2log.cpu()


def kept_planner(cluster: Cluster, packer: str = "eplb", seed: int = 0) -> Planner:
    """Plan once on the first window and keep that plan."""
    def plan(weight: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        return previous if previous is not None else place(weight, cluster, packer, seed).phy2log.cpu()
    return plan


def replanning_planner(cluster: Cluster, replan: Callable[..., ExpertPlacement], packer: str = "best",
                       tolerance: float = 0.005, seed: int = 0) -> Planner:
    """A fresh plan on the first window, then ``replan(weight, previous_phy2log,
    num_groups, num_nodes, num_gpus, *, tolerance, packer, seed, hierarchical)``
    from the plan in place on every later one."""
    def plan(weight: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        if previous is None:
            return place(weight, cluster, packer, seed).phy2log.cpu()
        return replan(weight, previous, cluster.num_groups, cluster.num_nodes, cluster.num_gpus, tolerance=tolerance,
                      packer=packer, seed=seed, hierarchical=cluster.hierarchical).phy2log.cpu()
    return plan


@dataclass(frozen=True)
class PlannerRun:
    """One planner over the history: entry i is the plan made on window i, scored on window i + 1.

    balancedness / imbalance / bound_over_mean: [W - 1], means over layers;
    moves[i]: what plan i copied from plan i - 1 (None for the first plan);
    problems[i]: the sentences of the checks plan i failed (empty when it
    passed: every expert served, in hierarchical mode every group on one node)."""

    plans: list[torch.Tensor]
    balancedness: torch.Tensor
    imbalance: torch.Tensor
    max_over_mean: torch.Tensor
    bound_over_mean: torch.Tensor
    moves: list[Moves | None]
    problems: list[list[str]]

    @property
    def failed(self) -> list[int]:
        """The windows whose plan failed its checks."""
        return [index for index, found in enumerate(self.problems) if found]


def over_time(history: torch.Tensor, cluster: Cluster, planners: Mapping[str, Planner],
              expert_bytes: int = DEEPSEEK_V3_EXPERT_BYTES) -> dict[str, PlannerRun]:
    """Every planner over windows [W, layers, num_logical]: plan on window i,
    score on window i + 1, for i = 0 .. W - 2."""
    if history.dim() != 3 or history.shape[0] < 2:
        raise ValueError(f"expected at least 2 windows of [layers, experts] loads, got shape {tuple(history.shape)}")
    cluster.check(history.shape[2])
    runs = {}
    for name, planner in planners.items():
        plans: list[torch.Tensor] = []
        moves: list[Moves | None] = []
        scores = []
        problems: list[list[str]] = []
        previous = None
        for index in range(history.shape[0] - 1):
            plan = planner(history[index], previous).cpu()
            moves.append(None if previous is None else moves_between(previous, plan, cluster, expert_bytes))
            scores.append(balance(history[index + 1], plan, cluster))
            plans.append(plan)
            checks = check_plan(plan, history.shape[2], cluster)
            problems.append([] if checks.ok else checks.sentences())
            previous = plan
        runs[name] = PlannerRun(
            plans=plans,
            balancedness=torch.stack([s.balancedness.mean() for s in scores]),
            imbalance=torch.stack([s.imbalance.mean() for s in scores]),
            max_over_mean=torch.stack([(s.imbalance + 1).max() for s in scores]),
            bound_over_mean=torch.stack([s.bound_over_mean.mean() for s in scores]),
            moves=moves,
            problems=problems,
        )
    return runs
