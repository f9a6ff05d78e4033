"""Planners that look ahead: plans made for the window to come from every window seen so far.

Every engine plans on the window that just ended. The planners here see all
windows so far (``seen`` [t + 1, layers, num_logical]) and plan for what comes:

- ``last``: a fresh plan on the last window alone (what SGLang, vLLM and
  DeepSeek's EPLB do; the baseline);
- ``mean``: the mean of the last K windows;
- ``ema``: an exponential moving average with a half-life in windows;
- ``mean_sd``: mean + z sd of the last K windows (vllm-ascend FlashLB's
  sizing, z = 0.674 by default);
- ``robust``: the last K windows taken as scenarios: a plan for their mean,
  then slot swaps that lower the mean over scenarios of each scenario's busiest
  GPU (not the busiest GPU of their mean), all layers at once;
- ``auto`` (:class:`AutoPlanner`): picks among candidates of the above (and
  their K, z, half-life) by a rolling backtest on the windows seen so far.

Windows are compared as shares: each window's loads are divided by the
layer's total in that window before any averaging, so a busy window does not
outweigh a quiet one (balancedness does not depend on the volume either).

Every planner except ``last`` re-plans from the plan in place
(:func:`packviz.eplb.replan.plan_moves`, or ``replan_within_budget`` under a
move budget), so a plan aimed at a steadier forecast also moves few replicas.
Each keeps its policy's constraints: under the hierarchical policy the plans
come from the hierarchical planner and the swaps stay inside a node, so every
expert group stays on one node.

All are entries of ``over_time``'s planners dict: a callable
``planner(seen, previous, *, max_moves=None) -> phy2log`` [layers, num_replicas]
with ``sees_history = True``. :func:`make_planner` builds one by name
(``"last"``, ``"mean:8"``, ``"ema:2"``, ``"mean_sd:8:0.674"``, ``"robust:4"``,
``"auto"``); :data:`PLANNER_KINDS` lists the kinds.

Shapes: seen [windows, layers, num_logical]; phy2log [layers, num_replicas].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from packviz.eplb.cluster import Cluster, place
from packviz.eplb.replan import plan_moves

Kind = Literal["last", "mean", "ema", "mean_sd", "robust"]
PLANNER_KINDS: tuple[str, ...] = ("last", "mean", "ema", "mean_sd", "robust", "auto")
FLASHLB_Z = 0.674
# the auto planner's last-window candidate re-plans this close to a fresh plan on the last window
LAST_TOLERANCE = 0.003


def shares(seen: torch.Tensor) -> torch.Tensor:
    """[T, L, n]: each window's loads over its layer's total (an all-zero layer stays zero)."""
    seen = seen.to(torch.float64)
    total = seen.sum(dim=2, keepdim=True)
    return torch.where(total > 0, seen / total.clamp_min(1e-300), torch.zeros_like(seen))


def ema_weights(count: int, half_life: float) -> torch.Tensor:
    """[count] weights summing to 1, the newest last, halving every ``half_life`` windows back."""
    age = torch.arange(count - 1, -1, -1, dtype=torch.float64)
    weights = 0.5 ** (age / half_life)
    return weights / weights.sum()


@dataclass(frozen=True)
class LookAheadPlanner:
    """One forecast and how a plan is made from it (see the module's docstring).

    window_count: K, the windows a mean, sd or scenario set covers; half_life:
    the EMA's, in windows; z: sd multiples above the mean; packer: the preset
    of every fresh plan; tolerance: a re-plan's busiest GPU within this of a
    fresh plan's on the forecast; fresh: plan from scratch every time (None:
    ``last`` does, the others re-plan from the plan in place); move_price: what the robust swaps charge per
    replica moved (in units of a layer's load: 0.001 is a thousandth of the
    layer's traffic on the busiest GPU); swap_steps: at most this many robust
    swaps per layer per plan; center: the robust scenarios (see
    :meth:`scenarios`)."""

    cluster: Cluster
    kind: Kind = "mean"
    window_count: int = 8
    half_life: float = 2.0
    z: float = FLASHLB_Z
    packer: str = "eplb"
    tolerance: float = 0.01
    move_price: float = 0.0005
    swap_steps: int | None = None
    center: Literal["windows", "last", "mean", "ema"] = "windows"
    fresh: bool | None = None
    seed: int = 0
    sees_history: bool = field(default=True, init=False)

    @property
    def name(self) -> str:
        if self.kind == "last":
            return "last"
        if self.kind == "ema":
            return f"ema:{self.half_life:g}"
        if self.kind == "mean_sd":
            return f"mean_sd:{self.window_count}:{self.z:g}"
        return f"{self.kind}:{self.window_count}"

    def forecast(self, seen: torch.Tensor) -> torch.Tensor:
        """[L, n]: the load this planner plans for, as shares of each layer's traffic."""
        recent = shares(seen[-self.window_count:] if self.kind != "ema" else seen)
        if self.kind == "last":
            return recent[-1]
        if self.kind == "ema":
            return torch.einsum("t,tln->ln", ema_weights(recent.shape[0], self.half_life), recent)
        mean = recent.mean(dim=0)
        if self.kind == "mean_sd":
            sd = recent.std(dim=0, correction=0)
            return mean + self.z * sd
        return mean

    def scenarios(self, seen: torch.Tensor) -> torch.Tensor:
        """[K, L, n]: the windows the robust placement is scored on, as shares.

        center ``windows``: the last K windows themselves. Otherwise the
        center's forecast for the next window plus each of the last K errors
        that forecast made one window ahead (the spread of what comes, around
        the center)."""
        if self.center == "windows":
            return shares(seen[-self.window_count:])
        recent = shares(seen)
        count = min(self.window_count, recent.shape[0] - 1)
        if count < 1:
            return recent[-1:]
        center = [self._center(recent[:end]) for end in range(recent.shape[0] - count, recent.shape[0] + 1)]
        errors = torch.stack([recent[end] - center[end - (recent.shape[0] - count)]
                              for end in range(recent.shape[0] - count, recent.shape[0])])
        return (center[-1].unsqueeze(0) + errors).clamp_min(0)

    def _center(self, recent: torch.Tensor) -> torch.Tensor:
        if self.center == "last":
            return recent[-1]
        if self.center == "ema":
            return torch.einsum("t,tln->ln", ema_weights(recent.shape[0], self.half_life), recent)
        return recent[-8:].mean(dim=0)

    def __call__(self, seen: torch.Tensor, previous: torch.Tensor | None, *,
                 max_moves: int | None = None) -> torch.Tensor:
        seen = _as_history(seen)
        forecast = self.forecast(seen)
        # ``last`` is the engines' fresh plan unless asked to re-plan; the others re-plan unless asked not to
        fresh = self.fresh if self.fresh is not None else self.kind == "last"
        if previous is None or (fresh and max_moves is None):
            plan = place(forecast, self.cluster, self.packer, self.seed).phy2log.cpu()
            prior = None
        else:
            plan = _replan(forecast, previous, self.cluster, self.packer, self.tolerance, self.seed, max_moves)
            prior = previous
        if self.kind == "robust" and self.window_count > 1 and seen.shape[0] > 1:
            plan = robust_swaps(self.scenarios(seen), plan, self.cluster, prior=prior,
                                move_price=self.move_price if prior is not None else 0.0,
                                max_moves=max_moves, max_steps=self.swap_steps)
        return plan


def _as_history(seen: torch.Tensor) -> torch.Tensor:
    seen = torch.as_tensor(seen).cpu()
    if seen.dim() == 2:
        seen = seen.unsqueeze(0)
    if seen.dim() != 3 or seen.shape[0] == 0:
        raise ValueError(f"a planner sees windows [windows, layers, experts], got shape {tuple(seen.shape)}")
    return seen.to(torch.float64)


def _replan(forecast: torch.Tensor, previous: torch.Tensor, cluster: Cluster, packer: str, tolerance: float,
            seed: int, max_moves: int | None) -> torch.Tensor:
    """From the plan in place toward ``forecast`` [L, n]: within tolerance of a fresh plan, or the best the
    move budget reaches."""
    if max_moves is None:
        result = plan_moves(forecast, previous, cluster.num_groups, cluster.num_nodes, cluster.num_gpus,
                            tolerance=tolerance, packer=packer, seed=seed, hierarchical=cluster.hierarchical)
    else:
        result = plan_moves(forecast, previous, cluster.num_groups, cluster.num_nodes, cluster.num_gpus,
                            tolerance=None, max_moves=int(max_moves), packer=packer, seed=seed,
                            hierarchical=cluster.hierarchical)
    return result.placement.phy2log.cpu()


# GPUs a robust swap takes a replica from (the scenarios' busiest) and gives it to (the lightest on average).
SOURCE_GPUS = 2
TARGET_GPUS = 4


def robust_swaps(scenarios: torch.Tensor, phy2log: torch.Tensor, cluster: Cluster, *,
                 prior: torch.Tensor | None = None, move_price: float = 0.0, max_moves: int | None = None,
                 max_steps: int | None = None) -> torch.Tensor:
    """Slot swaps on ``phy2log`` [L, S] that lower the mean over ``scenarios``
    [K, L, n] of each scenario's busiest GPU, every layer at once.

    A swap trades the experts of two slots on different GPUs (inside one node
    under the hierarchical policy), never putting an expert beside a replica of
    itself. Each step takes, per layer, the swap with the largest drop in the
    scenarios' mean peak less ``move_price`` per replica it moves away from
    ``prior`` [L, S] (the plan in place), while that is positive and the
    layer's moves from ``prior`` stay within ``max_moves``. Replica counts do
    not change."""
    scenarios = scenarios.to(torch.float64).cpu()
    phy2log = phy2log.cpu().clone()
    num_scenarios, num_layers, num_logical = scenarios.shape
    gpus, per_gpu = cluster.num_gpus, cluster.slots_per_gpu
    if gpus < 2 or num_layers == 0:
        return phy2log
    node_of_gpu = cluster.node_of_gpu()
    weights = scenarios.permute(1, 0, 2)                                   # [L, K, n]
    if prior is None:
        in_prior = None
        moves = torch.zeros(num_layers, dtype=torch.int64)
    else:
        in_prior = _held(prior.cpu(), num_logical, gpus) > 0               # [L, G, n]
        moves = _moves_from(in_prior, phy2log, num_logical, gpus)
    active = weights.sum(dim=(1, 2)) > 0
    steps = max_steps if max_steps is not None else gpus + 8
    sources = min(gpus, SOURCE_GPUS)
    targets = min(gpus, max(TARGET_GPUS, sources + 1))
    for _ in range(steps):
        layers = active.nonzero().squeeze(1)
        if len(layers) == 0:
            break
        plan = phy2log[layers]
        weight = weights[layers]                                           # [A, K, n]
        count = torch.zeros(len(layers), num_logical, dtype=torch.int64).scatter_add_(
            1, plan, torch.ones_like(plan)).clamp_min(1)
        slot_load = (weight / count.unsqueeze(1)).gather(2, plan.unsqueeze(1).expand(-1, num_scenarios, -1))
        load = slot_load.view(len(layers), num_scenarios, gpus, per_gpu).sum(dim=3)      # [A, K, G]
        top = load.topk(min(3, gpus), dim=2)
        top_values = torch.cat([top.values, torch.full((len(layers), num_scenarios, 3 - top.values.shape[2]),
                                                       -torch.inf, dtype=torch.float64)], 2)
        top_index = torch.cat([top.indices, torch.full((len(layers), num_scenarios, 3 - top.indices.shape[2]), -1,
                                                       dtype=torch.int64)], 2)
        peak = top_values[:, :, 0]                                         # [A, K]
        objective = peak.mean(dim=1)
        # sources: GPUs that are the peak in most scenarios (then the busiest on average)
        is_peak = (load >= peak.unsqueeze(2)).sum(dim=1).double() + load.mean(dim=1) / peak.mean(dim=1, keepdim=True)
        source_gpu = is_peak.topk(sources, dim=1).indices                  # [A, Q]
        target_gpu = load.mean(dim=1).topk(targets, dim=1, largest=False).indices  # [A, P]
        slots_i = (source_gpu.unsqueeze(2) * per_gpu + torch.arange(per_gpu)).flatten(1)     # [A, I]
        slots_j = (target_gpu.unsqueeze(2) * per_gpu + torch.arange(per_gpu)).flatten(1)     # [A, J]
        gpu_i, gpu_j = slots_i // per_gpu, slots_j // per_gpu
        x, y = plan.gather(1, slots_i), plan.gather(1, slots_j)
        load_i = slot_load.gather(2, slots_i.unsqueeze(1).expand(-1, num_scenarios, -1))     # [A, K, I]
        load_j = slot_load.gather(2, slots_j.unsqueeze(1).expand(-1, num_scenarios, -1))     # [A, K, J]
        moved = load_i.unsqueeze(3) - load_j.unsqueeze(2)                  # [A, K, I, J]
        a4 = gpu_i.view(-1, 1, sources * per_gpu, 1)
        b4 = gpu_j.view(-1, 1, 1, targets * per_gpu)
        load_a = load.gather(2, gpu_i.unsqueeze(1).expand(-1, num_scenarios, -1)).unsqueeze(3)
        load_b = load.gather(2, gpu_j.unsqueeze(1).expand(-1, num_scenarios, -1)).unsqueeze(2)
        others = top_values[:, :, 2].view(-1, num_scenarios, 1, 1)
        for rank in (1, 0):
            index = top_index[:, :, rank].view(-1, num_scenarios, 1, 1)
            others = torch.where((index != a4) & (index != b4), top_values[:, :, rank].view(-1, num_scenarios, 1, 1),
                                 others)
        new_peak = torch.maximum(torch.maximum(load_a - moved, load_b + moved), others)
        gain = objective.view(-1, 1, 1) - new_peak.mean(dim=1)             # [A, I, J]

        held = _held(plan, num_logical, gpus)                              # [A, G, n]
        rows = torch.arange(len(layers)).view(-1, 1, 1)
        x3, y3 = x.unsqueeze(2), y.unsqueeze(1)
        ga, gb = gpu_i.unsqueeze(2), gpu_j.unsqueeze(1)
        ok = (ga != gb) & (x3 != y3) & (held[rows, gb, x3] == 0) & (held[rows, ga, y3] == 0)
        if cluster.hierarchical:
            ok &= node_of_gpu[ga] == node_of_gpu[gb]
        extra = torch.zeros_like(gain, dtype=torch.int64)
        if in_prior is not None:
            was = in_prior[layers]
            extra = ((~was[rows, ga, y3]).long() + (~was[rows, gb, x3]).long()
                     - (~was[rows, ga, x3]).long() - (~was[rows, gb, y3]).long())
            gain = gain - move_price * extra.double()
            if max_moves is not None:
                ok &= (moves[layers].view(-1, 1, 1) + extra) <= max_moves
        gain = torch.where(ok, gain, torch.full_like(gain, -torch.inf))
        best_gain, best = gain.flatten(1).max(dim=1)
        improves = best_gain > objective * 1e-9
        if not bool(improves.any()):
            break
        chosen = layers[improves]
        pick = best[improves]
        width = targets * per_gpu
        slot_i = slots_i[improves].gather(1, (pick // width).unsqueeze(1)).squeeze(1)
        slot_j = slots_j[improves].gather(1, (pick % width).unsqueeze(1)).squeeze(1)
        expert_i = phy2log[chosen, slot_i].clone()
        phy2log[chosen, slot_i] = phy2log[chosen, slot_j]
        phy2log[chosen, slot_j] = expert_i
        moves[chosen] += extra[improves].flatten(1).gather(1, pick.unsqueeze(1)).squeeze(1)
        active[layers[~improves]] = False
    return phy2log


def _held(phy2log: torch.Tensor, num_logical: int, num_gpus: int) -> torch.Tensor:
    """[L, G, n]: replicas of each expert on each GPU."""
    num_layers, num_slots = phy2log.shape
    gpu = torch.arange(num_slots) // (num_slots // num_gpus)
    held = torch.zeros(num_layers, num_gpus * num_logical, dtype=torch.int64)
    held.scatter_add_(1, gpu * num_logical + phy2log, torch.ones_like(phy2log))
    return held.view(num_layers, num_gpus, num_logical)


def _moves_from(in_prior: torch.Tensor, phy2log: torch.Tensor, num_logical: int, num_gpus: int) -> torch.Tensor:
    """[L]: (GPU, expert) pairs of ``phy2log`` the prior plan did not hold."""
    now = _held(phy2log, num_logical, num_gpus) > 0
    return (now & ~in_prior).flatten(1).sum(dim=1)


@dataclass
class AutoPlanner:
    """Picks, before every plan, the candidate whose plans served best on the
    windows seen so far, and re-plans toward that candidate's forecast from the
    plan in place.

    The backtest: each candidate makes a fresh plan (``backtest_packer``) on
    every prefix of the windows seen, scored on the window that followed it;
    a candidate's score is the mean of its last ``backtest_windows`` scores.
    The backtest plans at most ``backtest_layers`` layers, evenly spread (the
    choice is one for all layers; a sample of them ranks the candidates at a
    fraction of the time).
    Nothing after the last window seen is ever looked at: the plans made on
    windows 0..t depend on those windows only (cached by window, the cache
    checked against the windows given on every call). Before two windows are
    seen the first candidate is taken; ties go to the earlier candidate."""

    cluster: Cluster
    candidates: list[LookAheadPlanner]
    backtest_windows: int = 12
    backtest_packer: str = "eplb"
    backtest_layers: int = 8
    sees_history: bool = field(default=True, init=False)
    _windows: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)
    _plans: list[list[torch.Tensor]] = field(default_factory=list, init=False, repr=False)
    _scores: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)
    chosen: list[str] = field(default_factory=list, init=False, repr=False)

    name = "auto"

    def _sync(self, seen: torch.Tensor) -> None:
        """Cache the candidates' backtest plans for every prefix of ``seen``."""
        keep = 0
        while keep < min(len(self._windows), seen.shape[0]) and torch.equal(self._windows[keep], seen[keep]):
            keep += 1
        del self._windows[keep:], self._plans[keep:], self._scores[max(keep - 1, 0):]
        sample = self._sample(seen.shape[1])
        for index in range(keep, seen.shape[0]):
            window = seen[index][sample]
            self._windows.append(seen[index].clone())
            if index > 0:
                self._scores.append(torch.tensor([_served(window, plan, self.cluster)
                                                  for plan in self._plans[index - 1]]))
            prefix = seen[:index + 1, sample]
            self._plans.append([self._shadow(candidate, prefix) for candidate in self.candidates])

    def _sample(self, num_layers: int) -> torch.Tensor:
        """The layers the backtest plans, evenly spread."""
        count = min(num_layers, self.backtest_layers)
        return torch.linspace(0, num_layers - 1, count).round().long().unique()

    def _shadow(self, candidate: LookAheadPlanner, prefix: torch.Tensor) -> torch.Tensor:
        shadow = replace(candidate, packer=self.backtest_packer)
        return shadow(prefix, None)

    def pick(self, seen: torch.Tensor) -> LookAheadPlanner:
        """The candidate with the best backtest on ``seen`` (the first when there is none)."""
        seen = _as_history(seen)
        self._sync(seen)
        scores = self._scores[:seen.shape[0] - 1][-self.backtest_windows:]
        if not scores:
            return self.candidates[0]
        mean = torch.stack(scores).mean(dim=0)
        best = int((mean >= mean.max() - 1e-12).nonzero()[0])
        return self.candidates[best]

    def __call__(self, seen: torch.Tensor, previous: torch.Tensor | None, *,
                 max_moves: int | None = None) -> torch.Tensor:
        seen = _as_history(seen)
        candidate = self.pick(seen)
        self.chosen.append(candidate.name)
        return candidate(seen, previous, max_moves=max_moves)


def _served(window: torch.Tensor, phy2log: torch.Tensor, cluster: Cluster) -> float:
    """Mean balancedness of the plan on ``window`` [L, n] over its layers with traffic."""
    from packviz.eplb.cluster import balance

    moe = window.sum(dim=1) > 0
    if not bool(moe.any()):
        return 1.0
    return float(balance(window[moe], phy2log[moe], cluster).balancedness.mean())


def default_candidates(cluster: Cluster, packer: str = "eplb") -> list[LookAheadPlanner]:
    """The auto planner's candidates, the default first (taken before there is a backtest)."""
    base = LookAheadPlanner(cluster, packer=packer)
    # every candidate re-plans from the plan in place, the last-window one too (few moves whichever is picked)
    # the last window first: what every engine plans on, and on drifting traffic the best forecast, so it is
    # what auto takes until a backtest says otherwise (re-planned within 0.3% of a fresh plan on it: within
    # 1% it served 0.011 below the fresh plan on the decode-like trace)
    return [replace(base, kind="last", fresh=False, tolerance=LAST_TOLERANCE),
            replace(base, kind="robust", window_count=4), replace(base, kind="robust", window_count=8),
            replace(base, kind="mean", window_count=4), replace(base, kind="mean", window_count=8),
            replace(base, kind="ema", half_life=1.0), replace(base, kind="mean_sd", window_count=8, z=FLASHLB_Z)]


def make_planner(name: str, cluster: Cluster, packer: str = "eplb") -> LookAheadPlanner | AutoPlanner:
    """A planner by name: ``last``, ``mean[:K]``, ``ema[:HALF_LIFE]``,
    ``mean_sd[:K[:Z]]``, ``robust[:K]`` or ``auto``; ValueError with one
    sentence on anything else."""
    kind, *parameters = name.strip().lower().replace("-", "_").split(":")
    if kind == "auto" and not parameters:
        return AutoPlanner(cluster, default_candidates(cluster, packer))
    base = LookAheadPlanner(cluster, packer=packer)
    try:
        if kind == "last" and not parameters:
            return replace(base, kind="last")
        if kind in ("mean", "robust") and len(parameters) <= 1:
            return replace(base, kind=kind, window_count=_count(parameters[0]) if parameters else 8)
        if kind == "ema" and len(parameters) <= 1:
            half_life = float(parameters[0]) if parameters else 2.0
            if not half_life > 0:
                raise ValueError
            return replace(base, kind="ema", half_life=half_life)
        if kind in ("mean_sd", "flashlb") and len(parameters) <= 2:
            return replace(base, kind="mean_sd", window_count=_count(parameters[0]) if parameters else 8,
                           z=float(parameters[1]) if len(parameters) > 1 else FLASHLB_Z)
    except ValueError:
        pass
    raise ValueError(f"unknown planner {name!r}: use last, mean[:K], ema[:HALF_LIFE], mean_sd[:K[:Z]], "
                     "robust[:K] or auto (K a whole number >= 1, HALF_LIFE > 0)")


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value
