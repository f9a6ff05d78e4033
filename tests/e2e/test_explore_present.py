"""Explore's presenter in Present on a 1366 x 768 laptop and a 1920 x 1080 screen: the
buttons, the chart and the narration on one screen, no scrolling between steps."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from scripts.browser import chromium_page, running_app, wait_until_idle

# Where screenshots go when PACKVIZ_SHOTS names a folder (to look at them), else nowhere.
SHOTS = os.environ.get("PACKVIZ_SHOTS")

BOXES = r"""
() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.top, r.bottom, r.left, r.right]; };
  const next = [...document.querySelectorAll('button')].find((b) => b.textContent.includes('Next ›'));
  const chart = document.querySelector('[data-testid="stMain"] .stPlotlyChart .main-svg');
  const words = [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stAlert"]')]
    .filter((a) => a.offsetParent !== null);
  const segments = [...document.querySelectorAll('[data-testid="stMain"] .barlayer text.bartext-inside')]
    .filter((t) => t.textContent.trim() && t.getBoundingClientRect().width > 0
                   && getComputedStyle(t).display !== 'none' && getComputedStyle(t).opacity !== '0')
    .map((t) => parseFloat(getComputedStyle(t).fontSize)).filter((size) => size > 0);
  return {next: next && box(next), chart: chart && box(chart), words: words.map(box), segments,
          height: window.innerHeight};
}
"""


@pytest.fixture(scope="module")
def app():
    with running_app() as url:
        yield url


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_present_puts_buttons_chart_and_narration_on_one_screen(app, size):
    width, height = size
    screen = "laptop 1366 x 768" if width == 1366 else "projector 1920 x 1080"
    with chromium_page(width=width, height=height) as page:
        # the link's key is Learn's ("present"); the 1366 case opens a link made before, which said "present_view"
        key = "present_view" if width == 1366 else "present"
        page.goto(f"{app}/?section=Step+through+a+layer&view=Presenter&step=40&{key}=1")
        wait_until_idle(page)
        page.locator(".stPlotlyChart .main-svg").first.wait_for(timeout=120_000)
        # the address bar is written once the run is over, which the chart does not wait for
        wait_until_idle(page)
        page.wait_for_function("() => { const q = new URLSearchParams(location.search); "
                               "return q.get('present') === '1' && !q.has('present_view'); }", timeout=60_000)
        query = parse_qs(urlparse(page.url).query)
        assert query.get("present") == ["1"] and "present_view" not in query, page.url
        if width != 1366:
            page.locator('[data-testid="stSelectbox"]').last.click()
            page.get_by_role("option", name=screen).click()
            wait_until_idle(page)
        page.wait_for_timeout(1500)
        seen = page.evaluate(BOXES)
        if SHOTS:
            page.screenshot(path=str(Path(SHOTS) / f"explore_present_{width}x{height}.png"))
    assert seen["next"] and seen["chart"] and seen["words"], seen
    assert seen["next"][1] <= height, seen  # Next above the fold
    assert seen["chart"][1] <= height + 1, seen  # the whole chart on screen
    assert all(bottom <= height for _, bottom, _, _ in seen["words"]), seen  # and the narration
    # the segment labels drawn are of a size one reads (Plotly shrinks them to fit, down to 12 px)
    assert seen["segments"] and min(seen["segments"]) >= 11.5, seen["segments"]
