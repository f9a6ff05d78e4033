"""Every input that once broke packviz, kept as a test (the files are in tests/repro/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from packviz import PRESETS, pack
from packviz.eplb import rebalance_experts

REPRO = Path(__file__).parent / "repro"


def _valid(result, num_packs: int) -> None:
    per_pack = result.num_items // num_packs
    for row in range(result.num_layers):
        slots = (result.pack_index[row] * per_pack + result.rank_in_pack[row]).sort().values
        assert slots.tolist() == list(range(result.num_items))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_near_tie_96_items_16_packs(preset):
    case = json.loads((REPRO / "near_tie_96_items_16_packs.json").read_text())
    weight = torch.tensor([case["loads"]], dtype=torch.float64)
    for seed in range(3):
        result = pack(weight, case["num_packs"], preset, seed=seed)
        _valid(result, case["num_packs"])
        greedy = pack(weight, case["num_packs"], "eplb")
        assert float(result.pack_loads.max()) <= float(greedy.pack_loads.max())


def test_near_tie_96_items_through_rebalance_experts():
    case = json.loads((REPRO / "near_tie_96_items_16_packs.json").read_text())
    weight = torch.tensor([case["loads"]], dtype=torch.float64)
    placement = rebalance_experts(weight, 96, None, 1, 16, packer="best")
    assert sorted(placement.phy2log[0].tolist()) == list(range(96))
