"""An EPLB chapter's GIF: one frame a step, the page's colours, the marked bar outlined."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from packviz.teach.eplb_lessons import chapter_steps
from packviz.teach.lessons import CHAPTER_BY_KEY
from packviz.viz.bars_gif import bars_gif, render_bars
from packviz.viz.figures import bars_figure
from packviz.viz.lesson_style import MOVED_COLOUR, rgb


def _steps(key: str):
    chapter = CHAPTER_BY_KEY[key]
    return chapter_steps(chapter.eplb, chapter.loads, chapter.num_packs)


@pytest.mark.parametrize("key", ["replication", "hierarchy"])
def test_one_frame_a_step_looping_with_the_last_held(key):
    steps = _steps(key)
    data = bars_gif([s.bars for s in steps], [s.narration for s in steps], frame_ms=500)
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == len(steps) and image.info.get("loop") == 0 and image.size == (960, 540)
    image.seek(image.n_frames - 1)
    assert image.info["duration"] == 1500


def test_each_slice_has_the_pages_colour_and_the_marked_bar_its_outline():
    steps = _steps("replication")
    index = next(i for i, s in enumerate(steps) if s.bars.marked and s.phase == "pack")
    bars = steps[index].bars
    image = render_bars([s.bars for s in steps], [s.narration for s in steps])[index]
    colours = {colour for _, colour in image.getcolors(1 << 24)}
    figure = bars_figure(bars)
    page = {rgb(c) for trace in figure.data if trace.type == "bar" for c, v in zip(trace.marker.color, trace.y)
            if v and c.startswith(("#", "hsl"))}
    assert page and page <= colours  # every slice colour the page draws is in the frame
    assert rgb(MOVED_COLOUR) in colours
    unmarked = next(i for i, s in enumerate(steps) if not s.bars.marked)
    other = render_bars([s.bars for s in steps], [s.narration for s in steps])[unmarked]
    assert rgb(MOVED_COLOUR) not in {colour for _, colour in other.getcolors(1 << 24)}


def test_dark_and_light_differ_and_bad_arguments_are_refused():
    steps = _steps("hierarchy")
    bars, captions = [s.bars for s in steps], [s.narration for s in steps]
    light, dark = render_bars(bars[:1], captions[:1])[0], render_bars(bars[:1], captions[:1], dark=True)[0]
    assert light.getpixel((2, 2)) == (255, 255, 255) and sum(dark.getpixel((2, 2))) < 100
    with pytest.raises(ValueError, match="captions"):
        render_bars(bars, captions[:-1])
    with pytest.raises(ValueError, match="no frames"):
        render_bars([], [])
    with pytest.raises(ValueError, match="too small"):
        render_bars(bars, captions, size=(100, 100))
    with pytest.raises(ValueError, match="frame_ms"):
        bars_gif(bars, captions, frame_ms=0)
