"""What the Replay page shows, computed from :mod:`packviz.eplb.replay`'s results (no Streamlit here).

    rewindow(loads, rows) -> loads
        [windows, layers, experts] -> [ceil(windows / rows), layers, experts]: ``rows`` windows summed
        into one (the last may hold fewer, as ``read_trace`` makes them).
    no_eplb_balancedness(trace, num_gpus) -> [windows - 1] or None
        what the trace serves with no EPLB at all: expert e on GPU e // (experts / GPUs), no replicas,
        scored on windows 1.. like every replay; None when the experts do not divide among the GPUs.
    ReplayComparison / compare(trace, settings)
        one replay, the same loop planning on the last window alone (the engines' plan), no EPLB.
    default_grid(), sweep_rows(), sweep_csv()
        the sweep the page opens with, and a table of every setting it ran.
    SweepJob
        a sweep run on a background thread: progress, stop, the results so far.
    plans_npy(), last_plan_files(), summary_json()
        the files the page exports.

Shapes: trace [windows, layers, num_logical]; plans [windows - 1, layers, num_replicas].
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from packviz.eplb.cluster import Cluster
from packviz.eplb.replay import (
    ReplayResult,
    ReplaySettings,
    engine_flags,
    pareto_front,
    recommend,
    replay,
    served_balancedness,
    sweep,
)
from packviz.io.engines.sglang import sglang_json
from packviz.io.engines.trtllm import trtllm_yaml
from packviz.io.engines.vllm import vllm_json

# The sweep the page opens with: the engines' plan, a look-ahead plan, the auto planner; re-planning every
# window or every 4; every interval or FlashLB's drop trigger. 12 replays.
DEFAULT_PLANNERS: tuple[str, ...] = ("last", "mean:8", "auto")
DEFAULT_INTERVALS: tuple[int, ...] = (1, 4)
DEFAULT_TRIGGERS: tuple[str, ...] = ("interval", "drop")
SWEEP_COLUMNS: tuple[str, ...] = ("setting", "planner", "interval", "trigger", "served_balancedness",
                                  "gb_per_hour", "replans", "moved_fraction_per_replan",
                                  "mean_stall_s_per_replan", "pareto", "recommended")


def rewindow(loads: torch.Tensor, rows: int) -> torch.Tensor:
    """[windows, layers, experts] with every ``rows`` consecutive windows summed into one (the last may hold
    fewer)."""
    if rows < 1:
        raise ValueError(f"a window must hold at least 1 row, not {rows}")
    if rows == 1:
        return loads
    count = -(-loads.shape[0] // rows)
    padded = torch.zeros((count * rows, *loads.shape[1:]), dtype=loads.dtype)
    padded[:loads.shape[0]] = loads
    return padded.reshape(count, rows, *loads.shape[1:]).sum(dim=1)


def no_eplb_balancedness(trace: torch.Tensor, num_gpus: int) -> torch.Tensor | None:
    """[windows - 1] float64: the balancedness served in windows 1.. with expert e on GPU
    e // (experts / GPUs) and no replicas; None when the experts do not divide among ``num_gpus``."""
    num_windows, num_layers, num_logical = trace.shape
    if num_gpus < 1 or num_logical % num_gpus:
        return None
    cluster = Cluster(num_logical, None, 1, num_gpus, "global")
    identity = torch.arange(num_logical, dtype=torch.int64).expand(num_layers, num_logical)
    moe = trace.sum(dim=(0, 2)) > 0
    return torch.tensor([served_balancedness(trace[index], identity, cluster, moe)
                         for index in range(1, num_windows)], dtype=torch.float64)


@dataclass(frozen=True)
class ReplayComparison:
    """One replay beside the engines' plan (``last`` on the same interval, trigger, budget and chunks) and no
    EPLB (None when the experts do not divide among the GPUs)."""

    result: ReplayResult
    baseline: ReplayResult
    no_eplb: torch.Tensor | None


def baseline_settings(settings: ReplaySettings) -> ReplaySettings:
    """``settings`` with the engines' planner: a fresh plan on the last window."""
    return dataclasses.replace(settings, planner="last")


def compare(trace: torch.Tensor, settings: ReplaySettings, executor: Executor | None = None) -> ReplayComparison:
    """``replay`` of ``settings`` and of its :func:`baseline_settings` (both on ``executor`` when given)."""
    base = baseline_settings(settings)
    if executor is None:
        result = replay(trace, settings)
        baseline = result if base == settings else replay(trace, base)
    else:
        pending = executor.submit(replay, trace, settings)
        other = None if base == settings else executor.submit(replay, trace, base)
        result = pending.result()
        baseline = result if other is None else other.result()
    return ReplayComparison(result, baseline, no_eplb_balancedness(trace, settings.cluster.num_gpus))


def default_grid(planners: Sequence[str] = DEFAULT_PLANNERS, intervals: Sequence[int] = DEFAULT_INTERVALS,
                 triggers: Sequence[str] = DEFAULT_TRIGGERS) -> dict[str, list]:
    """A grid for :func:`packviz.eplb.replay.sweep` (field name -> values)."""
    return {"planner": list(planners), "interval": [int(v) for v in intervals], "trigger": list(triggers)}


def sweep_rows(results: Sequence[ReplayResult], window_s: float) -> list[dict[str, Any]]:
    """One row per result: its setting, served balancedness, GB an hour, re-plans, moves, stall, whether it is on
    the Pareto front and whether it is the recommended one."""
    if not results:
        return []
    front = pareto_front(results, window_s)
    chosen = recommend(results, window_s)
    rows = []
    for result, on_front in zip(results, front):
        summary = result.summary(window_s)
        rows.append({"setting": result.settings.label(), "planner": result.settings.planner,
                     "interval": result.settings.interval, "trigger": result.settings.trigger,
                     "served_balancedness": result.mean_balancedness, "gb_per_hour": result.gb_per_hour(window_s),
                     "replans": result.replans, "moved_fraction_per_replan": result.moved_fraction,
                     "mean_stall_s_per_replan": summary["mean_stall_s_per_replan"], "pareto": bool(on_front),
                     "recommended": result is chosen})
    return rows


def sweep_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The sweep table as CSV (header :data:`SWEEP_COLUMNS`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, SWEEP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


class SweepJob:
    """:func:`packviz.eplb.replay.sweep` on a background thread; ``results`` grows as replays finish (in the
    grid's order), ``stop()`` ends it after the replays under way, keeping what finished."""

    def __init__(self, trace: torch.Tensor, base: ReplaySettings, grid: Mapping[str, Sequence[Any]],
                 executor: Executor | None = None) -> None:
        self.total = math.prod(len(list(values)) for values in grid.values())
        self.results: list[ReplayResult] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(trace, base, grid, executor), daemon=True)
        self._thread.start()

    def _run(self, trace: torch.Tensor, base: ReplaySettings, grid: Mapping[str, Sequence[Any]],
             executor: Executor | None) -> None:
        try:
            done = sweep(trace, base, grid, progress=lambda _done, _total, result: self.results.append(result),
                         should_stop=self._stop.is_set, executor=executor)
            self.results = list(done)
        except Exception as error:  # shown on the page as a sentence; the results so far stay
            self.error = str(error)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)


def plans_npy(result: ReplayResult) -> bytes:
    """``result.plans`` as the command line writes them: an int64 ``.npy`` [windows - 1, layers, slots]."""
    out = io.BytesIO()
    np.save(out, result.plans.numpy().astype(np.int64), allow_pickle=False)
    return out.getvalue()


def last_plan_files(result: ReplayResult, moe_layers: torch.Tensor) -> dict[str, str]:
    """The last plan in force in the engines' formats: SGLang's ``--init-expert-location`` JSON (every layer of the
    trace), vLLM's map and TensorRT-LLM's YAML (the MoE layers, numbered as in the trace when they run without
    a gap)."""
    plan = result.plans[-1]
    moe = torch.as_tensor(moe_layers, dtype=torch.bool)
    ids = moe.nonzero().flatten().tolist()
    contiguous = bool(ids) and ids == list(range(ids[0], ids[-1] + 1))
    moe_plan, first = (plan[ids[0]:ids[-1] + 1], ids[0]) if contiguous else (plan, 0)
    return {"sglang": sglang_json(moe_plan, first_layer=first, num_layers=plan.shape[0]),
            "vllm": vllm_json(moe_plan),
            "trtllm": trtllm_yaml(moe_plan, first, result.settings.layers_per_chunk or 0)}


def summary_json(comparison: ReplayComparison, window_s: float, window_passes: int, trace_info: Mapping[str, Any],
                 num_logical: int) -> str:
    """The CLI's ``--json`` summary for the page's setting: the replay's figures, the engines' plan beside it,
    the flags to type."""
    result, baseline = comparison.result, comparison.baseline
    summary = result.summary(window_s)
    summary["trace"] = dict(trace_info)
    summary["last_window_balancedness"] = baseline.mean_balancedness
    summary["gain_over_last_window"] = result.mean_balancedness - baseline.mean_balancedness
    if comparison.no_eplb is not None:
        summary["no_eplb_balancedness"] = float(comparison.no_eplb.mean())
    flags = engine_flags(result.settings, window_passes, num_logical)
    summary["engine_flags"] = {"sglang": flags.sglang_command, "vllm_eplb_config": flags.vllm_eplb_config,
                               "trtllm_yaml": flags.trtllm_yaml, "notes": flags.notes}
    return json.dumps(summary, indent=2)
