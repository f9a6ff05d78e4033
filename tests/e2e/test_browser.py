"""The main user journeys in real headless Chromium against the running app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from packviz import pack
from packviz.data.generators import replicate_hot
from packviz.data.loaders import read_loads
from packviz.io.export import parse_placement_csv
from scripts.browser import chromium_page, running_app, wait_until_idle

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def app_url():
    with running_app() as url:
        yield url


@pytest.fixture()
def page(app_url):
    with chromium_page() as page:
        page.goto(app_url)
        wait_until_idle(page)
        page.get_by_text("Mean gap to LB").wait_for(timeout=120_000)
        page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=120_000)
        yield page


def open_section(page, name: str) -> None:
    page.locator('[data-testid="stRadio"]').get_by_text(name, exact=True).click()
    wait_until_idle(page)


def test_the_app_opens_with_a_chart_and_no_error(page):
    assert page.locator(".js-plotly-plot").count() == 1  # the overview; the heatmap waits for its expander
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("Mean gap to LB").is_visible()
    page.get_by_text("Loads: 58 layers x 288 items").click()  # opening it draws the heatmap
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=120_000)
    wait_until_idle(page)
    assert page.locator(".js-plotly-plot >> visible=true").count() == 2


def test_play_advances_the_animation(page):
    open_section(page, "Step through a layer")
    animation = page.locator(".js-plotly-plot").filter(has=page.locator(".slider-container"))
    animation.first.wait_for()
    current = animation.first.locator("g.slider-group > text.slider-label").first
    assert current.text_content().strip() == "Step 0"
    animation.first.get_by_text("Play").click()
    page.wait_for_function(
        """(el) => { const t = el.textContent.trim(); return t !== 'Step 0' && /Step \\d+/.test(t); }""",
        arg=current.element_handle(), timeout=30_000,
    )
    step = int(re.search(r"\d+", current.text_content()).group())
    assert step > 0


def upload(page, path: Path, text: str) -> None:
    page.get_by_text("Upload", exact=True).click()
    wait_until_idle(page)
    path.write_text(text)
    page.locator('input[type="file"]').set_input_files(str(path))


def test_a_csv_upload_updates_the_chart(page, tmp_path):
    upload(page, tmp_path / "mine.csv", "a,b,c,d,e,f\n9,1,5,5,2,8\n3,3,2,8,7,1\n4,4,4,4,4,4\n")
    page.get_by_text("3 layers x 6 items").first.wait_for(timeout=120_000)
    wait_until_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    heatmap = page.locator(".js-plotly-plot").first
    assert heatmap.is_visible()


def test_a_bad_upload_shows_where_and_keeps_the_data(page, tmp_path):
    upload(page, tmp_path / "bad.csv", "1,2,3,4\n5,<b>abc</b>,7,8\n")
    error = page.locator('[data-testid="stAlert"]').filter(has_text="row 2, column 2")
    error.first.wait_for(timeout=60_000)
    assert "<b>abc</b>" in error.first.inner_text()  # shown as typed, never rendered as HTML
    assert page.get_by_text("58 layers x 288 items").first.is_visible()


def test_the_downloaded_csv_is_a_valid_placement(page):
    open_section(page, "Export")
    with page.expect_download() as download_info:
        page.get_by_role("button", name=re.compile("Placement CSV")).click()
    download = download_info.value
    assert download.suggested_filename == "placement_fast_32packs_seed0.csv"
    placement = parse_placement_csv(Path(download.path()).read_text())
    weight = replicate_hot(read_loads(ROOT / "sample_data" / "deepseek_v3_58x256.csv").weight, 288)
    assert all(torch.bincount(row, minlength=32).tolist() == [9] * 32 for row in placement["pack"])
    expected = pack(weight, 32, "fast", seed=0)
    assert torch.equal(placement["pack"], expected.pack_index)
    assert torch.equal(placement["rank_in_pack"], expected.rank_in_pack)
