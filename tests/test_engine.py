"""The engine's invariants, on every preset, over random shapes."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import packviz
from packviz import PRESETS, pack, replay
from packviz.engine import driver as engine
from packviz.engine import to_units
from packviz.metrics import layer_metrics

# Small option overrides keep hypothesis fast without changing what each preset does.
FAST = {"eplb": {}, "restarts-1swap": {"num_restarts": 64, "num_refined": 8},
        "restarts-2swap": {"num_restarts": 32, "num_refined": 4}, "fast": {}, "best": {}}
PRESET_NAMES = list(PRESETS)


@st.composite
def instances(draw, integer: bool | None = None):
    num_packs = draw(st.integers(1, 6))
    per_pack = draw(st.integers(1, 6))
    num_layers = draw(st.integers(1, 3))
    n = num_packs * per_pack
    use_int = draw(st.booleans()) if integer is None else integer
    values = st.integers(0, 1000) if use_int else st.floats(0, 10000.0, allow_nan=False, allow_infinity=False)
    rows = draw(st.lists(st.lists(values, min_size=n, max_size=n), min_size=num_layers, max_size=num_layers))
    return torch.tensor(rows, dtype=torch.float64), num_packs


def spread(result) -> torch.Tensor:
    return result.pack_loads.amax(1) - result.pack_loads.amin(1)


@pytest.mark.parametrize("preset", PRESET_NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=instances(), seed=st.integers(0, 2**31))
def test_every_pack_gets_exactly_k_items_with_ranks_0_to_k(preset, instance, seed):
    weight, num_packs = instance
    result = pack(weight, num_packs, preset, seed=seed, **FAST[preset])
    per_pack = weight.shape[1] // num_packs
    for layer in range(weight.shape[0]):
        counts = torch.bincount(result.pack_index[layer], minlength=num_packs)
        assert counts.tolist() == [per_pack] * num_packs
        for p in range(num_packs):
            ranks = sorted(result.rank_in_pack[layer][result.pack_index[layer] == p].tolist())
            assert ranks == list(range(per_pack))
    loads = torch.zeros(weight.shape[0], num_packs, dtype=torch.float64)
    loads.scatter_add_(1, result.pack_index, weight)
    torch.testing.assert_close(loads, result.pack_loads)


@pytest.mark.parametrize("preset", PRESET_NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=instances(), seed=st.integers(0, 2**31))
def test_reproducible_and_never_worse_than_plain_greedy(preset, instance, seed):
    weight, num_packs = instance
    first = pack(weight, num_packs, preset, seed=seed, **FAST[preset])
    again = pack(weight.clone(), num_packs, preset, seed=seed, **FAST[preset])
    assert torch.equal(first.pack_index, again.pack_index)
    assert torch.equal(first.rank_in_pack, again.rank_in_pack)
    greedy = pack(weight, num_packs, "eplb")
    tolerance = 1e-9 * weight.amax(1).clamp_min(1) * weight.shape[1]
    # Restart 0 is the plain greedy and no move widens a candidate's spread or
    # raises its heaviest pack; the choice keeps the better of what each
    # preset minimises, so that is what can never be worse than eplb's.
    if first.config.select_by == "spread":
        assert bool((spread(first) <= spread(greedy) + tolerance).all())
    else:
        assert bool((first.pack_loads.amax(1) <= greedy.pack_loads.amax(1) + tolerance).all())


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("factor", [1e-6, 1e6])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=instances(integer=True), seed=st.integers(0, 2**31))
def test_placement_does_not_depend_on_the_unit(preset, factor, instance, seed):
    weight, num_packs = instance
    base = pack(weight, num_packs, preset, seed=seed, **FAST[preset])
    scaled = pack(weight * factor, num_packs, preset, seed=seed, **FAST[preset])
    assert torch.equal(base.pack_index, scaled.pack_index)
    assert torch.equal(base.rank_in_pack, scaled.rank_in_pack)


@pytest.mark.parametrize("preset", PRESET_NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=instances(), seed=st.integers(0, 2**31))
def test_trace_replay_equals_the_result(preset, instance, seed):
    weight, num_packs = instance
    layers = list(range(weight.shape[0]))
    result = pack(weight, num_packs, preset, seed=seed, trace_layers=layers, **FAST[preset])
    for layer in layers:
        trace = result.traces[layer]
        pack_index, rank_in_pack = replay(trace)
        assert torch.equal(pack_index, result.pack_index[layer])
        assert torch.equal(rank_in_pack, result.rank_in_pack[layer])
        chosen = trace.chosen_candidate
        assert chosen.final_spread == pytest.approx(float(spread(result)[layer]), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_full_presets_replay_on_a_realistic_layer(preset):
    generator = torch.Generator().manual_seed(3)
    weight = (torch.rand(2, 64, generator=generator, dtype=torch.float64) ** 3 * 1000).round()
    result = pack(weight, 8, preset, seed=11, trace_layers=[1])
    trace = result.traces[1]
    assert torch.equal(replay(trace)[0], result.pack_index[1])
    assert len(trace.restart_spreads) == result.config.num_restarts
    assert len(trace.candidates) == min(result.config.num_refined, result.config.num_restarts)
    # every recorded move narrows the candidate's spread or keeps it
    for candidate in trace.candidates:
        history = candidate.spread_history
        assert all(b <= a + 1e-9 for a, b in itertools.pairwise(history))


@pytest.mark.parametrize("preset", ["eplb", "restarts-2swap", "best"])
def test_numpy_and_torch_fills_decide_alike(preset, monkeypatch):
    weight = (torch.rand(5, 60, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 50).round()
    numpy_fill = pack(weight, 6, preset, num_restarts=16, num_refined=4)
    monkeypatch.setattr(engine, "NUMPY_FILL_MAX_CELLS", 0)
    torch_fill = pack(weight, 6, preset, num_restarts=16, num_refined=4)
    assert torch.equal(numpy_fill.pack_index, torch_fill.pack_index)
    assert torch.equal(numpy_fill.rank_in_pack, torch_fill.rank_in_pack)


def test_tracing_does_not_change_the_placement():
    weight = torch.rand(4, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plain = pack(weight, 6, "restarts-2swap", seed=5)
    traced = pack(weight, 6, "restarts-2swap", seed=5, trace_layers=[0, 3])
    assert torch.equal(plain.pack_index, traced.pack_index)
    assert set(traced.traces) == {0, 3}


def test_layers_are_packed_independently():
    weight = torch.rand(5, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    whole = pack(weight, 8, seed=3)
    # the noise of a layer depends on its index, not on its neighbours' values
    changed = weight.clone()
    changed[0] = changed[0].flip(0)
    assert torch.equal(pack(changed, 8, seed=3).pack_index[1:], whole.pack_index[1:])


def test_one_layer_packed_alone_matches_its_row_in_the_matrix():
    weight = torch.rand(6, 48, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    whole = pack(weight, 8, seed=2)
    alone = pack(weight[4:5], 8, seed=2, layer_ids=[4], trace_layers=[0])
    assert torch.equal(alone.pack_index[0], whole.pack_index[4])
    assert alone.traces[0].layer == 4


def test_different_seeds_explore_different_restarts():
    weight = torch.rand(1, 96, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = pack(weight, 8, seed=1, trace_layers=[0]).traces[0].restart_spreads
    b = pack(weight, 8, seed=2, trace_layers=[0]).traces[0].restart_spreads
    assert a[0] == b[0]  # restart 0 is the unperturbed greedy
    assert a[1:] != b[1:]


def test_one_item_per_pack_is_the_identity():
    weight = torch.tensor([[5.0, 1.0, 3.0, 2.0]])
    for preset in PRESET_NAMES:
        result = pack(weight, 4, preset)
        assert result.pack_index.tolist() == [[0, 1, 2, 3]]
        assert result.rank_in_pack.tolist() == [[0, 0, 0, 0]]


def test_one_pack_holds_everything():
    weight = torch.tensor([3.0, 1.0, 2.0])
    result = pack(weight, 1)
    assert result.pack_index.tolist() == [[0, 0, 0]]
    assert sorted(result.rank_in_pack[0].tolist()) == [0, 1, 2]
    assert result.pack_loads.tolist() == [[6.0]]


@pytest.mark.parametrize("weight", [torch.zeros(2, 12), torch.full((2, 12), 7.0)])
def test_equal_loads_and_zeros_are_perfectly_balanced(weight):
    for preset in PRESET_NAMES:
        result = pack(weight, 4, preset)
        assert bool((spread(result) == 0).all())


def test_large_token_counts_are_summed_exactly():
    weight = torch.tensor([[1e12 + 1, 1e12, 1e12 + 3, 1e12 + 2, 5.0, 7.0, 1.0, 2.0]], dtype=torch.float64)
    result = pack(weight, 4, "restarts-2swap")
    loads = [sum(int(w) for w, p in zip(weight[0].tolist(), result.pack_index[0].tolist()) if p == q)
             for q in range(4)]
    assert [int(v) for v in result.pack_loads[0].tolist()] == loads


def test_two_swap_memory_is_bounded_with_32_items_per_pack():
    weight = torch.rand(4, 32 * 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    result = pack(weight, 8, "restarts-2swap", two_swap_max_pack_size=None, num_restarts=16, num_refined=4)
    assert torch.bincount(result.pack_index[0]).tolist() == [32] * 8


def test_units_are_whole_numbers_below_2_to_the_53():
    weight = torch.rand(3, 100, dtype=torch.float64) * 1e12
    units = to_units(weight, 1e-9)
    assert bool((units == units.round()).all())
    assert float(units.sum(1).max()) < 2**53


def test_seed_presets_improve_on_the_greedy_on_skewed_loads():
    generator = torch.Generator().manual_seed(7)
    weight = torch.exp(torch.randn(8, 128, generator=generator, dtype=torch.float64))
    greedy = layer_metrics(pack(weight, 16, "eplb").pack_loads, weight).gap_to_lower_bound.mean()
    for preset in ("restarts-1swap", "restarts-2swap"):
        gap = layer_metrics(pack(weight, 16, preset).pack_loads, weight).gap_to_lower_bound.mean()
        assert float(gap) < 0.25 * float(greedy)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_cuda_gives_the_cpu_placement(preset):
    weight = torch.rand(6, 96, generator=torch.Generator().manual_seed(9), dtype=torch.float64) * 1000
    cpu = pack(weight, 12, preset, seed=4, device="cpu")
    cuda = pack(weight, 12, preset, seed=4, device="cuda", trace_layers=[2])
    assert cuda.device.startswith("cuda")
    assert torch.equal(cpu.pack_index, cuda.pack_index)
    assert torch.equal(cpu.rank_in_pack, cuda.rank_in_pack)
    assert torch.equal(replay(cuda.traces[2])[0], cuda.pack_index[2])


def test_public_api_names():
    assert set(packviz.PRESETS) >= {"eplb", "restarts-1swap", "restarts-2swap"}
    for preset in packviz.PRESETS.values():
        assert preset.description


@pytest.mark.parametrize("kind", ["spread", "variance"])
def test_the_binary_search_finds_the_best_two_for_two_exchange(kind):
    generator = torch.Generator().manual_seed(12)
    sums_a = torch.randint(0, 200, (300, 15), generator=generator).double()
    sums_b = torch.randint(0, 200, (300, 15), generator=generator).double()
    difference = torch.randint(-50, 400, (300,), generator=generator).double()
    value, flat = engine._best_exchange(sums_a, sums_b, difference, kind, torch.zeros(300, dtype=torch.float64))
    moved = sums_a.unsqueeze(2) - sums_b.unsqueeze(1)
    every = engine._score(moved, difference[:, None, None], kind).reshape(300, -1)
    assert torch.equal(value, every.amax(dim=1))
    assert torch.equal(every.gather(1, flat.unsqueeze(1)).squeeze(1), value)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(2, 7), st.data())
def test_differencing_fill_is_the_differencing_method(num_packs, per_pack, data):
    from oracles import differencing_oracle

    n = num_packs * per_pack
    loads = data.draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    weight = torch.tensor([loads], dtype=torch.float64)
    units = to_units(weight, 1e-12)
    order = torch.sort(units, dim=1, descending=True, stable=True).indices
    pack_of_step, rank_of_step = engine._differencing_fill(units.gather(1, order), num_packs,
                                                           engine.tie_window(n))
    pack_of = [0] * n
    for step, item in enumerate(order[0].tolist()):
        pack_of[item] = int(pack_of_step[0, step])
    assert pack_of == differencing_oracle([float(v) for v in loads], num_packs)
    # each pack takes one item of every run of m steps, in step order
    assert rank_of_step[0].tolist() == [step // num_packs for step in range(n)]


def test_differencing_start_keeps_the_greedy_as_restart_zero():
    weight = torch.tensor([[88.0, 82, 47, 45, 4, 81, 33, 50, 23, 62, 3, 40]])
    traced = pack(weight, 3, "fast", trace_layers=[0], max_iterations=0, num_refined=2)
    greedy = pack(weight, 3, "eplb", trace_layers=[0]).traces[0].candidates[0]
    restarts = {candidate.restart: candidate for candidate in traced.traces[0].candidates}
    assert [event.rule for event in (restarts[0].events[0], restarts[1].events[0])] == ["greedy", "differencing"]
    assert restarts[0].placements == greedy.placements
    # the differencing fill is the even one here: spread 2 against the greedy's 18
    for restart, spread_after_fill in ((0, 18.0), (1, 2.0)):
        loads = [sum(weight[0, p.item].item() for p in restarts[restart].placements if p.pack == pack)
                 for pack in range(3)]
        assert max(loads) - min(loads) == spread_after_fill
    # ... and it is the one chosen, refined or not
    assert traced.traces[0].choice.restart == 1
    assert float(pack(weight, 3, "fast").pack_loads.max()) <= 187.0


def test_small_cpu_runs_use_one_thread_and_give_the_count_back(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    cpu = torch.device("cpu")
    with engine.threads_for(cpu, engine.SINGLE_THREAD_MAX_CELLS):
        pass
    with engine.threads_for(cpu, engine.SINGLE_THREAD_MAX_CELLS + 1):
        pass
    assert seen == [1, 2]  # the small run only, and the count restored after it
    with pytest.raises(RuntimeError), engine.threads_for(cpu, 10):
        raise RuntimeError("a failing run")
    assert seen == [1, 2, 1, 2]
    with engine.threads_for(torch.device("cuda"), 10):
        pass
    assert seen == [1, 2, 1, 2]
    assert before >= 1


# Every swap scope and score, 1-swaps alone, 2-swaps alone and 2-swaps only when stuck.
REFINE_VARIANTS = [{}, {"swap_scope": "extremes", "swap_score": "variance"}, {"swap_scope": "top-k", "scope_k": 3},
                   {"swap_scope": "heaviest-vs-all"}, {"one_swap": False}, {"two_swap": False},
                   {"two_swap_when_stuck": True, "swap_score": "variance"}, {"stop_at_lower_bound": False}]


@st.composite
def small_loads(draw):
    """Random, tie-heavy, all-equal and zero-heavy layers, small enough for the NumPy refinement."""
    num_packs, per_pack, num_layers = draw(st.integers(1, 6)), draw(st.integers(1, 8)), draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["random", "ties", "equal", "zeros"]))
    values = {"random": st.floats(0, 1e6, allow_nan=False), "ties": st.sampled_from([1.0, 2.0, 3.0, 5.0]),
              "equal": st.just(7.0), "zeros": st.sampled_from([0.0, 0.0, 0.0, 0.0, 1.0, 40.0])}[kind]
    n = num_packs * per_pack
    rows = draw(st.lists(st.lists(values, min_size=n, max_size=n), min_size=num_layers, max_size=num_layers))
    return torch.tensor(rows, dtype=torch.float64), num_packs


@pytest.mark.parametrize("preset", PRESET_NAMES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance=small_loads(), variant=st.sampled_from(REFINE_VARIANTS), seed=st.integers(0, 2**31))
def test_numpy_and_torch_refinements_decide_alike(preset, instance, variant, seed):
    weight, num_packs = instance
    options = {**FAST[preset], **(variant if PRESETS[preset].config.refines else {})}
    numpy_refine = pack(weight, num_packs, preset, seed=seed, **options)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "NUMPY_REFINE_MAX_CELLS", 0)
        torch_refine = pack(weight, num_packs, preset, seed=seed, **options)
    assert torch.equal(numpy_refine.pack_index, torch_refine.pack_index)
    assert torch.equal(numpy_refine.rank_in_pack, torch_refine.rank_in_pack)


def test_numpy_refinement_runs_on_tiny_inputs_only(monkeypatch):
    """The README example takes the NumPy path; the traced run and a larger input keep torch's."""
    calls = []
    original = engine.refine_numpy.refine
    monkeypatch.setattr(engine.refine_numpy, "refine", lambda *args: calls.append(1) or original(*args))
    readme = torch.tensor([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                           [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]], dtype=torch.float64)
    pack(readme, 4, "fast")
    assert len(calls) == 1
    pack(readme, 4, "fast", trace_layers=[0])
    pack(torch.rand(64, 128, generator=torch.Generator().manual_seed(0), dtype=torch.float64), 8, "fast")
    assert len(calls) == 1
