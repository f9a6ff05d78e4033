"""A refused shape names the slot counts that would work, not only GPU counts:
the nearest multiples of the GPU count that give every expert a slot."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from packviz.cli import main
from packviz.eplb import PlacementShapeError, rebalance_experts
from packviz.eplb.cluster import Cluster, place
from packviz.teach.eplb_lessons import replication_steps
from packviz.validate import slot_counts_near

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "deepseek_v3_58x256.csv"


@pytest.mark.parametrize(("cluster", "experts", "words"), [
    (Cluster(150, None, 1, 8), 128, "slot counts that work on 8 GPUs: 144 or 152"),
    (Cluster(150, None, 1, 8), 150, "slot counts that work on 8 GPUs: 152 or 160"),  # 144 leaves experts out
    (Cluster(144, 8, 4, 32), 256, "slot counts that work on 32 GPUs: 256 or 288"),
    (Cluster(200, 8, 4, 32), 256, "slot counts that work on 32 GPUs: 256 or 288"),
    (Cluster(288, 8, 2, 30), 256, "slot counts that work on 30 GPUs: 270 or 300"),
    (Cluster(7, None, 1, 4), 4, "slot counts that work on 4 GPUs: 4 or 8"),
    (Cluster(3, None, 1, 1), 4, "slot counts that work on 1 GPU: 4 or 5"),
])
def test_a_refused_slot_count_names_the_nearest_slot_counts_that_work(cluster, experts, words):
    problem = cluster.problem(experts)
    assert problem is not None and words in problem, problem
    assert problem.count(". ") == 0 and problem.endswith(".")
    with pytest.raises(ValueError, match=words):
        place(torch.ones(2, experts), cluster)


def test_the_gpu_counts_offered_also_split_over_the_nodes():
    # 30 GPUs on 4 nodes fail twice: offer GPU counts that fix both, and no slot count for 30 GPUs
    problem = Cluster(288, 8, 4, 30).problem(256)
    assert "GPU counts near 30 that work: 12, 16, 24, 32, 36, 48" in problem, problem
    assert "slot counts" not in problem
    assert "GPU counts near 33 that work: 9, 12, 18, 24, 36, 48" in Cluster(288, 8, 3, 33).problem(256)
    # no GPU count splits 150 slots over 4 nodes: only the slot counts are offered
    problem = Cluster(150, None, 4, 8).problem(128)
    assert "144 or 152" in problem and "GPU counts" not in problem


def test_shapes_whose_slot_count_is_fine_say_nothing_about_slots():
    for cluster in (Cluster(288, 8, 5, 48, "hierarchical"), Cluster(288, 7, 4, 32, "hierarchical")):
        problem = cluster.problem(256)
        assert problem is not None and "slot counts" not in problem


@settings(max_examples=60, deadline=None)
@given(slots=st.integers(1, 400), experts=st.integers(1, 300), gpus=st.integers(1, 40))
def test_the_suggested_slot_counts_work_and_none_that_works_is_nearer(slots, experts, gpus):
    near = slot_counts_near(slots, experts, gpus)
    assert len(near) == 2 and near[0] < near[1]
    for count in near:
        assert count % gpus == 0 and count >= experts
        assert Cluster(count, None, 1, gpus).problem(experts) is None
    farthest = max(abs(count - slots) for count in near)
    # every slot count that works and is not suggested lies at least as far as the farther suggestion
    for count in range(experts, max(slots, experts) + 2 * gpus + 1):
        if count % gpus == 0 and count not in near:
            assert abs(count - slots) >= farthest
    problem = Cluster(slots, None, 1, gpus).problem(experts)
    if slots < experts or slots % gpus:
        assert f"{near[0]} or {near[1]}" in problem


def test_the_library_refusal_names_slot_counts_too():
    weight = torch.tensor([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86]])
    with pytest.raises(PlacementShapeError, match=r"15 replicas do not split evenly over 8 GPUs .*16 or 24"):
        rebalance_experts(weight, 15, 4, 2, 8)
    with pytest.raises(PlacementShapeError, match=r"10 replicas cannot hold 12 experts .*16 or 24"):
        rebalance_experts(weight, 10, 4, 2, 8)


def test_the_replication_lesson_names_slot_counts_too():
    with pytest.raises(ValueError, match="slot counts that work on 4 GPUs: 8 or 12"):
        replication_steps((5.0, 4.0, 3.0, 2.0, 1.0, 1.0), 10, 4)


@pytest.mark.parametrize(("argv", "words"), [
    (["rebalance", str(SAMPLE), "--replicas", "250", "--groups", "8", "--nodes", "4", "--gpus", "32"],
     "slot counts that work on 32 GPUs: 256 or 288"),
    (["rebalance", str(SAMPLE), "--replicas", "290", "--groups", "8", "--nodes", "4", "--gpus", "32"],
     "slot counts that work on 32 GPUs: 288 or 320"),
    (["pack", str(SAMPLE), "--packs", "32", "--replicate", "290", "--preset", "eplb"],
     "290 slots do not split evenly into 32 packs (slot counts that work on 32 packs: 288 or 320)"),
    (["pack", str(SAMPLE), "--packs", "32", "--replicate", "200", "--preset", "eplb"],
     "200 slots are fewer than the 256 experts (slot counts that work on 32 packs: 256 or 288)"),
])
def test_the_command_line_names_slot_counts(argv, words, capsys):
    assert main(argv) == 2
    assert words in capsys.readouterr().err
