"""The EPLB chapters: every step read from packviz.eplb's public functions on the loads on screen."""

from __future__ import annotations

import pytest
import torch

from packviz.eplb import rebalance_experts, replicate_experts
from packviz.teach.eplb_lessons import eplb_text, hierarchy_steps, replication_steps


def test_each_extra_slot_goes_to_the_most_load_per_replica_as_deepseek_does():
    loads = (90.0, 20.0, 55.0, 30.0, 45.0, 60.0)
    steps = replication_steps(loads, 9, 3)
    given = [s.bars.marked[0] for s in steps if s.phase == "replicate"]
    phy2log, _, _ = replicate_experts(torch.tensor([loads]), 9)
    assert given == phy2log[0, 6:].tolist()
    for step, expert in zip([s for s in steps if s.phase == "replicate"], given):
        shares = step.bars.totals
        assert shares[expert] == max(shares)  # drawn before the slot is given: the tallest bar gets it
        assert f"goes to expert {expert}" in step.narration
    final = next(s for s in steps if s.phase == "pack")
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
    nodes = steps[2].bars
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
