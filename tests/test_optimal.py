"""The exact CP-SAT reference agrees with brute force on small layers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from oracles import balanced_instance, brute_force_optimum

from packviz import PRESETS, pack
from packviz.metrics import lower_bound
from packviz.optimal import available, solve_optimal

pytestmark = pytest.mark.skipif(not available(), reason="ortools is not installed")


@settings(max_examples=15, deadline=None)
@given(instance=balanced_instance(packs=(2, 3), per_pack=(2, 3), max_load=60))
def test_optimum_matches_brute_force_and_bounds_every_packer(instance):
    weight, num_packs = instance
    per_pack = len(weight) // num_packs
    tensor = torch.tensor([weight], dtype=torch.float64)
    [result] = solve_optimal(tensor, num_packs, time_limit_s=10)
    assert result.status == "optimal"
    assert result.max_load == brute_force_optimum(weight, num_packs)
    assert torch.bincount(result.pack_index, minlength=num_packs).tolist() == [per_pack] * num_packs
    assert float(lower_bound(tensor, num_packs)[0]) <= result.max_load + 1e-9
    for preset in PRESETS:
        packed = pack(tensor, num_packs, preset, num_restarts=8, num_refined=2)
        assert float(packed.pack_loads.max()) >= result.max_load - 1e-9


def test_real_loads_are_scaled_and_a_hint_is_used():
    weight = torch.tensor([[1.5, 2.25, 3.0, 0.5, 4.75, 2.0, 1.0, 3.5]])
    hint = pack(weight, 2, "eplb").pack_index
    [result] = solve_optimal(weight, 2, time_limit_s=10, hint=hint)
    assert result.scaled and result.status == "optimal"
    assert result.max_load == pytest.approx(brute_force_optimum(weight[0].tolist(), 2))


def test_the_teaching_sample_optimum(tmp_path):
    from pathlib import Path

    from packviz.data.loaders import read_loads

    weight = read_loads(Path(__file__).resolve().parent.parent / "sample_data" / "teaching_12_items.csv").weight
    [result] = solve_optimal(weight, 3, time_limit_s=20)
    assert result.status == "optimal"
    best = pack(weight, 3, "restarts-2swap")
    assert float(best.pack_loads.max()) >= result.max_load
