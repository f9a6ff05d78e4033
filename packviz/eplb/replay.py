"""Replay: an engine's EPLB loop run over a load trace, scored on the traffic each plan served.

A serving engine counts expert loads over a window, re-plans at intervals,
and puts the new plan in place (all layers at once, or a few layers a window);
the plan then serves the traffic that comes until the next one is in place.
``replay`` runs that loop over a trace of windows and scores each plan on the
windows it *served*, never on the window it was made from.

Public API (the page and the command line build on it):

    ReplaySettings(cluster, planner="auto", interval=1, trigger="interval",
                   utilization_threshold=1.0, drop_ratio=0.9, drop_floor=0.85,
                   max_moves=None, layers_per_chunk=None, packer="eplb",
                   expert_bytes=..., intra_gbps=..., inter_gbps=...)
        one setting of the loop (frozen dataclass). ``trigger``: ``interval``
        (re-plan every ``interval`` windows), ``utilization`` (SGLang's
        ``eplb_min_rebalancing_utilization_threshold``: skip while the
        balancedness seen is above the threshold) or ``drop`` (FlashLB's: re-plan
        only when the balancedness seen drops below ``drop_ratio`` x its value
        in the first window after the last plan, or below ``drop_floor``).
    replay(trace, settings, planner=None) -> ReplayResult
        trace [windows, layers, num_logical] loads (one row a window);
        ``planner`` overrides the named one (any ``over_time`` planner).
    ReplayResult
        plans [windows - 1, layers, num_replicas] int64: row i the phy2log in
        force during window i + 1, made from windows 0..i only;
        balancedness [windows - 1]: served in window i + 1 (mean over the
        layers with traffic in that window); replanned [windows - 1] bool: a
        re-plan was made at the end of window i; moved [windows - 1]: replicas
        copied at the end of window i; gb_moved, stall_s [windows - 1]: their
        bytes (1e9) and the transfer-time estimate of ``packviz.eplb.moves``;
        plan_s [windows - 1]: seconds spent planning. Summaries:
        ``mean_balancedness``, ``replans``, ``moved_fraction`` (slots moved per
        re-plan over all slots, the mean over re-plans), ``gb_per_hour(window_s)``,
        ``summary(window_s)`` (a JSON-ready dict).
    sweep(trace, base, grid, *, progress=None, should_stop=None, executor=None)
        -> list[ReplayResult]
        ``replay`` on every combination of ``grid`` (field name -> values)
        applied to ``base``; ``progress(done, total, result)`` after each,
        ``should_stop()`` checked before each (True: return what finished).
        ``executor``: any ``concurrent.futures.Executor`` (e.g. a process pool
        like ``packviz.workers``'); None runs here, one after another.
    pareto_front(results, window_s) -> list[bool]
        True where no other result serves at least as well moving no more GB
        an hour, and better in one of them.
    recommend(results, window_s, max_gb_per_hour=None) -> ReplayResult
        the best served balancedness on the front within the GB budget,
        fewer GB on a near tie (within 0.002).
    engine_flags(settings, window_passes) -> EngineFlags
        the setting as SGLang server arguments, vLLM's ``--eplb-config`` JSON
        and TensorRT-LLM's load-balancer YAML (a window of ``window_passes``
        forward passes).

Dense layers (all zero over the trace) are left out of every mean.

Shapes: trace [windows, layers, num_logical]; plans [windows - 1, layers, num_replicas].
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch

from packviz.eplb.cluster import Cluster, balance, check_plan
from packviz.eplb.forecast import make_planner
from packviz.eplb.moves import DEEPSEEK_V3_EXPERT_BYTES, INTER_NODE_GBPS, INTRA_NODE_GBPS, moves_between

Trigger = Literal["interval", "utilization", "drop"]
TRIGGERS: tuple[str, ...] = ("interval", "utilization", "drop")
NEAR_TIE = 0.002


@dataclass(frozen=True)
class ReplaySettings:
    """One setting of the EPLB loop (see the module's docstring)."""

    cluster: Cluster
    planner: str = "auto"
    interval: int = 1
    trigger: Trigger = "interval"
    utilization_threshold: float = 1.0
    drop_ratio: float = 0.9
    drop_floor: float = 0.85
    max_moves: int | None = None
    layers_per_chunk: int | None = None
    packer: str = "eplb"
    expert_bytes: int = DEEPSEEK_V3_EXPERT_BYTES
    intra_gbps: float = INTRA_NODE_GBPS
    inter_gbps: float = INTER_NODE_GBPS

    def problem(self, num_logical: int) -> str | None:
        """One sentence on what cannot work, or None."""
        cluster_problem = self.cluster.problem(num_logical)
        if cluster_problem:
            return cluster_problem
        if not isinstance(self.interval, int) or self.interval < 1:
            return f"The re-plan interval must be a whole number of windows >= 1, not {self.interval!r}."
        if self.trigger not in TRIGGERS:
            return f"The trigger must be one of {', '.join(TRIGGERS)}, not {self.trigger!r}."
        if self.max_moves is not None and (not isinstance(self.max_moves, int) or self.max_moves < 0):
            return f"The move budget must be a whole number of replicas per layer >= 0, not {self.max_moves!r}."
        if self.layers_per_chunk is not None and (not isinstance(self.layers_per_chunk, int)
                                                  or self.layers_per_chunk < 1):
            return f"Layers per chunk must be a whole number >= 1, not {self.layers_per_chunk!r}."
        try:
            make_planner(self.planner, self.cluster, self.packer)
        except ValueError as error:
            return str(error)[0].upper() + str(error)[1:] + "."
        return None

    def label(self) -> str:
        parts = [self.planner, f"every {self.interval}"]
        if self.trigger == "utilization":
            parts.append(f"below {self.utilization_threshold:g}")
        elif self.trigger == "drop":
            parts.append(f"drop {self.drop_ratio:g}/{self.drop_floor:g}")
        if self.max_moves is not None:
            parts.append(f"<= {self.max_moves} moves")
        if self.layers_per_chunk is not None:
            parts.append(f"{self.layers_per_chunk} layers/chunk")
        parts.append(f"{self.cluster.num_replicas} slots")
        return ", ".join(parts)


@dataclass(frozen=True)
class ReplayResult:
    """What one replay served and cost (see the module's docstring for every field)."""

    settings: ReplaySettings
    plans: torch.Tensor
    balancedness: torch.Tensor
    replanned: torch.Tensor
    moved: torch.Tensor
    gb_moved: torch.Tensor
    stall_s: torch.Tensor
    plan_s: torch.Tensor
    chosen: list[str] = field(default_factory=list)

    @property
    def mean_balancedness(self) -> float:
        return float(self.balancedness.mean())

    @property
    def replans(self) -> int:
        return int(self.replanned.sum())

    @property
    def moved_fraction(self) -> float:
        """Replicas moved per re-plan over all slots, the mean over re-plans after the first plan (which
        replaces no plan)."""
        made = self.replanned.clone()
        made[0] = False
        if not bool(made.any()):
            return 0.0
        slots = self.plans.shape[1] * self.plans.shape[2]
        per_replan = _moves_per_replan(self.moved, self.replanned)
        return float(per_replan[1:].double().mean() / slots) if len(per_replan) > 1 else 0.0

    def gb_per_hour(self, window_s: float) -> float:
        """GB copied per hour of serving when a window lasts ``window_s`` seconds (the first plan left out)."""
        windows = self.balancedness.numel()
        return float(self.gb_moved[1:].sum()) / max(windows * window_s, 1e-300) * 3600.0

    def summary(self, window_s: float = 1.0) -> dict[str, Any]:
        """A JSON-ready dict of the headline figures."""
        replans = max(self.replans - 1, 0)
        return {
            "settings": _settings_dict(self.settings),
            "windows": int(self.balancedness.numel()) + 1,
            "mean_balancedness": self.mean_balancedness,
            "balancedness": [float(v) for v in self.balancedness],
            "replans": self.replans,
            "moved_fraction_per_replan": self.moved_fraction,
            "moved_replicas": int(self.moved[1:].sum()),
            "gb_moved": float(self.gb_moved[1:].sum()),
            "gb_per_hour": self.gb_per_hour(window_s),
            "window_s": window_s,
            "mean_stall_s_per_replan": float(self.stall_s[1:].sum()) / replans if replans else 0.0,
            "max_stall_s": float(self.stall_s[1:].max()) if self.stall_s.numel() > 1 else 0.0,
            "plan_s_per_replan": float(self.plan_s.sum()) / max(self.replans, 1),
            "chosen": list(self.chosen),
        }


def _moves_per_replan(moved: torch.Tensor, replanned: torch.Tensor) -> torch.Tensor:
    """[re-plans]: replicas each re-plan moved, its chunks summed (a chunk's moves count for the re-plan that
    started before it)."""
    index = torch.cumsum(replanned.long(), 0) - 1
    keep = index >= 0
    return torch.zeros(int(replanned.sum()), dtype=torch.int64).index_add_(0, index[keep], moved[keep].long())


def _settings_dict(settings: ReplaySettings) -> dict[str, Any]:
    values = asdict(settings)
    values["cluster"] = {**asdict(settings.cluster), "hierarchical": settings.cluster.hierarchical}
    return values


def check_trace(trace: torch.Tensor) -> torch.Tensor:
    """``trace`` as CPU float64 [windows, layers, num_logical], or ValueError with one sentence."""
    trace = torch.as_tensor(trace)
    if trace.dim() != 3:
        raise ValueError(f"a trace is [windows, layers, experts] loads, got {trace.dim()} dimensions "
                         f"of shape {tuple(trace.shape)}")
    if trace.dtype == torch.bool or trace.is_complex():
        raise ValueError(f"loads must be real numbers, got dtype {trace.dtype}")
    if trace.shape[0] < 2:
        raise ValueError(f"the trace has {trace.shape[0]} window(s); a plan is scored on the window after the one it "
                         "is made from, so at least 2 are needed")
    if trace.shape[1] < 1 or trace.shape[2] < 1:
        raise ValueError(f"the trace has no layers or no experts (shape {tuple(trace.shape)})")
    trace = trace.to(device="cpu", dtype=torch.float64)
    bad = ~torch.isfinite(trace) | (trace < 0)
    if bool(bad.any()):
        window, layer, expert = (int(v) for v in bad.nonzero()[0])
        value = float(trace[window, layer, expert])
        raise ValueError(f"window {window}, layer {layer}, expert {expert}: the load {value!r} is not a finite "
                         "number >= 0")
    return trace


def served_balancedness(window: torch.Tensor, phy2log: torch.Tensor, cluster: Cluster,
                        moe: torch.Tensor | None = None) -> float:
    """Mean balancedness of ``phy2log`` [L, S] on ``window`` [L, n] over the MoE layers (``moe`` [L] bool) that
    carry traffic in it; 1.0 when none does."""
    layers = window.sum(dim=1) > 0
    if moe is not None:
        layers &= moe
    if not bool(layers.any()):
        return 1.0
    return float(balance(window[layers], phy2log[layers], cluster).balancedness.mean())


def replay(trace: torch.Tensor, settings: ReplaySettings,
           planner: Callable[..., torch.Tensor] | None = None) -> ReplayResult:
    """Run the EPLB loop of ``settings`` over ``trace`` [windows, layers, num_logical] (see the module's
    docstring). ``planner``: any ``over_time`` planner instead of ``settings.planner``."""
    trace = check_trace(trace)
    num_windows, num_layers, num_logical = trace.shape
    problem = settings.problem(num_logical)
    if problem:
        raise ValueError(problem)
    cluster = settings.cluster
    if planner is None:
        planner = make_planner(settings.planner, cluster, settings.packer)
    sees_history = getattr(planner, "sees_history", False)
    moe = trace.sum(dim=(0, 2)) > 0
    chunk = settings.layers_per_chunk or num_layers

    in_force: torch.Tensor | None = None
    target: torch.Tensor | None = None   # a re-plan still going in, chunk by chunk
    next_layer = 0
    reference: float | None = None       # balancedness seen in the first window after the last plan went in
    plans, scores, replanned, moved, gb, stall, plan_s = [], [], [], [], [], [], []
    for index in range(num_windows - 1):
        window = trace[index]
        seen_score = None if in_force is None else served_balancedness(window, in_force, cluster, moe)
        if seen_score is not None and reference is None:
            reference = seen_score
        start = target is None and _should_replan(settings, index, seen_score, reference)
        spent = 0.0
        if start:
            began = time.perf_counter()
            history = trace[:index + 1]
            previous = in_force
            arguments = {} if settings.max_moves is None or previous is None else {"max_moves": settings.max_moves}
            made = planner(history if sees_history else window, previous, **arguments)
            spent = time.perf_counter() - began
            target, next_layer = torch.as_tensor(made).cpu().to(torch.int64), 0
            checks = check_plan(target, num_logical, cluster)
            if not checks.ok:
                raise ValueError(f"the planner made a plan that breaks the policy: {checks.sentences()[0]}")
        before = in_force
        if target is not None:
            if in_force is None:
                in_force, target = target, None          # the first plan goes in whole
            else:
                in_force = in_force.clone()
                layers = slice(next_layer, min(next_layer + chunk, num_layers))
                in_force[layers] = target[layers]
                next_layer = layers.stop
                if next_layer >= num_layers:
                    target = None
                    reference = None
        if before is None or torch.equal(before, in_force):
            count, bytes_, seconds = 0, 0, 0.0
        else:
            moves = moves_between(before, in_force, cluster, settings.expert_bytes)
            count, bytes_ = len(moves), moves.total_bytes
            seconds = moves.transfer_seconds(settings.intra_gbps, settings.inter_gbps)
        plans.append(in_force)
        scores.append(served_balancedness(trace[index + 1], in_force, cluster, moe))
        replanned.append(start)
        moved.append(count)
        gb.append(bytes_ / 1e9)
        stall.append(seconds)
        plan_s.append(spent)
    return ReplayResult(
        settings=settings, plans=torch.stack(plans), balancedness=torch.tensor(scores, dtype=torch.float64),
        replanned=torch.tensor(replanned), moved=torch.tensor(moved, dtype=torch.int64),
        gb_moved=torch.tensor(gb, dtype=torch.float64), stall_s=torch.tensor(stall, dtype=torch.float64),
        plan_s=torch.tensor(plan_s, dtype=torch.float64), chosen=list(getattr(planner, "chosen", [])))


def _should_replan(settings: ReplaySettings, index: int, seen: float | None, reference: float | None) -> bool:
    """At the end of window ``index``: the first plan always; then on the interval, when the trigger fires."""
    if seen is None:
        return True
    if index % settings.interval:
        return False
    if settings.trigger == "utilization":
        return seen <= settings.utilization_threshold
    if settings.trigger == "drop":
        return seen < settings.drop_floor or (reference is not None and seen < settings.drop_ratio * reference)
    return True


def settings_grid(base: ReplaySettings, grid: Mapping[str, Sequence[Any]]) -> list[ReplaySettings]:
    """``base`` with every combination of ``grid``'s values (field name -> values); ``num_replicas`` changes the
    cluster's slots."""
    names = list(grid)
    out = []
    for values in itertools.product(*(grid[name] for name in names)):
        settings = base
        for name, value in zip(names, values):
            if name == "num_replicas":
                settings = replace(settings, cluster=replace(settings.cluster, num_replicas=value))
            else:
                settings = replace(settings, **{name: value})
        out.append(settings)
    return out


def sweep(trace: torch.Tensor, base: ReplaySettings, grid: Mapping[str, Sequence[Any]], *,
          progress: Callable[[int, int, ReplayResult], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          executor: Executor | None = None) -> list[ReplayResult]:
    """``replay`` on every setting of :func:`settings_grid`, in its order; stops early (keeping what finished)
    when ``should_stop()`` is True (see the module's docstring)."""
    trace = check_trace(trace)
    every = settings_grid(base, grid)
    for settings in every:
        problem = settings.problem(trace.shape[2])
        if problem:
            raise ValueError(f"{settings.label()}: {problem}")
    results: list[ReplayResult] = []
    if executor is None:
        for settings in every:
            if should_stop is not None and should_stop():
                break
            results.append(replay(trace, settings))
            if progress is not None:
                progress(len(results), len(every), results[-1])
        return results
    futures = [executor.submit(replay, trace, settings) for settings in every]
    done: dict[int, ReplayResult] = {}
    try:
        for position, future in enumerate(futures):
            if should_stop is not None and should_stop():
                break
            done[position] = future.result()
            if progress is not None:
                progress(len(done), len(every), done[position])
    finally:
        for future in futures:
            future.cancel()
    return [done[position] for position in sorted(done)]


def pareto_front(results: Sequence[ReplayResult], window_s: float) -> list[bool]:
    """[results]: True where no other result serves at least as well with no more GB an hour, better in one."""
    points = [(r.mean_balancedness, r.gb_per_hour(window_s)) for r in results]
    front = []
    for balance_a, gb_a in points:
        dominated = any(balance_b >= balance_a and gb_b <= gb_a and (balance_b > balance_a or gb_b < gb_a)
                        for balance_b, gb_b in points)
        front.append(not dominated)
    return front


def recommend(results: Sequence[ReplayResult], window_s: float,
              max_gb_per_hour: float | None = None) -> ReplayResult:
    """The best served balancedness on the front within ``max_gb_per_hour`` (all when None); among those within
    :data:`NEAR_TIE` of it, the one moving fewest GB. ValueError when none fits the budget."""
    if not results:
        raise ValueError("no replay results to recommend from")
    front = [r for r, on in zip(results, pareto_front(results, window_s)) if on]
    fitting = [r for r in front if max_gb_per_hour is None or r.gb_per_hour(window_s) <= max_gb_per_hour]
    if not fitting:
        least = min(r.gb_per_hour(window_s) for r in results)
        raise ValueError(f"no setting moves at most {max_gb_per_hour:g} GB an hour; the least is {least:.3g}")
    best = max(r.mean_balancedness for r in fitting)
    near = [r for r in fitting if r.mean_balancedness >= best - NEAR_TIE]
    return min(near, key=lambda r: (r.gb_per_hour(window_s), -r.mean_balancedness))


@dataclass(frozen=True)
class EngineFlags:
    """A setting as each engine takes it. ``notes``: what an engine cannot express (e.g. a look-ahead planner)."""

    sglang: list[str]
    vllm_eplb_config: dict[str, Any]
    trtllm_yaml: str
    notes: list[str]

    @property
    def sglang_command(self) -> str:
        return " ".join(self.sglang)

    @property
    def vllm_command(self) -> str:
        return f"--enable-eplb --eplb-config '{json.dumps(self.vllm_eplb_config, separators=(',', ':'))}'"


def engine_flags(settings: ReplaySettings, window_passes: int, num_logical: int) -> EngineFlags:
    """The flags for ``settings`` when a window is ``window_passes`` forward passes and the model has
    ``num_logical`` routed experts per layer (SGLang's ``server_args.py``, vLLM's ``EPLBConfig``, TensorRT-LLM's
    ``moe_config.load_balancer``)."""
    redundant = settings.cluster.num_replicas - num_logical
    passes = settings.interval * window_passes
    sglang = ["--enable-eplb", f"--ep-num-redundant-experts {redundant}", f"--eplb-rebalance-num-iterations {passes}"]
    if settings.layers_per_chunk is not None:
        sglang.append(f"--eplb-rebalance-layers-per-chunk {settings.layers_per_chunk}")
    if settings.trigger == "utilization":
        sglang.append(f"--eplb-min-rebalancing-utilization-threshold {settings.utilization_threshold:g}")
    vllm = {"window_size": window_passes, "step_interval": passes, "num_redundant_experts": redundant}
    updates = settings.layers_per_chunk or 0
    trtllm = (f"moe_config:\n  load_balancer:\n    num_slots: {settings.cluster.num_replicas}\n"
              f"    layer_updates_per_iter: {updates}\n")
    notes = []
    if settings.planner != "last":
        notes.append(f"The {settings.planner} planner is not in any engine: the engines plan on the last window; "
                     "run packviz's planner beside the engine and load its plans (SGLang --init-expert-location, "
                     "TensorRT-LLM initial_global_assignments) to serve what this replay measured.")
    if settings.trigger == "drop":
        notes.append("The drop trigger is vllm-ascend FlashLB's; SGLang, vLLM and TensorRT-LLM re-plan on the "
                     "interval (SGLang's utilisation gate is the nearest).")
    if settings.max_moves is not None:
        notes.append("No engine takes a move budget; vLLM's async worker keeps slots in place where it can.")
    if settings.layers_per_chunk is not None:
        notes.append("vLLM moves one layer a step when use_async is on; TensorRT-LLM updates "
                     f"{updates} layers an iteration.")
    return EngineFlags(sglang, vllm, trtllm, notes)
