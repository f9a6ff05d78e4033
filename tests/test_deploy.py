"""The whole EPLB plan for a cluster: shape checks, plan checks, balance, moves and scoring over time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from packviz.data.generators import drifting_moe
from packviz.data.loaders import read_loads
from packviz.eplb import rebalance_experts
from packviz.eplb.cluster import (
    Cluster,
    balance,
    check_plan,
    default_cluster,
    gpu_load,
    node_load,
    place,
    policy_bound,
    replica_counts,
    trivial_phy2log,
)
from packviz.eplb.moves import moves_between, replica_rank
from packviz.eplb.over_time import fresh_planner, kept_planner, over_time, replanning_planner, windows
from packviz.eplb.replan import replan

ROOT = Path(__file__).resolve().parent.parent
README = torch.tensor([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                       [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]], dtype=torch.float64)
README_CLUSTER = Cluster(16, 4, 2, 8)


@pytest.fixture(scope="module")
def deepseek():
    return read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight


@pytest.mark.parametrize(("cluster", "words"), [
    (Cluster(288, 8, 4, 30), "288 slots do not split evenly over 30 GPUs"),
    (Cluster(200, 8, 4, 32), "200 slots are fewer than the 256 experts"),
    (Cluster(288, 8, 3, 33), "do not split evenly over 33 GPUs"),
    (Cluster(288, 8, 5, 48, "hierarchical"), "48 GPUs do not split evenly over 5 nodes"),
    (Cluster(288, 7, 4, 32, "hierarchical"), "256 experts do not split evenly into 7 expert groups"),
    (Cluster(288, 8, 16, 32, "hierarchical"), "8 expert groups do not split evenly over 16 nodes"),
    (Cluster(288, None, 4, 32, "hierarchical"), "needs expert groups"),
    (Cluster(0, 8, 4, 32), "at least 1"),
])
def test_shapes_that_cannot_work_get_one_sentence(cluster, words):
    problem = cluster.problem(256)
    assert problem is not None and words in problem
    assert problem.count(". ") == 0 and problem.endswith(".")
    if "GPU counts" in problem:
        assert "GPU counts near 30 that work: 12, 16, 24, 32, 36, 48" in problem or "near 33" in problem
    with pytest.raises(ValueError, match=words):
        place(torch.ones(2, 256), cluster)


def test_auto_follows_deepseeks_rule():
    assert Cluster(288, 8, 4, 32).hierarchical
    assert not Cluster(288, 8, 3, 36).hierarchical  # groups do not divide among nodes: global
    assert not Cluster(288, None, 4, 32).hierarchical
    assert not Cluster(288, 8, 4, 32, "global").hierarchical
    assert Cluster(288, 8, 3, 36).problem(256) is None


def test_default_cluster_is_deepseek_v3s_for_256_experts():
    assert default_cluster(256, 8) == Cluster(288, 8, 4, 32)
    # data that names no groups opens with none (and so the global policy), whatever its expert count
    assert default_cluster(256) == Cluster(288, None, 4, 32)
    assert default_cluster(128) == Cluster(160, None, 4, 32) and not default_cluster(128).hierarchical
    for experts in (12, 64, 128, 384, 7):
        assert default_cluster(experts).problem(experts) is None
        assert default_cluster(experts, 8).problem(experts) is None


def test_place_is_rebalance_experts_and_reproduces_the_readme():
    plan = place(README, README_CLUSTER)
    assert plan.phy2log.tolist() == [[5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
                                     [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1]]
    assert torch.equal(plan.phy2log, rebalance_experts(README, 16, 4, 2, 8).phy2log)


def test_checks_pass_on_engine_plans_and_catch_broken_ones(deepseek):
    cluster = Cluster(288, 8, 4, 32)
    plan = place(deepseek, cluster, "fast").phy2log
    checks = check_plan(plan, 256, cluster)
    assert checks.ok and not checks.missing and not checks.split_groups
    # an expert overwritten everywhere: missing
    broken = plan.clone()
    broken[broken == 7] = 8
    found = check_plan(broken, 256, cluster)
    assert not found.ok and (0, 7) in found.missing
    assert "have no slot" in found.sentences()[0]
    # the global plan of the same loads spreads groups over nodes
    spread = place(deepseek, Cluster(288, 8, 4, 32, "global")).phy2log
    assert check_plan(spread, 256, cluster).split_groups
    assert check_plan(spread, 256, Cluster(288, 8, 4, 32, "global")).ok


def test_same_gpu_duplicates_are_counted():
    cluster = Cluster(8, None, 1, 2)
    plan = torch.tensor([[0, 0, 1, 2, 3, 4, 5, 5]])  # expert 0 twice on GPU 0, 5 twice on GPU 1
    checks = check_plan(plan, 6, cluster)
    assert checks.duplicates.tolist() == [2] and checks.ok
    assert "2 slots in all hold a replica" in checks.sentences()[0]
    assert check_plan(torch.tensor([[0, 1, 2, 3, 0, 1, 4, 5]]), 6, cluster).duplicates.tolist() == [0]


def test_loads_and_balance_add_up():
    cluster = Cluster(16, 4, 2, 8)
    plan = place(README, cluster).phy2log
    gpus = gpu_load(README, plan, cluster)
    assert torch.allclose(gpus.sum(dim=1), README.sum(dim=1))
    assert torch.allclose(node_load(README, plan, cluster).sum(dim=1), README.sum(dim=1))
    score = balance(README, plan, cluster)
    assert torch.allclose(score.balancedness, gpus.mean(dim=1) / gpus.amax(dim=1))
    assert torch.allclose(score.imbalance, gpus.amax(dim=1) / gpus.mean(dim=1) - 1)
    assert bool((score.bound <= score.max_load + 1e-9).all())


def test_hierarchy_has_a_price_and_its_bound_shows_it(deepseek):
    hier, glob = Cluster(288, 8, 4, 32, "hierarchical"), Cluster(288, 8, 4, 32, "global")
    h = balance(deepseek, place(deepseek, hier, "fast").phy2log, hier)
    g = balance(deepseek, place(deepseek, glob, "fast").phy2log, glob)
    assert bool((h.bound <= h.max_load * (1 + 1e-12)).all())  # a true bound
    assert float(h.bound_over_mean.mean()) > 1.01  # groups on nodes cost something here
    assert torch.equal(policy_bound(deepseek, glob), g.mean_load)
    assert float(g.imbalance.mean()) < float(h.imbalance.mean())


def test_trivial_plan_holds_every_expert():
    plan = trivial_phy2log(3, 12, README_CLUSTER)
    assert plan.shape == (3, 16) and bool((replica_counts(plan, 12) >= 1).all())


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2**31 - 1), st.sampled_from([(8, 4, 2, 4), (12, 3, 1, 3), (16, 4, 2, 8)]))
def test_moves_are_exactly_the_experts_new_on_their_gpu(layers, seed, shape):
    num_logical, groups, nodes, gpus = shape
    cluster = Cluster(num_logical + gpus, groups, nodes, gpus)
    generator = torch.Generator().manual_seed(seed)
    before = torch.randint(1, 50, (layers, num_logical), generator=generator).to(torch.float64)
    after = torch.randint(1, 50, (layers, num_logical), generator=generator).to(torch.float64)
    old, new = place(before, cluster).phy2log, place(after, cluster, "fast").phy2log
    assert len(moves_between(old, old, cluster)) == 0
    moves = moves_between(old, new, cluster, expert_bytes=10)
    per_gpu = cluster.slots_per_gpu
    expected = {(layer, slot) for layer in range(layers) for slot in range(cluster.num_replicas)
                if int(new[layer, slot]) not in old[layer].view(gpus, per_gpu)[slot // per_gpu].tolist()}
    got = {(int(at), int(g) * per_gpu + int(s)) for at, g, s in zip(moves.layer, moves.to_gpu, moves.to_slot)}
    assert got == expected
    for m in range(len(moves)):
        layer, expert = int(moves.layer[m]), int(moves.expert[m])
        source = int(moves.from_gpu[m]) * per_gpu + int(moves.from_slot[m])
        target = int(moves.to_gpu[m]) * per_gpu + int(moves.to_slot[m])
        assert int(old[layer, source]) == expert == int(new[layer, target])
        # the source is on the receiving node whenever the old plan had the expert there
        on_node = [s for s in range(cluster.num_replicas) if int(old[layer, s]) == expert
                   and (s // per_gpu) // cluster.gpus_per_node == int(moves.to_node[m])]
        assert bool(moves.intra_node[m]) == bool(on_node)
    assert moves.total_bytes == 10 * len(moves) == moves.intra_bytes + moves.inter_bytes


def test_transfer_time_is_the_slowest_receiver():
    cluster = Cluster(4, None, 2, 4)  # one slot a GPU, two GPUs a node
    old = torch.tensor([[0, 1, 2, 3]])
    new = torch.tensor([[1, 0, 3, 0]])  # GPU0 <- 1 (node), GPU1 <- 0 (node), GPU2 <- 3 (node), GPU3 <- 0 (other node)
    moves = moves_between(old, new, cluster, expert_bytes=10**9)
    assert len(moves) == 4 and moves.inter_bytes == 10**9
    assert moves.transfer_seconds(intra_gbps=100, inter_gbps=10) == pytest.approx(0.1)
    assert replica_rank(torch.tensor([[3, 1, 3, 3, 1]])).tolist() == [[0, 0, 1, 2, 1]]


def test_windows_sum_steps_and_refuse_too_few():
    steps = torch.arange(5 * 2 * 3, dtype=torch.float64).view(5, 2, 3)
    out = windows(steps, 2)
    assert out.shape == (2, 2, 3) and torch.equal(out[1], steps[2] + steps[3])
    with pytest.raises(ValueError, match="at least 2"):
        windows(steps, 3)


def test_plan_on_one_window_score_on_the_next():
    history = windows(drifting_moe(12, 4, 64, seed=3, drift=0.5), 3)
    cluster = Cluster(72, 8, 2, 8)
    runs = over_time(history, cluster, {"kept": kept_planner(cluster), "fresh": fresh_planner(cluster)})
    kept, fresh = runs["kept"], runs["fresh"]
    assert len(kept.plans) == len(fresh.plans) == 3
    assert all(torch.equal(plan, kept.plans[0]) for plan in kept.plans)
    assert kept.moves[0] is None and all(len(m) == 0 for m in kept.moves[1:])
    assert all(len(m) > 0 for m in fresh.moves[1:])  # the loads drift: a fresh plan moves replicas
    for index, plan in enumerate(fresh.plans):
        assert torch.equal(plan, place(history[index], cluster).phy2log)
        score = balance(history[index + 1], plan, cluster).balancedness.mean()
        assert float(fresh.balancedness[index]) == pytest.approx(float(score))
    # a third planner is one more entry
    extra = over_time(history, cluster, {"same as fresh": lambda w, previous: place(w, cluster).phy2log})
    assert torch.equal(extra["same as fresh"].balancedness, fresh.balancedness)


def test_the_replanner_is_one_more_entry_and_moves_fewer_replicas():
    history = windows(drifting_moe(8, 3, 64, seed=5, drift=0.2), 2)
    cluster = Cluster(72, 8, 2, 8)
    runs = over_time(history, cluster, {"fresh": fresh_planner(cluster, "fast"),
                                        "re-plan": replanning_planner(cluster, replan, "fast")})
    fresh, again = runs["fresh"], runs["re-plan"]
    assert torch.equal(again.plans[0], fresh.plans[0])  # the first window is planned fresh
    assert sum(len(m) for m in again.moves[1:]) < sum(len(m) for m in fresh.moves[1:])
    for plan in again.plans:
        # every expert keeps a slot and every expert group stays on one node
        assert check_plan(plan, 64, cluster).ok
    assert again.problems == [[]] * len(again.plans) and again.failed == []


def test_over_time_keeps_the_hierarchy_and_reports_a_plan_that_fails_its_checks():
    # the shape where re-plans used to spread 179 of 384 (layer, group) pairs over both nodes
    history = windows(drifting_moe(12, 4, 128, seed=7, drift=0.3), 2)
    cluster = Cluster(144, 8, 2, 16)
    runs = over_time(history, cluster, {"re-plan": replanning_planner(cluster, replan, "fast")})
    assert runs["re-plan"].failed == []
    for plan in runs["re-plan"].plans:
        assert check_plan(plan, 128, cluster).split_groups == []

    def spreading(weight, previous):
        plan = place(weight, cluster).phy2log.clone()
        plan[0, 0], plan[0, -1] = plan[0, -1].item(), plan[0, 0].item()   # group 0 and group 7 trade a slot
        return plan

    broken = over_time(history, cluster, {"broken": spreading})["broken"]
    assert broken.failed == list(range(len(broken.plans)))
    assert "spread over several nodes" in broken.problems[0][0]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2**31 - 1),
       st.sampled_from([(12, 16, 4, 2, 8), (8, 12, 2, 2, 4), (16, 20, 4, 4, 4), (6, 9, 3, 3, 3), (12, 12, 6, 3, 6)]),
       st.sampled_from(["auto", "global"]), st.sampled_from(["eplb", "fast"]),
       st.sampled_from(["ties", "zeros", "spread"]))
def test_every_engine_plan_passes_the_checks(layers, seed, shape, policy, preset, family):
    experts, slots, groups, nodes, gpus = shape
    cluster = Cluster(slots, groups, nodes, gpus, policy)
    generator = torch.Generator().manual_seed(seed)
    if family == "ties":
        weight = torch.randint(1, 3, (layers, experts), generator=generator).double() * 5
    elif family == "zeros":
        weight = torch.randint(0, 2, (layers, experts), generator=generator).double() * 100
    else:
        weight = torch.rand(layers, experts, generator=generator, dtype=torch.float64) ** 4 * 1e6
    plan = place(weight, cluster, preset).phy2log
    checks = check_plan(plan, experts, cluster)
    assert checks.ok, checks.sentences()
    assert torch.allclose(gpu_load(weight, plan, cluster).sum(dim=1), weight.sum(dim=1))
    assert bool((balance(weight, plan, cluster).bound <= gpu_load(weight, plan, cluster).amax(dim=1) * (1 + 1e-9)
                 + 1e-9).all())


def test_a_model_without_groups_is_placed_globally():
    weight = torch.rand(2, 384, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1e4
    cluster = Cluster(416, None, 4, 32)  # Kimi-K2-like: 384 experts, 32 redundant, no expert groups
    assert not cluster.hierarchical and cluster.problem(384) is None
    plan = place(weight, cluster, "fast").phy2log
    assert plan.shape == (2, 416) and check_plan(plan, 384, cluster).ok
    assert float(balance(weight, plan, cluster).bound_over_mean.max()) == 1.0
