"""The Replay page under Streamlit's AppTest: opens on the sample, shows the library's replay, keeps its trace on a
bad upload and its last result on a bad shape, sweeps and exports."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit.testing.v1.app_test as app_test_module
import torch
from streamlit.testing.v1 import AppTest

from packviz.data.samples import read_trace_sample
from packviz.data.traces import TraceError, read_trace
from packviz.eplb.cluster import Cluster
from packviz.eplb.replay import ReplaySettings, recommend, replay
from packviz.eplb.replay_view import no_eplb_balancedness
from tests.test_app import _RecordingStorage
from tests.test_deploy_page import metric, plain

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = read_trace_sample()[0].loads
SAMPLE_CLUSTER = Cluster(72, None, 1, 8, "global")


def replay_page(**query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("pages/replay.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at




def downloaded(at: AppTest, label: str) -> bytes:
    button = next(b for b in at.get("download_button") if label in b.proto.label)
    return _RecordingStorage.files[button.proto.url.rsplit("/", 1)[-1].split(".")[0]]


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def test_opens_on_the_sample_with_deepseek_v2_lites_cluster_and_the_auto_planner():
    at = replay_page()
    assert [at.number_input(key=k).value for k in ("replay_slots", "replay_gpus", "replay_groups", "replay_nodes")] \
        == [72, 8, 0, 1]
    assert at.radio(key="replay_policy").value == "global"
    assert at.selectbox(key="replay_planner").value == "auto"
    assert "26 MoE layers of 27 (1 dense, all zero, left out of every mean), 64 experts each" \
        in plain(at.caption[0].value)
    assert not at.error
    assert [c.key for c in at.get("plotly_chart")] == ["replay_served"]
    assert float(metric(at, "Served balancedness")) > float(metric(at, "No EPLB"))


def test_one_replays_figures_are_the_librarys_on_the_same_input():
    at = replay_page(replay_planner="mean:8", replay_interval="2")
    expected = replay(SAMPLE, ReplaySettings(SAMPLE_CLUSTER, planner="mean:8", interval=2))
    engines = replay(SAMPLE, ReplaySettings(SAMPLE_CLUSTER, planner="last", interval=2))
    none = no_eplb_balancedness(SAMPLE, 8)
    assert metric(at, "Served balancedness") == f"{expected.mean_balancedness:.4f}"
    assert metric(at, "Last-window plan (engines)") == f"{engines.mean_balancedness:.4f}"
    assert metric(at, "No EPLB") == f"{float(none.mean()):.4f}"
    assert metric(at, "GB moved an hour") == f"{expected.gb_per_hour(60.0):,.1f}"
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = {trace["name"]: trace for trace in figure["data"]}
    assert np.allclose(lines["mean:8 (this replay)"]["y"], expected.balancedness.tolist())
    assert np.allclose(lines["last window (what engines do)"]["y"], engines.balancedness.tolist())
    assert np.allclose(lines["GB moved"]["y"], expected.gb_moved[1:].tolist())
    replans = [w for w in range(2, SAMPLE.shape[0]) if bool(expected.replanned[w - 1])]
    assert lines["re-plan in force"]["x"] == replans
    text = plain(at.markdown[0].value)
    assert f"served {expected.mean_balancedness:.4f} over windows 1-47" in text
    assert f"moved {expected.moved_fraction:.1%} of the 1,944 slots" in text
    assert f"{expected.replans} plans" in text


def test_a_bad_upload_says_what_read_trace_says_and_keeps_the_trace():
    rng = np.random.default_rng(0)
    good = rng.integers(0, 50, size=(6, 3, 8)).astype(np.float64)
    at = replay_page(replay_planner="last")
    at.radio(key="replay_source").set_value("Upload").run()
    at.file_uploader(key="replay_upload").upload("mine.npy", npy(good), "application/octet-stream").run()
    assert not at.exception and not at.error
    assert "6 windows; 3 MoE layers of 3, 8 experts each" in plain(at.caption[0].value)
    # 8 experts: a fresh cluster of one redundant slot per GPU
    assert at.number_input(key="replay_slots").value == 16
    shown = metric(at, "Served balancedness")
    expected = replay(torch.from_numpy(good), ReplaySettings(Cluster(16, None, 1, 8, "global"), planner="last"))
    assert shown == f"{expected.mean_balancedness:.4f}"
    bad = good.copy()
    bad[2, 1, 5] = -3.0
    with pytest.raises(TraceError) as refused:
        read_trace(npy(bad), "bad.npy")
    at.file_uploader(key="replay_upload").upload("bad.npy", npy(bad), "application/octet-stream").run()
    assert not at.exception
    assert plain(at.error[0].value) == str(refused.value) + " The previous trace stays."
    assert "6 windows; 3 MoE layers of 3" in plain(at.caption[0].value)
    assert metric(at, "Served balancedness") == shown


def test_a_shape_problem_is_one_sentence_and_the_last_result_stays():
    at = replay_page(replay_planner="last")
    shown = metric(at, "Served balancedness")
    at.number_input(key="replay_slots").set_value(70).run()
    assert not at.exception
    sentence = Cluster(70, None, 1, 8, "global").problem(64)
    assert plain(at.error[0].value) == sentence + " The last replay that worked stays below."
    assert metric(at, "Served balancedness") == shown
    assert [c.key for c in at.get("plotly_chart")] == ["replay_served"]


def test_the_sweep_finds_the_recommendation_and_its_exports_are_its_plans(monkeypatch):
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", _RecordingStorage)
    at = replay_page(replay_planner="last", replay_section="Sweep", replay_sweep_planners="last,mean:8",
                     replay_sweep_intervals="1,4", replay_sweep_triggers="interval")
    at.button(key="replay_sweep_run").click().run()
    job = at.session_state["replay_job"]
    job.wait(600)
    at.run()
    assert not at.exception and len(job.results) == 4
    settings = [ReplaySettings(SAMPLE_CLUSTER, planner=p, interval=i) for p in ("last", "mean:8") for i in (1, 4)]
    expected = [replay(SAMPLE, s) for s in settings]
    assert [r.mean_balancedness for r in job.results] == [r.mean_balancedness for r in expected]
    best = recommend(expected, 60.0)
    assert plain(at.success[0].value).startswith(f"Recommended: {best.settings.label()}.")
    assert f"--ep-num-redundant-experts 8 --eplb-rebalance-num-iterations {best.settings.interval * 1000}" \
        in at.code[0].value
    table = at.dataframe[0].value
    assert list(table["setting"]) == [s.label() for s in settings]
    assert table["recommended"].sum() == 1 and table["pareto"].any()
    assert [c.key for c in at.get("plotly_chart")] == ["replay_sweep_chart"]

    at.radio(key="replay_section").set_value("Export").run()
    assert not at.exception
    plans = np.load(io.BytesIO(downloaded(at, "Plans .npy")), allow_pickle=False)
    assert plans.dtype == np.int64 and plans.shape == (47, 27, 72)
    assert np.array_equal(plans, best.plans.numpy())
    summary = json.loads(downloaded(at, "Summary JSON"))
    assert summary["mean_balancedness"] == pytest.approx(best.mean_balancedness)
    assert {"last_window_balancedness", "gain_over_last_window", "engine_flags", "trace"} <= set(summary)
    sglang = json.loads(downloaded(at, "SGLang JSON"))["physical_to_logical_map"]
    assert torch.equal(torch.tensor(sglang)[1:], best.plans[-1][1:])
    rows = downloaded(at, "Sweep table CSV").decode().splitlines()
    assert len(rows) == 5 and rows[0].startswith("setting,planner,interval,trigger,served_balancedness")


def test_stop_keeps_the_replays_that_finished(monkeypatch):
    # one replay after another in the page's process, robust:4 taking seconds each: the sweep is still running
    # when Stop is clicked (on the worker pool the remaining replays may all finish meanwhile)
    monkeypatch.setenv("PACKVIZ_WORKERS", "0")
    at = replay_page(replay_planner="last", replay_section="Sweep", replay_sweep_planners="robust:4",
                     replay_sweep_intervals="1,2,4,8,16", replay_sweep_triggers="interval,drop")
    at.button(key="replay_sweep_run").click().run()
    job = at.session_state["replay_job"]
    deadline = time.monotonic() + 300
    while not job.results and time.monotonic() < deadline:
        time.sleep(0.05)
    at.run()  # the progress and its Stop button, drawn while the sweep runs
    at.button(key="replay_sweep_stop").click().run()
    assert job.stopped
    job.wait(300)
    at.run()
    assert not at.exception
    assert 1 <= len(job.results) < job.total == 10
    assert f"Stopped: {len(job.results)} of 10 replays finished" in at.warning[0].value
    assert len(at.dataframe[0].value) == len(job.results)


LOG = "\n".join(["layer,step,experts,phase"] + [
    f'{layer},{step},"[{(step + layer) % 4},{(step * 3 + layer + 1) % 4}]",{"prefill" if step < 2 else "decode"}'
    for step in range(6) for layer in range(2)]).encode()


def test_a_log_with_both_phases_plans_one_and_its_window_can_be_tokens():
    at = replay_page(replay_planner="last")
    at.radio(key="replay_source").set_value("Upload").run()
    at.file_uploader(key="replay_upload").upload("log.csv", LOG, "text/csv").run()
    assert not at.exception and not at.error
    assert at.radio(key="replay_phase").options == ["prefill", "decode"]
    assert "2 windows of 1 forward pass, prefill; 2 MoE layers of 2, 4 experts each" in plain(at.caption[0].value)
    at.radio(key="replay_phase").set_value("decode").run()
    assert "4 windows of 1 forward pass, decode" in plain(at.caption[0].value)
    decode = read_trace(LOG, "log.csv")[1].loads
    expected = replay(decode, ReplaySettings(Cluster(5, None, 1, 1, "global"), planner="last"))
    assert metric(at, "Served balancedness") == f"{expected.mean_balancedness:.4f}"
    at.radio(key="replay_unit").set_value("tokens").run()
    assert not at.exception
    assert at.number_input(key="replay_upload_window").value == 4096
    assert "a replay needs at least 2" in plain(at.error[0].value)
    at.number_input(key="replay_upload_window").set_value(2).run()
    assert not at.exception and not at.error
    assert "2 windows of 2 tokens, decode" in plain(at.caption[0].value)


def test_the_generator_gives_decode_traffic_of_the_windows_and_seed_asked():
    from packviz.data.traffic import drifting_traffic

    at = replay_page(replay_planner="last", replay_source="Generator", replay_gen_phase="decode",
                     replay_gen_windows="12", replay_gen_seed="3")
    assert "12 windows, decode; 26 MoE layers of 27" in plain(at.caption[0].value)
    expected = replay(drifting_traffic(12, phase="decode", seed=3), ReplaySettings(SAMPLE_CLUSTER, planner="last"))
    assert metric(at, "Served balancedness") == f"{expected.mean_balancedness:.4f}"
