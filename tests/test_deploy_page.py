"""The Deploy page under Streamlit's AppTest: the engine's plan, its checks, bad shapes, sections and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit.testing.v1.app_test as app_test_module
import torch
from streamlit.testing.v1 import AppTest

from packviz.data.generators import drifting_from
from packviz.data.loaders import read_loads
from packviz.eplb.cluster import Cluster, balance, place
from packviz.eplb.moves import MOVE_COLUMNS, moves_between
from packviz.eplb.over_time import windows
from packviz.eplb.replan import balance_moves_curve, plan_moves
from packviz.io.deploy import read_moves_csv, read_placement_csv, read_plan, read_trtllm_yaml, sglang_json
from packviz.io.export import check_sglang_map
from tests.test_app import _downloaded, _RecordingStorage

ROOT = Path(__file__).resolve().parent.parent
EXPERTS = read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight
DEFAULT = Cluster(288, 8, 4, 32)


@pytest.fixture(autouse=True, scope="module")
def over_time_inline():
    # these tests read Over time's result in the run that asked for it, however loaded the machine (the
    # background path has its own test)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PACKVIZ_OVER_TIME_INLINE_S", "600")
        yield


def deploy_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.switch_page("pages/deploy.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def plain(text: str) -> str:
    return text.replace("\\", "")


@pytest.fixture(scope="module")
def page():
    return deploy_page()


def test_opens_on_deepseek_v3s_cluster_with_the_engines_plan(page):
    assert [page.number_input(key=k).value for k in ("deploy_replicas", "deploy_groups", "deploy_nodes",
                                                     "deploy_gpus")] == [288, 8, 4, 32]
    score = balance(EXPERTS, place(EXPERTS, DEFAULT, "fast").phy2log, DEFAULT)
    assert metric(page, "Balancedness (mean/max)") == f"{float(score.balancedness.mean()):.4f}"
    assert metric(page, "Bound of the hierarchical policy") == f"{float(score.bound_over_mean.mean()):.4f}x mean"
    assert page.success[0].value.startswith("Checks pass: every expert has a slot in each of the 58 layers")
    assert "every expert group sits on one node" in page.success[0].value
    assert [c.key for c in page.get("plotly_chart")] == ["deploy_placement", "deploy_bars", "deploy_heatmap"]


def test_a_shape_that_cannot_work_says_why_and_keeps_the_plan():
    at = deploy_page()
    before = [m.value for m in at.metric]
    at.number_input(key="deploy_gpus").set_value(30).run()
    assert not at.exception
    assert plain(at.error[0].value).startswith("288 slots do not split evenly over 30 GPUs")
    assert "The last plan that worked stays below" in at.error[0].value
    assert [m.value for m in at.metric] == before
    at.number_input(key="deploy_gpus").set_value(32).run()
    at.number_input(key="deploy_replicas").set_value(200).run()
    assert plain(at.error[0].value).startswith("200 slots are fewer than the 256 experts")
    at.number_input(key="deploy_replicas").set_value(288).run()
    at.radio(key="deploy_policy").set_value("global").run()
    assert not at.error and metric(at, "Bound of the global policy") == "1.0000x mean"


def test_balance_compares_plans_under_both_policies(page):
    page.radio(key="deploy_section").set_value("Balance").run()
    page.multiselect(key="deploy_compared").set_value(["eplb", "fast"]).run()
    assert not page.exception
    table = page.dataframe[0].value
    assert list(table["plan"]) == ["no EPLB (hierarchical)", "eplb (hierarchical)", "fast (hierarchical)",
                                   "no EPLB (global)", "eplb (global)", "fast (global)"]
    assert table["balancedness"].iloc[2] == pytest.approx(
        float(balance(EXPERTS, place(EXPERTS, DEFAULT, "fast").phy2log, DEFAULT).balancedness.mean()))
    assert any("The price of the hierarchy" in m.value for m in page.markdown)


def test_over_time_scores_each_plan_on_the_next_window(page):
    page.radio(key="deploy_section").set_value("Over time").run()
    page.number_input(key="deploy_sim_steps").set_value(6).run()
    page.number_input(key="deploy_window").set_value(2).run()
    assert not page.exception
    assert page.info[0].value.startswith("This data has no time axis")
    rows = page.dataframe[0].value
    replanned = "re-planned (within 0.5% of fresh)"
    assert set(rows["planner"]) == {"kept from window 0", "fresh each window", replanned}
    assert (rows[rows["planner"] == "kept from window 0"]["replicas moved"] == 0).all()
    assert (rows[rows["planner"] == "fresh each window"]["replicas moved"] > 0).all()
    # the re-planner moves a fraction of what a fresh plan moves
    assert rows[rows["planner"] == replanned]["replicas moved"].sum() * 4 \
        < rows[rows["planner"] == "fresh each window"]["replicas moved"].sum()


def test_the_last_re_plan_shows_its_curve_its_moves_and_their_csv(monkeypatch):
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", _RecordingStorage)
    at = deploy_page()
    at.radio(key="deploy_section").set_value("Over time").run()
    at.number_input(key="deploy_sim_steps").set_value(6).run()
    at.number_input(key="deploy_window").set_value(2).run()
    assert not at.exception
    # 3 windows: plans on windows 0 and 1, the re-plan on window 1 from window 0's plan
    assert at.number_input(key="deploy_replan_window").value == 1
    history = windows(drifting_from(EXPERTS, 6, seed=0, drift=0.005), 2)
    first = place(history[0], DEFAULT, "fast").phy2log
    # the re-planner is handed the window's fresh plan (made once, for the fresh line too)
    again = plan_moves(history[1], first, 8, 4, 32, tolerance=0.005, packer="fast", hierarchical=True,
                       fresh=place(history[1], DEFAULT, "fast").phy2log).placement.phy2log
    expected = moves_between(first, again, DEFAULT)
    sentence = next(m.value for m in at.markdown if "The re-planner moved" in m.value)
    assert f"The re-planner moved {len(expected):,} replicas" in plain(sentence)
    # the curve re-plans at a dozen budgets: drawn only on request
    assert [c.key for c in at.get("plotly_chart")] == ["deploy_over_time"]
    at.toggle(key="deploy_curve").set_value(True).run()
    assert [c.key for c in at.get("plotly_chart")] == ["deploy_over_time", "deploy_moves_curve"]
    curve = balance_moves_curve(history[1], first, 8, 4, 32, packer="fast", hierarchical=True)
    figure = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert figure["data"][0]["y"] == pytest.approx(curve.mean_ratio)
    assert figure["data"][1]["y"] == pytest.approx(curve.worst_ratio)
    assert any("Each point re-plans window 1" in m.value for m in at.markdown)
    table = at.dataframe[1].value
    assert list(table.columns) == list(MOVE_COLUMNS) and len(table) == len(expected)
    downloaded = read_moves_csv(_downloaded(at, "Re-plan moves CSV"), 32)
    assert downloaded.rows() == expected.rows()
    # a longer window leaves one plan: no re-plan to show, a sentence says why
    at.number_input(key="deploy_window").set_value(3).run()
    assert not at.exception
    assert any(i.value.startswith("The re-planner needs a plan in place") for i in at.info)


def test_a_dump_with_steps_uses_its_own_time_axis():
    at = deploy_page()
    at.selectbox(key="sample").set_value("SGLang expert-distribution dump (8 x 64)").run()
    at.radio(key="deploy_section").set_value("Over time").run()
    at.number_input(key="deploy_window").set_value(1).run()
    assert not at.exception and not at.info
    assert any("from the data's 4 steps" in m.value for m in at.markdown)


def test_exports_are_the_engines_map_and_moves_follow_an_uploaded_plan(monkeypatch):
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", _RecordingStorage)
    at = deploy_page()
    at.radio(key="deploy_section").set_value("Export").run()
    assert not at.exception
    expected = place(EXPERTS, DEFAULT, "fast").phy2log
    table = json.loads(_downloaded(at, "SGLang JSON"))["physical_to_logical_map"]
    check_sglang_map(table, 256, 288)
    assert torch.equal(torch.tensor(table), expected)
    phy2log, cluster = read_placement_csv(_downloaded(at, "Placement CSV"))
    assert torch.equal(phy2log, expected) and (cluster.num_nodes, cluster.num_gpus) == (4, 32)
    assert torch.equal(read_trtllm_yaml(_downloaded(at, "TensorRT-LLM YAML"))[0], expected)
    assert torch.equal(torch.tensor(json.loads(_downloaded(at, "logical_count"))["logical_count"]).double(), EXPERTS)
    assert torch.equal(read_plan(_downloaded(at, "vLLM JSON").encode(), "map.json"), expected)
    ascend = _downloaded(at, "vllm-ascend JSON")
    assert torch.equal(read_plan(ascend.encode(), "ascend.json"), expected)
    # DeepSeek-V3 as SGLang loads it: 61 rows, the first 3 dense (the trivial map), then the 58 MoE layers
    at.number_input(key="deploy_first_layer").set_value(3).run()
    at.number_input(key="deploy_model_layers").set_value(61).run()
    table = json.loads(_downloaded(at, "SGLang JSON"))["physical_to_logical_map"]
    assert len(table) == 61 and torch.equal(torch.tensor(table[3:]), expected)
    assert all(row == [slot % 256 for slot in range(288)] for row in table[:3])
    assert torch.equal(read_plan(json.dumps({"physical_to_logical_map": table}).encode(), "v3.json", layers=58),
                       expected)
    at.number_input(key="deploy_model_layers").set_value(40).run()
    assert any("do not fit in a model of 40 layers" in e.value for e in at.error)
    at.number_input(key="deploy_model_layers").set_value(0).run()

    # a plan in place for other loads, of the same (hierarchical) policy
    previous = place(EXPERTS.roll(1, dims=1), DEFAULT, "eplb").phy2log
    at.file_uploader(key="deploy_previous").upload("old.json", sglang_json(previous).encode(),
                                                   "application/json").run()
    # the upload itself is accepted (the re-plan below it reports its own checks)
    assert not at.exception and not [e for e in at.error if not e.value.startswith("The re-plan")]
    moves = read_moves_csv(_downloaded(at, "Moves CSV"), 32)
    assert moves.rows() == moves_between(previous, expected, DEFAULT).rows()
    at.file_uploader(key="deploy_previous").upload("bad.json", b'{"physical_to_logical_map": [[0, 1]]}',
                                                   "application/json").run()
    assert "the plan is 1 layers x 2 slots" in plain(at.error[0].value)


def test_streamlits_own_deploy_button_is_hidden_by_the_apps_config():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "viewer"


def test_generated_moe_loads_with_steps_bring_their_time_axis():
    from ui.sidebars import STEPS_LABEL

    at = deploy_page()
    at.radio(key="source").set_value("Generate").run()
    next(n for n in at.number_input if n.label == "Layers").set_value(3)
    next(n for n in at.number_input if n.label == STEPS_LABEL).set_value(6)
    next(b for b in at.button if b.label == "Generate").click().run()
    assert not at.exception and not at.error
    assert [at.number_input(key=k).value for k in ("deploy_replicas", "deploy_groups", "deploy_nodes",
                                                   "deploy_gpus")] == [80, 0, 2, 16]
    at.radio(key="deploy_section").set_value("Over time").run()
    at.number_input(key="deploy_window").set_value(2).run()
    assert not at.exception and not at.info
    assert any("3 windows of 2 steps from the data's 6 steps" in m.value for m in at.markdown)
    # other kinds have no drift model: one sentence, the data stays
    next(s for s in at.selectbox if s.label == "Kind").set_value("uniform")
    next(b for b in at.button if b.label == "Generate").click().run()
    assert "generated for moe loads only" in plain(at.sidebar.error[0].value)
    assert any("from the data's 6 steps" in m.value for m in at.markdown)


def test_a_link_opens_the_same_cluster_and_section_and_the_url_follows():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.switch_page("pages/deploy.py")
    at.query_params.update({"deploy_gpus": "16", "deploy_policy": "global", "deploy_section": "Export",
                            "deploy_nodes": "nine"})
    at.run()
    assert not at.exception
    assert at.number_input(key="deploy_gpus").value == 16 and at.radio(key="deploy_policy").value == "global"
    assert at.number_input(key="deploy_nodes").value == 4  # refused: the default stays
    assert any("deploy_nodes='nine' was ignored" in w.value for w in at.warning)
    assert at.radio(key="deploy_section").value == "Export"
    assert "16 GPUs (18 each)" in next(m.value for m in at.markdown if "MoE layers" in m.value)
    at.number_input(key="deploy_gpus").set_value(8).run()
    assert list(at.query_params["deploy_gpus"]) == ["8"]


def test_the_caption_describes_the_logical_experts_it_plans_from(page):
    caption = plain(page.caption[0].value)
    assert f"{EXPERTS.shape[1]} logical experts in {EXPERTS.shape[0]} layers" in caption
    assert f"total {float(EXPERTS.sum()):,.0f}" in caption
    assert "288 slots" not in caption   # the slots are Deploy's to choose, not the sample's
