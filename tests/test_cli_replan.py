"""python -m packviz rebalance --previous PLAN --tolerance T: the re-planner from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from packviz.cli import main
from packviz.data.loaders import read_loads
from packviz.eplb.cluster import Cluster, place
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
