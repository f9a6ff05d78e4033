"""Every page under Streamlit's AppTest: defaults, changes, bad uploads, downloads."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import streamlit.testing.v1.app_test as app_test_module
import torch
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from packviz import pack
from packviz.export import parse_placement_csv
from packviz.generate import replicate_hot
from packviz.loaders import read_loads

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 180
SAMPLE = replicate_hot(read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight, 288)


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
    assert len(explore.get("plotly_chart")) >= 2
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
    assert set(table["packer"]) >= {"eplb", "restarts-1swap", "restarts-2swap"}
    eplb_gap = float(table.loc[table["packer"] == "eplb", "mean_gap"].iloc[0])
    seed_gap = float(table.loc[table["packer"] == "restarts-2swap", "mean_gap"].iloc[0])
    assert seed_gap < eplb_gap


def test_changing_preset_packs_and_layer_re_runs():
    at = fresh().run()
    before = metric(at, "Mean gap to LB")
    at.selectbox(key="preset").set_value("restarts-2swap").run()
    no_exceptions(at)
    assert at.number_input(key="num_restarts").value == 256
    after = metric(at, "Mean gap to LB")
    assert after != before
    at.number_input(key="packs").set_value(16).run()
    no_exceptions(at)
    assert metric(at, "Mean gap to LB") != after
    at.radio(key="section").set_value("Step through a layer").run()
    at.number_input(key="layer").set_value(5).run()
    no_exceptions(at)
    assert "5" in at.number_input(key="layer").value.__str__()


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


def test_downloaded_placement_is_the_engines_result(monkeypatch):
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", _RecordingStorage)
    at = fresh().run()
    at.radio(key="section").set_value("Export").run()
    no_exceptions(at)
    button = next(b for b in at.get("download_button") if "Placement CSV" in b.proto.label)
    assert button.proto.url
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
    placement = parse_placement_csv(_RecordingStorage.files[file_id].decode())
    expected = pack(SAMPLE, 32, "fast", seed=0)
    assert torch.equal(placement["pack"], expected.pack_index)
    assert torch.equal(placement["rank_in_pack"], expected.rank_in_pack)
    assert torch.equal(placement["load"], SAMPLE)


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
    at.radio(key="section").set_value("Restarts").run()
    no_exceptions(at)
    assert any("256 restarts, 8 kept" in c.value for c in at.caption)
