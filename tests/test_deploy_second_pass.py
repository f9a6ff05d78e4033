"""Deploy's second pass: dense layers, Over time's cost, re-planning an uploaded plan in place, defaults from the
data, and the rough edges (AppTest, like tests/test_deploy_page.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit.testing.v1.app_test as app_test_module
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs
from streamlit.testing.v1 import AppTest

import packviz.eplb.plan_table as plan_table_module
import ui.deploy_caches as deploy_caches_module
from packviz.data.loaders import read_loads
from packviz.eplb.cluster import Cluster, balance, check_plan, layers_phrase, moe_layers, place
from packviz.eplb.models import MODELS, model_for
from packviz.eplb.moves import moves_between
from packviz.eplb.over_time import FreshPlans, over_time, standard_planners, windows
from packviz.eplb.plan_table import plan_rows
from packviz.eplb.replan import plan_moves
from packviz.io.deploy import read_moves_csv, sglang_json
from tests.test_app import _RecordingStorage

ROOT = Path(__file__).resolve().parent.parent
EXPERTS = read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight
DEFAULT = Cluster(288, 8, 4, 32)
# SGLang's own statistics for DeepSeek-V3: all 61 layers, the first 3 dense and all zero
DENSE = torch.cat([torch.zeros(3, 256, dtype=EXPERTS.dtype), EXPERTS])


def dense_csv() -> bytes:
    return ("\n".join(",".join(str(int(v)) for v in row) for row in DENSE.tolist()) + "\n").encode()


@pytest.fixture(autouse=True, scope="module")
def over_time_inline():
    # these tests read Over time's result in the run that asked for it, however loaded the machine (the
    # background path has its own test)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PACKVIZ_OVER_TIME_INLINE_S", "600")
        yield


def deploy_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.switch_page("pages/deploy.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.radio(key="source").set_value("Upload").run()
    at.file_uploader(key="upload").upload(name, content, "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def plain(text: str) -> str:
    return text.replace("\\", "")


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def downloaded(at: AppTest, key: str) -> str:
    button = next(b for b in at.get("download_button") if b.proto.id.endswith(key))
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    return _RecordingStorage.files[file_id].decode()


# ---- dense layers ------------------------------------------------------------------------------------------

def test_balance_means_leave_the_dense_layers_out():
    plan = place(DENSE, DEFAULT, "eplb").phy2log
    score = balance(DENSE, plan, DEFAULT)
    moe = moe_layers(DENSE)
    assert moe.tolist() == [False] * 3 + [True] * 58 and torch.equal(score.moe, moe)
    assert score.mean_balancedness == pytest.approx(float(score.balancedness[3:].mean()))
    assert score.mean_balancedness < float(score.balancedness.mean())  # a dense layer's 1.0 used to lift it
    assert score.mean_imbalance == pytest.approx(float(score.imbalance[3:].mean()))
    assert score.mean_bound_over_mean == pytest.approx(float(score.bound_over_mean[3:].mean()))
    assert layers_phrase(moe) == "58 MoE layers of 61 (3 dense, no load: 0, 1, 2)"
    assert layers_phrase(moe[3:]) == "58 MoE layers"


@settings(max_examples=30, deadline=None)
@given(hs.integers(1, 4), hs.lists(hs.sampled_from([0.0, 1.0, 5.0, 1e9]), min_size=16, max_size=16),
       hs.integers(0, 3))
def test_prepending_zero_rows_changes_no_mean(dense_rows, loads, zero_layers):
    """Tie-heavy, zero-heavy and huge loads: zero rows in front change no mean of the plan table or over time."""
    weight = torch.tensor(loads, dtype=torch.float64).view(2, 8)
    weight[:min(zero_layers, 1)] = 0  # a dense layer among the MoE ones too
    padded = torch.cat([torch.zeros(dense_rows, 8, dtype=torch.float64), weight])
    cluster = Cluster(12, None, 1, 4)
    rows, padded_rows = plan_rows(weight, cluster, ["eplb"]), plan_rows(padded, cluster, ["eplb"])
    for row, padded_row in zip(rows, padded_rows):
        for field in ("balancedness", "imbalance", "bound_over_mean"):
            assert padded_row[field] == pytest.approx(row[field])
    history = torch.stack([weight, weight.flip(1), weight])
    padded_history = torch.cat([torch.zeros(3, dense_rows, 8, dtype=torch.float64), history], dim=1)
    runs = over_time(history, cluster, standard_planners(cluster, "eplb", 0.005))
    padded_runs = over_time(padded_history, cluster, standard_planners(cluster, "eplb", 0.005))
    for name, run in runs.items():
        assert torch.allclose(padded_runs[name].balancedness, run.balancedness)
        assert torch.allclose(padded_runs[name].max_over_mean, run.max_over_mean)


def test_the_page_counts_draws_and_averages_only_the_moe_layers():
    at = upload(deploy_page(), "dsv3_61.csv", dense_csv())
    plan = place(DENSE, DEFAULT, "fast").phy2log
    score = balance(DENSE, plan, DEFAULT)
    assert metric(at, "Balancedness (mean/max)") == f"{score.mean_balancedness:.4f}"
    assert metric(at, "Balancedness (mean/max)") != f"{float(score.balancedness.mean()):.4f}"
    assert any("58 MoE layers of 61" in m.value for m in at.markdown)
    # the 256-expert data is DeepSeek-V3's shape: its 8 groups; Placement opens on the first MoE layer
    assert [at.number_input(key=k).value for k in ("deploy_replicas", "deploy_groups", "deploy_layer")] == [288, 8, 3]
    heatmap = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert heatmap["data"][0]["z"][:3] == [[None] * 32] * 3
    assert max(v for row in heatmap["data"][0]["z"][3:] for v in row) <= heatmap["data"][0]["zmax"]
    at.number_input(key="deploy_layer").set_value(0).run()
    assert at.subheader[0].value == "Layer 0: dense, no load"
    bars = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert bars["layout"]["yaxis"]["range"] == [0, 1]
    assert any("dense, no load" in a["text"] for a in bars["layout"]["annotations"])


# ---- Over time's cost --------------------------------------------------------------------------------------

def test_over_time_makes_one_fresh_plan_and_one_re_plan_a_window_and_hands_the_fresh_plan_over():
    history = windows(torch.stack([EXPERTS[:6] * (1 + 0.1 * step) + step for step in range(4)]), 1)
    cluster = Cluster(288, 8, 4, 32)
    fresh = FreshPlans(cluster, "eplb")
    handed = []

    def replan(weight, previous, *args, fresh, **kwargs):
        handed.append(fresh)
        return plan_moves(weight, previous, *args, fresh=fresh, **kwargs)
    runs = over_time(history, cluster, standard_planners(cluster, "eplb", 0.005, fresh=fresh, replan=replan))
    assert fresh.made == 3 and len(handed) == 2
    fresh_run = runs["fresh each window"]
    assert all(given is made for given, made in zip(handed, fresh_run.plans[1:]))
    assert torch.equal(runs["kept from window 0"].plans[0], fresh_run.plans[0])


def test_the_page_plans_each_window_once_and_nothing_again_on_a_rerun(monkeypatch):
    made, replans = [], []
    place_before, replan_before = plan_table_module.place, deploy_caches_module.plan_moves
    monkeypatch.setattr(plan_table_module, "place", lambda *a, **k: made.append(1) or place_before(*a, **k))
    monkeypatch.setattr(deploy_caches_module, "plan_moves",
                        lambda *a, **k: replans.append(k.get("fresh")) or replan_before(*a, **k))
    at = deploy_page()
    at.radio(key="deploy_section").set_value("Over time").run()
    at.number_input(key="deploy_sim_seed").set_value(424242).run()  # windows no other test has planned
    at.number_input(key="deploy_sim_steps").set_value(8).run()
    at.number_input(key="deploy_window").set_value(2).run()
    assert not at.exception
    made.clear(), replans.clear()
    at.number_input(key="deploy_sim_seed").set_value(424243).run()
    # 4 windows: plans made on windows 0..2, so 3 fresh plans and 2 re-plans, each handed its fresh plan
    assert len(made) == 3 and len(replans) == 2 and all(fresh is not None for fresh in replans)
    made.clear(), replans.clear()
    at.run()
    at.radio(key="deploy_section").set_value("Placement").run()
    at.radio(key="deploy_section").set_value("Over time").run()
    assert made == [] and replans == []
    assert not at.exception


# ---- re-plan from the plan in place ------------------------------------------------------------------------

def test_an_uploaded_plan_is_re_planned_in_place_with_its_moves_checks_and_files(monkeypatch):
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", _RecordingStorage)
    at = deploy_page()
    at.radio(key="deploy_policy").set_value("global").run()
    at.radio(key="deploy_section").set_value("Export").run()
    cluster = Cluster(288, 8, 4, 32, "global")
    previous = place(EXPERTS.roll(1, dims=1), cluster, "eplb").phy2log
    at.file_uploader(key="deploy_previous").upload("old.json", sglang_json(previous).encode(),
                                                   "application/json").run()
    assert not at.exception and not at.error
    fresh = place(EXPERTS, cluster, "fast").phy2log
    expected = plan_moves(EXPERTS, previous, 8, 4, 32, tolerance=0.005, packer="fast", hierarchical=False,
                          fresh=fresh).placement.phy2log
    moves = moves_between(previous, expected, cluster)
    assert 0 < len(moves) < len(moves_between(previous, fresh, cluster))
    assert read_moves_csv(downloaded(at, "deploy_inplace_moves"), 32).rows() == moves.rows()
    assert torch.equal(torch.tensor(json.loads(downloaded(at, "deploy_inplace_sglang"))["physical_to_logical_map"]),
                       expected)
    assert torch.equal(torch.tensor(json.loads(downloaded(at, "deploy_sglang"))["physical_to_logical_map"]), fresh)
    assert any(s.value.startswith("The re-plan's checks pass") for s in at.success)
    # the loads file (SGLang plans on it itself) is the fresh plan's export only: it would not deploy the re-plan
    ids = [b.proto.id for b in at.get("download_button")]
    assert any(i.endswith("deploy_logical_count") for i in ids) and any("deploy_inplace_sglang" in i for i in ids)
    assert not any("deploy_inplace_logical_count" in i for i in ids)
    assert any(f"{len(moves):,} replicas moved where the fresh plan moves" in plain(m.value) for m in at.markdown)
    # a move budget instead: at most 2 replicas a layer
    at.radio(key="deploy_replan_by").set_value("a move budget").run()
    at.number_input(key="deploy_replan_budget").set_value(2).run()
    within = plan_moves(EXPERTS, previous, 8, 4, 32, tolerance=None, max_moves=2, packer="fast",
                        hierarchical=False, fresh=fresh).placement.phy2log
    budget_moves = read_moves_csv(downloaded(at, "deploy_inplace_moves"), 32)
    assert budget_moves.rows() == moves_between(previous, within, cluster).rows()
    assert int(torch.bincount(budget_moves.layer, minlength=58).max()) <= 2


def test_a_re_plan_that_fails_its_checks_says_so_and_offers_no_files(monkeypatch):
    """Any re-plan the page shows is checked: one that spreads expert groups over nodes (a re-planner that
    left the hierarchy) is shown as failing, with no files to download."""
    # a global re-plan from a global plan: groups spread over the nodes of the hierarchical cluster on screen
    global_plan = place(EXPERTS, Cluster(288, 8, 4, 32, "global"), "eplb").phy2log
    stray = plan_moves(EXPERTS, global_plan, 8, 4, 32, tolerance=0.005, packer="eplb", hierarchical=False)
    assert check_plan(stray.placement.phy2log, 256, DEFAULT).split_groups
    monkeypatch.setattr(deploy_caches_module, "plan_moves", lambda *args, **kwargs: stray)
    at = deploy_page()
    at.radio(key="deploy_section").set_value("Export").run()
    previous = place(EXPERTS.roll(1, dims=1), DEFAULT, "eplb").phy2log
    at.file_uploader(key="deploy_previous").upload("old.json", sglang_json(previous).encode(),
                                                   "application/json").run()
    at.number_input(key="deploy_replan_tolerance").set_value(0.37).run()  # a tolerance no other test caches
    assert not at.exception
    assert any(e.value.startswith("The re-plan: ") and "spread over several nodes" in e.value for e in at.error)
    assert not any(s.value.startswith("The re-plan's checks pass") for s in at.success)
    # a plan that fails its checks is not offered as files; same-GPU duplicates only warn
    assert not any(b.proto.id.endswith("deploy_inplace_sglang") for b in at.get("download_button"))
    assert any(i.value.startswith("The re-plan's files are held back") for i in at.info)
    assert not any("hold a replica of an expert already on the same GPU" in e.value for e in at.error)


# ---- defaults from the data --------------------------------------------------------------------------------

def test_model_presets_carry_their_expert_sizes_and_are_found_from_the_shape():
    assert MODELS["DeepSeek-V3/R1"].expert_bytes == 3 * 7168 * 2048
    assert MODELS["Qwen3-30B-A3B"].expert_bytes == 3 * 2048 * 768 * 2
    assert MODELS["Qwen3-235B-A22B"].expert_bytes == 3 * 4096 * 1536 * 2
    assert model_for(EXPERTS).name == model_for(DENSE).name == "DeepSeek-V3/R1"
    assert model_for(torch.ones(20, 48, 128)).name == "Qwen3-30B-A3B"
    assert model_for(torch.ones(7, 128)) is None


def test_a_qwen_shaped_upload_opens_without_groups_and_with_qwens_expert_size():
    qwen = torch.arange(48 * 128, dtype=torch.float64).view(48, 128) % 97 + 1
    content = ("\n".join(",".join(str(int(v)) for v in row) for row in qwen.tolist()) + "\n").encode()
    at = upload(deploy_page(), "qwen.csv", content)
    assert [at.number_input(key=k).value for k in ("deploy_replicas", "deploy_groups", "deploy_nodes",
                                                   "deploy_gpus")] == [160, 0, 4, 32]
    assert "global policy" in next(m.value for m in at.markdown if "MoE layers" in m.value)
    assert at.selectbox(key="deploy_model").value == "Qwen3-30B-A3B"
    assert any(c.value == f"48 MoE layers x 128 experts, BF16. One expert: {3 * 2048 * 768 * 2 / 1e6:,.6g} MB"
               for c in at.sidebar.caption)
    # the choice names the model alone (with its shape it was cut in a 1366 px sidebar)
    assert at.selectbox(key="deploy_model").options[:2] == ["DeepSeek-V3/R1", "Kimi K2"]
    # another page and back: the model stays the data's
    at.switch_page("pages/about.py").run()
    at.switch_page("pages/deploy.py").run()
    assert at.selectbox(key="deploy_model").value == "Qwen3-30B-A3B"


# ---- rough edges -------------------------------------------------------------------------------------------

def test_a_reload_after_an_upload_says_the_upload_is_gone_and_opens_the_samples_cluster():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.switch_page("pages/deploy.py")
    # what the address bar held on the upload's view (a 128-expert upload: 144 slots on 16 GPUs)
    at.query_params.update({"deploy_data": "Upload", "deploy_replicas": "144", "deploy_groups": "0",
                            "deploy_nodes": "2", "deploy_gpus": "16", "deploy_section": "Balance"})
    at.run()
    assert not at.exception and not at.error
    assert any("uploaded loads, which a reload or a link cannot bring back" in w.value for w in at.warning)
    assert [at.number_input(key=k).value for k in ("deploy_replicas", "deploy_groups", "deploy_nodes",
                                                   "deploy_gpus")] == [288, 8, 4, 32]
    assert at.radio(key="deploy_section").value == "Balance"  # the rest of the view still opens


def test_one_node_and_tiny_times_read_well_and_replication_is_not_offered_on_deploy():
    at = deploy_page()
    at.number_input(key="deploy_nodes").set_value(1).run()
    sentence = next(m.value for m in at.markdown if "MoE layers" in m.value)
    assert "over 1 node," in sentence and "1 nodes" not in sentence
    at.radio(key="source").set_value("Upload").run()
    assert not any("Replicate hot experts" in n.label for n in at.sidebar.number_input)


def test_balance_log_axis_draws_no_bound_at_its_floor():
    at = deploy_page()
    at.radio(key="deploy_section").set_value("Balance").run()
    at.multiselect(key="deploy_compared").set_value(["eplb"]).run()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    bounds = figure["data"][1]
    # the global policy's bound is the mean itself (0%): no marker at the axis floor
    assert all(y is None or y > 1e-3 for y in bounds["y"])
    assert any("0%" in a["text"] for a in figure["layout"].get("annotations", []))


def test_the_cli_defaults_match_the_apps(tmp_path, capsys):
    from packviz.cli import main

    out = tmp_path / "plan.json"
    assert main(["rebalance", str(ROOT / "sample_data" / "deepseek_v3_58x256.csv"), "--replicas", "288",
                 "--nodes", "4", "--gpus", "32", "--sglang", str(out)]) == 0
    # no --groups, no --preset: DeepSeek-V3's 8 groups (the data's shape) and the app's fast preset
    assert torch.equal(torch.tensor(json.loads(out.read_text())["physical_to_logical_map"]),
                       place(EXPERTS, DEFAULT, "fast").phy2log)
    printed = capsys.readouterr().out
    assert "8 expert groups, hierarchical policy, preset fast" in printed
    loads = tmp_path / "dense.csv"
    loads.write_bytes(dense_csv())
    assert main(["rebalance", str(loads), "--replicas", "288", "--nodes", "1", "--gpus", "32"]) == 0
    printed = capsys.readouterr().out
    assert "over 1 node," in printed and "means over 58 MoE layers of 61" in printed


def test_durations_read_well():
    from packviz.text import count_of, duration

    assert duration(0) == "no time" and duration(0.0004) == "0.4 ms" and duration(0.25) == "250 ms"
    assert duration(3.14159) == "3.14 s" and count_of(1, "node") == "1 node" and count_of(4, "node") == "4 nodes"


def test_over_time_plans_in_the_background_while_the_page_answers(monkeypatch):
    monkeypatch.setenv("PACKVIZ_OVER_TIME_INLINE_S", "0")
    at = deploy_page()
    at.radio(key="deploy_section").set_value("Over time").run()
    at.number_input(key="deploy_sim_seed").set_value(515151).run()  # windows no other test has planned
    assert not at.exception
    assert any("made in the background" in c.value for c in at.caption)
    assert at.get("progress") and not at.dataframe  # progress, no result yet
    assert "windows planned" in at.get("progress")[0].proto.text
    jobs, _, _ = deploy_caches_module._history_jobs()
    running = [job for job in jobs.values() if job.running or job.result is not None]
    assert running
    # the page answers meanwhile: another section, then back
    at.radio(key="deploy_section").set_value("Placement").run()
    assert not at.exception and at.metric
    at.radio(key="deploy_section").set_value("Over time").run()
    for job in running:
        assert job.wait(300) is not None
    at.run()
    assert not at.exception
    rows = at.dataframe[0].value
    assert "fresh each window" in set(rows["planner"])
    assert not any("made in the background" in c.value for c in at.caption)
