"""Every export read back and checked against the engine's placement and SGLang's rules."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from packviz import pack
from packviz.data.experts import SlotMap, replicate
from packviz.data.generators import moe
from packviz.io.export import (
    check_sglang_map,
    overview_rows,
    pack_summary_csv,
    parse_placement_csv,
    physical_to_logical,
    placement_csv,
    sglang_json,
)


@pytest.fixture(scope="module")
def replicated():
    logical = moe(3, 16, seed=4)
    names = tuple(f"e{i}" for i in range(16))
    weight, slots = replicate(logical, 24, names)
    result = pack(weight, 6, "fast")
    return logical, weight, slots, result


def test_replicas_carry_their_experts_share(replicated):
    logical, weight, slots, _ = replicated
    assert slots.replicated and slots.num_experts == 16 and slots.num_slots == 24
    expected = logical.gather(1, slots.phy2log) / slots.logcnt.gather(1, slots.phy2log)
    assert torch.equal(weight, expected)
    # every expert's replicas are numbered 0..count-1
    for layer in range(3):
        for expert in range(16):
            ranks = sorted(slots.replica_rank[layer][slots.phy2log[layer] == expert].tolist())
            assert ranks == list(range(int(slots.logcnt[layer, expert])))


def test_placement_csv_names_expert_and_replica(replicated):
    _, weight, slots, result = replicated
    text = placement_csv(result, slots)
    header = next(csv.reader(io.StringIO(text)))
    assert header == ["layer", "item", "pack", "rank_in_pack", "load", "expert", "replica", "expert_name"]
    back = parse_placement_csv(text)
    assert torch.equal(back["pack"], result.pack_index)
    assert torch.equal(back["rank_in_pack"], result.rank_in_pack)
    assert torch.equal(back["expert"], slots.phy2log)
    assert torch.equal(back["replica"], slots.replica_rank)
    assert torch.allclose(back["load"], weight, rtol=0, atol=0)
    names = [row["expert_name"] for row in csv.DictReader(io.StringIO(text))]
    assert names == [f"e{e}" for e in slots.phy2log.reshape(-1).tolist()]


def test_sglang_json_holds_logical_ids_that_follow_the_placement(replicated):
    _, _, slots, result = replicated
    table = json.loads(sglang_json(result, slots))["physical_to_logical_map"]
    counts = check_sglang_map(table, num_experts=16, num_slots=24)
    assert torch.equal(counts, slots.logcnt)
    per_pack = result.num_items // result.num_packs
    for layer in range(result.num_layers):
        for item in range(result.num_items):
            physical = int(result.pack_index[layer, item]) * per_pack + int(result.rank_in_pack[layer, item])
            assert table[layer][physical] == int(slots.phy2log[layer, item])


def test_without_a_map_items_are_their_own_experts():
    weight = torch.tensor([[5.0, 1.0, 4.0, 2.0, 3.0, 3.0]])
    result = pack(weight, 3, "eplb")
    back = parse_placement_csv(placement_csv(result))
    assert back["expert"].tolist() == [list(range(6))] and back["replica"].tolist() == [[0] * 6]
    table = physical_to_logical(result)
    assert sorted(table[0].tolist()) == list(range(6))
    check_sglang_map(table.tolist(), num_experts=6, num_slots=6)


def test_pack_summary_lists_items_and_experts(replicated):
    _, _, slots, result = replicated
    rows = list(csv.DictReader(io.StringIO(pack_summary_csv(result, slots))))
    assert len(rows) == result.num_layers * result.num_packs
    for row in rows:
        layer, pack_id = int(row["layer"]), int(row["pack"])
        items = [int(i) for i in row["items"].split()]
        assert all(int(result.pack_index[layer, i]) == pack_id for i in items)
        assert row["experts"].split() == [f"e{int(slots.phy2log[layer, i])}" for i in items]
        assert float(row["load"]) == pytest.approx(float(result.pack_loads[layer, pack_id]))


@pytest.mark.parametrize(("table", "message"), [
    ([[0, 1, 2, 7]], "0..3"),
    ([[0, 1, 1, 2]], "no slot for expert 3"),
    ([[0, 1, 2]], "expected \\[layers, 4\\]"),
])
def test_sglang_rules_refuse_bad_maps(table, message):
    with pytest.raises(ValueError, match=message):
        check_sglang_map(table, num_experts=4, num_slots=4)


def test_a_map_of_the_wrong_size_is_refused(replicated):
    _, _, _, result = replicated
    with pytest.raises(ValueError, match="slot map"):
        placement_csv(result, SlotMap.identity(3, 16))


def test_item_labels_name_expert_and_replica():
    _, slots = replicate(torch.tensor([[10.0, 1.0, 4.0]]), 5, ("hot", "cold", "warm"))
    assert slots.item_labels(0) == ["expert 0 'hot' (replica 1 of 3)", "expert 1 'cold'", "expert 2 'warm'",
                                    "expert 0 'hot' (replica 2 of 3)", "expert 0 'hot' (replica 3 of 3)"]
    assert SlotMap.identity(1, 2).item_labels(0) == ["expert 0", "expert 1"]


def test_overview_rows_show_percent_like_the_charts(replicated):
    from packviz.metrics import layer_metrics
    from packviz.viz.figures import overview_figure

    _, _, _, result = replicated
    rows = overview_rows(result)
    figure = overview_figure(layer_metrics(result.pack_loads, result.weight))
    assert [row["gap to LB (%)"] for row in rows] == pytest.approx(list(figure.data[0].y))
    assert [row["max/mean - 1 (%)"] for row in rows] == pytest.approx(list(figure.data[1].y))
    assert all(row["max load"] == pytest.approx(float(result.pack_loads[row["layer"]].max())) for row in rows)
    # two axes: a skewed layer's imbalance cannot flatten the gap bars
    assert figure.data[0].yaxis != figure.data[1].yaxis


def test_a_one_layer_heatmap_has_whole_layer_ticks():
    from packviz.viz.figures import heatmap_figure

    figure = heatmap_figure(torch.ones(1, 6))
    assert list(figure.data[0].y) == [0]
    assert figure.layout.yaxis.dtick == 1 and figure.layout.yaxis.tickmode == "linear"
