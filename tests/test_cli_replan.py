"""python -m packviz rebalance --previous PLAN --tolerance T: the re-planner from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from packviz.cli import main
from packviz.data.loaders import read_loads
from packviz.eplb.cluster import Cluster, check_plan, place
from packviz.eplb.replan import count_moves, plan_moves
from packviz.io.deploy import read_moves_csv

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "deepseek_v3_58x256.csv"
SHAPE = ["--replicas", "288", "--groups", "8", "--nodes", "4", "--gpus", "32"]


def test_tolerance_re_plans_from_the_previous_plan(tmp_path, capsys):
    weight = read_loads(SAMPLE).weight
    # the plan in place was made on other loads: every expert's load a little off
    drifted = weight * torch.exp(0.2 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0),
                                                   dtype=torch.float64))
    old = place(drifted, Cluster(288, 8, 4, 32), "fast").phy2log
    previous, out_json, moves_file = tmp_path / "old.json", tmp_path / "new.json", tmp_path / "moves.csv"
    previous.write_text(json.dumps({"physical_to_logical_map": old.tolist()}))
    assert main(["rebalance", str(SAMPLE), *SHAPE, "--preset", "fast", "--previous", str(previous),
                 "--tolerance", "0.005", "--sglang", str(out_json), "--moves", str(moves_file)]) == 0
    printed = capsys.readouterr().out
    expected = plan_moves(weight, old, 8, 4, 32, tolerance=0.005, packer="fast")
    plan = torch.tensor(json.loads(out_json.read_text())["physical_to_logical_map"])
    assert torch.equal(plan, expected.placement.phy2log)
    assert "re-planned from the previous plan" in printed
    moved = int(count_moves(old, plan, 32, 4).total.sum())
    assert len(read_moves_csv(moves_file.read_text(), 32)) == moved
    fresh = place(weight, Cluster(288, 8, 4, 32), "fast").phy2log
    assert moved < int(count_moves(old, fresh, 32, 4).total.sum()) // 4


@pytest.mark.parametrize(("args", "words"), [
    (("--tolerance", "0.005"), "give it with --previous"),
])
def test_tolerance_without_a_previous_plan_is_refused(args, words, capsys):
    assert main(["rebalance", str(SAMPLE), *SHAPE, *args]) != 0
    assert words in capsys.readouterr().err


def test_a_hierarchical_re_plan_keeps_every_group_on_one_node(tmp_path, capsys):
    weight = read_loads(SAMPLE).weight
    drifted = weight * torch.exp(0.3 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(1),
                                                   dtype=torch.float64))
    cluster = Cluster(288, 8, 4, 32)
    old = place(drifted, cluster, "fast").phy2log
    previous, out_json = tmp_path / "old.json", tmp_path / "new.json"
    previous.write_text(json.dumps({"physical_to_logical_map": old.tolist()}))
    assert main(["rebalance", str(SAMPLE), *SHAPE, "--preset", "fast", "--previous", str(previous),
                 "--tolerance", "0.005", "--sglang", str(out_json)]) == 0
    printed = capsys.readouterr().out
    plan = torch.tensor(json.loads(out_json.read_text())["physical_to_logical_map"])
    assert check_plan(plan, 256, cluster).split_groups == []
    assert "spread over several nodes" not in printed
    moved = int(plan_moves(weight, old, 8, 4, 32, tolerance=0.005, packer="fast").groups_moved.sum())
    if moved:
        assert f"{moved} expert groups moved to another node, whole" in printed


def test_a_plan_that_fails_its_checks_exits_non_zero_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import packviz.cli_rebalance as command

    real_place = command.place

    def spreading(weight, cluster, packer, seed):
        placement = real_place(weight, cluster, packer, seed)
        spread = placement.phy2log.clone()
        # group 0's expert 0 and group 7's expert 255 trade slots across nodes 0 and 3
        first, last = (spread[0] == 0).nonzero()[0, 0], (spread[0] == 255).nonzero()[0, 0]
        spread[0, first], spread[0, last] = 255, 0
        return placement._replace(phy2log=spread)

    monkeypatch.setattr(command, "place", spreading)
    out_json = tmp_path / "plan.json"
    assert main(["rebalance", str(SAMPLE), *SHAPE, "--preset", "eplb", "--sglang", str(out_json)]) == 1
    captured = capsys.readouterr()
    assert "expert groups are spread over several nodes" in captured.out
    assert "failed its checks" in captured.err
    assert not out_json.exists()
