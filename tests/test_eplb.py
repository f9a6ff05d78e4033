"""rebalance_experts: a drop-in for DeepSeek's, exact where it says so, never worse than its greedy."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from packviz import PRESETS
from packviz.eplb import gpu_loads, rebalance_experts

README_WEIGHT = [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                 [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]]
README_PHY2LOG = [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                  [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]]
README_LOGCNT = [[1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 2, 1],
                 [1, 2, 1, 1, 1, 2, 2, 1, 2, 1, 1, 1]]


# DeepSeek's algorithm written out plainly: float32 loads, sums in Python floats,
# each stage sorted by `order` (DeepSeek's torch.sort, or ties by index).
def _torch_sort_order(values: list[np.float32]) -> list[int]:
    return torch.tensor(np.array(values, dtype=np.float32)).sort(descending=True).indices.tolist()


def _stable_order(values: list) -> list[int]:
    return sorted(range(len(values)), key=lambda i: (-values[i], i))


def _greedy(values: list, num_packs: int, order) -> tuple[list[int], list[int]]:
    per_pack = len(values) // num_packs
    if per_pack == 1:
        return list(range(len(values))), [0] * len(values)
    exact = isinstance(values[0], Fraction)
    loads, counts = [Fraction(0) if exact else 0.0] * num_packs, [0] * num_packs
    packs, ranks = [0] * len(values), [0] * len(values)
    for item in order(values):
        chosen = min((p for p in range(num_packs) if counts[p] < per_pack), key=loads.__getitem__)
        packs[item], ranks[item] = chosen, counts[chosen]
        loads[chosen] += values[item] if exact else float(values[item])
        counts[chosen] += 1
    return packs, ranks


def _replicate(values: list, num_slots: int) -> tuple[list[int], list[int], list[int]]:
    counts = [1] * len(values)
    phy2log, rank = list(range(len(values))), [0] * len(values)
    number = type(values[0]) if isinstance(values[0], Fraction) else np.float32
    for _ in range(len(values), num_slots):
        per_replica = [number(v) / number(c) for v, c in zip(values, counts)]
        hottest = max(range(len(values)), key=lambda i: (per_replica[i], -i))
        phy2log.append(hottest)
        rank.append(counts[hottest])
        counts[hottest] += 1
    return phy2log, rank, counts


def _deepseek_layer(weight: list[int], num_replicas: int, groups: int, nodes: int, gpus: int, order,
                    exact: bool = False):
    """(phy2log, logcnt) of one layer, and the values each stage sorted. In
    float32 as DeepSeek computes, or (``exact``) in exact fractions: the
    algorithm itself, every tie a true tie."""
    num_logical = len(weight)
    group_size = num_logical // groups
    per_node_logical = num_logical // nodes
    slots_per_node = num_replicas // nodes
    number = Fraction if exact else np.float32
    w32 = [number(v) for v in weight]
    group_load = [number(sum(w32[g * group_size:(g + 1) * group_size], number(0))) for g in range(groups)]
    sorted_values = [group_load]
    group_pack, group_rank = _greedy(group_load, nodes, order)
    # node-major logical order: node, then the group's rank in it, then the expert within the group
    mlog2log = [0] * num_logical
    for group in range(groups):
        for offset in range(group_size):
            position = (group_pack[group] * (groups // nodes) + group_rank[group]) * group_size + offset
            mlog2log[position] = group * group_size + offset
    phy2log, logcnt = [], [0] * num_logical
    for node in range(nodes):
        experts = mlog2log[node * per_node_logical:(node + 1) * per_node_logical]
        local_phy, _, local_count = _replicate([w32[e] for e in experts], slots_per_node)
        replica_load = [number(w32[experts[i]] / number(local_count[i])) for i in local_phy]
        sorted_values.append(replica_load)
        gpu_pack, gpu_rank = _greedy(replica_load, gpus // nodes, order)
        per_gpu = num_replicas // gpus
        node_slots = [0] * slots_per_node
        for slot, (p, r) in enumerate(zip(gpu_pack, gpu_rank)):
            node_slots[p * per_gpu + r] = experts[local_phy[slot]]
        phy2log.extend(node_slots)
        for i, expert in enumerate(experts):
            logcnt[expert] = local_count[i]
    return phy2log, logcnt, sorted_values


@st.composite
def eplb_instance(draw, max_load: int, distinct: bool):
    nodes = draw(st.sampled_from([1, 2]))
    gpus = nodes * draw(st.integers(1, 3))
    groups = nodes * draw(st.integers(1, 3))
    num_logical = groups * draw(st.integers(1, 4))
    num_replicas = gpus * draw(st.integers(-(-num_logical // gpus), -(-num_logical // gpus) + 2))
    layers = draw(st.integers(1, 3))
    values = st.integers(0, max_load)
    size = num_logical
    if distinct:
        rows = [draw(st.lists(values, min_size=size, max_size=size, unique=True)) for _ in range(layers)]
    else:
        rows = [draw(st.lists(values, min_size=size, max_size=size)) for _ in range(layers)]
    hierarchical = draw(st.booleans())
    return rows, num_replicas, groups, nodes, gpus, hierarchical


def _run_oracle(rows, num_replicas, groups, nodes, gpus, hierarchical, order, exact=False):
    shape = (groups, nodes) if hierarchical else (1, 1)
    return [_deepseek_layer(row, num_replicas, *shape, gpus, order, exact) for row in rows]


def test_readme_example_unpacks_like_deepseek():
    phy2log, log2phy, logcnt = rebalance_experts(torch.tensor(README_WEIGHT), 16, 4, 2, 8)
    assert phy2log.tolist() == README_PHY2LOG
    assert logcnt.tolist() == README_LOGCNT
    placement = rebalance_experts(torch.tensor(README_WEIGHT), 16, 4, 2, 8)
    assert placement.phy2log is not None and placement.log2phy.shape == (2, 12, 2)
    for layer in range(2):
        for logical in range(12):
            slots = [s for s in log2phy[layer, logical].tolist() if s >= 0]
            assert sorted(slots) == [s for s in range(16) if phy2log[layer, s] == logical]
            assert len(slots) == logcnt[layer, logical]
        # each slot's replica rank indexes its own entry of log2phy
        for slot in range(16):
            expert, rank = int(phy2log[layer, slot]), int(placement.replica_rank[layer, slot])
            assert int(log2phy[layer, expert, rank]) == slot


def test_readme_example_matches_the_plain_oracle():
    expected = _run_oracle(README_WEIGHT, 16, 4, 2, 8, True, _torch_sort_order)
    assert [e[0] for e in expected] == README_PHY2LOG
    assert [e[1] for e in expected] == README_LOGCNT


def test_num_groups_none_packs_globally():
    weight = torch.tensor(README_WEIGHT)
    without_groups = rebalance_experts(weight, 16, None, 2, 8)
    one_group = rebalance_experts(weight, 16, 1, 1, 8)
    assert torch.equal(without_groups.phy2log, one_group.phy2log)
    forced_global = rebalance_experts(weight, 16, 4, 2, 8, False)
    assert torch.equal(forced_global.phy2log, one_group.phy2log)
    hierarchical = rebalance_experts(weight, 16, 4, 2, 8, True)
    assert hierarchical.phy2log.tolist() == README_PHY2LOG
    with pytest.raises(ValueError, match="needs num_groups"):
        rebalance_experts(weight, 16, None, 2, 8, True)


@pytest.mark.parametrize(("args", "message"), [
    ((15, 4, 2, 8), "do not split evenly over 8 GPUs"),
    ((8, 4, 2, 8), "cannot hold 12 experts"),
    ((16, 5, 1, 8), "do not split evenly into 5 groups"),
    ((24, 4, 3, 6, True), "4 expert groups do not split evenly over 3 nodes"),
])
def test_bad_shapes_say_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        rebalance_experts(torch.tensor(README_WEIGHT), *args)


def test_results_come_back_on_the_inputs_device():
    weight = torch.tensor(README_WEIGHT, dtype=torch.float32)
    for tensor in rebalance_experts(weight, 16, 4, 2, 8, packer="best"):
        assert tensor.device == weight.device and tensor.dtype == torch.int64


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_input_gives_cuda_output_and_the_same_placement():
    weight = torch.tensor(README_WEIGHT)
    on_gpu = rebalance_experts(weight.cuda(), 16, 4, 2, 8, packer="fast")
    on_cpu = rebalance_experts(weight, 16, 4, 2, 8, packer="fast")
    for gpu_tensor, cpu_tensor in zip(on_gpu, on_cpu):
        assert gpu_tensor.is_cuda
        assert torch.equal(gpu_tensor.cpu(), cpu_tensor)


def test_hierarchical_never_worse_than_greedy_on_the_reported_case():
    weight = torch.tensor([[1521, 2809, 196, 784, 1444, 225]], dtype=torch.float64)
    greedy = rebalance_experts(weight, 8, 6, 2, 4)
    assert float(gpu_loads(weight, greedy.phy2log, greedy.logcnt, 4).max()) == 2188.5
    for preset in ("fast", "best", "restarts-2swap"):
        placement = rebalance_experts(weight, 8, 6, 2, 4, packer=preset)
        assert float(gpu_loads(weight, placement.phy2log, placement.logcnt, 4).max()) <= 2188.5


@settings(max_examples=40, deadline=None)
@given(instance=eplb_instance(max_load=3000, distinct=False), preset=st.sampled_from(sorted(PRESETS)),
       seed=st.integers(0, 5))
def test_never_worse_than_greedy_in_both_modes(instance, preset, seed):
    rows, num_replicas, groups, nodes, gpus, hierarchical = instance
    weight = torch.tensor(rows, dtype=torch.float64)
    options = {"num_restarts": 16, "num_refined": 4} if preset.startswith("restarts") else {}
    from packviz.config import resolve_config
    config = resolve_config(preset, **options)
    greedy = rebalance_experts(weight, num_replicas, groups, nodes, gpus, hierarchical)
    placement = rebalance_experts(weight, num_replicas, groups, nodes, gpus, hierarchical, packer=config, seed=seed)
    mine = gpu_loads(weight, placement.phy2log, placement.logcnt, gpus).amax(dim=1)
    theirs = gpu_loads(weight, greedy.phy2log, greedy.logcnt, gpus).amax(dim=1)
    assert bool((mine <= theirs).all())
    # still a valid placement: every expert present, counts agree with phy2log
    counts = torch.stack([torch.bincount(row, minlength=weight.shape[1]) for row in placement.phy2log])
    assert torch.equal(counts, placement.logcnt) and bool((counts >= 1).all())


LOAD_FAMILIES = {
    "ties": st.sampled_from([4, 4, 4, 6]),
    "all equal": st.just(7),
    "zeros": st.sampled_from([0, 0, 0, 0, 9]),
    "heavy-tailed": st.integers(0, 40).map(lambda r: round(1e4 / (1 + r) ** 1.5)),
    "wide": st.integers(0, 10**6),
}


@st.composite
def cluster_loads(draw):
    """(loads [layers][experts], replicas, groups, nodes, GPUs, hierarchical), every
    layer of one family: tie-heavy, all equal, zero-heavy, heavy-tailed or wide."""
    nodes = draw(st.sampled_from([1, 2, 4]))
    gpus = nodes * draw(st.integers(1, 3))
    groups = nodes * draw(st.integers(1, 2))
    num_logical = groups * draw(st.integers(1, 5))
    num_replicas = gpus * draw(st.integers(-(-num_logical // gpus), -(-num_logical // gpus) + 3))
    values = LOAD_FAMILIES[draw(st.sampled_from(sorted(LOAD_FAMILIES)))]
    rows = [draw(st.lists(values, min_size=num_logical, max_size=num_logical)) for _ in range(draw(st.integers(1, 3)))]
    return rows, num_replicas, groups, nodes, gpus, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(instance=cluster_loads(), joint=st.booleans(), seed=st.integers(0, 3))
def test_best_is_never_heavier_than_fast_on_any_layer(instance, joint, seed):
    rows, num_replicas, groups, nodes, gpus, hierarchical = instance
    weight = torch.tensor(rows, dtype=torch.float64)
    peaks = {}
    for preset in ("fast", "best"):
        placement = rebalance_experts(weight, num_replicas, groups, nodes, gpus, hierarchical, packer=preset,
                                      seed=seed, joint_replication=joint)
        peaks[preset] = gpu_loads(weight, placement.phy2log, placement.logcnt, gpus).amax(dim=1)
    assert bool((peaks["best"] <= peaks["fast"]).all()), (peaks["best"] - peaks["fast"]).tolist()


@pytest.mark.parametrize("cluster", [(160, 8, 4, 32), (160, None, 1, 32), (144, 8, 2, 16)])
@pytest.mark.parametrize("joint", [True, False])
def test_best_is_never_heavier_than_fast_on_a_qwen_like_dump(cluster, joint):
    """A Qwen3-30B-A3B-like recorder dump ([20 steps, 48 layers, 128 experts] summed):
    `best`'s busiest GPU was heavier than `fast`'s on 8-11 of 48 layers, in both modes."""
    from packviz.data import generators
    weight = generators.drifting_moe(20, 48, 128, seed=0).sum(dim=0)
    slots, groups, nodes, gpus = cluster
    peaks = {}
    for preset in ("fast", "best"):
        placement = rebalance_experts(weight, slots, groups, nodes, gpus, packer=preset, joint_replication=joint)
        peaks[preset] = gpu_loads(weight, placement.phy2log, placement.logcnt, gpus).amax(dim=1)
    assert bool((peaks["best"] <= peaks["fast"]).all()), (peaks["best"] > peaks["fast"]).nonzero().squeeze(1).tolist()


@settings(max_examples=80, deadline=None)
@given(instance=eplb_instance(max_load=60, distinct=False))
def test_eplb_is_deepseeks_algorithm_with_ties_by_index(instance):
    rows, num_replicas, groups, nodes, gpus, hierarchical = instance
    # in exact fractions: a replica's share (46/3) and sums of them are not float32 numbers, and
    # float32 rounding would part loads that are equal (DeepSeek's own float32 ties are the test below)
    expected = _run_oracle(rows, num_replicas, groups, nodes, gpus, hierarchical, _stable_order, exact=True)
    placement = rebalance_experts(torch.tensor(rows), num_replicas, groups, nodes, gpus, hierarchical)
    assert placement.phy2log.tolist() == [e[0] for e in expected]
    assert placement.logcnt.tolist() == [e[1] for e in expected]


@settings(max_examples=80, deadline=None)
@given(instance=eplb_instance(max_load=2**20, distinct=True))
def test_eplb_is_deepseek_bit_for_bit_when_sorted_loads_are_distinct(instance):
    rows, num_replicas, groups, nodes, gpus, hierarchical = instance
    expected = _run_oracle(rows, num_replicas, groups, nodes, gpus, hierarchical, _torch_sort_order)
    for _, _, sorted_values in expected:
        for values in sorted_values:
            assume(len(set(map(float, values))) == len(values))
    placement = rebalance_experts(torch.tensor(rows), num_replicas, groups, nodes, gpus, hierarchical)
    assert placement.phy2log.tolist() == [e[0] for e in expected]
    assert placement.logcnt.tolist() == [e[1] for e in expected]
