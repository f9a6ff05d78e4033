"""The command line: pack and generate, and one clear line on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from packviz import pack
from packviz.cli import main
from packviz.data.loaders import read_loads
from packviz.io.export import parse_placement_csv

ROOT = Path(__file__).resolve().parent.parent


def test_pack_writes_the_placement_csv_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / "placement.csv"
    source = ROOT / "sample_data" / "deepseek_readme.csv"
    assert main(["pack", str(source), "--packs", "4", "--preset", "eplb", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gap to LB" in printed and "mean" in printed
    placement = parse_placement_csv(out.read_text())
    expected = pack(read_loads(source).weight, 4, "eplb")
    assert torch.equal(placement["pack"], expected.pack_index)
    assert torch.equal(placement["rank_in_pack"], expected.rank_in_pack)
    lines = out.read_text().splitlines()
    names = read_loads(source).item_names
    assert lines[0] == "layer,item,pack,rank_in_pack,load,expert,replica,expert_name"
    # item 0 of layer 0 (load 90) is expert 0, its only replica, under the file's column name
    where = f"{int(expected.pack_index[0, 0])},{int(expected.rank_in_pack[0, 0])}"
    assert lines[1] == f"0,0,{where},90,0,0,{names[0]}"
    assert len(lines) == 1 + 24


def test_options_override_the_preset(tmp_path):
    out = tmp_path / "p.csv"
    source = ROOT / "sample_data" / "teaching_12_items.csv"
    assert main(["pack", str(source), "--packs", "3", "--num-restarts", "1", "--two-swap", "off",
                 "--seed", "5", "--out", str(out)]) == 0
    expected = pack(read_loads(source).weight, 3, "restarts-2swap", seed=5, num_restarts=1, two_swap=False)
    assert torch.equal(parse_placement_csv(out.read_text())["pack"], expected.pack_index)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pack", "sample_data/deepseek_readme.csv", "--packs", "5"], "pack counts that work: 1, 2, 3, 4, 6, 12"),
        (["pack", "sample_data/missing.csv", "--packs", "2"], "cannot be read"),
        (["pack", "tests/bad_inputs/text_cell.csv", "--packs", "2"], "row 2, column 2: 'abc' is not a number"),
        (["pack", "sample_data/deepseek_readme.csv", "--packs", "4", "--swap-scope", "all"], "swap_scope"),
        (["pack", "sample_data/deepseek_readme.csv", "--packs", "4", "--preset", "x"], "invalid choice"),
        (["pack", "sample_data/deepseek_readme.csv"], "--packs"),
        (["generate", "moe", "--layers", "2", "--items", "8", "--out", "x.xlsx"], "cannot write .xlsx"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(args, message):
    done = subprocess.run([sys.executable, "-m", "packviz", *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_help_documents_every_option():
    done = subprocess.run([sys.executable, "-m", "packviz", "pack", "--help"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0
    for option in ("--num-restarts", "--noise-min", "--noise-max", "--num-refined", "--one-swap", "--two-swap",
                   "--swap-scope", "--max-iterations", "--seed", "--device", "--out", "--preset"):
        assert option in done.stdout


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".pt"])
def test_generate_writes_a_readable_matrix(tmp_path, suffix):
    out = tmp_path / ("g" + suffix)
    assert main(["generate", "zipf", "--layers", "3", "--items", "16", "--seed", "2",
                 "--param", "exponent=1.2", "--out", str(out)]) == 0
    loaded = read_loads(out)
    assert loaded.shape == (3, 16)
    assert main(["pack", str(out), "--packs", "4"]) == 0


def test_replicated_loads_name_their_experts_in_the_csv_and_the_sglang_file(tmp_path):
    import json

    from packviz.data.experts import replicate
    from packviz.io.export import check_sglang_map

    out, sglang = tmp_path / "p.csv", tmp_path / "s.json"
    source = ROOT / "sample_data" / "deepseek_readme.csv"
    assert main(["pack", str(source), "--packs", "4", "--preset", "fast", "--replicate", "16",
                 "--out", str(out), "--sglang", str(sglang)]) == 0
    weight, slots = replicate(read_loads(source).weight, 16)
    expected = pack(weight, 4, "fast")
    placement = parse_placement_csv(out.read_text())
    assert torch.equal(placement["pack"], expected.pack_index)
    assert torch.equal(placement["expert"], slots.phy2log) and torch.equal(placement["replica"], slots.replica_rank)
    table = json.loads(sglang.read_text())["physical_to_logical_map"]
    assert torch.equal(check_sglang_map(table, num_experts=12, num_slots=16), slots.logcnt)
