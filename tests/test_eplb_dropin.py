"""rebalance_experts called the way SGLang's and vLLM's code and tests call it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from packviz.eplb import PlacementShapeError, gpu_loads, placement_from_phy2log, rebalance_experts

README_WEIGHT = torch.tensor([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                              [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]])
README_PHY2LOG = [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                  [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]]


def _valid(placement, num_logical: int, num_replicas: int) -> None:
    phy2log, log2phy, logcnt = placement
    assert phy2log.shape[1] == num_replicas
    assert bool((logcnt >= 1).all()) and bool((logcnt.sum(1) == num_replicas).all())
    for layer in range(phy2log.shape[0]):
        assert torch.equal(torch.bincount(phy2log[layer], minlength=num_logical), logcnt[layer])
        for expert in range(num_logical):
            slots = [s for s in log2phy[layer, expert].tolist() if s >= 0]
            assert sorted(slots) == [s for s in range(num_replicas) if phy2log[layer, s] == expert]


# vLLM's test_eplb_algo cases, run against packviz.
def test_vllm_single_gpu_case():
    phy2log, _, logcnt = rebalance_experts(torch.tensor([[10, 20, 30, 40]]), 4, 1, 1, 1)
    assert set(phy2log[0].tolist()) == {0, 1, 2, 3} and logcnt.shape == (1, 4)


def test_vllm_equal_weights_get_one_replica_each():
    _, _, logcnt = rebalance_experts(torch.tensor([[50] * 8]), 8, 2, 2, 4)
    assert bool((logcnt == 1).all())


def test_vllm_extreme_imbalance_replicates_the_hot_expert():
    _, _, logcnt = rebalance_experts(torch.tensor([[1000, 1, 1, 1, 1, 1, 1, 1]]), 12, 2, 2, 4)
    assert logcnt[0, 0] > logcnt[0, 1]


def test_vllm_groups_that_do_not_divide_among_nodes_fall_back_to_global():
    weight = torch.tensor([[10, 20, 30, 40]])
    placement = rebalance_experts(weight, 8, 3, 2, 4)
    assert placement.phy2log.shape == (1, 8) and placement.logcnt.shape == (1, 4)
    assert torch.equal(placement.phy2log, rebalance_experts(weight, 8, 1, 1, 4).phy2log)


def test_vllm_impossible_shape_is_an_assertion_error_and_a_value_error():
    weight = torch.tensor([[10, 20, 30, 40]])
    with pytest.raises(AssertionError):
        rebalance_experts(weight, 7, 2, 2, 4)
    with pytest.raises(ValueError, match="7 replicas do not split evenly over 4 GPUs"):
        rebalance_experts(weight, 7, 2, 2, 4)
    assert issubclass(PlacementShapeError, ValueError) and issubclass(PlacementShapeError, AssertionError)


@pytest.mark.parametrize("packer", ["eplb", "fast"])
def test_vllm_multiple_layers_and_additional_cases(packer):
    weight = torch.tensor([[10, 20, 30, 40, 50, 60], [60, 50, 40, 30, 20, 10], [25] * 6])
    _valid(rebalance_experts(weight, 8, 2, 2, 4, packer=packer), 6, 8)
    weight1 = torch.tensor([[50, 100, 75, 120, 90, 60, 80, 110, 40, 70, 95, 85, 65, 55, 45, 35]])
    _valid(rebalance_experts(weight1, 24, 8, 4, 8, packer=packer), 16, 24)
    weight2 = torch.tensor([[200, 150, 100, 50, 25, 12], [12, 25, 50, 100, 150, 200]])
    placement = rebalance_experts(weight2, 10, 3, 1, 2, packer=packer)
    _valid(placement, 6, 10)
    for layer in range(2):
        assert placement.logcnt[layer, int(torch.argmax(weight2[layer]))] >= 2


def test_vllm_keyword_names():
    by_name = rebalance_experts(weight=README_WEIGHT, num_replicas=16, num_groups=4, num_nodes=2, num_ranks=8)
    assert by_name.phy2log.tolist() == README_PHY2LOG


# SGLang's call: every argument by keyword, enable_hierarchical a bool.
def test_sglang_keywords_and_the_hierarchical_switch():
    hierarchical = rebalance_experts(weight=README_WEIGHT, num_replicas=16, num_groups=4, num_nodes=2, num_gpus=8,
                                     enable_hierarchical=True)
    assert hierarchical.phy2log.tolist() == README_PHY2LOG
    flat = rebalance_experts(README_WEIGHT, 16, 4, 2, 8, False)
    assert torch.equal(flat.phy2log, rebalance_experts(README_WEIGHT, 16, 1, 1, 8).phy2log)
    assert torch.equal(rebalance_experts(README_WEIGHT, 16, 4, 2, 8, np.bool_(True)).phy2log, hierarchical.phy2log)


def test_numpy_integers_are_taken_where_deepseek_takes_them():
    numpy_args = rebalance_experts(README_WEIGHT, np.int64(16), np.int32(4), np.int64(2), np.int64(8))
    assert numpy_args.phy2log.tolist() == README_PHY2LOG
    tensor_args = rebalance_experts(README_WEIGHT.numpy(), torch.tensor(16), 4, 2, 8)
    assert tensor_args.phy2log.tolist() == README_PHY2LOG


@pytest.mark.parametrize(("args", "message"), [
    ((16, 4, 0, 8), "num_nodes must be a whole number >= 1, got 0"),
    ((16, 4, 2, 0), "num_gpus must be a whole number >= 1, got 0"),
    ((16.0, 4, 2, 8), "num_replicas must be a whole number"),
    ((True, 4, 2, 8), "num_replicas must be a whole number"),
    ((16, 4, 2, 8, "yes"), "sixth argument is enable_hierarchical"),
])
def test_bad_arguments_are_refused_with_what_is_wrong(args, message):
    with pytest.raises(PlacementShapeError, match=message):
        rebalance_experts(README_WEIGHT, *args)


def test_placement_from_phy2log_ranks_replicas_in_slot_order():
    phy2log = torch.tensor([[2, 0, 2, 1, 0, 2]])
    _, log2phy, logcnt = placement_from_phy2log(phy2log, 3)
    assert logcnt.tolist() == [[2, 1, 3]]
    assert log2phy.tolist() == [[[1, 4, -1], [3, -1, -1], [0, 2, 5]]]


def test_gpu_loads_of_the_readme_example():
    placement = rebalance_experts(README_WEIGHT, 16, 4, 2, 8)
    loads = gpu_loads(README_WEIGHT, placement.phy2log, placement.logcnt, 8)
    assert torch.allclose(loads.sum(1), README_WEIGHT.sum(1).double())
