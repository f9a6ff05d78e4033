"""Take the README's screenshots from the running app (headless Chromium).

    python scripts/screenshots.py [--out docs] [--only deploy|learn|replay]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.browser import chromium_page, running_app, wait_until_idle


def section(page, name: str) -> None:
    page.locator('[data-testid="stRadio"]').get_by_text(name, exact=True).click()


def deploy(out: Path) -> None:
    """The Deploy page on the default sample: checks, the placement of layer 0 and its GPU loads."""
    with running_app() as url, chromium_page(width=1500, height=1400) as page:
        page.goto(f"{url}/deploy")
        wait_until_idle(page)
        page.get_by_text("Checks pass").wait_for(timeout=120_000)
        page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "deploy.png"))


def replay(out: Path, width: int = 1500, height: int = 1300, name: str = "replay") -> Path:
    """The Replay page on the shipped sample after a small sweep: its Pareto chart and recommended setting."""
    query = ("replay_section=Sweep&replay_sweep_planners=last,mean:8,robust:4&replay_sweep_intervals=1,4"
             "&replay_sweep_triggers=interval,drop")
    with running_app() as url, chromium_page(width=width, height=height) as page:
        page.goto(f"{url}/replay?{query}")
        wait_until_idle(page)
        page.get_by_role("button", name=re.compile("^Run the sweep")).click()
        page.get_by_text("Recommended:").wait_for(timeout=600_000)
        wait_until_idle(page)
        page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / f"{name}.png"))
    return out / f"{name}.png"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs"))
    parser.add_argument("--only", choices=["deploy", "learn", "replay"], help="take only this page's screenshots")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only == "replay":
        print(replay(out))
        return 0
    if args.only == "learn":
        for path in learn(out):
            print(path)
        return 0
    deploy(out)
    if args.only == "deploy":
        print(out / "deploy.png")
        return 0
    replay(out)
    with running_app() as url, chromium_page(width=1500, height=1250) as page:
        page.goto(url)
        wait_until_idle(page)
        page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "explore.png"), full_page=True)

        section(page, "Step through a layer")
        wait_until_idle(page)
        animation = page.locator(".js-plotly-plot").filter(has=page.locator(".slider-container")).first
        animation.wait_for()
        animation.get_by_text("Play").click()
        page.wait_for_timeout(6000)
        animation.get_by_text("Pause").click()
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "step_through.png"), full_page=True)

        section(page, "Restarts")
        wait_until_idle(page)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "restarts.png"), full_page=True)

        section(page, "Step through a layer")
        page.get_by_text("Presenter", exact=True).click()
        wait_until_idle(page)
        page.get_by_role("button", name="Refinement").click()
        wait_until_idle(page)
        for _ in range(2):
            page.get_by_role("button", name="Next ›").click()
            wait_until_idle(page)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "presenter.png"), full_page=True)
    learned = learn(out)
    for name in ("deploy", "replay", "explore", "step_through", "restarts", "presenter"):
        print(out / f"{name}.png")
    for path in learned:
        print(path)
    return 0


def learn(out: Path) -> list[Path]:
    """The Learn page: a desk view, present mode on a laptop in light and dark, and Predict."""
    views = {
        "learn": ("chapter=two-swap&step=13", 1920, 1080, "light"),
        "learn_present": ("chapter=two-swap&step=13&present=1", 1366, 768, "light"),
        "learn_present_dark": ("chapter=differencing&step=3&present=1", 1366, 768, "dark"),
        "learn_predict": ("chapter=greedy&step=3&quiz=1", 1366, 768, "light"),
    }
    with running_app() as url:
        for name, (query, width, height, scheme) in views.items():
            with chromium_page(width=width, height=height, color_scheme=scheme) as page:
                page.goto(f"{url}/learn?{query}")
                wait_until_idle(page)
                page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=120_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out / f"{name}.png"))
    return [out / f"{name}.png" for name in views]


if __name__ == "__main__":
    raise SystemExit(main())
