"""A long comparison cut into steps of layers gives exactly the one-shot results."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from packviz import PRESETS, pack
from packviz.compare import (
    STEP_WORK,
    compare_presets,
    layer_steps,
    merge_results,
    pareto_front,
    recommendation,
    solve_layer,
    table_rows,
    work_per_layer,
)
from packviz.data.generators import generate


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("layers", [1, 7, 58])
def test_steps_cover_every_layer_once_in_order(preset, layers):
    config = PRESETS[preset].config
    steps = layer_steps(layers, 288, 32, config)
    assert [layer for step in steps for layer in step] == list(range(layers))
    assert all(len(step) >= 1 for step in steps)
    # each step but the last holds as many layers as fit the work of one step
    per_step = max(1, STEP_WORK // work_per_layer(288, 32, config))
    assert all(len(step) == min(per_step, layers) for step in steps[:-1])


def test_a_small_run_is_one_step_and_a_long_one_several():
    assert layer_steps(58, 288, 32, PRESETS["eplb"].config) == [range(58)]
    assert layer_steps(58, 288, 32, PRESETS["fast"].config) == [range(58)]
    assert len(layer_steps(58, 288, 32, PRESETS["restarts-2swap"].config)) > 1
    assert len(layer_steps(58, 288, 32, PRESETS["restarts-1swap"].config)) >= 10
    assert layer_steps(0, 288, 32, PRESETS["fast"].config) == []


def test_work_grows_with_restarts_items_and_swaps():
    base = PRESETS["restarts-2swap"].config
    assert work_per_layer(288, 32, base.replace(num_restarts=512)) > work_per_layer(288, 32, base)
    assert work_per_layer(576, 32, base) == 2 * work_per_layer(288, 32, base)
    assert work_per_layer(288, 32, base.replace(two_swap=False)) < work_per_layer(288, 32, base)
    assert work_per_layer(288, 32, base.replace(max_iterations=0)) == 288 * base.num_restarts


@pytest.mark.parametrize("preset", ["restarts-2swap", "best", "fast"])
def test_packing_step_by_step_and_merging_equals_one_run(preset):
    weight = generate("moe", 9, 64, seed=3)
    whole = pack(weight, 8, preset, seed=5)
    config = PRESETS[preset].config.replace(seed=5)
    steps = [range(0, 4), range(4, 5), range(5, 9)]
    parts = [pack(weight[s.start:s.stop], 8, config, seed=5, layer_ids=s) for s in steps]
    merged = merge_results(parts)
    for name in ("pack_index", "rank_in_pack", "pack_loads", "weight"):
        assert torch.equal(getattr(merged, name), getattr(whole, name)), name
    assert merged.elapsed_s == pytest.approx(sum(p.elapsed_s for p in parts))
    assert merged.config == whole.config
    same = compare_presets({preset: merged})[0]
    expected = compare_presets({preset: whole})[0]
    assert same["mean_gap"] == expected["mean_gap"] and same["max_gap"] == expected["max_gap"]


def test_merging_renumbers_traces_and_keeps_a_single_part_as_is():
    weight = generate("moe", 4, 16, seed=1)
    config = PRESETS["fast"].config
    first = pack(weight[:2], 4, config, layer_ids=[0, 1], trace_layers=[1])
    second = pack(weight[2:], 4, config, layer_ids=[2, 3], trace_layers=[0])
    merged = merge_results([first, second])
    assert sorted(merged.traces) == [1, 2]
    assert merged.traces[2] is second.traces[0]
    assert merge_results([first]) is first
    with pytest.raises(ValueError):
        merge_results([])


def test_solve_layer_numbers_the_layer_as_in_the_whole():
    from packviz.optimal import available, solve_optimal

    if not available():
        pytest.skip("ortools is not installed")
    weight = torch.tensor([[5.0, 4, 3, 3, 2, 1], [9.0, 1, 1, 1, 1, 1]])
    found = solve_layer(weight, 2, 1, time_limit_s=5)
    alone = solve_optimal(weight[1:2], 2, time_limit_s=5)[0]
    assert found.layer == 1
    assert (found.status, found.max_load) == (alone.status, alone.max_load) == ("optimal", 11.0)


def _row(name: str, seconds: float, gap: float) -> dict:
    return {"packer": name, "seconds": seconds, "mean_gap": gap, "max_gap": gap, "mean_imbalance": 1.0,
            "time_vs_baseline": None}


ROWS = [_row("eplb", 0.01, 0.05), _row("fast", 0.2, 0.001), _row("best", 1.0, 0.00002),
        _row("restarts-2swap", 2.0, 0.0002), _row("restarts-1swap", 9.0, 0.00002)]


def test_the_pareto_front_leaves_out_what_is_both_slower_and_farther():
    assert pareto_front(ROWS) == ["eplb", "fast", "best"]  # 2swap: slower than best and farther
    # a tie on both counts: neither beats the other
    assert pareto_front([_row("a", 1.0, 0.1), _row("b", 1.0, 0.1)]) == ["a", "b"]
    assert pareto_front([]) == []
    assert [r["pareto"] for r in table_rows(ROWS)] == [True, True, True, False, False]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.1, 1.0, 2.0]), st.sampled_from([0.0, 0.001, 0.01])),
                min_size=1, max_size=8))
def test_every_packer_off_the_front_is_beaten_by_one_on_it(points):
    rows = [_row(f"p{i}", s, g) for i, (s, g) in enumerate(points)]
    front = pareto_front(rows)
    assert front  # the fastest of the nearest is never beaten
    on = [r for r in rows if r["packer"] in front]
    for row in rows:
        if row["packer"] not in front:
            assert any(o["seconds"] <= row["seconds"] and o["mean_gap"] <= row["mean_gap"] for o in on)


def test_the_recommendation_names_the_nearest_packer_within_the_wait():
    assert recommendation(ROWS, 1.0) == ("Within 1 s, pick best: mean gap 0.002% to the lower bound in 1 s.")
    assert recommendation(ROWS, 0.3) == (
        "Within 0.3 s, pick fast: mean gap 0.1% to the lower bound in 0.2 s; best comes nearer "
        "(mean gap 0.002% to the lower bound) but takes 1 s.")
    assert recommendation(ROWS, 0.001).startswith("No packer finishes within 0.001 s here: the fastest, eplb,")
    assert "on the lower bound" in recommendation([_row("best", 0.5, 0.0)], 1.0)


def test_of_nearer_packers_about_as_quick_the_sentence_names_the_nearest():
    rows = [{"packer": "eplb", "mean_gap": 0.0038, "seconds": 0.097},
            {"packer": "fast", "mean_gap": 0.0000734, "seconds": 1.373},
            {"packer": "best", "mean_gap": 0.00002, "seconds": 1.394},
            {"packer": "restarts-1swap", "mean_gap": 0.00001, "seconds": 40.0}]
    sentence = recommendation(rows, 1.0)
    assert sentence.startswith("Within 1 s, pick eplb") and "; best comes nearer" in sentence
    assert "takes 1.4 s" in sentence
