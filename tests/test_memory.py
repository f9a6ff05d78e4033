"""Memory bounded by the data: the blocked crowding bound gives exactly the
values of the whole-grid one, blocks and chunks never change a placement, and
``packviz.limits`` estimates at least what a run really takes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from packviz import PRESETS, limits, metrics, pack
from packviz.config import DEFAULT_PRESET, resolve_config
from packviz.data.generators import generate, moe, replicate_hot
from packviz.engine import driver as engine
from packviz.metrics import crowding_bound, lower_bound

ROOT = Path(__file__).resolve().parent.parent


# The crowding bound and lower_bound as they were before blocking: [L, m, m]
# tensors per t. Kept verbatim as the oracle of the values.
def _oracle_prefix(weight: torch.Tensor) -> torch.Tensor:
    descending = torch.sort(weight, dim=1, descending=True).values
    return torch.nn.functional.pad(descending.cumsum(dim=1), (1, 0))


def _oracle_family_bounds(prefix: torch.Tensor, num_packs: int) -> torch.Tensor:
    num_items = prefix.shape[1] - 1
    per_pack = num_items // num_packs
    total = prefix[:, -1]

    def smallest(count: int) -> torch.Tensor:
        return total - prefix[:, num_items - count]

    bounds = [total / num_packs, prefix[:, 1] + smallest(per_pack - 1)]
    for t in range(1, per_pack):
        top = prefix[:, t * num_packs + 1] - prefix[:, t * num_packs - t]
        bounds.append(top + smallest(per_pack - t - 1))
    return torch.stack(bounds, dim=1)


def _oracle_crowding_bound(prefix: torch.Tensor, num_packs: int) -> torch.Tensor:
    num_layers, num_items = prefix.shape[0], prefix.shape[1] - 1
    per_pack = num_items // num_packs
    total = prefix[:, -1:]
    best = torch.zeros(num_layers, dtype=torch.float64, device=prefix.device)
    j = torch.arange(1, num_packs + 1, device=prefix.device).view(-1, 1)
    d = torch.arange(1, num_packs + 1, device=prefix.device).view(1, -1)
    for t in range(1, per_pack):
        top = t * num_packs + j  # [J, 1]
        usable = top <= num_items
        in_crowded = t * d + torch.maximum(j, d)
        slots_left = d * per_pack - in_crowded
        feasible = (slots_left >= 0) & usable & (in_crowded <= top)
        top_clamped = top.clamp(max=num_items).expand(num_packs, num_packs)
        count = in_crowded.clamp(max=num_items)
        lightest_top = prefix[:, top_clamped] - prefix[:, (top_clamped - count).clamp(min=0)]
        rest = slots_left.clamp(min=0).minimum(num_items - top_clamped)
        smallest = total.unsqueeze(2) - prefix[:, num_items - rest]
        per_d = (lightest_top + smallest) / d
        per_d = torch.where(feasible, per_d, torch.full_like(per_d, float("inf")))
        per_j = per_d.amin(dim=2)
        per_j = torch.where(usable.view(1, -1), per_j, torch.zeros_like(per_j))
        best = torch.maximum(best, per_j.amax(dim=1))
    return best


def _oracle_lower_bound(weight: torch.Tensor, num_packs: int) -> torch.Tensor:
    prefix = _oracle_prefix(weight)
    bound = torch.maximum(_oracle_family_bounds(prefix, num_packs).amax(dim=1),
                          _oracle_crowding_bound(prefix, num_packs))
    whole = (weight == weight.round()).all(dim=1)
    rounded = torch.ceil(bound - 1e-9 * bound.abs().clamp_min(1.0))
    return torch.where(whole, torch.maximum(rounded, bound.floor()), bound)


def _random_layers(generator: torch.Generator, num_layers: int, num_items: int, kind: int) -> torch.Tensor:
    if kind == 0:  # whole numbers with many ties
        return torch.randint(0, 40, (num_layers, num_items), generator=generator).double()
    if kind == 1:  # a few heavy items and a long tail
        return torch.rand(num_layers, num_items, generator=generator, dtype=torch.float64) ** 4 * 1000
    if kind == 2:  # near-equal replicas
        return torch.randint(0, 3, (num_layers, num_items), generator=generator).double() * 7 + 100
    if kind == 3:
        return torch.zeros(num_layers, num_items, dtype=torch.float64)
    return torch.rand(num_layers, num_items, generator=generator, dtype=torch.float64) * 1e4


def _assert_same_values(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize(("block", "promising"), [(None, None), (64, 1), (1, 1)])
def test_blocked_bounds_equal_the_whole_grid_on_random_small_layers(block, promising, monkeypatch):
    # Tiny blocks and a single promising case walk every band and every skip.
    if block is not None:
        monkeypatch.setattr(metrics, "CROWDING_BLOCK_ELEMENTS", block)
        monkeypatch.setattr(metrics, "_PROMISING_CASES", promising)
    generator = torch.Generator().manual_seed(7)
    for trial in range(120):
        num_packs = int(torch.randint(1, 24, (1,), generator=generator))
        per_pack = int(torch.randint(1, 9, (1,), generator=generator))
        num_layers = int(torch.randint(1, 5, (1,), generator=generator))
        weight = _random_layers(generator, num_layers, num_packs * per_pack, trial % 5)
        _assert_same_values(crowding_bound(weight, num_packs), _oracle_crowding_bound(_oracle_prefix(weight),
                                                                                      num_packs))
        _assert_same_values(lower_bound(weight, num_packs), _oracle_lower_bound(weight, num_packs))


@pytest.mark.parametrize(("weight", "num_packs"), [
    (moe(3, 2048, seed=3), 512),
    (replicate_hot(moe(6, 256, seed=1), 288), 32),
    (generate("zipf", 4, 1024, seed=5), 64),
    (generate("lognormal", 3, 1200, seed=6, integer=False), 2),
    (generate("hot", 5, 256, seed=2), 128),
])
def test_blocked_bounds_equal_the_whole_grid_on_medium_layers(weight, num_packs):
    _assert_same_values(lower_bound(weight, num_packs), _oracle_lower_bound(weight, num_packs))


def test_sums_that_overflow_give_the_same_values():
    # inf - inf is NaN: no case may be skipped on a comparison with it.
    weight = torch.tensor([[1e308, 1e308, 1e308, 5.0, 1.0, 2.0], [3.0, 1.0, 4.0, 1.0, 5.0, 9.0]])
    _assert_same_values(crowding_bound(weight, 2), _oracle_crowding_bound(_oracle_prefix(weight), 2))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_blocks_and_chunks_do_not_change_the_placement(preset, monkeypatch):
    weight = (torch.rand(5, 96, generator=torch.Generator().manual_seed(3), dtype=torch.float64) ** 3 * 500).round()
    options = {"num_restarts": 16, "num_refined": 4} if preset.startswith("restarts") else {}
    whole = pack(weight, 8, preset, trace_layers=[0, 4], **options)
    # one layer per chunk, one (candidate, pack pair) per refinement block
    monkeypatch.setattr(engine, "_CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(engine, "REFINE_BLOCK_ELEMENTS", 1)
    blocked = pack(weight, 8, preset, trace_layers=[0, 4], **options)
    assert torch.equal(whole.pack_index, blocked.pack_index)
    assert torch.equal(whole.rank_in_pack, blocked.rank_in_pack)
    for layer in (0, 4):
        assert ([candidate.swaps for candidate in whole.traces[layer].candidates]
                == [candidate.swaps for candidate in blocked.traces[layer].candidates])


def test_heaviest_vs_all_on_two_packs_scores_one_pair_per_block(monkeypatch):
    # k = 48 items per pack: one entry's 1-swap grid is larger than the block
    weight = generate("lognormal", 2, 96, seed=4)
    whole = pack(weight, 2, "best", swap_scope="heaviest-vs-all")
    monkeypatch.setattr(engine, "REFINE_BLOCK_ELEMENTS", 100)
    assert torch.equal(pack(weight, 2, "best", swap_scope="heaviest-vs-all").pack_index, whole.pack_index)


def _bench_memory():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_memory
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return bench_memory


@pytest.mark.parametrize(("preset", "layers", "items", "packs", "options"), [
    ("fast", 200, 1024, 256, {}),  # pair scores of many packs
    ("restarts-1swap", 2, 256, 64, {"num_refined": 8}),  # fills of 2048 restarts
    ("best", 16, 1024, 8, {"max_iterations": 3}),  # blocks of 2-swap search, k = 128
    ("best", 2, 2048, 2, {"max_iterations": 2}),  # one pair's k x k grid, k = 1024
    ("eplb", 2000, 512, 128, {}),  # the whole matrix
])
def test_the_estimate_covers_the_measured_peak(preset, layers, items, packs, options):
    measured = _bench_memory().working_memory(layers, items, packs, preset, threads=1, **options)["working_bytes"]
    estimate = limits.estimate_memory(layers, items, packs, resolve_config(preset, **options))
    assert measured <= estimate.total_bytes, (measured, estimate)


@pytest.mark.parametrize("preset", ["fast", DEFAULT_PRESET, "best"])
def test_1000_layers_of_4096_items_on_1024_packs_fit_the_app_budget(preset):
    assert limits.check_fits(1000, 4096, 1024, resolve_config(preset)) is None


def test_too_many_restarts_are_refused_with_the_most_that_fit():
    config = resolve_config("restarts-2swap", num_restarts=100_000)
    message = limits.check_fits(1000, 4096, 1024, config)
    match = re.search(r"at most (\d+) restarts", message or "")
    assert match, message
    assert "GB" in message and "restarts" in message
    most = int(match.group(1))
    assert limits.check_fits(1000, 4096, 1024, config.replace(num_restarts=most)) is None
    assert limits.check_fits(1000, 4096, 1024, config.replace(num_restarts=most + 1)) is not None


def test_huge_swap_grids_are_refused_with_a_pack_count_that_fits():
    config = resolve_config("fast")
    message = limits.check_fits(100, 65536, 2, config)
    assert "swap search between packs of 32768 items" in (message or "")
    packs = int(re.search(r"(\d+) packs\.", message).group(1))
    assert 65536 % packs == 0 and limits.check_fits(100, 65536, packs, config) is None


def test_when_no_single_change_fits_the_message_names_a_combination_that_does():
    config = resolve_config("restarts-1swap")
    message = limits.check_fits(1000, 65536, 64, config)
    found = re.search(r"at most (\d+) layers with at most (\d+) restarts", message or "")
    assert found, message
    layers, restarts = (int(v) for v in found.groups())
    assert limits.check_fits(layers, 65536, 64, config.replace(num_restarts=restarts)) is None


def test_max_layers_that_fit_is_the_largest():
    config = resolve_config("fast")
    most = limits.max_layers_that_fit(4096, 1024, config)
    assert limits.fits(most, 4096, 1024, config) and not limits.fits(most + 1, 4096, 1024, config)
    assert limits.max_layers_that_fit(4096, 1024, config, budget_bytes=1) == 0


def test_the_command_line_refuses_a_run_over_its_memory_limit(tmp_path, capsys):
    from packviz.cli import main

    loads = tmp_path / "loads.csv"
    assert main(["generate", "uniform", "--layers", "2", "--items", "64", "--out", str(loads)]) == 0
    capsys.readouterr()
    assert main(["pack", str(loads), "--packs", "8", "--preset", "fast", "--max-memory", "0.001"]) == 2
    error = capsys.readouterr().err
    assert "working memory" in error and "the budget is 1 MB" in error and "No packing fits" in error
    assert main(["pack", str(loads), "--packs", "8", "--preset", "fast", "--max-memory", "2"]) == 0
