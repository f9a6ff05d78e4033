"""What a placement is written as: CSV for people, JSON for serving engines."""

from __future__ import annotations

import csv
import io
import json

import torch

from packviz.metrics import layer_metrics
from packviz.packer import PackResult

PLACEMENT_COLUMNS = ("layer", "item", "pack", "rank_in_pack", "load")
SUMMARY_COLUMNS = ("layer", "pack", "items", "load", "share_of_layer")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def placement_csv(result: PackResult) -> str:
    """One row per item, sorted by layer then item."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PLACEMENT_COLUMNS)
    packs = result.pack_index.tolist()
    ranks = result.rank_in_pack.tolist()
    weight = result.weight.tolist()
    for layer in range(result.num_layers):
        for item in range(result.num_items):
            writer.writerow((layer, item, packs[layer][item], ranks[layer][item], _number(weight[layer][item])))
    return out.getvalue()


def pack_summary_csv(result: PackResult) -> str:
    """One row per pack: its items (by rank) and load."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    table = physical_to_logical(result).tolist()
    loads = result.pack_loads.tolist()
    per_pack = result.num_items // result.num_packs
    for layer in range(result.num_layers):
        total = sum(loads[layer]) or 1.0
        for p in range(result.num_packs):
            items = table[layer][p * per_pack:(p + 1) * per_pack]
            writer.writerow((layer, p, " ".join(map(str, items)), _number(loads[layer][p]),
                             f"{loads[layer][p] / total:.6f}"))
    return out.getvalue()


def physical_to_logical(result: PackResult) -> torch.Tensor:
    """[layers, items]: the item in each physical slot, slot = pack * k + rank."""
    per_pack = result.num_items // result.num_packs
    slots = result.pack_index * per_pack + result.rank_in_pack
    table = torch.empty_like(slots)
    items = torch.arange(result.num_items).expand(result.num_layers, -1)
    return table.scatter_(1, slots, items)


def sglang_json(result: PackResult) -> str:
    """SGLang's ``--init-expert-location`` file: ``physical_to_logical_map``."""
    return json.dumps({"physical_to_logical_map": physical_to_logical(result).tolist()})


def parse_placement_csv(text: str) -> dict[str, torch.Tensor]:
    """Read a placement CSV back into [layers, items] tensors (tests, round trips)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != PLACEMENT_COLUMNS:
        raise ValueError(f"expected the columns {', '.join(PLACEMENT_COLUMNS)}")
    layers = 1 + max(int(r["layer"]) for r in rows)
    items = 1 + max(int(r["item"]) for r in rows)
    out = {name: torch.full((layers, items), -1, dtype=torch.int64) for name in ("pack", "rank_in_pack")}
    out["load"] = torch.zeros(layers, items, dtype=torch.float64)
    for r in rows:
        layer, item = int(r["layer"]), int(r["item"])
        out["pack"][layer, item] = int(r["pack"])
        out["rank_in_pack"][layer, item] = int(r["rank_in_pack"])
        out["load"][layer, item] = float(r["load"])
    return out


def summary_table(result: PackResult) -> list[dict[str, float]]:
    """Per-layer rows of the metrics, plus the run's totals as the last row."""
    metrics = layer_metrics(result.pack_loads, result.weight)
    rows = metrics.rows()
    rows.append({
        "layer": "all",
        "max_load": float(metrics.max_load.sum()),
        "mean_load": float(metrics.mean_load.sum()),
        "imbalance": float(metrics.imbalance.mean()),
        "gap_to_lower_bound": float(metrics.gap_to_lower_bound.mean()),
        "max_gap_to_lower_bound": float(metrics.gap_to_lower_bound.max()),
    })
    return rows
