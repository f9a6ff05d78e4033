"""Every engine's placement file both ways, ``convert`` between them, SGLang's dense rows, and the
readers' plain sentences on bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packviz.cli import main
from packviz.data.loaders import read_loads
from packviz.eplb.cluster import Cluster, place
from packviz.io.deploy import read_plan, read_trtllm_yaml, sglang_json, trtllm_yaml
from packviz.io.engines import FORMATS, EnginePlacement, PlanFileError, read_placement, sglang, vllm_ascend
from packviz.io.engines.sglang import dense_rows, trivial_row
from packviz.io.export import check_sglang_map

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "deepseek_v3_58x256.csv"
FILE_NAMES = {"sglang": "p.json", "trtllm": "p.yaml", "vllm": "p.json", "vllm-ascend": "p.json", "csv": "p.csv"}


@st.composite
def plans(draw) -> EnginePlacement:
    """A valid placement: every layer holds every expert, extra slots tie-heavy (one hot expert) or random."""
    experts = draw(st.integers(1, 9))
    gpus = draw(st.sampled_from([1, 2, 3, 4]))
    nodes = draw(st.sampled_from([n for n in (1, 2, 4) if gpus % n == 0]))
    per_gpu = draw(st.integers(-(-experts // gpus), -(-experts // gpus) + 3))
    slots = gpus * per_gpu
    layers = draw(st.integers(1, 4))
    hot = draw(st.booleans())
    seed = draw(st.integers(0, 2**31))
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(layers):
        extra = (torch.zeros(slots - experts, dtype=torch.int64) if hot
                 else torch.randint(0, experts, (slots - experts,), generator=generator))
        row = torch.cat([torch.arange(experts), extra])
        rows.append(row[torch.randperm(slots, generator=generator)])
    first = draw(st.integers(0, 5))
    trailing = draw(st.integers(0, 2))
    return EnginePlacement(torch.stack(rows), tuple(range(first, first + layers)), num_layers=first + layers + trailing,
                           num_gpus=gpus, num_nodes=nodes)


def _kept_by(fmt: str, written: EnginePlacement, back: EnginePlacement) -> None:
    """What format ``fmt`` carries comes back as written."""
    if fmt == "sglang":
        full = sglang.full_map(written.phy2log, written.layer_ids, written.model_layers)
        assert torch.equal(sglang.full_map(back.phy2log, back.layer_ids, back.model_layers), full)
        assert back.num_layers == written.model_layers
        trivial = trivial_row(written.num_replicas, written.num_logical)
        if not any(torch.equal(row, trivial) for row in written.phy2log):
            # no MoE row looks like a dense one, so the MoE rows are told apart exactly
            assert back.layer_ids == written.layer_ids and torch.equal(back.phy2log, written.phy2log)
        return
    assert torch.equal(back.phy2log, written.phy2log)
    if fmt == "trtllm":
        assert back.layer_ids == written.layer_ids
    if fmt in ("csv", "vllm-ascend"):
        assert back.num_gpus == written.num_gpus
    if fmt == "csv":
        assert back.num_nodes == written.num_nodes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans(), st.sampled_from(list(FORMATS)))
def test_every_format_reads_back_what_it_wrote(plan, fmt):
    text = FORMATS[fmt].write(plan, FILE_NAMES[fmt])
    kind, back = read_placement(text.encode(), FILE_NAMES[fmt])
    assert kind == fmt
    _kept_by(fmt, plan, back)


# Cross-format convert through the command line ------------------------------------------------------------

def _write_source(fmt: str, plan: EnginePlacement, path: Path) -> None:
    path.write_text(FORMATS[fmt].write(plan, path.name))


@pytest.fixture(scope="module")
def small_plan() -> EnginePlacement:
    weight = torch.randint(0, 100, (4, 12), generator=torch.Generator().manual_seed(3)).double()
    phy2log = place(weight, Cluster(16, 4, 2, 8), "fast").phy2log
    return EnginePlacement(phy2log, (3, 4, 5, 6), num_layers=9, num_gpus=8, num_nodes=2)


@pytest.mark.parametrize("source", list(FORMATS))
@pytest.mark.parametrize("target", list(FORMATS))
def test_convert_between_every_pair_and_back(source, target, small_plan, tmp_path, capsys):
    src = tmp_path / f"in{Path(FILE_NAMES[source]).suffix}"
    _write_source(source, small_plan, src)
    out = tmp_path / f"out{Path(FILE_NAMES[target]).suffix}"
    # what the source does not carry, the flags say
    shape = ["--gpus", "8", "--nodes", "2", "--first-layer", "3", "--num-layers", "9"]
    assert main(["convert", str(src), "--to", target, str(out), *shape]) == 0
    printed = capsys.readouterr().out
    assert "read back as the same map" in printed
    kind, converted = read_placement(out)
    assert kind == target
    _kept_by(target, small_plan, converted)
    back = tmp_path / f"back{Path(FILE_NAMES[source]).suffix}"
    assert main(["convert", str(out), "--to", source, str(back), *shape]) == 0
    assert read_placement(back)[1].phy2log.equal(small_plan.phy2log)
    assert back.read_text() == src.read_text()


def test_convert_is_registered_as_a_command(tmp_path):
    src, out = tmp_path / "plan.yaml", tmp_path / "plan.json"
    src.write_text("initial_global_assignments:\n  3: [1, 0, 2, 0]\n  4: [2, 1, 0, 1]\nnum_slots: 4\n")
    done = subprocess.run([sys.executable, "-m", "packviz", "convert", str(src), "--to", "sglang", str(out),
                           "--num-layers", "6"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = json.loads(out.read_text())["physical_to_logical_map"]
    assert table == [[0, 1, 2, 0]] * 3 + [[1, 0, 2, 0], [2, 1, 0, 1]] + [[0, 1, 2, 0]]
    assert "numbered 3-4 of 6" in done.stdout


# SGLang's dense rows ---------------------------------------------------------------------------------------

def test_sglang_map_has_a_row_for_every_model_layer_with_dense_rows_trivial():
    weight = read_loads(SAMPLE).weight
    plan = place(weight, Cluster(288, 8, 4, 32)).phy2log
    table = json.loads(sglang_json(plan, first_layer=3, num_layers=61))["physical_to_logical_map"]
    assert len(table) == 61
    # SGLang's static dispatch needs every expert in every row, dense rows included
    check_sglang_map(table, 256, 288)
    for row in (0, 1, 2):
        assert table[row] == [slot % 256 for slot in range(288)]
    assert torch.equal(torch.tensor(table[3:]), plan)
    # the default keeps the map as it was: one row per MoE layer
    assert json.loads(sglang_json(plan))["physical_to_logical_map"] == plan.tolist()
    # and readers recognise the dense rows and say so
    kind, back = read_placement(sglang_json(plan, first_layer=3, num_layers=61).encode(), "v3.json")
    assert (kind, back.layer_ids, back.num_layers) == ("sglang", tuple(range(3, 61)), 61)
    assert torch.equal(back.phy2log, plan)
    assert "rows 0-2 of 61 hold SGLang's trivial map" in back.notes[0]
    # read_plan gives the MoE rows where the loads have them, and the file's rows otherwise
    data = sglang_json(plan, first_layer=3, num_layers=61).encode()
    assert torch.equal(read_plan(data, "v3.json", layers=58), plan)
    assert read_plan(data, "v3.json", layers=61).shape == (61, 288)
    assert read_plan(data, "v3.json").shape == (61, 288)


def test_trailing_dense_layers_and_an_all_trivial_plan():
    plan = torch.tensor([[1, 0, 2, 2], [2, 1, 0, 0]])
    table = json.loads(sglang_json(plan, first_layer=1, num_layers=4))["physical_to_logical_map"]
    assert table == [[0, 1, 2, 0], [1, 0, 2, 2], [2, 1, 0, 0], [0, 1, 2, 0]]
    assert dense_rows(torch.tensor(table)) == [0, 3]
    # a plan that is the trivial map throughout has no dense rows: every row is the plan's
    assert dense_rows(trivial_row(4, 3).repeat(5, 1)) == []
    with pytest.raises(ValueError, match="end before MoE layer 2"):
        sglang_json(plan, first_layer=1, num_layers=2)


def test_rebalance_writes_sglangs_61_rows_and_reads_them_back_as_previous(tmp_path, capsys):
    out = tmp_path / "v3.json"
    base = ["rebalance", str(SAMPLE), "--replicas", "288", "--groups", "8", "--nodes", "4", "--gpus", "32",
            "--preset", "eplb"]
    assert main([*base, "--sglang", str(out), "--first-layer", "3", "--num-layers", "61",
                 "--trtllm", str(tmp_path / "v3.yaml"), "--vllm", str(tmp_path / "v.json"),
                 "--vllm-ascend", str(tmp_path / "va.json")]) == 0
    table = json.loads(out.read_text())["physical_to_logical_map"]
    assert len(table) == 61
    expected = place(read_loads(SAMPLE).weight, Cluster(288, 8, 4, 32)).phy2log
    assert torch.equal(torch.tensor(table[3:]), expected)
    assert torch.equal(read_trtllm_yaml((tmp_path / "v3.yaml").read_text())[0], expected)
    for name in ("v.json", "va.json"):
        assert torch.equal(read_placement(tmp_path / name)[1].phy2log, expected)
    assert read_placement(tmp_path / "va.json")[1].num_gpus == 32
    # the 61-row map is the plan in place for the 58 MoE layers' loads
    assert main([*base, "--previous", str(out)]) == 0
    assert "moves 0 replicas" in capsys.readouterr().out
    assert main([*base, "--num-layers", "57"]) == 2
    assert "the model needs at least 58 layers" in capsys.readouterr().err


# The other formats' own rules ----------------------------------------------------------------------------------

def test_vllm_reads_one_shared_list_and_per_layer_lists():
    _, shared = read_placement(b"[0, 1, 2, 3, 0, 1]", "map.json")
    assert shared.shared and shared.phy2log.tolist() == [[0, 1, 2, 3, 0, 1]]
    assert FORMATS["vllm"].write(shared, "m.json") == "[0, 1, 2, 3, 0, 1]"
    _, per_layer = read_placement(b"[[0, 1, 2, 3, 0, 1], [3, 2, 1, 0, 3, 2]]", "map.json")
    assert not per_layer.shared and per_layer.moe_layers == 2


def test_vllm_ascend_reads_its_own_test_map_and_notes_idle_copies():
    # the layout of vllm-ascend's tests/ut/eplb/core/a2/expert_map.json: 8 experts, 2 devices x 5 slots
    text = json.dumps({"moe_layer_count": 1, "layer_list": [{"layer_id": 0, "device_count": 2, "device_list": [
        {"device_id": 0, "device_expert": [7, 2, 0, 3, 5]}, {"device_id": 1, "device_expert": [6, 1, 4, 7, 2]}]}]})
    kind, placement = read_placement(text.encode(), "expert_map.json")
    assert kind == "vllm-ascend"
    assert placement.phy2log.tolist() == [[7, 2, 0, 3, 5, 6, 1, 4, 7, 2]] and placement.num_gpus == 2
    assert placement.notes == ()
    note = vllm_ascend.idle_copies(torch.tensor([[0, 0, 1, 2]]), 2)
    assert note.startswith("1 slots hold an expert already on their device (the first: layer 0, device 0, expert 0 "
                           "in slots 0, 1)")


# Bad input: one sentence each ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "content", "flags", "words"), [
    ("stats.json", '{"logical_count": [[[1, 2], [3, 4]]]}', [], "holds SGLang's logical_count statistics (1 x 2 x 2 "
     "expert loads), not a plan (physical_to_logical_map); make a plan from them with `python -m packviz rebalance"),
    ("shared.json", "[0, 1, 0]", [], "one map shared by every MoE layer (vLLM's single list): say how many MoE "
     "layers to write with --moe-layers N"),
    ("p.yaml", "initial_global_assignments:\n  0: [0, 1]\n", [], "the placement CSV names each slot's GPU and node: "
     "say how many GPUs (--gpus)"),
    ("p.yaml", "initial_global_assignments:\n  0: [0, 1, 1]\n", ["--gpus", "2"], "3 slots do not split evenly "
     "over 2 GPUs"),
    ("p.yaml", "initial_global_assignments:\n  0: [0, 2, 2]\n", ["--gpus", "3"], "layer 0 has no slot for expert 1"),
    ("p.yaml", "initial_global_assignments: [0, 1\n", ["--gpus", "1"], "not valid YAML: line 2"),
    ("p.txt", "0,1", ["--gpus", "1"], "unknown plan file type '.txt'"),
    ("p.json", '"text"', ["--gpus", "1"], "holds a str, not one of the engines' placements"),
    ("p.json", "", ["--gpus", "1"], "the file is empty"),
    ("p.yaml", "initial_global_assignments:\n  5: [0, 1]\n", ["--gpus", "1", "--num-layers", "4"],
     "the model's 4 layers end before MoE layer 5"),
])
def test_convert_refuses_bad_input_with_one_sentence(name, content, flags, words, tmp_path, capsys):
    src = tmp_path / name
    src.write_text(content)
    assert main(["convert", str(src), "--to", "csv", str(tmp_path / "out.csv"), *flags]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ")
    assert words in error
    assert not (tmp_path / "out.csv").exists()


def test_convert_refuses_an_output_suffix_of_another_format(tmp_path, capsys):
    src = tmp_path / "p.yaml"
    src.write_text("initial_global_assignments:\n  0: [0, 1]\n")
    assert main(["convert", str(src), "--to", "trtllm", str(tmp_path / "out.json")]) == 2
    assert "a trtllm file is written as .yaml or .yml, not .json" in capsys.readouterr().err


def test_convert_refuses_sglang_statistics_in_a_torch_file(tmp_path, capsys):
    src = tmp_path / "dump.pt"
    torch.save({"rank": 0, "logical_count": torch.zeros(2, 3, 4, dtype=torch.int64),
                "average_utilization_rate_over_window": None}, src)
    assert main(["convert", str(src), "--to", "vllm", str(tmp_path / "out.json")]) == 2
    assert "`python -m packviz rebalance dump.pt ...`" in capsys.readouterr().err
    # the same file is a load matrix for the loaders: steps summed, dense all-zero layers kept
    loaded = read_loads(src, keep_time_axis=True)
    assert loaded.shape == (3, 4) and loaded.time_axis.shape == (2, 3, 4)


def test_sglang_torch_placement_reads(tmp_path):
    path = tmp_path / "map.pt"
    torch.save({"physical_to_logical_map": torch.tensor([[0, 1, 1], [1, 0, 0]])}, path)
    kind, placement = read_placement(path)
    assert kind == "sglang" and placement.phy2log.tolist() == [[0, 1, 1], [1, 0, 0]]


# Rough edges ---------------------------------------------------------------------------------------------------

def test_block_style_trtllm_yaml_reads_like_the_flow_style():
    block = "initial_global_assignments:\n  0:\n  - 1\n  - 0\n  - 2\n  3:\n    - 2\n    - 1\n    - 0\nnum_slots: 3\n"
    phy2log, first = read_trtllm_yaml(block, "block.yaml")
    assert phy2log.tolist() == [[1, 0, 2], [2, 1, 0]] and first == 0
    flow = trtllm_yaml(torch.tensor([[1, 0, 2], [2, 1, 0]]), first_layer=5)
    assert read_trtllm_yaml(flow)[0].tolist() == [[1, 0, 2], [2, 1, 0]]
    assert read_placement(block.encode(), "block.yaml")[1].layer_ids == (0, 3)


def test_plan_readers_name_the_file_and_place():
    with pytest.raises(PlanFileError, match=r"p.json: layer_list\[1\] lists 1 devices, layer_list\[0\] 2"):
        bad = {"moe_layer_count": 2, "layer_list": [
            {"device_list": [{"device_expert": [0, 1]}, {"device_expert": [1, 0]}]},
            {"device_list": [{"device_expert": [0, 1]}]}]}
        read_placement(json.dumps(bad).encode(), "p.json")
