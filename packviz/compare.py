"""Side-by-side figures of several packers' results on the same data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from packviz.metrics import layer_metrics
from packviz.optimal import OptimalLayer
from packviz.packer import PackResult


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
