"""The Learn page in real headless Chromium: share links, the keyboard, predictions."""

from __future__ import annotations

import re

import pytest

from packviz.teach.lesson_frames import lesson_frames
from packviz.teach.lessons import CHAPTER_BY_KEY
from packviz.teach.narration import learn
from scripts.browser import chromium_page, running_app, wait_until_idle


@pytest.fixture(scope="module")
def fresh_app():
    # A server of its own: the first page it ever serves is a shared link.
    with running_app() as url:
        yield url


def narration(chapter: str, step: int) -> str:
    trace = CHAPTER_BY_KEY[chapter].run().traces[0]
    return learn(trace, lesson_frames(trace), step)


def open_link(page, url: str) -> None:
    page.goto(url)
    wait_until_idle(page)
    page.locator(".js-plotly-plot >> visible=true").first.wait_for(timeout=120_000)


def shown(page) -> str:
    alert = page.locator('[data-testid="stAlert"]').first
    alert.wait_for()
    return alert.inner_text().strip()


def wait_for_text(page, text: str) -> None:
    page.locator('[data-testid="stAlert"]').filter(has_text=text[:60]).first.wait_for(timeout=60_000)


def test_a_share_link_opens_the_same_step_in_another_browser_and_after_a_reload(fresh_app):
    link = f"{fresh_app}/learn?chapter=two-swap&step=15"
    expected = narration("two-swap", 15)
    with chromium_page(width=1366, height=768) as first:
        open_link(first, link)
        wait_for_text(first, expected)
        assert shown(first) == expected
        # routed by app.py, not the legacy page list
        assert first.locator('[data-testid="stSidebarNav"]').get_by_text("Learn").count() == 1
        assert first.get_by_text("common", exact=True).count() == 0
        first.get_by_role("button", name=re.compile("Next")).click()
        wait_for_text(first, narration("two-swap", 16))
        first.wait_for_function("() => window.location.search.includes('step=16')")
        first.reload()
        wait_until_idle(first)
        wait_for_text(first, narration("two-swap", 16))
    with chromium_page(width=1920, height=1080) as second:
        open_link(second, link)
        wait_for_text(second, expected)
        assert shown(second) == expected


def test_arrow_keys_step_and_the_url_follows(fresh_app):
    with chromium_page(width=1366, height=768) as page:
        open_link(page, f"{fresh_app}/learn?chapter=greedy&step=2")
        wait_for_text(page, narration("greedy", 2))
        page.locator("h1").first.click()  # focus the page, not a widget
        page.keyboard.press("ArrowRight")
        wait_for_text(page, narration("greedy", 3))
        page.keyboard.press("ArrowRight")
        wait_for_text(page, narration("greedy", 4))
        page.keyboard.press("ArrowLeft")
        wait_for_text(page, narration("greedy", 3))
        page.wait_for_function("() => window.location.search.includes('step=3')")


def test_predict_the_next_pack_then_see_the_reveal(fresh_app):
    trace = CHAPTER_BY_KEY["greedy"].run().traces[0]
    answer = f"pack {trace.story()[4].pack}"
    with chromium_page(width=1366, height=768) as page:
        open_link(page, f"{fresh_app}/learn?chapter=greedy&step=3&quiz=1")
        page.get_by_text(re.compile("^Predict: .*Which pack does it go to")).wait_for()
        page.get_by_role("button", name=answer, exact=True).click()
        wait_until_idle(page)
        page.get_by_role("button", name="Reveal").first.click()
        wait_until_idle(page)
        page.get_by_text(re.compile(f"^Right: {answer}")).wait_for(timeout=60_000)


def test_self_study_locks_after_reveal_says_why_and_recaps(fresh_app):
    """Defect 6: a revealed answer cannot be changed, a wrong one is told why
    and scored, practice questions are new, and the lesson ends on a recap."""
    trace = CHAPTER_BY_KEY["greedy"].run().traces[0]
    answer = f"pack {trace.story()[4].pack}"
    with chromium_page(width=1366, height=768) as page:
        open_link(page, f"{fresh_app}/learn?chapter=greedy&step=3&quiz=1")
        page.get_by_text(re.compile("^Predict: .*Which pack does it go to")).wait_for()
        wrong = next(o for o in ("pack 0", "pack 1", "pack 2") if o != answer)
        page.get_by_role("button", name=wrong, exact=True).click()
        wait_until_idle(page)
        assert page.get_by_role("button", name="Reveal").count() == 1  # Practice's is folded away
        page.get_by_role("button", name="Reveal").first.click()
        wait_until_idle(page)
        page.get_by_text(re.compile(f"^Not this time: {wrong} holds .* more than")).wait_for(timeout=60_000)
        page.get_by_text("Score: 0 of 1").wait_for()
        assert page.get_by_role("button", name=wrong, exact=True).count() == 0  # locked: the verdict alone
        page.get_by_role("button", name="Reveal").wait_for(state="detached", timeout=30_000)
        page.get_by_text("Practice on your own").click()
        page.get_by_role("button", name="Another question").wait_for()
        open_link(page, f"{fresh_app}/learn?chapter=aging&step=99")
        page.get_by_text("The lesson in its numbers").wait_for(timeout=60_000)
        recap = page.locator('[data-testid="stAlert"]').filter(has_text="The lesson in its numbers")
        assert "the greedy 18" in recap.inner_text()


def test_present_mode_fits_next_and_the_chart_on_a_laptop_screen(fresh_app):
    with chromium_page(width=1366, height=768) as page:
        open_link(page, f"{fresh_app}/learn?chapter=two-swap&step=14&present=1")
        next_box = page.get_by_role("button", name=re.compile("Next")).bounding_box()
        chart_box = page.locator(".js-plotly-plot >> visible=true").first.bounding_box()
        assert next_box["y"] + next_box["height"] <= 768
        assert chart_box["y"] + chart_box["height"] <= 768
        assert not page.locator('[data-testid="stSidebar"]').is_visible()


def test_chapter_words_follow_the_loads_on_screen_and_the_run(fresh_app):
    """Defects 2 and 3: the text quotes the bound of the edited loads, and a run
    that does not refine never says it refines."""
    with chromium_page(width=1366, height=768) as page:
        open_link(page, f"{fresh_app}/learn?chapter=problem&loads=100,44,70,86,59,64,60,83,66")
        page.get_by_text("Here it is 211").wait_for(timeout=60_000)
        assert page.get_by_text("Here it is 183").count() == 0
        trace = CHAPTER_BY_KEY["differencing"].run().traces[0]
        pruning = next(i for i, f in enumerate(lesson_frames(trace)) if f.phase == "prune")
        open_link(page, f"{fresh_app}/learn?chapter=differencing&step={pruning}")
        said = narration("differencing", pruning)
        wait_for_text(page, said)
        assert "go on to refinement" not in shown(page) and "kept as candidates" in shown(page)


def test_pruning_merges_and_the_choice_are_drawn_not_only_told(fresh_app):
    """Defect 1: the dropped restarts, each differencing merge (on the merge
    line of the pseudo-code) and the losing candidates appear on the chart."""
    with chromium_page(width=1366, height=768) as page:
        trace = CHAPTER_BY_KEY["pruning"].run().traces[0]
        pruning = next(f.index for f in lesson_frames(trace) if f.phase == "prune")
        open_link(page, f"{fresh_app}/learn?chapter=pruning&step={pruning}")
        chart = page.locator(".js-plotly-plot >> visible=true").first
        chart.get_by_text("dropped").first.wait_for(timeout=60_000)
        assert chart.get_by_text("dropped", exact=True).count() == 3
        assert chart.get_by_text("kept", exact=True).count() == 3
        trace = CHAPTER_BY_KEY["differencing"].run().traces[0]
        merge = next(f.index for f in lesson_frames(trace) if f.event.kind == "merged" and f.event.into is not None)
        open_link(page, f"{fresh_app}/learn?chapter=differencing&step={merge}")
        wait_for_text(page, narration("differencing", merge))
        marked = page.locator('div[style*="background: rgba(230, 159, 0"]').first
        assert "merge" in marked.inner_text()
        assert page.locator(".js-plotly-plot >> visible=true").first.get_by_text("(took row").count() == 1
        open_link(page, f"{fresh_app}/learn?chapter=choice&step=99")
        page.locator(".js-plotly-plot >> visible=true").first.get_by_text("(wins)").wait_for(timeout=60_000)


def _step_in_url(page, step: int) -> None:
    page.wait_for_function(f"() => new URLSearchParams(window.location.search).get('step') === '{step}'",
                           timeout=60_000)


def _type_load(page, item: int, text: str) -> None:
    """Type into the load cell of ``item`` in the (canvas-drawn) load table."""
    # an edit redraws the table under a new key: wait until the run is over and the old one has gone
    # (on a loaded machine another rerun can bring a second table back for a moment: take the newest)
    wait_until_idle(page)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stDataFrame\"]').length === 1",
                           timeout=60_000)
    grid = page.locator('[data-testid="stDataFrame"]').last
    grid.wait_for()
    grid.scroll_into_view_if_needed()
    editor = page.locator("textarea.gdg-input")
    for _ in range(5):  # the grid draws on a canvas a moment after it appears
        box = grid.bounding_box()
        page.mouse.dblclick(box["x"] + box["width"] * 0.75, box["y"] + 35 * (item + 1) + 17)
        try:
            editor.wait_for(timeout=3_000)
            break
        except Exception:  # not open yet: try again
            continue
    editor.fill(text)
    page.keyboard.press("Enter")
    wait_until_idle(page)


def test_the_controls_keep_the_speed_the_keys_and_the_step(fresh_app):
    """Defect 4: speed survives a chapter change, the arrow keys step after the
    speed is touched, editing a load keeps the step, and a bad load names its item."""
    with chromium_page(width=1366, height=768) as page:
        open_link(page, f"{fresh_app}/learn?chapter=greedy&step=2&speed=faster")
        wait_for_text(page, narration("greedy", 2))
        page.locator('[data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name="5. 1-swap: heaviest against lightest").click()
        wait_until_idle(page)
        page.wait_for_function("() => window.location.search.includes('chapter=one-swap')", timeout=60_000)
        assert "speed=faster" in page.url
        page.get_by_role("button", name="Speed: faster").wait_for(timeout=60_000)
        page.get_by_role("button", name="Speed: faster").click()  # cycles to slow, and keeps the focus
        wait_until_idle(page)
        page.wait_for_function("() => window.location.search.includes('speed=slow')", timeout=60_000)
        trace = CHAPTER_BY_KEY["one-swap"].run().traces[0]
        start = next(f.index for f in lesson_frames(trace) if f.phase == "refine")
        page.keyboard.press("ArrowRight")
        wait_for_text(page, narration("one-swap", start + 1))
        _step_in_url(page, start + 1)
        # edit item 0's load in the table: the step stays
        page.locator('[data-testid="stExpander"]').get_by_text("Edit the loads").click()
        _type_load(page, 0, "20")
        page.wait_for_function("() => window.location.search.includes('loads=20%2C')", timeout=60_000)
        _step_in_url(page, start + 1)
        _type_load(page, 2, "abc")
        page.get_by_text("item 2: 'abc' is not a number").wait_for(timeout=60_000)
        assert "loads=20%2C" in page.url


def _bottom(locator) -> float:
    box = locator.bounding_box()
    return box["y"] + box["height"]


def _font_px(locator) -> float:
    return float(locator.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_present_mode_fits_a_laptop_with_type_a_room_can_read(fresh_app, scheme):
    """Defect 5: at 1366 x 768 every part of a step (chart, narration, the
    highlighted line, Next) is on screen, type is 20 px or more, and a moved
    item's outline is not black (it vanished on dark)."""
    steps = {"restarts": None, "choice": None, "paired": None, "differencing": None, "two-swap": None}
    for key in steps:
        trace = CHAPTER_BY_KEY[key].run().traces[0]
        frames = lesson_frames(trace)
        # the step with the longest narration: the hardest to fit
        steps[key] = max(range(len(frames)), key=lambda i, t=trace, f=frames: len(learn(t, f, i)))
    with chromium_page(width=1366, height=768, color_scheme=scheme) as page:
        for key, step in steps.items():
            open_link(page, f"{fresh_app}/learn?chapter={key}&step={step}&present=1")
            wait_for_text(page, narration(key, step))
            alert = page.locator('[data-testid="stAlert"]').first
            marked = page.locator('div[style*="background: rgba(230, 159, 0"]').first
            chart = page.locator(".js-plotly-plot >> visible=true").first
            next_button = page.get_by_role("button", name=re.compile("^Next"))
            for part in (alert, marked, chart, next_button.first):
                assert _bottom(part) <= 768, (key, step, part)
            assert _font_px(marked) >= 20 and _font_px(alert.locator("p").first) >= 20, key
            assert chart.bounding_box()["height"] >= 400, key  # the chart takes the room it has
        two_swap = CHAPTER_BY_KEY["two-swap"].run().traces[0]
        swap = next(f.index for f in lesson_frames(two_swap) if f.phase == "refine")
        open_link(page, f"{fresh_app}/learn?chapter=two-swap&step={swap}&present=1")
        strokes = page.locator(".js-plotly-plot >> visible=true").first.locator("g.point path").evaluate_all(
            "paths => paths.map(p => [getComputedStyle(p).stroke, parseFloat(getComputedStyle(p).strokeWidth)])")
        thick = {stroke for stroke, width in strokes if width >= 4}
        assert thick and "rgb(0, 0, 0)" not in thick, thick


def test_the_eplb_chapters_replicate_hot_experts_and_place_groups_on_nodes(fresh_app):
    """Defect 7: EPLB's other half, replication and the hierarchy, as chapters one can step through."""
    from packviz.teach.eplb_lessons import chapter_steps

    chapter = CHAPTER_BY_KEY["replication"]
    steps = chapter_steps(chapter.eplb, chapter.loads, chapter.num_packs)
    with chromium_page(width=1366, height=768) as page:
        open_link(page, f"{fresh_app}/learn?chapter=replication")
        wait_for_text(page, steps[0].narration)
        page.get_by_role("button", name=re.compile("^Next")).first.click()
        wait_for_text(page, steps[1].narration)
        marked = page.locator('div[style*="background: rgba(230, 159, 0"]').first
        assert "give e one more replica" in marked.inner_text()  # step 1 shows the slot given
        page.get_by_role("button", name=re.compile("End")).click()
        page.get_by_role("button", name=re.compile("Next chapter: 11")).click()
        page.wait_for_function("() => window.location.search.includes('chapter=hierarchy')", timeout=60_000)
        hierarchy = CHAPTER_BY_KEY["hierarchy"]
        wait_for_text(page, chapter_steps(hierarchy.eplb, hierarchy.loads, hierarchy.num_packs)[0].narration)


def test_a_server_started_dark_downloads_a_dark_gif():
    """Defect 5: with ``--theme.base dark`` (here its environment variable) the GIF follows the theme."""
    import io
    import os

    from PIL import Image

    from scripts.browser import free_port, serve_app

    env = {**os.environ, "STREAMLIT_THEME_BASE": "dark"}
    with serve_app(free_port(), env=env) as (url, _), chromium_page(width=1366, height=768) as page:
        open_link(page, f"{url}/learn?chapter=greedy&step=0")
        with page.expect_download(timeout=180_000) as download:
            page.get_by_role("button", name=re.compile("Download this lesson as a GIF, dark")).click()
        first = Image.open(io.BytesIO(download.value.path().read_bytes())).convert("L")
        corner = first.getpixel((2, 2))
        assert corner < 80, corner  # a dark background, not white
