"""Replay in real headless Chromium: the sweep runs, its Pareto chart and recommendation show, the exports hold
the recommended setting's plans and summary."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np

from packviz.data.samples import read_trace_sample
from packviz.eplb.cluster import Cluster
from packviz.eplb.replay import ReplaySettings, recommend, replay
from scripts.browser import chromium_page, running_app, wait_until_idle

SWEEP = ("replay_planner=last&replay_section=Sweep&replay_sweep_planners=last,mean:8"
         "&replay_sweep_intervals=1,4&replay_sweep_triggers=interval")


def test_the_sweep_draws_its_front_recommends_and_exports_the_recommended_plans():
    trace = read_trace_sample()[0].loads
    cluster = Cluster(72, None, 1, 8, "global")
    expected = recommend([replay(trace, ReplaySettings(cluster, planner=p, interval=i))
                          for p in ("last", "mean:8") for i in (1, 4)], 60.0)
    with running_app() as url, chromium_page(width=1366, height=900) as page:
        page.goto(f"{url}/replay?{SWEEP}")
        wait_until_idle(page)
        page.get_by_role("button", name=re.compile("^Run the sweep")).click()
        page.get_by_text("Recommended:").wait_for(timeout=300_000)
        wait_until_idle(page)
        chart = page.locator(".js-plotly-plot >> visible=true").first
        chart.wait_for()
        assert chart.get_by_text("Pareto front").count() == 1
        assert page.get_by_text(f"Recommended: {expected.settings.label()}.").count() == 1
        assert page.get_by_text("--enable-eplb --ep-num-redundant-experts 8").count() >= 1
        page.locator('[data-testid="stRadio"]').get_by_text("Export", exact=True).click()
        wait_until_idle(page)
        with page.expect_download() as download_info:
            page.get_by_role("button", name=re.compile("^Plans .npy")).click()
        assert download_info.value.suggested_filename == "plans.npy"
        plans = np.load(io.BytesIO(Path(download_info.value.path()).read_bytes()), allow_pickle=False)
        assert plans.dtype == np.int64 and plans.shape == (47, 27, 72)
        assert np.array_equal(plans, expected.plans.numpy())
        with page.expect_download() as download_info:
            page.get_by_role("button", name=re.compile("^Summary JSON")).click()
        summary = json.loads(Path(download_info.value.path()).read_text())
        assert {"mean_balancedness", "gb_per_hour", "last_window_balancedness", "engine_flags", "trace"} <= set(summary)
        assert abs(summary["mean_balancedness"] - expected.mean_balancedness) < 1e-12
        assert page.locator('[data-testid="stException"]').count() == 0
