"""Plan on window i, score on window i + 1: how a placement holds up as the loads move on.

A serving engine re-plans from the loads it has seen (SGLang every
``eplb_rebalance_num_iterations`` forward passes, vLLM every ``step_interval``
steps over a ``window_size`` window) and then serves the loads to come. So a
plan is judged on the window after the one it was made from. Each planner is
one entry of a dict, name -> callable, so another strategy (a re-planner
that keeps most of the previous plan, a look-ahead planner of
``packviz.eplb.forecast``) is one more line:

    planners = {"kept": kept_planner(cluster, "fast"), "fresh": fresh_planner(cluster, "fast"),
                "re-plan": replanning_planner(cluster, packviz.eplb.replan.replan, "best")}

A planner is called ``planner(loads, previous)``: ``loads`` is the last
window [layers, num_logical], or, for a planner with a true ``sees_history``
attribute (the look-ahead planners), every window seen so far
[t + 1, layers, num_logical]; ``previous`` is the plan in place or None.

Shapes: steps [S, layers, num_logical]; windows [W, layers, num_logical].
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from packviz.eplb.cluster import Cluster, balance, check_plan, place
from packviz.eplb.moves import DEEPSEEK_V3_EXPERT_BYTES, Moves, moves_between
from packviz.eplb.placement import ExpertPlacement
from packviz.eplb.replan import Replan, plan_moves

# (loads of one window [layers, num_logical], or of all windows seen
# [t + 1, layers, num_logical] when the planner's ``sees_history`` is true; the
# plan in place or None at the start) -> the plan for the next window, phy2log
# [layers, num_replicas]
Planner = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]
# replan(weight, previous, num_groups, num_nodes, num_gpus, *, tolerance, packer, seed, hierarchical[, fresh])
Replanner = Callable[..., "ExpertPlacement | Replan | torch.Tensor"]


def sees_history(planner: Planner) -> bool:
    """True when ``planner`` takes every window seen so far, not only the last."""
    return bool(getattr(planner, "sees_history", False))


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


def loads_key(weight: torch.Tensor) -> str:
    """A digest of one window's loads [layers, num_logical]: the same loads, the same key."""
    values = weight.detach().to(torch.float64).cpu().contiguous()
    return hashlib.blake2b(repr(tuple(values.shape)).encode() + values.numpy().tobytes(), digest_size=16).hexdigest()


class FreshPlans:
    """One fresh plan per window's loads, made once however many planners ask
    for it (the kept plan is window 0's, the re-planner is measured against
    each window's). ``make(weight) -> phy2log`` defaults to ``place``; a caller
    with its own cache passes it here."""

    def __init__(self, cluster: Cluster, packer: str = "eplb", seed: int = 0,
                 make: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self._make = make or (lambda weight: place(weight, cluster, packer, seed).phy2log.cpu())
        self._plans: dict[str, torch.Tensor] = {}
        self.made = 0

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        key = loads_key(weight)
        if key not in self._plans:
            self._plans[key] = self._make(weight).cpu()
            self.made += 1
        return self._plans[key]


def fresh_planner(cluster: Cluster, packer: str = "eplb", seed: int = 0,
                  fresh: FreshPlans | None = None) -> Planner:
    """Plan from scratch on every window, as SGLang and vLLM do."""
    fresh = fresh or FreshPlans(cluster, packer, seed)
    return lambda weight, previous: fresh(weight)


def kept_planner(cluster: Cluster, packer: str = "eplb", seed: int = 0,
                 fresh: FreshPlans | None = None) -> Planner:
    """Plan once on the first window and keep that plan."""
    fresh = fresh or FreshPlans(cluster, packer, seed)

    def plan(weight: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        return previous if previous is not None else fresh(weight)
    return plan


def replanning_planner(cluster: Cluster, replan: Replanner, packer: str = "best",
                       tolerance: float = 0.005, seed: int = 0, fresh: FreshPlans | None = None) -> Planner:
    """A fresh plan on the first window, then ``replan(weight, previous_phy2log,
    num_groups, num_nodes, num_gpus, *, tolerance, packer, seed, hierarchical[, fresh])``
    (a Replan, an ExpertPlacement or a phy2log) from the plan in place on every later one. Given ``fresh`` (shared with
    the other planners), the window's fresh plan is made once and handed to
    ``replan`` as ``fresh=`` (``plan_moves`` takes it), not made again inside."""
    def plan(weight: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        if previous is None:
            return fresh(weight) if fresh is not None else place(weight, cluster, packer, seed).phy2log.cpu()
        extra = {"fresh": fresh(weight)} if fresh is not None else {}
        result = replan(weight, previous, cluster.num_groups, cluster.num_nodes, cluster.num_gpus,
                        tolerance=tolerance, packer=packer, seed=seed, hierarchical=cluster.hierarchical, **extra)
        if isinstance(result, torch.Tensor):
            return result.cpu()
        return (result.placement if isinstance(result, Replan) else result).phy2log.cpu()
    return plan


def standard_planners(cluster: Cluster, packer: str, tolerance: float, seed: int = 0,
                      fresh: FreshPlans | None = None,
                      replan: Replanner = plan_moves) -> dict[str, Planner]:
    """Kept from window 0, fresh each window and re-planned from the plan in
    place, sharing one fresh plan per window: W windows cost W - 1 fresh plans
    and W - 2 re-plans, nothing twice."""
    fresh = fresh or FreshPlans(cluster, packer, seed)
    return {KEPT: kept_planner(cluster, packer, seed, fresh), FRESH: fresh_planner(cluster, packer, seed, fresh),
            replanned_name(tolerance): replanning_planner(cluster, replan, packer, tolerance, seed, fresh)}


KEPT = "kept from window 0"
FRESH = "fresh each window"


def replanned_name(tolerance: float) -> str:
    return f"re-planned from the plan in place (within {tolerance:.1%} of fresh)"


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
              expert_bytes: int = DEEPSEEK_V3_EXPERT_BYTES,
              progress: Callable[[int, int], None] | None = None) -> dict[str, PlannerRun]:
    """Every planner over windows [W, layers, num_logical]: plan on window i,
    score on window i + 1, for i = 0 .. W - 2. Means are over the MoE layers
    (a dense layer, all zero, scores nothing). ``progress(done, total)`` is
    called after each plan, window by window across the planners, so the
    plans made so far are in hand (and in any cache) when the caller stops."""
    if history.dim() != 3 or history.shape[0] < 2:
        raise ValueError(f"expected at least 2 windows of [layers, experts] loads, got shape {tuple(history.shape)}")
    cluster.check(history.shape[2])
    count = history.shape[0] - 1
    plans: dict[str, list[torch.Tensor]] = {name: [] for name in planners}
    done = 0
    # window by window, every planner: a fresh plan shared by the planners is made once, when first asked
    for index in range(count):
        for name, planner in planners.items():
            previous = plans[name][-1] if plans[name] else None
            loads = history[:index + 1] if sees_history(planner) else history[index]
            plans[name].append(planner(loads, previous).cpu())
            done += 1
            if progress is not None:
                progress(done, count * len(planners))
    runs = {}
    for name in planners:
        moves: list[Moves | None] = [None]
        moves += [moves_between(before, after, cluster, expert_bytes)
                  for before, after in zip(plans[name], plans[name][1:])]
        scores = [balance(history[index + 1], plan, cluster) for index, plan in enumerate(plans[name])]
        problems: list[list[str]] = []
        for plan in plans[name]:
            checks = check_plan(plan, history.shape[2], cluster)
            problems.append([] if checks.ok else checks.sentences())
        runs[name] = PlannerRun(
            plans=plans[name],
            balancedness=torch.tensor([s.mean_balancedness for s in scores], dtype=torch.float64),
            imbalance=torch.tensor([s.mean_imbalance for s in scores], dtype=torch.float64),
            max_over_mean=torch.tensor([s.worst_max_over_mean for s in scores], dtype=torch.float64),
            bound_over_mean=torch.tensor([s.mean_bound_over_mean for s in scores], dtype=torch.float64),
            moves=moves,
            problems=problems,
        )
    return runs
