"""Lower bounds, metrics, input validation and the eplb preset against DeepSeek's greedy."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from oracles import balanced_instance, brute_force_optimum

from packviz import pack
from packviz.eplb import replicate_experts
from packviz.metrics import layer_metrics, lower_bound, lower_bounds


def _deepseek_greedy(weight: list[float], num_packs: int) -> list[int]:
    """DeepSeek's loop, written out plainly, as the oracle for the eplb preset."""
    per_pack = len(weight) // num_packs
    order = sorted(range(len(weight)), key=lambda i: -weight[i])
    loads, counts, packs = [0.0] * num_packs, [0] * num_packs, [0] * len(weight)
    for item in order:
        pack_id = min((p for p in range(num_packs) if counts[p] < per_pack), key=loads.__getitem__)
        packs[item] = pack_id
        loads[pack_id] += weight[item]
        counts[pack_id] += 1
    return packs


@settings(max_examples=60, deadline=None)
@given(instance=balanced_instance(packs=(1, 6), per_pack=(2, 6), max_load=500))
def test_eplb_preset_is_deepseeks_greedy(instance):
    weight, num_packs = instance
    result = pack(torch.tensor([weight], dtype=torch.float64), num_packs, "eplb")
    assert result.pack_index[0].tolist() == _deepseek_greedy(weight, num_packs)


def test_replicate_gives_slots_to_the_hottest_per_replica():
    phy2log, rank, logcnt = replicate_experts(torch.tensor([[10.0, 1.0, 4.0]]), 5)
    assert phy2log.tolist() == [[0, 1, 2, 0, 0]]
    assert rank.tolist() == [[0, 0, 0, 1, 2]]
    assert logcnt.tolist() == [[3, 1, 1]]


@settings(max_examples=40, deadline=None)
@given(instance=balanced_instance(packs=(1, 4), per_pack=(1, 3), max_load=100))
def test_lower_bound_never_exceeds_the_optimum(instance):
    weight, num_packs = instance
    bound = float(lower_bound(torch.tensor([weight], dtype=torch.float64), num_packs)[0])
    assert bound <= brute_force_optimum(weight, num_packs) + 1e-9


def test_lower_bound_family_on_a_known_case():
    # 4 items into 2 packs of 2: L0 = 10, L1 = 7 + 0, L_1 = (w2 + w3) + 0 = 3 + ... see docstring
    bounds = lower_bounds(torch.tensor([[7.0, 6.0, 5.0, 2.0]]), 2)
    assert bounds[0].tolist() == [10.0, 9.0, 11.0]
    assert float(lower_bound(torch.tensor([[7.0, 6.0, 5.0, 2.0]]), 2)[0]) == 11.0


def test_metrics_of_a_placement():
    weight = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    result = pack(weight, 2, "eplb")
    metrics = layer_metrics(result.pack_loads, weight)
    assert metrics.max_load.tolist() == [5.0]
    assert metrics.spread.tolist() == [0.0]
    assert metrics.imbalance.tolist() == [1.0]
    assert metrics.gap_to_lower_bound.tolist() == [0.0]
    row = metrics.rows()[0]
    assert row["layer"] == 0 and row["balancedness"] == 1.0


def test_all_zero_layer_has_no_gap():
    metrics = layer_metrics(torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 4))
    assert metrics.gap_to_lower_bound.tolist() == [0.0]
    assert metrics.imbalance.tolist() == [1.0]


@pytest.mark.parametrize(
    ("weight", "packs", "options", "message"),
    [
        (torch.ones(2, 12), 5, {}, "pack counts that work: 1, 2, 3, 4, 6, 12"),
        (torch.ones(2, 4), 8, {}, "at least one item per pack"),
        (torch.tensor([[1.0, -2.0]]), 1, {}, "layer 0, item 1 is negative"),
        (torch.tensor([[1.0, float("nan")]]), 1, {}, "not a number"),
        (torch.tensor([[1.0, float("inf")]]), 1, {}, "infinite"),
        (torch.ones(0, 4), 2, {}, "empty"),
        (torch.ones(2, 2, 2), 2, {}, "3 dimensions"),
        (torch.ones(1, 4), 2, {"preset": "fastest"}, "unknown preset 'fastest'"),
        (torch.ones(1, 4), 2, {"num_restart": 3}, "unknown option(s) num_restart"),
        (torch.ones(1, 4), 2, {"noise_min": 0.5, "noise_max": 0.1}, "must not exceed"),
        (torch.ones(1, 4), 2, {"swap_scope": "everywhere"}, "swap_scope must be one of"),
        (torch.ones(1, 4), 0, {}, "at least 1"),
    ],
)
def test_bad_input_says_what_is_wrong(weight, packs, options, message):
    with pytest.raises(ValueError, match=None) as error:
        pack(weight, packs, **options)
    assert message in str(error.value)
