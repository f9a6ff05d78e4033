"""Side-by-side figures of several packers' results on the same data."""

from __future__ import annotations

from collections.abc import Mapping

from packviz.metrics import layer_metrics
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
