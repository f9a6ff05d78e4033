"""What a placement is written as: CSV for people, JSON for serving engines."""

from __future__ import annotations

import csv
import io
import json

import torch

from packviz.data.experts import SlotMap
from packviz.metrics import layer_metrics
from packviz.packer import PackResult
from packviz.text import sum_text

PLACEMENT_COLUMNS = ("layer", "item", "pack", "rank_in_pack", "load", "expert", "replica")
SUMMARY_COLUMNS = ("layer", "pack", "items", "experts", "load", "share_of_layer")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _slots_of(result: PackResult, slots: SlotMap | None) -> SlotMap:
    if slots is None:
        return SlotMap.identity(result.num_layers, result.num_items)
    if (slots.num_layers, slots.num_slots) != (result.num_layers, result.num_items):
        raise ValueError(f"the slot map is {slots.num_layers} x {slots.num_slots}, the placement "
                         f"{result.num_layers} x {result.num_items}")
    return slots


def placement_csv(result: PackResult, slots: SlotMap | None = None) -> str:
    """One row per item, sorted by layer then item: where it went, and which
    expert (and replica of it) the item is; ``expert_name`` where the data named
    its columns. Without a slot map every item is its own expert."""
    slots = _slots_of(result, slots)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    named = slots.expert_names is not None
    writer.writerow((*PLACEMENT_COLUMNS, "expert_name") if named else PLACEMENT_COLUMNS)
    packs = result.pack_index.tolist()
    ranks = result.rank_in_pack.tolist()
    weight = result.weight.tolist()
    experts = slots.phy2log.tolist()
    replicas = slots.replica_rank.tolist()
    for layer in range(result.num_layers):
        for item in range(result.num_items):
            expert = experts[layer][item]
            row = (layer, item, packs[layer][item], ranks[layer][item], _number(weight[layer][item]), expert,
                   replicas[layer][item])
            writer.writerow((*row, slots.expert_name(expert)) if named else row)
    return out.getvalue()


def pack_summary_csv(result: PackResult, slots: SlotMap | None = None) -> str:
    """One row per pack: its items and their experts (by rank), and its load."""
    slots = _slots_of(result, slots)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    table = slot_items(result).tolist()
    experts = slots.phy2log.tolist()
    loads = result.pack_loads.tolist()
    per_pack = result.num_items // result.num_packs
    for layer in range(result.num_layers):
        total = sum(loads[layer]) or 1.0
        for p in range(result.num_packs):
            items = table[layer][p * per_pack:(p + 1) * per_pack]
            writer.writerow((layer, p, " ".join(map(str, items)),
                             " ".join(slots.expert_name(experts[layer][i]) for i in items),
                             sum_text(loads[layer][p]), f"{loads[layer][p] / total:.6f}"))
    return out.getvalue()


def slot_items(result: PackResult) -> torch.Tensor:
    """[layers, items]: the item in each physical slot, slot = pack * k + rank."""
    per_pack = result.num_items // result.num_packs
    slots = result.pack_index * per_pack + result.rank_in_pack
    table = torch.empty_like(slots)
    items = torch.arange(result.num_items).expand(result.num_layers, -1)
    return table.scatter_(1, slots, items)


def physical_to_logical(result: PackResult, slots: SlotMap | None = None) -> torch.Tensor:
    """[layers, items]: the logical expert in each physical slot (GPU g holds
    slots g*k .. g*k+k-1), as SGLang's ``physical_to_logical_map``."""
    return _slots_of(result, slots).phy2log.gather(1, slot_items(result))


def sglang_json(result: PackResult, slots: SlotMap | None = None) -> str:
    """SGLang's ``--init-expert-location`` file: ``physical_to_logical_map`` of logical expert ids."""
    return json.dumps({"physical_to_logical_map": physical_to_logical(result, slots).tolist()})


def check_sglang_map(physical_to_logical_map: list[list[int]], num_experts: int, num_slots: int) -> torch.Tensor:
    """SGLang's rules for a ``physical_to_logical_map``: [layers, num_slots]
    ints, every id in 0..num_experts-1 and every expert present in every
    layer. Returns each layer's replica count per expert [layers, num_experts]."""
    table = torch.tensor(physical_to_logical_map, dtype=torch.int64)
    if table.dim() != 2 or table.shape[1] != num_slots:
        raise ValueError(f"expected [layers, {num_slots}] expert ids, got shape {tuple(table.shape)}")
    if bool(((table < 0) | (table >= num_experts)).any()):
        raise ValueError(f"expert ids must lie in 0..{num_experts - 1}")
    counts = torch.stack([torch.bincount(row, minlength=num_experts) for row in table])
    if bool((counts == 0).any()):
        layer, expert = (int(v) for v in (counts == 0).nonzero()[0])
        raise ValueError(f"layer {layer} has no slot for expert {expert}")
    return counts


def parse_placement_csv(text: str) -> dict[str, torch.Tensor]:
    """Read a placement CSV back into [layers, items] tensors (tests, round trips)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or tuple(rows[0])[:len(PLACEMENT_COLUMNS)] != PLACEMENT_COLUMNS:
        raise ValueError(f"expected the columns {', '.join(PLACEMENT_COLUMNS)}")
    layers = 1 + max(int(r["layer"]) for r in rows)
    items = 1 + max(int(r["item"]) for r in rows)
    integer_columns = ("pack", "rank_in_pack", "expert", "replica")
    out = {name: torch.full((layers, items), -1, dtype=torch.int64) for name in integer_columns}
    out["load"] = torch.zeros(layers, items, dtype=torch.float64)
    for r in rows:
        layer, item = int(r["layer"]), int(r["item"])
        for name in integer_columns:
            out[name][layer, item] = int(r[name])
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


def overview_rows(result: PackResult) -> list[dict[str, float]]:
    """Per-layer rows for people: loads as numbers, every ratio in percent, as the charts show them."""
    metrics = layer_metrics(result.pack_loads, result.weight)
    return [
        {"layer": layer, "max load": float(metrics.max_load[layer]), "min load": float(metrics.min_load[layer]),
         "mean load": float(metrics.mean_load[layer]), "lower bound": float(metrics.lower_bound[layer]),
         "gap to LB (%)": 100 * float(metrics.gap_to_lower_bound[layer]),
         "max/mean - 1 (%)": 100 * float(metrics.imbalance[layer] - 1),
         "spread": float(metrics.spread[layer])}
        for layer in range(result.num_layers)
    ]
