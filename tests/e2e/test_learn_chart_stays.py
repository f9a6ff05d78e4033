"""Learn's chart on Next, frame by frame in headless Chromium: it must never blank.

Every Next sends a new figure, and Streamlit mounts a new chart element for it (the
element's id is a hash of the figure). Streamlit keeps the old element as "retained"
but hides it, drops it when the run ends, and the new one draws nothing until it has
measured its width. The page keeps the retained chart shown until the new one has drawn,
and holds the end of the run a moment so that it is not dropped first. Counted on every
requestAnimationFrame: frames with no chart (while a retained one was there, or after it
was dropped) and frames with two charts at once.
"""

from __future__ import annotations

import pytest

from scripts.browser import chromium_page, running_app, wait_until_idle

# Counts, on every animation frame, how many lesson charts (not the practice chart in its
# expander) with bars is on screen, and when none is, whether a retained chart was there.
PROBE = r"""
(() => {
  const log = window.__chart = {frames: 0, blankWhileRetained: 0, blankWithoutRetained: 0, doubled: 0,
                              clicksBlank: new Set()};
  window.__click = 0;
  const tick = () => {
    const main = document.querySelector('[data-testid="stMain"]');
    const plots = main ? [...main.querySelectorAll('.js-plotly-plot')].filter(
      (gd) => !gd.closest('[data-testid="stExpander"]')) : [];
    const shown = plots.filter((gd) => {
      const box = gd.getBoundingClientRect();
      return box.height > 10 && box.width > 10 && gd.querySelector('.barlayer .point');
    });
    log.frames++;
    if (shown.length > 1) log.doubled++;  // the old chart over the new one: both transparent
    if (!shown.length) {
      const retained = plots.some((gd) => gd.closest('[data-retained="true"]'));
      if (retained) log.blankWhileRetained++; else log.blankWithoutRetained++;
      log.clicksBlank.add(window.__click);
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""
CLICKS = 10


@pytest.fixture(scope="module")
def app():
    with running_app() as url:
        yield url


@pytest.mark.parametrize("present", [False, True])
def test_the_chart_stays_on_screen_over_ten_next_clicks(app, present):
    with chromium_page(width=1366, height=768) as page:
        page.goto(f"{app}/learn?chapter=two-swap&step=0{'&present=1' if present else ''}")
        wait_until_idle(page)
        page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1000)
        page.evaluate(PROBE)
        for click in range(1, CLICKS + 1):
            page.evaluate(f"() => {{ window.__click = {click}; }}")
            page.get_by_role("button", name="Next ›").click()
            page.wait_for_function(f"() => new URLSearchParams(location.search).get('step') === '{click}'")
            wait_until_idle(page)
            page.wait_for_timeout(300)
        seen = page.evaluate("() => ({frames: __chart.frames, retained: __chart.blankWhileRetained, "
                             "dropped: __chart.blankWithoutRetained, doubled: __chart.doubled, "
                             "clicks: [...__chart.clicksBlank]})")
    print(f"present={present}: {seen}")
    assert seen["frames"] > 5 * CLICKS  # the probe ran all along
    # Blank while Streamlit still held the old chart (hidden): 3-4 frames in 10 clicks before.
    assert seen["retained"] == 0, seen
    # Blank after the old chart was dropped at the end of the run: 1-5 frames in 10 clicks before
    # the run's end was held. The hold is a time, so a machine busy enough to delay the new chart's
    # first draw past it can still lose one frame (16 ms, once, in a loaded full-suite run): at
    # most one such frame in ten clicks, where main lost frames on 4-8 clicks of 10.
    assert seen["dropped"] <= 1, seen
    assert len(seen["clicks"]) <= 1, seen
    assert seen["doubled"] == 0, seen  # and never two charts at once (both are transparent)
