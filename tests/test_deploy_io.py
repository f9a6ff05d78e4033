"""Deploy exports: every file reads back as the map that was written; bad files say what and where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from packviz.cli import main
from packviz.data.loaders import read_loads
from packviz.eplb.cluster import Cluster, place
from packviz.eplb.moves import moves_between
from packviz.io.deploy import (
    PlanFileError,
    moves_csv,
    placement_csv,
    read_moves_csv,
    read_placement_csv,
    read_plan,
    read_sglang_json,
    read_trtllm_yaml,
    sglang_json,
    sglang_logical_count_json,
    trtllm_yaml,
)
from packviz.io.export import check_sglang_map

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "deepseek_v3_58x256.csv"


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.sampled_from([(12, 16, 4, 2, 8), (8, 12, 2, 2, 4), (6, 6, 3, 1, 3)]),
       st.integers(0, 10**6))
def test_every_export_reads_back_as_the_same_map(layers, shape, seed):
    experts, slots, groups, nodes, gpus = shape
    cluster = Cluster(slots, groups, nodes, gpus)
    weight = torch.randint(0, 100, (layers, experts), generator=torch.Generator().manual_seed(seed)).double()
    plan = place(weight, cluster, "fast").phy2log
    phy2log, shape_back = read_placement_csv(placement_csv(plan, weight, cluster))
    assert torch.equal(phy2log, plan)
    assert (shape_back.num_replicas, shape_back.num_nodes, shape_back.num_gpus) == (slots, nodes, gpus)
    assert torch.equal(read_sglang_json(sglang_json(plan))["physical_to_logical_map"], plan)
    assert torch.equal(read_sglang_json(sglang_logical_count_json(weight))["logical_count"], weight)
    assert torch.equal(read_trtllm_yaml(trtllm_yaml(plan, first_layer=3))[0], plan)
    assert read_trtllm_yaml(trtllm_yaml(plan, first_layer=3))[1] == 3
    for name, text in (("p.csv", placement_csv(plan, weight, cluster)), ("p.json", sglang_json(plan)),
                       ("p.yaml", trtllm_yaml(plan))):
        assert torch.equal(read_plan(text.encode(), name), plan)
    other = place(weight.flip(1), cluster).phy2log
    moves = moves_between(other, plan, cluster, expert_bytes=7)
    assert read_moves_csv(moves_csv(moves), gpus).rows() == moves.rows()


def test_placement_csv_rows_say_where_and_how_much():
    weight = torch.tensor([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86]], dtype=torch.float64)
    cluster = Cluster(16, 4, 2, 8)
    plan = place(weight, cluster).phy2log
    lines = placement_csv(plan, weight, cluster).splitlines()
    assert lines[0] == "layer,node,gpu,slot,expert,replica,load"
    assert len(lines) == 17
    # the second row: slot 1 of GPU 0, its expert and that expert's load over its replicas
    _, node, gpu, slot, expert, _, load = lines[2].split(",")
    assert (node, gpu, slot, expert) == ("0", "0", "1", str(int(plan[0, 1])))
    count = int((plan[0] == int(expert)).sum())
    assert float(load) == pytest.approx(float(weight[0, int(expert)]) / count)
    # the TensorRT-LLM form: sorted keys, flow lists, as its example writes them
    yaml = trtllm_yaml(plan).splitlines()
    assert yaml[0] == "initial_global_assignments:" and yaml[1].startswith("  0: [5, 6, 5")
    assert yaml[-2:] == ["layer_updates_per_iter: 0", "num_slots: 16"]


@pytest.mark.parametrize(("name", "text", "words"), [
    ("p.csv", "layer,gpu\n0,0\n", "expected the columns"),
    ("p.csv", "layer,node,gpu,slot,expert,replica,load\n0,0,0,0,x,0,1\n", "line 2"),
    ("p.csv", "layer,node,gpu,slot,expert,replica,load\n0,0,0,0,1,0,1\n0,1,0,1,2,0,1\n", "GPU 0 is on node 1"),
    ("p.csv", "layer,node,gpu,slot,expert,replica,load\n0,0,0,0,1,0,1\n0,0,1,1,2,0,1\n", "some slots are missing"),
    ("p.json", '{"logical_count": [[1, 2]]}', "not a plan"),
    ("p.json", '{"physical_to_logical_map": [[0, 1], [0]]}', "layer 1 has 1 slots"),
    ("p.json", '{"physical_to_logical_map": [[0, -1]]}', "layer 0, slot 1"),
    ("p.json", '{"other": 1}', "neither"),
    ("p.yaml", "num_slots: 3\ninitial_global_assignments:\n  0: [0, 1]\n", "num_slots is 3"),
    ("p.txt", "x", "unknown plan file type"),
])
def test_bad_plan_files_say_what_and_where(name, text, words):
    with pytest.raises(PlanFileError, match=words):
        read_plan(text.encode(), name)


def cli(*args: str) -> int:
    return main(["rebalance", str(SAMPLE), "--replicas", "288", "--groups", "8", "--nodes", "4", "--gpus", "32",
                 *args])


def test_cli_writes_the_engines_map(tmp_path, capsys):
    out_json, out_csv, out_yaml = tmp_path / "p.json", tmp_path / "p.csv", tmp_path / "p.yaml"
    assert cli("--preset", "fast", "--sglang", str(out_json), "--csv", str(out_csv), "--trtllm", str(out_yaml)) == 0
    printed = capsys.readouterr().out
    assert "hierarchical policy" in printed and "balancedness" in printed
    weight = read_loads(SAMPLE).weight
    expected = place(weight, Cluster(288, 8, 4, 32), "fast").phy2log
    table = json.loads(out_json.read_text())["physical_to_logical_map"]
    check_sglang_map(table, 256, 288)
    assert torch.equal(torch.tensor(table), expected)
    phy2log, cluster = read_placement_csv(out_csv.read_text())
    assert torch.equal(phy2log, expected) and (cluster.num_nodes, cluster.num_gpus) == (4, 32)
    assert torch.equal(read_trtllm_yaml(out_yaml.read_text())[0], expected)


def test_cli_lists_moves_from_a_previous_plan(tmp_path, capsys):
    previous, moves_file = tmp_path / "old.json", tmp_path / "moves.csv"
    assert cli("--preset", "eplb", "--sglang", str(previous)) == 0
    assert cli("--preset", "eplb", "--policy", "global", "--previous", str(previous), "--moves", str(moves_file)) == 0
    printed = capsys.readouterr().out
    weight = read_loads(SAMPLE).weight
    old = place(weight, Cluster(288, 8, 4, 32)).phy2log
    new = place(weight, Cluster(288, 8, 4, 32, "global")).phy2log
    expected = moves_between(old, new, Cluster(288, 8, 4, 32, "global"))
    assert read_moves_csv(moves_file.read_text(), 32).rows() == expected.rows()
    assert f"moves {len(expected)} replicas" in printed


@pytest.mark.parametrize(("args", "words"), [
    (("--gpus", "30"), "288 slots do not split evenly over 30 GPUs"),
    (("--replicas", "200"), "200 slots are fewer than the 256 experts"),
    (("--moves", "m.csv"), "give it with --previous"),
])
def test_cli_refuses_shapes_with_the_pages_sentence(args, words, capsys):
    base = {"--replicas": "288", "--groups": "8", "--nodes": "4", "--gpus": "32"}
    extra = []
    for flag, value in zip(args[::2], args[1::2]):
        if flag in base:
            base[flag] = value
        else:
            extra += [flag, value]
    argv = ["rebalance", str(SAMPLE), *[x for kv in base.items() for x in kv], *extra]
    assert main(argv) == 2
    assert words in capsys.readouterr().err


def test_cli_refuses_a_previous_plan_of_another_shape(tmp_path, capsys):
    previous = tmp_path / "old.json"
    previous.write_text(json.dumps({"physical_to_logical_map": [[0, 1, 2]]}))
    assert cli("--previous", str(previous)) == 2
    assert "the plan is 1 layers x 3 slots" in capsys.readouterr().err
