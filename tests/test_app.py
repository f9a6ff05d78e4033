"""Every page under Streamlit's AppTest: defaults, changes, bad uploads, downloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
import streamlit.testing.v1.app_test as app_test_module
import torch
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from packviz import pack
from packviz.data.loaders import read_loads
from packviz.data.samples import DEFAULT_SAMPLE, load_sample
from packviz.io.export import check_sglang_map, parse_placement_csv
from packviz.metrics import lower_bound
from packviz.teach.narration import explore as explore_narration
from packviz.trace.timeline import build_frames

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 180
DEFAULT = load_sample(DEFAULT_SAMPLE)
SAMPLE = DEFAULT.weight


def fresh() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.fixture(scope="module")
def explore() -> AppTest:
    at = fresh().run()
    no_exceptions(at)
    return at


def test_explore_opens_on_the_default_sample_with_charts(explore):
    assert "58 layers x 288 items" in explore.expander[0].label
    # the overview; the 58 x 288 heatmap waits in its closed expander and is not even built
    assert [chart.key for chart in explore.get("plotly_chart")] == ["overview"]
    assert metric(explore, "Device") == "cpu"
    assert metric(explore, "Mean gap to LB").endswith("%")
    assert not explore.error


@pytest.mark.parametrize("page", ["pages/compare.py", "pages/about.py"])
def test_other_pages_run_on_defaults(page):
    at = fresh().run()
    at.switch_page(page).run()
    no_exceptions(at)
    assert at.title[0].value


def test_compare_page_lists_every_preset():
    at = fresh().run()
    at.switch_page("pages/compare.py").run()
    table = at.dataframe[0].value
    assert set(table["packer"]) == {"eplb", "fast", "restarts-2swap", "best"}  # the slow one only on request
    eplb_gap = float(table.loc[table["packer"] == "eplb", "mean_gap_pct"].iloc[0])
    seed_gap = float(table.loc[table["packer"] == "restarts-2swap", "mean_gap_pct"].iloc[0])
    assert seed_gap < eplb_gap
    at.toggle(key="compare_slow").set_value(True).run()
    assert "restarts-1swap" in set(at.dataframe[0].value["packer"])


def run_if_waiting(at: AppTest) -> None:
    """Press Run where the settings wait for it: whether they do depends on this machine's speed."""
    if [b for b in at.button if b.key == "run_slow"]:
        at.button(key="run_slow").click().run()


@pytest.fixture
def every_run_waits(monkeypatch):
    from packviz import cost
    monkeypatch.setattr(cost, "SLOW_SECONDS", 0.0)


def test_changing_preset_packs_and_layer_re_runs():
    at = fresh().run()
    before = metric(at, "Mean gap to LB")
    at.selectbox(key="preset").set_value("restarts-2swap").run()
    no_exceptions(at)
    assert at.number_input(key="num_restarts").value == 256
    run_if_waiting(at)
    after = metric(at, "Mean gap to LB")
    assert after != before
    at.number_input(key="packs").set_value(16).run()
    run_if_waiting(at)
    no_exceptions(at)
    assert metric(at, "Mean gap to LB") != after
    at.radio(key="section").set_value("Step through a layer").run()
    at.number_input(key="layer").set_value(5).run()
    no_exceptions(at)
    # the step-through now shows layer 5's own run: its lower bound and its moves
    traced = pack(SAMPLE[5:6], 16, "restarts-2swap", layer_ids=[5], trace_layers=[0])
    bound = float(lower_bound(SAMPLE[5:6], 16)[0])
    assert bound != float(lower_bound(SAMPLE[:1], 16)[0])
    moves = len(traced.traces[0].chosen_candidate.swaps)
    assert any(f"{moves} moves; LB {bound:,.6g}" in c.value for c in at.caption)


def test_a_pack_count_that_cannot_work_is_explained_with_the_valid_ones():
    at = fresh().run()
    at.number_input(key="packs").set_value(30).run()
    no_exceptions(at)
    assert any("do not split evenly into 30 packs" in e.value and "32" in e.value for e in at.error)
    at.button(key="use_packs_32").click().run()
    assert at.number_input(key="packs").value == 32
    assert not at.error


def test_a_bad_upload_shows_the_error_and_keeps_the_data():
    at = fresh().run()
    at.radio(key="source").set_value("Upload").run()
    at.file_uploader(key="upload").upload("bad.csv", b"1,2,3,4\n5,abc,7,8\n", "text/csv").run()
    no_exceptions(at)
    assert any("row 2, column 2" in e.value and "abc" in e.value for e in at.error)
    assert "58 layers x 288 items" in at.expander[0].label


def test_a_good_upload_replaces_the_data():
    at = fresh().run()
    at.radio(key="source").set_value("Upload").run()
    at.file_uploader(key="upload").upload("mine.csv", b"a,b,c,d\n9,1,5,5\n3,3,2,8\n", "text/csv").run()
    no_exceptions(at)
    assert "2 layers x 4 items" in at.expander[0].label


def test_presenter_steps_forward_and_jumps_to_the_end():
    at = fresh().run()
    at.selectbox(key="sample").set_value("Teaching: 12 items, 2-swap beats 1-swap").run()
    at.radio(key="section").set_value("Step through a layer").run()
    at.radio(key="view").set_value("Presenter").run()
    no_exceptions(at)
    assert "12 items into 3 packs" in at.info[0].value
    at.button[[b.label for b in at.button].index("Next ›")].click().run()
    assert at.info[0].value.startswith("Step 1: item")
    at.button[[b.label for b in at.button].index("Final »")].click().run()
    assert at.info[0].value.startswith("Done:")


class _RecordingStorage(MemoryMediaFileStorage):
    files: ClassVar[dict[str, bytes]] = {}

    def load_and_get_id(self, path_or_data, mimetype, kind, filename=None):
        file_id = super().load_and_get_id(path_or_data, mimetype, kind, filename)
        _RecordingStorage.files[file_id] = self.get_file(file_id).content
        return file_id


def _downloaded(at: AppTest, label: str) -> str:
    button = next(b for b in at.get("download_button") if label in b.proto.label)
    assert button.proto.url
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    return _RecordingStorage.files[file_id].decode()


def test_downloaded_placement_is_the_engines_result(monkeypatch):
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", _RecordingStorage)
    at = fresh().run()
    at.radio(key="section").set_value("Export").run()
    no_exceptions(at)
    placement = parse_placement_csv(_downloaded(at, "Placement CSV"))
    expected = pack(SAMPLE, 32, "fast", seed=0)
    assert torch.equal(placement["pack"], expected.pack_index)
    assert torch.equal(placement["rank_in_pack"], expected.rank_in_pack)
    assert torch.equal(placement["load"], SAMPLE)
    # the 288 slots name the 256 experts they serve
    assert torch.equal(placement["expert"], DEFAULT.slots.phy2log)
    assert torch.equal(placement["replica"], DEFAULT.slots.replica_rank)
    table = json.loads(_downloaded(at, "SGLang"))["physical_to_logical_map"]
    counts = check_sglang_map(table, num_experts=256, num_slots=288)
    assert torch.equal(counts, DEFAULT.slots.logcnt)


def test_an_upload_of_logical_loads_can_be_replicated(monkeypatch):
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", _RecordingStorage)
    at = fresh().run()
    at.radio(key="source").set_value("Upload").run()
    at.number_input(key="upload_slots").set_value(6).run()
    at.file_uploader(key="upload").upload("mine.csv", b"e0,e1,e2,e3\n9,1,5,5\n3,3,2,8\n", "text/csv").run()
    no_exceptions(at)
    assert "2 layers x 6 items" in at.expander[0].label
    at.number_input(key="packs").set_value(3).run()
    at.radio(key="section").set_value("Export").run()
    no_exceptions(at)
    text = _downloaded(at, "Placement CSV")
    assert text.splitlines()[0] == "layer,item,pack,rank_in_pack,load,expert,replica,expert_name"
    # layer 0: e0 (9) takes slot 4, then e2 (5, tied with e3, the lower index) slot 5
    placement = parse_placement_csv(text)
    assert placement["expert"][0].tolist() == [0, 1, 2, 3, 0, 2]
    assert placement["replica"][0].tolist() == [0, 0, 0, 0, 1, 1]
    assert placement["load"][0].tolist() == [4.5, 1.0, 2.5, 5.0, 4.5, 2.5]
    where = f"{int(placement['pack'][0, 4])},{int(placement['rank_in_pack'][0, 4])}"
    assert text.splitlines()[5] == f"0,4,{where},4.5,0,1,e0"


def test_compare_page_proves_the_optimum_of_a_small_sample():
    from packviz.optimal import available

    if not available():
        pytest.skip("ortools is not installed")
    at = fresh().run()
    at.selectbox(key="sample").set_value("Teaching: 12 items, 2-swap beats 1-swap").run()
    at.switch_page("pages/compare.py").run()
    no_exceptions(at)
    at.button(key="solve").click().run()
    no_exceptions(at)
    solved = at.dataframe[1].value
    assert list(solved["status"]) == ["optimal"]
    rows = at.dataframe[2].value
    assert set(rows["packer"]) >= {"eplb", "fast", "best"}
    assert (rows["mean_gap_to_optimum"] >= -1e-12).all()


@pytest.mark.parametrize("section", ["Step through a layer", "Restarts", "Export"])
def test_every_section_runs(section):
    at = fresh().run()
    at.radio(key="section").set_value(section).run()
    no_exceptions(at)
    if section != "Export":
        assert at.get("plotly_chart")


def test_restarts_section_shows_the_kept_candidates_of_the_seed_preset():
    at = fresh().run()
    at.selectbox(key="preset").set_value("restarts-2swap").run()
    run_if_waiting(at)
    at.radio(key="section").set_value("Restarts").run()
    no_exceptions(at)
    assert any("256 restarts, 8 kept" in c.value for c in at.caption)


def test_a_link_opens_explore_on_the_same_view_and_the_url_follows():
    at = fresh()
    at.query_params.update({"sample": "Teaching: 12 items, 2-swap beats 1-swap", "preset": "restarts-2swap",
                            "packs": "3", "section": "Step through a layer", "view": "Presenter", "step": "15",
                            "num_restarts": "1"})
    at.run()
    no_exceptions(at)
    assert "1 layers x 12 items" in at.expander[0].label
    assert at.selectbox(key="preset").value == "restarts-2swap"
    assert at.number_input(key="num_restarts").value == 1  # the link's knob beats the preset's 256
    assert at.number_input(key="num_refined").value == 8  # the preset's own
    weight = read_loads(ROOT / "sample_data" / "teaching_12_items.csv").weight
    trace = pack(weight, 3, "restarts-2swap", num_restarts=1, trace_layers=[0]).traces[0]
    assert at.info[0].value == explore_narration(trace, build_frames(trace), 15)
    at.button[[b.label for b in at.button].index("Next ›")].click().run()
    assert at.query_params["step"] == "16"
    at.number_input(key="num_restarts").set_value(256).run()
    assert "num_restarts" not in at.query_params  # back at the preset's value: not in the link


def test_an_upload_keeps_the_chosen_pack_count_where_it_fits():
    at = fresh().run()
    at.number_input(key="packs").set_value(16).run()
    at.radio(key="source").set_value("Upload").run()
    at.file_uploader(key="upload").upload("wide.csv", ("\n".join([",".join(["5"] * 64)] * 2)).encode(),
                                          "text/csv").run()
    no_exceptions(at)
    assert "2 layers x 64 items" in at.expander[0].label
    assert at.number_input(key="packs").value == 16


def test_a_run_too_big_for_the_app_is_refused_up_front_saying_what_fits(monkeypatch):
    import packviz.limits

    monkeypatch.setattr(packviz.limits, "APP_BUDGET_BYTES", 1 << 20)  # 1 MiB: the default sample cannot fit
    monkeypatch.setattr(packviz.limits.check_fits, "__defaults__", (1 << 20,))
    at = fresh().run()
    no_exceptions(at)
    assert any(e.value.startswith("Packing 58 layers x 288 items into 32 packs") and "the budget is 1 MB" in e.value
               for e in at.error)
    assert not at.metric  # nothing was packed


def test_the_heatmap_of_small_data_is_drawn_in_its_open_expander():
    at = fresh().run()
    at.selectbox(key="sample").set_value("Teaching: 12 items, 2-swap beats 1-swap").run()
    no_exceptions(at)
    assert "heatmap" in [chart.key for chart in at.get("plotly_chart")]


def test_a_slow_config_waits_for_run_and_keeps_the_previous_result():
    at = fresh().run()
    before = metric(at, "Mean gap to LB")
    at.selectbox(key="preset").set_value("restarts-1swap").run()
    no_exceptions(at)
    # not packed yet: the button, the estimate, and the fast preset's result still on screen
    assert at.button(key="run_slow").label == "▶ Run"
    assert any("press Run" in i.value and "preset fast" in i.value for i in at.info)
    assert metric(at, "Mean gap to LB") == before
    at.number_input(key="num_restarts").set_value(1024).run()  # another knob, still slow: still waiting
    assert at.button(key="run_slow")
    assert metric(at, "Mean gap to LB") == before
    at.number_input(key="num_refined").set_value(2).run()
    at.number_input(key="max_iterations").set_value(2).run()
    at.number_input(key="num_restarts").set_value(2).run()  # now estimated quick: packed at once
    no_exceptions(at)
    assert not [b for b in at.button if b.key == "run_slow"]
    expected = pack(SAMPLE, 32, "restarts-1swap", num_restarts=2, num_refined=2, max_iterations=2)
    assert metric(at, "Mean gap to LB") != before
    assert metric(at, "Run time").endswith("ms") and expected.pack_index.shape == SAMPLE.shape


def test_run_packs_the_slow_config_and_it_then_follows_like_a_quick_one(every_run_waits):
    at = fresh()
    at.query_params.update({"preset": "restarts-2swap", "num_restarts": "48"})
    at.run()
    no_exceptions(at)
    assert at.button(key="run_slow") and not at.metric  # nothing packed on this data yet
    at.button(key="run_slow").click().run()
    no_exceptions(at)
    assert not [b for b in at.button if b.key == "run_slow"]
    expected = pack(SAMPLE, 32, "restarts-2swap", num_restarts=48)
    from packviz.metrics import layer_metrics
    gap = float(layer_metrics(expected.pack_loads, expected.weight).gap_to_lower_bound.mean()) * 100
    assert metric(at, "Mean gap to LB") == f"{gap:.4f}%"


def test_presenter_steps_rerun_only_the_step_through_fragment():
    at = fresh().run()
    at.radio(key="section").set_value("Step through a layer").run()
    at.radio(key="view").set_value("Presenter").run()
    no_exceptions(at)
    at.button[[b.label for b in at.button].index("Next ›")].click().run()
    at.button[[b.label for b in at.button].index("Next ›")].click().run()
    no_exceptions(at)
    assert at.session_state.step == 2
    assert at.info[0].value.startswith("Step 2: item")
    assert at.query_params["step"] == "2"
    at.number_input(key="layer").set_value(3).run()
    no_exceptions(at)
    assert at.query_params["layer"] == "3"
    assert at.session_state.step == 2  # the step is kept across a layer change


def test_presenter_builds_the_next_steps_figure_before_next_is_pressed(monkeypatch):
    import ui.caches

    built = []
    drawn = ui.caches.lesson_figure

    def recording(trace, frames, step, *args, **kwargs):
        built.append(step)
        return drawn(trace, frames, step, *args, **kwargs)

    monkeypatch.setattr(ui.caches, "lesson_figure", recording)
    ui.caches.presenter_figure.clear()  # steps an earlier test drew are not built again
    at = fresh().run()
    at.selectbox(key="sample").set_value("Teaching: 12 items, 2-swap beats 1-swap").run()
    at.radio(key="section").set_value("Step through a layer").run()
    at.radio(key="view").set_value("Presenter").run()
    no_exceptions(at)
    assert {0, 1} <= set(built)  # the step on screen, and the next one already
    before = len(built)
    at.button[[b.label for b in at.button].index("Next ›")].click().run()
    no_exceptions(at)
    assert at.session_state.step == 1
    assert built[before:] == [2]  # step 1 came from the cache; only step 2 was built, ahead
