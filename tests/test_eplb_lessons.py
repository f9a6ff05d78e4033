"""The EPLB chapters: every step read from packviz.eplb's public functions on the loads on screen."""

from __future__ import annotations

import pytest
import torch

from packviz.eplb import rebalance_experts, replicate_experts
from packviz.teach.eplb_lessons import chapter_steps, eplb_text, hierarchy_steps, replication_steps


def test_each_extra_slot_goes_to_the_most_load_per_replica_as_deepseek_does():
    loads = (90.0, 20.0, 55.0, 30.0, 45.0, 60.0)
    steps = replication_steps(loads, 9, 3)
    given = [s.bars.marked[0] for s in steps if s.phase == "replicate"]
    phy2log, _, _ = replicate_experts(torch.tensor([loads]), 9)
    assert given == phy2log[0, 6:].tolist()
    for position, step in enumerate(steps):
        if step.phase != "replicate":
            continue
        expert = step.bars.marked[0]
        shares = steps[position - 1].bars.totals
        assert shares[expert] == max(shares)  # the step before shows the state: its tallest bar gets the slot
        assert f"goes to expert {expert}" in step.narration
        # and the step before asked which expert gets it, answered by this step
        assert steps[position - 1].question.answer == f"expert {expert}"
    final = [s for s in steps if s.phase == "pack"][-1]
    assert sum(final.bars.totals) == pytest.approx(sum(loads))
    assert max(final.bars.totals) < final.without_replicas
    assert eplb_text("replication", steps).shows_claim


def test_replicas_that_do_not_help_are_said_not_to():
    flat = (10.0,) * 6
    text = eplb_text("replication", replication_steps(flat, 9, 3))
    assert not text.shows_claim and "do not help" in text.text


def test_the_hierarchy_keeps_each_group_on_one_node_and_ends_at_the_placements_gpu_loads():
    loads = (90.0, 20.0, 55.0, 30.0, 45.0, 60.0, 15.0, 70.0)
    steps = hierarchy_steps(loads, 12, 4, 2, 4)
    placement = rebalance_experts(torch.tensor([loads]), 12, 4, 2, 4, enable_hierarchical=True)
    slot_load = (torch.tensor([loads]) / placement.logcnt).gather(1, placement.phy2log)
    assert steps[-1].bars.totals == pytest.approx(slot_load.view(4, 3).sum(dim=1).tolist())
    nodes = [s for s in steps if s.phase == "nodes"][-1].bars
    assert sorted(label for part in nodes.parts for label, _ in part) == [f"group {g}" for g in range(4)]
    assert nodes.totals == pytest.approx([sum(steps[-1].bars.totals[:2]), sum(steps[-1].bars.totals[2:])])
    assert [s.line for s in steps] == sorted(s.line for s in steps)  # the pseudo-code runs top to bottom


def test_a_shape_that_cannot_work_says_why():
    with pytest.raises(ValueError, match="split evenly"):
        replication_steps((1.0, 2.0, 3.0), 4, 3)


def test_the_last_step_sets_counts_chosen_with_the_packing_beside_deepseeks():
    loads = (90.0, 20.0, 55.0, 30.0, 45.0, 60.0)
    joint = replication_steps(loads, 9, 3)[-1]
    plan = rebalance_experts(torch.tensor([loads]), 9, None, 1, 3, packer="fast", joint_replication=True)
    slot_load = (torch.tensor([loads]) / plan.logcnt).gather(1, plan.phy2log)
    assert joint.bars.totals == pytest.approx(slot_load.view(3, 3).sum(dim=1).tolist())
    assert f"holds {max(joint.bars.totals):,.0f}" in joint.narration and "DeepSeek's counts" in joint.narration


def test_the_chapters_own_instance_shows_both_points():
    from packviz.teach.lessons import CHAPTER_BY_KEY

    chapter = CHAPTER_BY_KEY["replication"]
    steps = replication_steps(chapter.loads, chapter.eplb["slots"], chapter.num_packs)
    chosen, deepseek = steps[-1].joint
    assert chosen < deepseek and "do better" in steps[-1].narration
    assert eplb_text("replication", steps).shows_claim


def test_the_replicas_are_packed_one_a_step_each_to_the_gpu_the_room_predicts():
    """Each pack step places one replica; the step before asks which GPU gets it, and the answer
    is the GPU the bars then grow on. The drawn lower bound is the packing's, at or below the busiest."""
    from packviz.teach.lessons import CHAPTER_BY_KEY

    for key in ("replication", "hierarchy"):
        chapter = CHAPTER_BY_KEY[key]
        steps = chapter_steps(chapter.eplb, chapter.loads, chapter.num_packs)
        fills = [i for i, s in enumerate(steps) if s.phase in ("pack", "final", "nodes") and s.bars.bound is not None
                 and s.bars.queue is not None and s.joint is None]
        assert fills
        for i in fills:
            before, after = steps[i - 1].bars.totals, steps[i].bars.totals
            grown = [b for b in range(len(after)) if b >= len(before) or after[b] != before[b]]
            if steps[i - 1].bars.labels == steps[i].bars.labels:
                assert grown == list(steps[i].bars.marked), (key, i)
            question = steps[i - 1].question
            if question is not None:
                assert question.answer == steps[i].bars.labels[steps[i].bars.marked[0]], (key, i)
                assert all(reason for _, reason in question.reasons)
            assert steps[i].bars.bound <= max(after) + 1e-9 or len(steps[i].bars.queue) > 0
        last = steps[fills[-1]].bars
        assert last.queue == () and last.bound <= max(last.totals) + 1e-9
        # every slice carries an expert and the slices add up to the bar's total
        assert all(label.startswith(("expert", "group")) for bar in last.parts for label, _ in bar)


def test_a_hierarchy_shape_that_cannot_work_says_why():
    with pytest.raises(ValueError, match="do not split into 3 groups"):
        hierarchy_steps((1.0, 2.0, 3.0, 4.0), 4, 3, 1, 2)
    with pytest.raises(ValueError, match="do not split over 3 nodes"):
        hierarchy_steps((1.0, 2.0, 3.0, 4.0), 4, 4, 3, 3)
