"""Deploy in real headless Chromium: the downloaded files are the engine's plan."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from packviz.data.loaders import read_loads
from packviz.eplb.cluster import Cluster, place
from packviz.io.deploy import read_placement_csv
from packviz.io.export import check_sglang_map
from scripts.browser import chromium_page, free_port, running_app, serve_app, wait_until_idle

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_downloaded_sglang_json_and_csv_are_the_engines_plan():
    experts = read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight
    expected = place(experts, Cluster(288, 8, 4, 32), "fast").phy2log
    with running_app() as url, chromium_page() as page:
        page.goto(f"{url}/deploy")
        wait_until_idle(page)
        page.get_by_text("Checks pass").wait_for(timeout=120_000)
        # the app's .streamlit/config.toml hides Streamlit's own Deploy button
        assert page.locator('[data-testid="stAppDeployButton"]').count() == 0
        page.locator('[data-testid="stRadio"]').get_by_text("Export", exact=True).click()
        wait_until_idle(page)
        with page.expect_download() as download_info:
            page.get_by_role("button", name=re.compile("^SGLang JSON")).click()
        sglang = download_info.value
        assert sglang.suggested_filename == "expert_location_fast_288slots_32gpus.json"
        table = json.loads(Path(sglang.path()).read_text())["physical_to_logical_map"]
        check_sglang_map(table, 256, 288)
        assert torch.equal(torch.tensor(table), expected)
        with page.expect_download() as download_info:
            page.get_by_role("button", name=re.compile("Placement CSV")).click()
        phy2log, cluster = read_placement_csv(Path(download_info.value.path()).read_text())
        assert torch.equal(phy2log, expected)
        assert (cluster.num_nodes, cluster.num_gpus, cluster.num_replicas) == (4, 32, 288)
        assert page.locator('[data-testid="stException"]').count() == 0


def test_over_time_draws_its_progress_while_the_other_sections_answer():
    # every history goes to the background here, however quick the machine
    env = {**os.environ, "PACKVIZ_OVER_TIME_INLINE_S": "0"}
    with serve_app(free_port(), env=env) as (url, _), chromium_page() as page:
        page.goto(f"{url}/deploy")
        wait_until_idle(page)
        page.get_by_text("Checks pass").wait_for(timeout=120_000)
        page.locator('[data-testid="stRadio"]').get_by_text("Over time", exact=True).click()
        page.get_by_text("made in the background").wait_for(timeout=60_000)
        # the run has its slot from the start: its first picture is its progress, never "waiting"
        shown = page.locator('[data-testid="stMain"]').inner_text()
        assert "Waiting for other sessions" not in shown, shown
        progress = page.get_by_text(re.compile(r"Planning on 7 of the 8 windows .*: \d of 7 windows planned"))
        progress.wait_for(timeout=30_000)
        assert progress.count() == 1, page.locator('[data-testid="stMain"]').inner_text()
        # meanwhile another section answers
        page.locator('[data-testid="stRadio"]').get_by_text("Placement", exact=True).click()
        page.get_by_text("Checks pass").wait_for(timeout=30_000)
        # back, and with no other click the result replaces the progress when the plans are made
        page.locator('[data-testid="stRadio"]').get_by_text("Over time", exact=True).click()
        page.get_by_text(re.compile("Mean next-window balancedness")).wait_for(timeout=300_000)
        assert page.get_by_text("made in the background").count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
