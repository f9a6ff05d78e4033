"""Generators are seeded and well-formed; samples load, pack and regenerate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from packviz import PRESETS, pack
from packviz.cli import write_matrix
from packviz.data.generators import GENERATORS, drifting_moe, generate, replicate_hot
from packviz.data.loaders import read_loads
from packviz.eplb import rebalance_experts

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"


@pytest.mark.parametrize("kind", list(GENERATORS))
@pytest.mark.parametrize("integer", [True, False])
def test_generators_are_seeded_non_negative_and_shaped(kind, integer):
    a = generate(kind, 5, 32, seed=4, integer=integer)
    assert a.shape == (5, 32) and a.dtype == torch.float64
    assert bool((a >= 0).all())
    assert torch.equal(a, generate(kind, 5, 32, seed=4, integer=integer))
    assert not torch.equal(a, generate(kind, 5, 32, seed=5, integer=integer))
    whole = a == a.round()
    if integer:
        assert bool(whole.all())
    else:
        # 160 real draws that all land on whole numbers would mean the rounding leaked through
        assert not bool(whole.all())


@pytest.mark.parametrize("kind", list(GENERATORS))
@pytest.mark.parametrize("suffix", [".csv", ".npy", ".npz", ".pt", ".json"])
@pytest.mark.parametrize("integer", [True, False])
def test_every_generator_round_trips_through_every_format(kind, suffix, integer, tmp_path):
    weight = generate(kind, 3, 16, seed=7, integer=integer)
    path = tmp_path / ("loads" + suffix)
    write_matrix(weight, path)
    assert torch.equal(read_loads(path).weight, weight)


def test_generator_parameters_shape_the_loads():
    flat = generate("lognormal", 4, 256, seed=1, sigma=0.1)
    skewed = generate("lognormal", 4, 256, seed=1, sigma=2.0)
    assert float(skewed.max() / skewed.mean()) > float(flat.max() / flat.mean())
    hot = generate("hot", 3, 64, seed=2, num_hot=4, hot_share=0.5, integer=False)
    top4 = hot.sort(dim=1, descending=True).values[:, :4].sum(1) / hot.sum(1)
    assert bool(((top4 > 0.4) & (top4 < 0.6)).all())
    with pytest.raises(ValueError, match="has no parameter"):
        generate("uniform", 2, 4, sigma=1)
    with pytest.raises(ValueError, match="unknown generator"):
        generate("gauss", 2, 4)


def test_moe_profile_totals_and_layer_correlation():
    loads = generate("moe", 20, 128, seed=0, integer=False, correlation=0.9, tokens_per_layer=1000)
    torch.testing.assert_close(loads.sum(1), torch.full((20,), 1000.0, dtype=torch.float64))
    logs = loads.log()
    neighbours = torch.corrcoef(torch.stack([logs[:-1].flatten(), logs[1:].flatten()]))[0, 1]
    assert float(neighbours) > 0.6


def test_drifting_time_axis_moves_the_hot_items():
    steps = drifting_moe(6, 2, 64, seed=1, drift=0.5)
    assert steps.shape == (6, 2, 64)
    first, last = steps[0, 0].argsort()[-8:], steps[-1, 0].argsort()[-8:]
    assert set(first.tolist()) != set(last.tolist())
    frozen = drifting_moe(3, 2, 64, seed=1, drift=0.0)
    assert torch.equal(frozen[0], frozen[2])


def test_replicate_hot_splits_the_heaviest_items():
    weight = torch.tensor([[100.0, 10.0, 10.0, 10.0]])
    slots = replicate_hot(weight, 6)
    assert sorted(slots[0].tolist()) == [10.0, 10.0, 10.0, 100 / 3, 100 / 3, 100 / 3]


SAMPLE_FILES = ["deepseek_readme.csv", "teaching_12_items.csv", "deepseek_v3_58x256.csv", "sglang_dump.pt"]


@pytest.mark.parametrize("name", SAMPLE_FILES)
@pytest.mark.parametrize("preset", list(PRESETS))
def test_samples_load_and_pack_with_every_preset(name, preset):
    weight = read_loads(SAMPLES / name).weight[:4]
    packs = {"deepseek_readme.csv": 4, "teaching_12_items.csv": 3}.get(name, 8)
    result = pack(weight, packs, preset, num_restarts=min(64, PRESETS[preset].config.num_restarts))
    assert result.pack_index.shape == weight.shape


def test_deepseek_readme_sample_gives_the_readme_placement():
    weight = read_loads(SAMPLES / "deepseek_readme.csv").weight
    placement = rebalance_experts(weight, 16, 4, 2, 8)
    assert placement.phy2log[0].tolist() == [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1]


def test_teaching_sample_shows_two_swap_beating_one_swap():
    weight = read_loads(SAMPLES / "teaching_12_items.csv").weight
    common = {"num_restarts": 1, "num_refined": 1}
    one = pack(weight, 3, "restarts-2swap", two_swap=False, **common)
    two = pack(weight, 3, "restarts-2swap", **common)
    spread = lambda r: float(r.pack_loads.amax() - r.pack_loads.amin())  # noqa: E731
    assert spread(two) < spread(one)


def test_sample_shapes():
    assert read_loads(SAMPLES / "deepseek_v3_58x256.csv").shape == (58, 256)
    dump = read_loads(SAMPLES / "sglang_dump.pt", keep_time_axis=True)
    assert dump.time_axis.shape == (4, 8, 64)


def test_regeneration_script_reproduces_the_samples_byte_for_byte(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for name in SAMPLE_FILES:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name


def test_default_pack_count_is_a_deployment_size_not_a_quarter_of_the_items():
    from packviz.data.samples import default_pack_count

    assert default_pack_count(4096) == 64
    assert default_pack_count(288) == 32
    assert default_pack_count(320) == 64
    assert default_pack_count(100) == 4  # no power of two up to 64 leaves 4 each but 4 itself
    assert default_pack_count(7) == 1
    for items in range(2, 300):
        packs = default_pack_count(items)
        assert items % packs == 0 and packs < items
