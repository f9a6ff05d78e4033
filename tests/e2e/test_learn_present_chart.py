"""Learn's chart in present mode on a 1366 x 768 laptop: every label inside the chart, none on another."""

from __future__ import annotations

import pytest

from scripts.browser import chromium_page, running_app, wait_until_idle

# The boxes of the chart's texts (tick numbers, the totals over the bars, the distances
# from the mean, the LB and mean names) against the chart's own box; overlaps between texts of one kind.
BOXES = r"""
() => {
  const gd = [...document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')]
    .find((g) => !g.closest('[data-testid="stExpander"]'));
  const chart = gd.querySelector('.main-svg').getBoundingClientRect();
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return [r.left, r.right, r.top, r.bottom, el.textContent];
  };
  const nonEmpty = (els) => [...els].filter((el) => el.textContent.trim()).map(box);
  return {chart: [chart.left, chart.right, chart.top, chart.bottom],
          ticks: nonEmpty(gd.querySelectorAll('.xaxislayer-above text')),
          totals: nonEmpty(gd.querySelectorAll('.scatterlayer .textpoint text'))
            .filter((b) => !/^[+\u2212-]|^0$/.test(b[4])),
          // each over (or under) its bar in the distance strip, as text of its own
          distances: nonEmpty(gd.querySelectorAll('.scatterlayer .textpoint text'))
            .filter((b) => /^[+\u2212-]|^0$/.test(b[4])),
          names: nonEmpty(gd.querySelectorAll('.annotation-text')).filter((b) => /^(LB|mean) /.test(b[4]))};
}
"""


def overlapping(boxes: list) -> list:
    return [(a[4], b[4]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[0] < b[0] < a[1] - 1 and a[2] < b[3] and b[2] < a[3]]


@pytest.fixture(scope="module")
def app():
    with running_app() as url:
        yield url


@pytest.mark.parametrize("query", ["chapter=paired&step=28", "chapter=two-swap&step=13"])
def test_present_mode_labels_stay_inside_the_chart_and_apart(app, query):
    with chromium_page(width=1366, height=768) as page:
        page.goto(f"{app}/learn?{query}&present=1")
        wait_until_idle(page)
        page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1000)
        seen = page.evaluate(BOXES)
    left, right = seen["chart"][0], seen["chart"][1]
    assert len(seen["names"]) == 2
    for name in seen["names"]:
        assert left <= name[0] and name[1] <= right + 0.5, (name, seen["chart"])  # "mean 225.6" was cut
    assert seen["ticks"] and not overlapping(sorted(seen["ticks"])), seen["ticks"]
    # chapter 8's 12 bars carry their totals under the pack numbers (over the bars they touched)
    assert (seen["totals"] or "paired" in query) and not overlapping(sorted(seen["totals"])), seen["totals"]
    # the signed distances from the mean: "+2.8+2.8" ran together in chapter 8, whose 12 bars now
    # say the moved packs' distances under the panel titles instead
    assert (seen["distances"] or "paired" in query) and not overlapping(sorted(seen["distances"])), seen["distances"]
