"""Several packers on the same data: their rows side by side, and a long run cut
into steps of layers so that it can report progress and stop between them.

    layer_steps(layers, items, packs, config) -> [range, ...]
        consecutive layer ranges of about STEP_WORK units of work each (one range
        when the whole run is small); packing each range with
        ``pack(w[r], m, config, layer_ids=r)`` gives the rows of ``pack(w, m, config)``
    merge_results(parts) -> PackResult
        the ranges' results as one, times added
    solve_layer(weight, packs, layer, time_limit_s) -> OptimalLayer
        CP-SAT on one layer, numbered as in the whole matrix
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch

from packviz import optimal
from packviz.config import PackerConfig
from packviz.metrics import layer_metrics
from packviz.optimal import OptimalLayer
from packviz.packer import PackResult

# Units of work (see work_per_layer) in one step of a long run: about half a second
# of a 2-core CPU for the restart presets on 288 items, so progress moves and a stop
# is honoured within about that.
STEP_WORK = 4_000_000


def work_per_layer(num_items: int, num_packs: int, config: PackerConfig) -> int:
    """A rough count of what packing one layer costs: the items times the fills
    (one per restart) plus the pack pairs each refined candidate scores per swap kind."""
    swap_kinds = int(config.one_swap) + int(config.two_swap)
    refined = min(config.num_refined, config.num_restarts) if config.max_iterations > 0 else 0
    return num_items * (max(config.num_restarts, 1) + refined * num_packs * swap_kinds)


def layer_steps(num_layers: int, num_items: int, num_packs: int, config: PackerConfig,
                step_work: int = STEP_WORK) -> list[range]:
    """Consecutive ranges covering 0..num_layers-1, each about ``step_work`` units of
    work (at least one layer); a single range when the whole run is that small. The
    split depends on the sizes and the config only, so it is the same on every run."""
    if num_layers <= 0:
        return []
    per_step = max(1, step_work // max(work_per_layer(num_items, num_packs, config), 1))
    return [range(start, min(start + per_step, num_layers)) for start in range(0, num_layers, per_step)]


def merge_results(parts: Sequence[PackResult]) -> PackResult:
    """The results of consecutive layer ranges as one result: rows stacked in
    order, run times added, traces renumbered by their row in the whole."""
    if not parts:
        raise ValueError("no results to merge")
    if len(parts) == 1:
        return parts[0]
    traces, offset = {}, 0
    for part in parts:
        traces.update({offset + row: trace for row, trace in part.traces.items()})
        offset += part.num_layers
    first = parts[0]
    return dataclasses.replace(
        first,
        pack_index=torch.cat([p.pack_index for p in parts]),
        rank_in_pack=torch.cat([p.rank_in_pack for p in parts]),
        pack_loads=torch.cat([p.pack_loads for p in parts]),
        weight=torch.cat([p.weight for p in parts]),
        elapsed_s=sum(p.elapsed_s for p in parts),
        traces=traces,
    )


def solve_layer(weight: torch.Tensor, num_packs: int, layer: int, time_limit_s: float) -> OptimalLayer:
    """CP-SAT's answer for row ``layer`` of ``weight`` alone, numbered ``layer``."""
    (found,) = optimal.solve_optimal(weight[layer:layer + 1], num_packs, time_limit_s=time_limit_s)
    return dataclasses.replace(found, layer=layer)


def compare_presets(results: Mapping[str, PackResult], baseline: str = "eplb") -> list[dict]:
    """One row per packer: mean and max gap to LB, imbalance, time and time
    relative to ``baseline`` (when present)."""
    base_time = results[baseline].elapsed_s if baseline in results else None
    rows = []
    for name, result in results.items():
        metrics = layer_metrics(result.pack_loads, result.weight)
        rows.append({
            "packer": name,
            "mean_gap": float(metrics.gap_to_lower_bound.mean()),
            "max_gap": float(metrics.gap_to_lower_bound.max()),
            "mean_imbalance": float(metrics.imbalance.mean()),
            "seconds": result.elapsed_s,
            "time_vs_baseline": result.elapsed_s / base_time if base_time else None,
        })
    return rows


def table_rows(rows: Sequence[Mapping]) -> list[dict]:
    """``compare_presets``' rows for a table people read: gaps in percent (a
    percent format of two decimals shows ``best``'s 0.0016% as 0%), imbalance as
    the max/mean ratio it is, and whether the packer is on the Pareto front."""
    front = set(pareto_front(rows))
    return [{"packer": row["packer"], "mean_gap_pct": row["mean_gap"] * 100, "max_gap_pct": row["max_gap"] * 100,
             "mean_max_over_mean": row["mean_imbalance"], "seconds": row["seconds"],
             "time_vs_baseline": row["time_vs_baseline"], "pareto": row["packer"] in front} for row in rows]


def optimum_rows(results: Mapping[str, PackResult], optimum: Sequence[OptimalLayer]) -> list[dict]:
    """One row per packer: its mean gap to the proved optimum over the layers
    CP-SAT proved, and on how many of them it found an optimal placement."""
    proved = [o for o in optimum if o.status == "optimal"]
    rows = []
    for name, result in results.items():
        tops = result.pack_loads.amax(dim=1)
        gaps = [float(tops[o.layer]) / o.max_load - 1 if o.max_load > 0 else 0.0 for o in proved]
        rows.append({
            "packer": name,
            "mean_gap_to_optimum": sum(gaps) / len(gaps) if gaps else None,
            "layers_at_optimum": sum(g <= 1e-12 for g in gaps),
            "layers_proved": len(proved),
        })
    return rows


def pareto_front(rows: Sequence[Mapping]) -> list[str]:
    """The packers no other packer beats on both time and mean gap: none is at
    least as fast and at least as near the lower bound, and strictly better on
    one. ``rows`` are ``compare_presets``' rows; the names come back fastest first."""
    front = []
    for row in rows:
        dominated = any(other["seconds"] <= row["seconds"] and other["mean_gap"] <= row["mean_gap"]
                        and (other["seconds"] < row["seconds"] or other["mean_gap"] < row["mean_gap"])
                        for other in rows)
        if not dominated:
            front.append(row)
    return [row["packer"] for row in sorted(front, key=lambda r: (r["seconds"], r["mean_gap"]))]


def _seconds_text(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:,.0f} s"


def _gap_text(gap: float) -> str:
    return "on the lower bound" if gap <= 0 else f"mean gap {gap * 100:.3g}% to the lower bound"


def recommendation(rows: Sequence[Mapping], wait_s: float) -> str:
    """One sentence: the packer to pick when a run may take ``wait_s`` seconds on
    this data: of those that finished within it, the one nearest the lower bound
    (the faster on a tie), with the next better packer's time when there is one (of the nearer packers
    that take about as long as the quickest of them, the nearest)."""
    if not rows:
        return "No packer has run yet."
    within = [row for row in rows if row["seconds"] <= wait_s]
    if not within:
        fastest = min(rows, key=lambda r: r["seconds"])
        return (f"No packer finishes within {_seconds_text(wait_s)} here: the fastest, {fastest['packer']}, "
                f"takes {_seconds_text(fastest['seconds'])}.")
    best = min(within, key=lambda r: (r["mean_gap"], r["seconds"]))
    sentence = (f"Within {_seconds_text(wait_s)}, pick {best['packer']}: {_gap_text(best['mean_gap'])} "
                f"in {_seconds_text(best['seconds'])}")
    better = [row for row in rows if row["mean_gap"] < best["mean_gap"]]
    if better:
        # the quickest nearer packer, or one nearer still that takes about as long (within 10%): fast at
        # 1.37 s was named where best came nearer at 1.39 s
        quickest = min(r["seconds"] for r in better)
        next_up = min((r for r in better if r["seconds"] <= 1.1 * quickest),
                      key=lambda r: (r["mean_gap"], r["seconds"]))
        sentence += (f"; {next_up['packer']} comes nearer ({_gap_text(next_up['mean_gap'])}) "
                     f"but takes {_seconds_text(next_up['seconds'])}")
    return sentence + "."
